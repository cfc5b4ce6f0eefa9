// Shared plumbing of the gradient ops (DeepDream, style transfer): decode an installed model.onnx, let the op
// add its loss nodes with GraphBuilder, differentiate with the autodiff (gradientModel, wrt the image input),
// inline ("materialise") the external-data initializers the result still needs from model.weights.bin, and
// load the self-contained model into the engine's session cache once per (model, variant), built in a child
// process. Input H×W stays symbolic, so one session serves every image size.
import { fork } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Engine, RunResult, SessionSource, WireTensor } from '../engine/engine.js';
import type { ModelEntry, ModelRegistry } from '../models/registry.js';
import { gradientModel, pruneUnused } from '../onnx/autodiff.js';
import { GraphBuilder } from '../onnx/builder.js';
import { type ModelProto, type TensorProto, decodeModel, encodeModel, makeValueInfo, onnx } from '../onnx/proto.js';
import { unavailable, badRequest } from '../util/problem.js';
import { isRunningTypeScript } from '../util/worker-url.js';

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

/**
 * Makes the image input's batch and spatial dims symbolic: a model imported with a fixed input size (a Keras
 * Input(shape=(28, 28, 1))) still runs its convolutional part at any size, which dream octaves and tiles need.
 */
function freeImageSize(b: GraphBuilder): void {
  const i = b.inputs.findIndex((v) => v.name === IMAGE_INPUT);
  const dims = i < 0 ? undefined : b.inputs[i]!.type?.tensorType?.shape?.dim;
  if (!dims || dims.length !== 4 || dims[1]?.dimValue == null) return;
  b.inputs[i] = makeValueInfo(IMAGE_INPUT, 'float32', ['N', Number(dims[1].dimValue), 'H', 'W']);
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
  freeImageSize(b);
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
  freeImageSize(b);
  for (const o of addOutputs(b)) b.output(o, 'float32');
  const graph = pruneUnused(b.toGraph());
  materializeExternal(graph.initializer as TensorProto[], dirname(modelPath));
  return encodeModel({ ...model, graph: { ...graph, valueInfo: [] } });
}

/** What a cached session is built from: serialisable, so the build runs in a child process. */
export type GraphRecipe =
  | { kind: 'dream-gradient'; layers: string[]; crop: number }
  | { kind: 'style-gradient'; style: StyleGraphLayers }
  | { kind: 'style-targets'; style: StyleGraphLayers };

/**
 * The layers of a style graph on any model: style.ts's StyleLossSpec as plain data (spelt out here so this
 * module does not import style.ts, which imports it). `recipe` is checked by the child that builds the graph.
 */
export interface StyleGraphLayers {
  recipe: string;
  contentLayer: string;
  styleLayers: string[];
  channels?: Record<string, number>;
}

export interface GraphSpec {
  modelPath: string;
  recipe: GraphRecipe;
}

/** A session made in this process, quickly: its model's bytes, or a source (a path) the maker wrote itself. */
export type SessionMaker = () => Uint8Array | SessionSource;

/**
 * Loads a session into the engine under `key` once (concurrent callers share the build), through the engine's
 * bounded session cache: released from the workers when idle, evicted when the cache is full. `how` is a
 * {@link GraphSpec} (a gradient graph: seconds of work, built in a child process) or a {@link SessionMaker}
 * (explanation graphs: milliseconds; bytes go to the cache's file, a path of the maker's own is loaded as is).
 * Callers ask again before each use (a job: before each step), which also marks the entry as in use.
 */
export function ensureSession(engine: Engine, key: string, how: GraphSpec | SessionMaker, opts: { memArena?: boolean } = {}): Promise<string> {
  return engine.cache.ensure(key, async (file) => {
    if (typeof how !== 'function') return buildGraphFile(how, file);
    const made = how();
    return made instanceof Uint8Array ? { bytes: made } : made;
  }, opts);
}

export interface GraphBuildRequest { spec: GraphSpec; file: string }
export type GraphBuildReply = { ok: true; ms: number } | { ok: false; message: string };

/**
 * Builds `spec` into the .onnx file `file` in a child process: decoding, differentiating and encoding a graph
 * is 1–2.5 s of synchronous JS per graph (InceptionV3 dream, VGG19 style) that would stall every request on
 * the HTTP thread, and its hundreds of MB of garbage would stay in the server's heap (see graph-build-task.ts).
 */
export function buildGraphFile(spec: GraphSpec, file: string): Promise<void> {
  const entry = fileURLToPath(new URL(`./graph-build-task.${isRunningTypeScript(import.meta.url) ? 'ts' : 'js'}`, import.meta.url));
  // The parent's exec arguments carry the TypeScript loader under tsx; test-runner and inspector flags stay here.
  const execArgv = process.execArgv.filter((a) => !/^--(test|inspect|watch|experimental-test)/.test(a));
  const child = fork(entry, [], { execArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      if (error) reject(error);
      else resolve();
    };
    child.once('message', (m: GraphBuildReply) => settle(m.ok ? undefined : new Error(m.message)));
    child.once('error', (e) => settle(e));
    child.once('exit', (code, signal) => settle(new Error(`the graph build process exited (${signal ?? `code ${code}`}) before answering`)));
    child.send({ spec, file } satisfies GraphBuildRequest);
  });
}

export interface GradServices {
  engine: Engine;
  registry: ModelRegistry;
}

export function gradServices(services: GradServices | undefined): GradServices {
  if (!services) throw unavailable('engine-unavailable', 'This operation needs the inference engine and the model registry (the inference plugin is not running).');
  return services;
}

/**
 * A ready model (any task, any architecture: the gradient ops work on every model with a graph), or a
 * ProblemError saying why not. `architecture`, when given, is required as well.
 */
export function requireModel(registry: ModelRegistry, name: string, architecture?: string): ModelEntry & { modelPath: string } {
  const entry = registry.get(name);
  if (!entry) {
    const known = registry.list().filter((e) => (architecture ? e.architecture === architecture : e.status === 'ready')).map((e) => e.name);
    throw badRequest('unknown-model', `No model named '${name}'. ${architecture ? `${architecture} models` : 'Installed models'}: ${known.join(', ') || '(none installed)'}.`, { models: known });
  }
  if (entry.status === 'missing') throw unavailable('model-not-installed', `Model '${name}' is not installed. Install it with: ${entry.install?.join('  or  ') ?? `convserve models fetch ${name}`}`, { install: entry.install ?? [] });
  if (entry.status === 'downloading') throw unavailable('model-downloading', `Model '${name}' is downloading${entry.percent !== undefined ? ` (${entry.percent}%)` : ''}; try again when GET /v1/models shows it ready.`, {}, 30);
  if (entry.status === 'error' || !entry.modelPath) throw unavailable('model-error', `Model '${name}' cannot be used: ${entry.error ?? 'it has no model file'}`);
  const arch = entry.manifest?.architecture;
  if (architecture && arch !== architecture) throw badRequest('wrong-architecture', `Model '${name}' is a ${arch ?? 'unknown'} model; this operation needs a ${architecture} model.`);
  return { ...entry, modelPath: entry.modelPath };
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
