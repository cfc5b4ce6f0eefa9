// Exposing intermediate layers of a serialised model: every Keras layer's output value carries the Keras layer
// name (block4_conv2, mixed5, fc2, …), so DeepDream, style transfer, Grad-CAM or feature extraction can ask for
// any of them as extra graph outputs without rebuilding the network.
//
// External data: our model.onnx files keep their weights in model.weights.bin (a path relative to the .onnx).
// The returned bytes still reference it, so either write them next to the original (see addOutputsToFile) or
// pass ORT `externalData: [{ path: 'model.weights.bin', data: <the file's bytes> }]` when creating a session from
// the bytes (onnxruntime-node 1.30 accepts only a buffer there, not a path; without the option the relative
// path is resolved against the process working directory).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeAtomic } from '../onnx/builder.js';
import { decodeModel, encodeModel, makeValueInfo } from '../onnx/proto.js';

/** Names of all values produced by nodes of the model's main graph, in node order. */
export function listValueNames(modelBytes: Uint8Array): string[] {
  const model = decodeModel(modelBytes);
  return (model.graph?.node ?? []).flatMap((n) => n.output ?? []);
}

/**
 * Returns a copy of the model with `names` appended to its graph outputs (float32, shape left to ORT).
 * Names that already are outputs are skipped; a name no node produces is an error listing close matches.
 */
export function addOutputs(modelBytes: Uint8Array, names: string[]): Uint8Array {
  const model = decodeModel(modelBytes);
  const graph = model.graph;
  if (!graph) throw new Error('model has no graph');
  const produced = new Set((graph.node ?? []).flatMap((n) => n.output ?? []));
  const existing = new Set((graph.output ?? []).map((o) => o.name));
  for (const name of names) {
    if (!produced.has(name)) {
      const prefix = name.replace(/_?\d+$/, '');
      const similar = [...produced].filter((p) => p.startsWith(prefix) && !p.includes('/')).slice(0, 5);
      throw new Error(`no layer named '${name}' in this model${similar.length ? ` (similar: ${similar.join(', ')})` : ''}`);
    }
    if (existing.has(name)) continue;
    graph.output = [...(graph.output ?? []), makeValueInfo(name, 'float32')];
    existing.add(name);
  }
  return encodeModel(model);
}

/**
 * Writes `<model dir>/<outName>` (default `model.outputs.onnx`) = the model with extra outputs, next to the
 * original so its external weights file still resolves. Returns the new path.
 */
export function addOutputsToFile(modelPath: string, names: string[], outName = 'model.outputs.onnx'): string {
  const out = join(dirname(modelPath), outName);
  writeAtomic(out, addOutputs(readFileSync(modelPath), names));
  return out;
}
