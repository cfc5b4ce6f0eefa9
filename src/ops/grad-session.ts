// Shared plumbing of the gradient ops (DeepDream, style transfer): decode an installed model.onnx, let the op
// add its loss nodes with GraphBuilder, differentiate with the autodiff (gradientModel, wrt the image input),
// inline ("materialise") the external-data initializers the result still needs from model.weights.bin, and
// load the self-contained bytes into the engine once per (model, variant). Input H×W stays symbolic, so one
// session serves every image size.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import type { Engine, RunResult, WireTensor } from '../engine/engine.js';
import type { ModelEntry, ModelRegistry } from '../models/registry.js';
import { gradientModel, pruneUnused } from '../onnx/autodiff.js';
import { GraphBuilder } from '../onnx/builder.js';
import { type ModelProto, type TensorProto, decodeModel, encodeModel, onnx } from '../onnx/proto.js';
import { unavailable, badRequest } from '../util/problem.js';

/** Name of the image input of every architecture graph (NCHW, symbolic N/H/W). */
export const IMAGE_INPUT = 'input';
/** Gradient output the autodiff names `<wrt>_grad`. */
export const IMAGE_GRAD = `${IMAGE_INPUT}_grad`;

/**
 * The file an external-data `location` names: relative, and inside the model folder once resolved — a model
 * file must not make the service read `/etc/passwd` or `../../data/…` into a graph.
 */
export function externalDataPath(modelDir: string, location: string, tensor: string): string {
  const path = resolve(modelDir, location);
  const rel = relative(resolve(modelDir), path);
  if (isAbsolute(location) || /^[a-zA-Z]:/.test(location) || rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new Error(`initializer '${tensor}': external data location '${location}' is not a relative path inside the model folder`);
  }
  return path;
}

/** Reads every initializer stored as external data (location/offset/length) into rawData, in place. */
export function materializeExternal(initializers: TensorProto[], modelDir: string): void {
  const fds = new Map<string, number>();
  try {
    for (const t of initializers) {
      if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
      const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
      const loc = kv.location;
      if (!loc) throw new Error(`initializer '${t.name}' is external but has no location`);
      const path = externalDataPath(modelDir, loc, t.name ?? '?');
      let fd = fds.get(path);
      if (fd === undefined) { fd = openSync(path, 'r'); fds.set(path, fd); }
      const offset = Number(kv.offset ?? 0);
      const elems = (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
      const length = kv.length !== undefined ? Number(kv.length) : elems * 4;
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, offset + got);
        if (n <= 0) throw new Error(`${path}: short read for initializer '${t.name}' (${got}/${length} bytes at offset ${offset})`);
        got += n;
      }
      t.rawData = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      t.dataLocation = onnx.TensorProto.DataLocation.DEFAULT;
      t.externalData = [];
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}

export interface LossGraph {
  /** Name of the scalar loss value added to the builder. */
  loss: string;
  /** Extra scalar forward values to expose (loss components); cheap to fetch. */
  extraOutputs?: string[];
}

/**
 * model.onnx → gradient model bytes (self-contained: weights inlined). `addLoss` receives a builder over the
 * forward graph (its outputs cleared) and appends the loss nodes and any extra inputs (targets, weights).
 */
export function buildGradientModel(modelPath: string, addLoss: (b: GraphBuilder) => LossGraph): Uint8Array {
  const model = decodeModel(readFileSync(modelPath));
  const b = GraphBuilder.fromGraph(model.graph!);
  b.outputs.length = 0;
  const { loss, extraOutputs = [] } = addLoss(b);
  for (const o of extraOutputs) b.output(o, 'float32', []);
  const withLoss = onnx.ModelProto.create({ ...model, graph: { ...b.toGraph(), valueInfo: [] } }) as ModelProto;
  const grad = gradientModel(withLoss, { loss, wrt: [IMAGE_INPUT] });
  materializeExternal(grad.graph!.initializer as TensorProto[], dirname(modelPath));
  return encodeModel(grad);
}

/** model.onnx → forward-only model bytes whose outputs are the values `addOutputs` returns (weights inlined). */
export function buildForwardModel(modelPath: string, addOutputs: (b: GraphBuilder) => string[]): Uint8Array {
  const model = decodeModel(readFileSync(modelPath));
  const b = GraphBuilder.fromGraph(model.graph!);
  b.outputs.length = 0;
  for (const o of addOutputs(b)) b.output(o, 'float32');
  const graph = pruneUnused(b.toGraph());
  materializeExternal(graph.initializer as TensorProto[], dirname(modelPath));
  return encodeModel({ ...model, graph: { ...graph, valueInfo: [] } });
}

const sessionCache = new WeakMap<Engine, Map<string, Promise<string>>>();

/** Loads `make()`'s bytes into the engine under `key` once (concurrent callers share the load). */
export function ensureSession(engine: Engine, key: string, make: () => Uint8Array): Promise<string> {
  let m = sessionCache.get(engine);
  if (!m) { m = new Map(); sessionCache.set(engine, m); }
  let p = m.get(key);
  if (!p) {
    p = (async () => {
      if (!engine.has(key)) await engine.load(key, { bytes: make() });
      return key;
    })();
    p.catch(() => m!.delete(key));
    m.set(key, p);
  }
  return p;
}

export interface GradServices {
  engine: Engine;
  registry: ModelRegistry;
}

export function gradServices(services: GradServices | undefined): GradServices {
  if (!services) throw unavailable('engine-unavailable', 'This operation needs the inference engine and the model registry (the inference plugin is not running).');
  return services;
}

/** A ready model of the given architecture (any variant: top or notop), or a ProblemError saying why not. */
export function requireModel(registry: ModelRegistry, name: string, architecture: string): ModelEntry & { modelPath: string } {
  const entry = registry.get(name);
  if (!entry) {
    const known = registry.list().filter((e) => e.architecture === architecture).map((e) => e.name);
    throw badRequest('unknown-model', `No model named '${name}'. ${architecture} models: ${known.join(', ') || '(none installed)'}.`, { models: known });
  }
  if (entry.status === 'missing') throw unavailable('model-not-installed', `Model '${name}' is not installed. Install it with: ${entry.install?.join('  or  ') ?? `convserve models fetch ${name}`}`, { install: entry.install ?? [] });
  if (entry.status === 'downloading') throw unavailable('model-downloading', `Model '${name}' is downloading${entry.percent !== undefined ? ` (${entry.percent}%)` : ''}; try again when GET /v1/models shows it ready.`, {}, 30);
  if (entry.status === 'error') throw unavailable('model-error', `Model '${name}' cannot be used: ${entry.error}`);
  const arch = entry.manifest?.architecture;
  if (arch !== architecture) throw badRequest('wrong-architecture', `Model '${name}' is a ${arch ?? 'unknown'} model; this operation needs a ${architecture} model.`);
  return entry as ModelEntry & { modelPath: string };
}

/** Cache-key part identifying the folder contents a session was built from. */
export function modelStamp(entry: ModelEntry): string {
  return `${entry.name}@${entry.manifest?.created_at ?? ''}`;
}

/** Copies (the engine transfers feed buffers to its worker, detaching them). */
export function wire(data: Float32Array, dims: number[]): WireTensor {
  return { dims, data: data.slice() };
}

export function scalarTensor(v: number): WireTensor {
  return { dims: [], data: new Float32Array([v]) };
}

export type RunFn = (feeds: Record<string, WireTensor>, fetches: string[]) => Promise<RunResult>;
