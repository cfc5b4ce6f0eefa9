// Writes Keras / TensorFlow.js model files in every layout the importer reads, from one description
// ({config as stored, weights by layer path and role}), with the exact group/attribute/dataset structure real
// Keras writes (observed layouts: Keras 2 full .h5, save_weights .h5 + to_json, Keras 3 legacy .h5, Keras 3
// .keras zip and .weights.h5, tfjs layers model.json + shards incl. uint8/uint16/float16 quantization).
// Written independently of src/models/keras so tests compare the readers against these files, not against themselves.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import h5wasm from 'h5wasm/node';

export interface KerasWeightSpec {
  /** Role: kernel, bias, gamma, beta, moving_mean, … */
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface KerasFileSpec {
  /** The model config as Keras stores it (`{class_name, config}`), in the dialect of the layout written. */
  config: Record<string, unknown>;
  /** Layer path (`dense`, or `outer/inner` in a nested model) → weights in Keras variable order. */
  weights: Record<string, KerasWeightSpec[]>;
  kerasVersion?: string;
}

type Group = InstanceType<typeof h5wasm.Group>;
type H5File = InstanceType<typeof h5wasm.File>;

async function createH5(path: string): Promise<H5File> {
  await h5wasm.ready;
  return new h5wasm.File(path, 'w');
}

// ------------------------------------------------------------------------------------------------
// The stored config's layers (both dialects), just what the writers need.

interface ConfigLayer { name: string; className: string; children?: ConfigLayer[] }

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function configLayers(modelConfig: unknown): ConfigLayer[] {
  if (!isRecord(modelConfig)) throw new Error('config must be an object');
  const c = modelConfig.config;
  const list: unknown = Array.isArray(c) ? c : isRecord(c) ? c.layers : undefined;
  if (!Array.isArray(list)) throw new Error('config has no layers');
  return list.map((l) => {
    if (!isRecord(l) || typeof l.class_name !== 'string' || !isRecord(l.config)) throw new Error('bad layer in config');
    const name = String(l.name ?? l.config.name);
    const nested = Array.isArray(l.config.layers);
    return { name, className: l.class_name, ...(nested ? { children: configLayers(l) } : {}) };
  });
}

/** Every weight of the spec under layer path `prefix` (the layer itself, or all layers inside a nested model). */
function weightsUnder(spec: KerasFileSpec, path: string): { leaf: string; w: KerasWeightSpec }[] {
  return Object.entries(spec.weights)
    .filter(([p]) => p === path || p.startsWith(`${path}/`))
    .flatMap(([p, ws]) => ws.map((w) => ({ leaf: p.split('/').at(-1)!, w })));
}

// ------------------------------------------------------------------------------------------------
// HDF5 attributes as h5py writes them.

type StringStyle = 'bytes' | 'str';

/** A list attribute: fixed-length bytes (Keras 2's `.encode('utf8')`) or variable-length str; [] is float64[0]. */
function listAttr(g: Group, name: string, values: string[], style: StringStyle): void {
  if (values.length === 0) g.create_attribute(name, new Float64Array(0));
  else if (style === 'str') g.create_attribute(name, values);
  else g.create_attribute(name, values, [values.length], `S${Math.max(1, ...values.map((v) => Buffer.byteLength(v)))}`);
}

function stringAttr(g: Group, name: string, value: string, style: StringStyle): void {
  if (style === 'str') g.create_attribute(name, value);
  else g.create_attribute(name, value, null, `S${Math.max(1, Buffer.byteLength(value))}`);
}

/** Creates the dataset at `relPath` below `g` ('/' creates intermediate groups, as h5py does). */
function dataset(g: Group, relPath: string, shape: number[], data: Float32Array | BigInt64Array): void {
  const parts = relPath.split('/');
  let parent = g;
  for (const p of parts.slice(0, -1)) {
    const existing = parent.keys().includes(p) ? parent.get(p) : undefined;
    parent = existing instanceof h5wasm.Group ? existing : parent.create_group(p);
  }
  parent.create_dataset({ name: parts.at(-1)!, data, shape, dtype: data instanceof BigInt64Array ? '<q' : '<f' });
}

// ------------------------------------------------------------------------------------------------
// Legacy HDF5 layouts (layer_names / weight_names).

export interface LegacyH5Options {
  /** Split layer_names into this many attributes `layer_names0…` (Keras does it above 64 KB). */
  splitLayerNames?: number;
  /** Keras 2: 'layer' names weights `<layer>/<role>:0`; Keras 3.0–3.4: 'role' (`kernel`); Keras ≥ 3.5: 'path' (`<layer>/<role>`). */
  weightNames?: 'layer' | 'role' | 'path';
  strings?: StringStyle;
  /** Omit the root keras_version attribute (the reader then decides from the layout). */
  noVersion?: boolean;
}

function writeLegacyLayers(root: Group, spec: KerasFileSpec, opts: LegacyH5Options): void {
  const style = opts.strings ?? 'bytes';
  const layers = configLayers(spec.config);
  const names = layers.map((l) => l.name);
  if (opts.splitLayerNames) {
    const k = opts.splitLayerNames;
    for (let i = 0; i < k; i++) listAttr(root, `layer_names${i}`, names.filter((_, j) => j % k === i), style);
  } else listAttr(root, 'layer_names', names, style);
  for (const layer of layers) {
    const g = root.create_group(layer.name);
    // A nested model's legacy weights are `trainable_weights + non_trainable_weights` of the whole model.
    const all = weightsUnder(spec, layer.name);
    const frozen = (e: { w: KerasWeightSpec }) => /^(moving_|mean$|variance$|count$)/.test(e.w.name);
    const entries = layer.children ? [...all.filter((e) => !frozen(e)), ...all.filter(frozen)] : all;
    const storedName = ({ leaf, w }: { leaf: string; w: KerasWeightSpec }) => {
      if (opts.weightNames === 'role' && !layer.children) return w.name;
      if (opts.weightNames === 'path' || opts.weightNames === 'role') return `${leaf}/${w.name}`;
      return `${leaf}/${w.name}:0`;
    };
    listAttr(g, 'weight_names', entries.map(storedName), style);
    for (const e of entries) dataset(g, storedName(e), e.w.shape, e.w.data);
  }
}

/** Keras 2 `model.save('m.h5')`: model_config + model_weights/<layer>/<layer>/<w>:0 (bytes attributes). */
export async function writeKeras2H5(path: string, spec: KerasFileSpec, opts: LegacyH5Options = {}): Promise<void> {
  const file = await createH5(path);
  const style = opts.strings ?? 'bytes';
  const version = spec.kerasVersion ?? '2.3.1';
  if (!opts.noVersion) stringAttr(file, 'keras_version', version, style);
  stringAttr(file, 'backend', 'tensorflow', style);
  stringAttr(file, 'model_config', JSON.stringify(spec.config), style);
  stringAttr(file, 'training_config', JSON.stringify({ loss: 'categorical_crossentropy' }), style);
  const mw = file.create_group('model_weights');
  if (!opts.noVersion) stringAttr(mw, 'keras_version', version, style);
  stringAttr(mw, 'backend', 'tensorflow', style);
  writeLegacyLayers(mw, spec, opts);
  file.create_group('optimizer_weights').create_dataset({ name: 'iterations:0', data: new Float32Array([7]), shape: [1], dtype: '<f' });
  file.close();
}

/** Keras 3 `model.save('m.h5')`: str attributes, weight names without ':0', a top_level_model_weights group. */
export async function writeKeras3LegacyH5(path: string, spec: KerasFileSpec, opts: LegacyH5Options = {}): Promise<void> {
  const file = await createH5(path);
  const o: LegacyH5Options = { strings: 'str', weightNames: 'role', ...opts };
  const version = spec.kerasVersion ?? '3.4.1';
  if (!o.noVersion) stringAttr(file, 'keras_version', version, 'str');
  stringAttr(file, 'backend', 'tensorflow', 'str');
  stringAttr(file, 'model_config', JSON.stringify(spec.config), 'str');
  const mw = file.create_group('model_weights');
  writeLegacyLayers(mw, spec, o);
  listAttr(mw.create_group('top_level_model_weights'), 'weight_names', [], 'str');
  file.close();
}

/** Keras 2 `model.save_weights('w.h5')` + `model.to_json()`: layer groups at the root; the config in its own file. */
export async function writeKerasSaveWeights(weightsPath: string, configPath: string, spec: KerasFileSpec, opts: LegacyH5Options = {}): Promise<void> {
  const file = await createH5(weightsPath);
  const version = spec.kerasVersion ?? '2.8.0';
  stringAttr(file, 'keras_version', version, 'bytes');
  stringAttr(file, 'backend', 'tensorflow', 'bytes');
  writeLegacyLayers(file, spec, opts);
  file.create_group('top_level_model_weights');
  file.close();
  writeFileSync(configPath, JSON.stringify({ ...spec.config, keras_version: version, backend: 'tensorflow' }));
}

// ------------------------------------------------------------------------------------------------
// Keras 3 weight store: layers/<snake_case(class)[_n]>/vars/<i>.

/** Keras' naming.to_snake_case. */
function snake(className: string): string {
  return className.replace(/\W+/g, '').replace(/(.)([A-Z][a-z]+)/g, '$1_$2').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Layer path → its group path in the store (`layers/conv2d_1`, `layers/functional/layers/dense`). */
export function kerasVarsGroups(spec: KerasFileSpec): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (layers: ConfigLayer[], sequential: boolean, prefix: string, groupPrefix: string) => {
    const count = new Map<string, number>();
    for (const l of layers) {
      if (sequential && l.className === 'InputLayer') continue;
      const base = snake(l.className);
      const n = count.get(base);
      count.set(base, n === undefined ? 0 : n + 1);
      const group = `${groupPrefix}layers/${n === undefined ? base : `${base}_${n + 1}`}`;
      out.set(prefix + l.name, group);
      if (l.children) visit(l.children, l.className === 'Sequential', `${prefix}${l.name}/`, `${group}/`);
    }
  };
  visit(configLayers(spec.config), spec.config.class_name === 'Sequential', '', '');
  return out;
}

/** Writes the store; `groups` overrides the layer path → group mapping (to write a layout by hand). */
async function writeVarsStore(path: string, spec: KerasFileSpec, groups?: Map<string, string>): Promise<void> {
  const file = await createH5(path);
  const mapping = groups ?? kerasVarsGroups(spec);
  file.create_group('vars');
  for (const [layerPath, group] of mapping) {
    const vars = `${group}/vars`;
    const ws = spec.weights[layerPath] ?? [];
    const g = ensureGroup(file, vars);
    ws.forEach((w, i) => {
      const isCount = w.name === 'count' && w.shape.length === 0;
      g.create_dataset({ name: String(i), data: isCount ? BigInt64Array.of(BigInt(w.data[0]!)) : w.data, shape: w.shape, dtype: isCount ? '<q' : '<f' });
    });
  }
  ensureGroup(file, 'optimizer/vars').create_dataset({ name: '0', data: BigInt64Array.of(3n), shape: [], dtype: '<q' });
  file.close();
}

function ensureGroup(root: Group, path: string): Group {
  let g = root;
  for (const p of path.split('/')) {
    const existing = g.keys().includes(p) ? g.get(p) : undefined;
    g = existing instanceof h5wasm.Group ? existing : g.create_group(p);
  }
  return g;
}

export interface KerasZipOptions {
  /** Deflate the members (Keras stores them). */
  deflate?: boolean;
  /** Layer path → group path, to write a layout by hand instead of Keras' naming rule. */
  groups?: Map<string, string>;
  /** Leave these members out. */
  omit?: string[];
}

/** Keras 3 `model.save('m.keras')`: metadata.json, config.json, model.weights.h5. */
export async function writeKerasZip(path: string, spec: KerasFileSpec, opts: KerasZipOptions = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'convserve-kzip-'));
  try {
    const h5Path = join(dir, 'model.weights.h5');
    await writeVarsStore(h5Path, spec, opts.groups);
    const level = opts.deflate ? 6 : 0;
    const members: Record<string, [Uint8Array, { level: 0 | 6 }]> = {
      'metadata.json': [Buffer.from(JSON.stringify({ keras_version: spec.kerasVersion ?? '3.12.1', date_saved: '2025-01-01@00:00:00' })), { level }],
      'config.json': [Buffer.from(JSON.stringify(spec.config)), { level }],
      'model.weights.h5': [readFileSync(h5Path), { level }],
    };
    for (const m of opts.omit ?? []) delete members[m];
    writeFileSync(path, zipSync(members));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Keras 3 `model.save_weights('w.weights.h5')` + `model.to_json()`. */
export async function writeKeras3WeightsH5(weightsPath: string, configPath: string, spec: KerasFileSpec): Promise<void> {
  await writeVarsStore(weightsPath, spec);
  writeFileSync(configPath, JSON.stringify(spec.config));
}

// ------------------------------------------------------------------------------------------------
// TensorFlow.js layers format.

export type TfjsQuantization = 'uint8' | 'uint16' | 'float16';

export interface TfjsOptions {
  /** Per weight (layer path, role): store quantized. */
  quantize?: (layerPath: string, role: string) => TfjsQuantization | undefined;
  /** Split the weight bytes into shards of at most this size (tfjs-converter uses 4 MiB). */
  shardBytes?: number;
  /** Weight names `outer/inner/role` instead of the converter's `<layer>/<role>`. */
  fullPaths?: boolean;
}

/** What was stored for a weight, for an independent dequantisation oracle. */
export interface TfjsStored {
  quantization?: { dtype: TfjsQuantization; min?: number; scale?: number };
  stored: Uint8Array | Uint16Array | Float32Array;
}

/** Writes `<dir>/model.json` + `group1-shardNofM.bin`; returns the model.json path and what was stored per weight name. */
export function writeTfjsModel(dir: string, spec: KerasFileSpec, opts: TfjsOptions = {}): { modelJson: string; stored: Map<string, TfjsStored> } {
  const weights: Record<string, unknown>[] = [];
  const chunks: Buffer[] = [];
  const stored = new Map<string, TfjsStored>();
  for (const [layerPath, ws] of Object.entries(spec.weights)) {
    for (const w of ws) {
      const name = `${opts.fullPaths ? layerPath : layerPath.split('/').at(-1)}/${w.name}`;
      const q = opts.quantize?.(layerPath, w.name);
      const entry = q ? quantize(w.data, q) : { stored: w.data };
      stored.set(name, entry);
      weights.push({ name, shape: w.shape, dtype: 'float32', ...(entry.quantization ? { quantization: entry.quantization } : {}) });
      chunks.push(Buffer.from(entry.stored.buffer, entry.stored.byteOffset, entry.stored.byteLength));
    }
  }
  const all = Buffer.concat(chunks);
  const size = opts.shardBytes ?? 4 * 1024 * 1024;
  const n = Math.max(1, Math.ceil(all.length / size));
  const paths = Array.from({ length: n }, (_, i) => `group1-shard${i + 1}of${n}.bin`);
  paths.forEach((p, i) => writeFileSync(join(dir, p), all.subarray(i * size, (i + 1) * size)));
  const modelJson = join(dir, 'model.json');
  writeFileSync(modelJson, JSON.stringify({
    format: 'layers-model',
    generatedBy: `keras v${spec.kerasVersion ?? '2.2.4'}`,
    convertedBy: 'TensorFlow.js Converter v1.7.0',
    modelTopology: { keras_version: spec.kerasVersion ?? '2.2.4', backend: 'tensorflow', model_config: spec.config },
    weightsManifest: [{ paths, weights }],
  }));
  return { modelJson, stored };
}

function quantize(data: Float32Array, dtype: TfjsQuantization): TfjsStored {
  if (dtype === 'float16') return { quantization: { dtype }, stored: Uint16Array.from(data, floatToHalf) };
  let min = Infinity;
  let max = -Infinity;
  for (const v of data) { min = Math.min(min, v); max = Math.max(max, v); }
  const levels = dtype === 'uint8' ? 255 : 65535;
  const scale = max > min ? (max - min) / levels : 1;
  const q = Array.from(data, (v) => Math.round((v - min) / scale));
  return { quantization: { dtype, min, scale }, stored: dtype === 'uint8' ? Uint8Array.from(q) : Uint16Array.from(q) };
}

/** float32 → IEEE binary16 bits, rounding to nearest even (overflow → ±Inf). */
export function floatToHalf(value: number): number {
  const f = Math.fround(value);
  const sign = f < 0 || Object.is(f, -0) ? 0x8000 : 0;
  const a = Math.abs(f);
  if (Number.isNaN(a)) return 0x7e00;
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a / 2 ** -24); // subnormal (may round up to the smallest normal, 0x400)
  const bits = new Uint32Array(Float32Array.of(a).buffer)[0]!;
  const e = ((bits >>> 23) & 0xff) - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  const mant = bits & 0x7fffff;
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry into the exponent is the correct rounding
  return sign | Math.min(h, 0x7c00);
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ------------------------------------------------------------------------------------------------
// Config builders for both dialects (keras-formats §6), enough for Sequential/Functional test models.

type Obj = Record<string, unknown>;

/** Keras 2 / tfjs: a Functional layer entry; `inbound` lists producing layer names (one call). */
export function k2Layer(className: string, name: string, config: Obj = {}, inbound: string[] = []): Obj {
  return {
    class_name: className, name, config: { name, trainable: true, dtype: 'float32', ...config },
    inbound_nodes: inbound.length ? [inbound.map((l) => [l, 0, 0, {}])] : [],
  };
}

export function k2Sequential(name: string, layers: Obj[]): Obj {
  return { class_name: 'Sequential', config: { name, layers: layers.map(({ class_name, config }) => ({ class_name, config })) } };
}

export function k2Functional(name: string, layers: Obj[], inputs: string[], outputs: string[], className = 'Model'): Obj {
  return {
    class_name: className, name,
    config: { name, layers, input_layers: inputs.map((l) => [l, 0, 0]), output_layers: outputs.map((l) => [l, 0, 0]) },
  };
}

const policy = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' }, registered_name: null };
const tensor = (layer: string) => ({ class_name: '__keras_tensor__', config: { shape: [null], dtype: 'float32', keras_history: [layer, 0, 0] } });

/** Keras 3: a layer object; `inbound` lists producing layer names (several → a list in args[0]). */
export function k3Layer(className: string, name: string, config: Obj = {}, inbound: string[] = []): Obj {
  const args = inbound.length === 0 ? [] : inbound.length === 1 ? [tensor(inbound[0]!)] : [inbound.map(tensor)];
  return {
    module: 'keras.layers', class_name: className, config: { name, trainable: true, dtype: policy, ...config },
    registered_name: null, name, inbound_nodes: args.length ? [{ args, kwargs: {} }] : [],
  };
}

export function k3Sequential(name: string, layers: Obj[]): Obj {
  return {
    module: 'keras', class_name: 'Sequential', registered_name: null,
    config: { name, trainable: true, dtype: policy, layers: layers.map(({ name: _n, inbound_nodes: _i, ...l }) => l) },
  };
}

export function k3Functional(name: string, layers: Obj[], inputs: string[], outputs: string[]): Obj {
  return {
    module: 'keras.src.models.functional', class_name: 'Functional', registered_name: 'Functional', name,
    config: { name, trainable: true, layers, input_layers: inputs.map((l) => [l, 0, 0]), output_layers: outputs.map((l) => [l, 0, 0]) },
  };
}
