// Float initializers of an installed base model read by name (external data resolved): the weights a top block
// starts from when --unfreeze-top trains it.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { decodeModel, tensorToFloat32 } from '../onnx/proto.js';
import { materializeExternal } from '../ops/grad-session.js';

export interface BaseTensor { dims: number[]; data: Float32Array }

/** The initializers of `modelPath` whose names are in `names`. */
export function readBaseTensors(modelPath: string, names: Set<string>): Map<string, BaseTensor> {
  const model = decodeModel(readFileSync(modelPath));
  const wanted = (model.graph?.initializer ?? []).filter((t) => names.has(t.name ?? ''));
  materializeExternal(wanted, dirname(modelPath));
  return new Map(wanted.map((t) => [t.name!, { dims: (t.dims ?? []).map(Number), data: tensorToFloat32(t) }]));
}
