// The models directory as a list of models with a status each. One folder per model (dot-folders — the
// download cache `.cache`, import temp folders `.tmp-*` — are not models).
//
// - ready:       manifest valid, every file it lists present with the recorded size (full SHA-256 only on verify())
// - missing:     a known model (vgg19, inception_v3) that is not installed; `install` has the commands
// - downloading: a fetch is running (in this process, or a fresh `.part` file in the cache from another one)
// - error:       unreadable manifest, missing/short file, checksum mismatch, failed fetch — `error` says which
//
// Errors name files relative to the models directory, never by absolute path (they reach GET /v1/models). At
// construction, what interrupted model writes left behind (`.tmp-*`, `.tmp-*.old`) is recovered or removed
// (leftovers.ts); before a model is loaded, verifyIfChanged() checks the SHA-256 of files that changed (integrity.ts).
//
// Free of ONNX Runtime on purpose: the engine gets `modelPath` from here and loads it itself.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type FetchOptions, fetchModel } from './fetch.js';
import type { ImportResult } from './import.js';
import { VerifiedStamps } from './integrity.js';
import { type LeftoverAction, recoverModelLeftovers } from './leftovers.js';
import { type Manifest, type Provenance, readManifest } from './manifest.js';
import { KNOWN_MODELS, OFFICIAL_WEIGHTS, installCommands } from './official.js';

export type ModelStatus = 'ready' | 'missing' | 'downloading' | 'error';

export interface ModelEntry {
  name: string;
  status: ModelStatus;
  /** Absolute folder path (may not exist yet for missing/downloading). */
  dir: string;
  architecture?: string;
  task?: Manifest['task'];
  provenance?: Provenance;
  manifest?: Manifest;
  /** Absolute paths, when ready. */
  modelPath?: string;
  weightsPath?: string;
  labelsPath?: string;
  /** downloading: 0–100 when known. */
  percent?: number;
  /** error: the reason, one line. */
  error?: string;
  /** missing: commands that install it. */
  install?: string[];
  /** Set by verify(): all SHA-256 matched at that time. */
  verifiedAt?: string;
}

export interface RegistryOptions {
  /** Default CONVSERVE_MODELS_DIR or ./models. */
  modelsDir?: string;
  /** A `.part` download file modified within this many ms counts as an active download (default 60 s). */
  activeDownloadMs?: number;
}

export interface RegistryEvents {
  /** One model's entry changed (status, percent…). */
  change: [entry: ModelEntry];
}

type Transient = { status: 'downloading'; percent?: number } | { status: 'error'; error: string };

export class ModelRegistry extends EventEmitter<RegistryEvents> {
  readonly modelsDir: string;
  private entries = new Map<string, ModelEntry>();
  private transient = new Map<string, Transient>();
  private verified = new Map<string, string>();
  private readonly activeDownloadMs: number;
  private readonly stamps: VerifiedStamps;
  /** What the start-up recovery of interrupted model writes did (for the caller to log). */
  readonly recovered: LeftoverAction[];

  constructor(opts: RegistryOptions = {}) {
    super();
    this.modelsDir = resolve(opts.modelsDir ?? process.env.CONVSERVE_MODELS_DIR ?? './models');
    this.activeDownloadMs = opts.activeDownloadMs ?? 60_000;
    this.recovered = recoverModelLeftovers(this.modelsDir);
    this.stamps = new VerifiedStamps(this.modelsDir);
    this.rescan();
  }

  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): ModelEntry | undefined {
    return this.entries.get(name);
  }

  /** Re-reads the directory; emits `change` for every entry whose status or details changed. */
  rescan(): ModelEntry[] {
    const next = new Map<string, ModelEntry>();
    const dirs = existsSync(this.modelsDir)
      ? readdirSync(this.modelsDir, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name)
      : [];
    for (const name of dirs) next.set(name, this.inspect(name));
    for (const arch of KNOWN_MODELS) {
      if (!next.has(arch)) next.set(arch, this.missingEntry(arch));
    }
    for (const [name, t] of this.transient) next.set(name, { ...(next.get(name) ?? this.missingEntry(name)), ...t });
    const old = this.entries;
    this.entries = next;
    for (const [name, entry] of next) {
      if (JSON.stringify(summary(old.get(name))) !== JSON.stringify(summary(entry))) this.emit('change', entry);
    }
    for (const [name, entry] of old) {
      if (!next.has(name)) this.emit('change', { ...entry, status: 'missing', install: installCommands(entry.architecture ?? name) });
    }
    return this.list();
  }

  private missingEntry(name: string): ModelEntry {
    const entry: ModelEntry = { name, status: 'missing', dir: join(this.modelsDir, name), architecture: name, install: installCommands(name) };
    const partial = this.partialDownload(name);
    if (partial) {
      if (partial.active) return { ...entry, status: 'downloading', percent: partial.percent };
      entry.error = `partial download (${partial.percent?.toFixed(0) ?? '?'}%) in .cache: '${installCommands(name)[0]}' resumes it`;
    }
    return entry;
  }

  /** A `.part` file of this known model's official download in the cache. */
  private partialDownload(name: string): { active: boolean; percent?: number } | undefined {
    const files = (OFFICIAL_WEIGHTS as Record<string, { top: { file: string; size?: number } } | undefined>)[name];
    if (!files) return undefined;
    const part = join(this.modelsDir, '.cache', `${files.top.file}.part`);
    if (!existsSync(part)) return undefined;
    const st = statSync(part);
    const percent = files.top.size ? Math.min(100, (100 * st.size) / files.top.size) : undefined;
    return { active: Date.now() - st.mtimeMs < this.activeDownloadMs, percent };
  }

  private inspect(name: string): ModelEntry {
    const dir = join(this.modelsDir, name);
    const base: ModelEntry = { name, status: 'error', dir };
    if (!existsSync(join(dir, 'manifest.json'))) {
      return { ...base, error: `${name}/manifest.json is missing (not a model folder, or an interrupted copy)` };
    }
    let manifest: Manifest;
    try {
      manifest = readManifest(dir);
    } catch (e) {
      return { ...base, error: `invalid manifest: ${this.withoutPaths((e as Error).message).replace(/\s+/g, ' ')}` };
    }
    const entry: ModelEntry = {
      ...base, manifest, architecture: manifest.architecture, task: manifest.task, provenance: manifest.weights.provenance,
    };
    if (manifest.name !== name) return { ...entry, error: `manifest name '${manifest.name}' does not match folder '${name}'` };
    const listed = new Set([manifest.files.model, ...Object.keys(manifest.files.sha256)]);
    if (manifest.files.weights) listed.add(manifest.files.weights);
    if (manifest.task === 'classification') listed.add(manifest.files.labels);
    for (const f of listed) {
      const p = join(dir, f);
      if (!existsSync(p)) return { ...entry, error: `${f} is missing` };
      const expected = manifest.files.sizes?.[f];
      const size = statSync(p).size;
      if (expected !== undefined && size !== expected) return { ...entry, error: `${f} is ${size} bytes, the manifest says ${expected} (truncated or replaced?)` };
    }
    const ok: ModelEntry = {
      ...entry, status: 'ready', error: undefined,
      modelPath: join(dir, manifest.files.model),
      weightsPath: manifest.files.weights ? join(dir, manifest.files.weights) : undefined,
      labelsPath: manifest.task === 'classification' ? join(dir, manifest.files.labels) : undefined,
    };
    const v = this.verified.get(name);
    if (v && v.startsWith(manifest.created_at + '|')) ok.verifiedAt = v.slice(manifest.created_at.length + 1);
    return ok;
  }

  /** Full check: SHA-256 of every file against the manifest (slow for VGG19: ~550 MB). */
  async verify(name: string): Promise<ModelEntry> {
    this.rescan();
    const entry = this.entries.get(name);
    if (!entry || entry.status !== 'ready' || !entry.manifest) return entry ?? this.missingEntry(name);
    for (const [f, expected] of Object.entries(entry.manifest.files.sha256)) {
      const h = createHash('sha256');
      for await (const chunk of createReadStream(join(entry.dir, f), { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
      const got = h.digest('hex');
      if (got !== expected) {
        const bad: ModelEntry = { ...entry, status: 'error', error: `${f}: sha256 ${got.slice(0, 12)}… does not match the manifest (${expected.slice(0, 12)}…)` };
        this.entries.set(name, bad);
        this.emit('change', bad);
        return bad;
      }
    }
    const at = new Date().toISOString();
    this.verified.set(name, `${entry.manifest.created_at}|${at}`);
    const ok = { ...entry, verifiedAt: at };
    this.entries.set(name, ok);
    this.emit('change', ok);
    return ok;
  }

  /**
   * Before a load: the SHA-256 of every manifest file whose size or mtime changed since its last verified load
   * (all of them the first time). A mismatch turns the entry into `error` and is returned as such.
   */
  async verifyIfChanged(name: string): Promise<ModelEntry | undefined> {
    const entry = this.entries.get(name);
    if (!entry || entry.status !== 'ready' || !entry.manifest) return entry;
    const r = await this.stamps.check(name, entry.dir, entry.manifest.files.sha256);
    if (r.mismatch) {
      const bad: ModelEntry = { ...entry, status: 'error', error: `${r.mismatch.file}: sha256 ${r.mismatch.found.slice(0, 12)}… does not match the manifest (${r.mismatch.expected.slice(0, 12)}…): the file changed or is damaged` };
      this.entries.set(name, bad);
      this.emit('change', bad);
      return bad;
    }
    return entry;
  }

  /** `text` with the models directory's absolute path removed (errors are shown to API clients). */
  private withoutPaths(text: string): string {
    return text.split(this.modelsDir + '/').join('').split(this.modelsDir).join('<models>');
  }

  /** In-process status overrides (a running download, a failed one); cleared by {@link clearTransient}. */
  setDownloading(name: string, percent?: number): void {
    this.setTransient(name, { status: 'downloading', percent });
  }

  setFailed(name: string, reason: string): void {
    this.setTransient(name, { status: 'error', error: this.withoutPaths(reason) });
  }

  clearTransient(name: string): void {
    if (this.transient.delete(name)) this.rescan();
  }

  private setTransient(name: string, t: Transient): void {
    this.transient.set(name, t);
    const entry: ModelEntry = { ...(this.entries.get(name) ?? this.missingEntry(name)), ...t };
    if (t.status === 'downloading') delete entry.error;
    const before = JSON.stringify(summary(this.entries.get(name)));
    this.entries.set(name, entry);
    if (before !== JSON.stringify(summary(entry))) this.emit('change', entry);
  }

  /**
   * Downloads and imports the official weights of `arch`, reflecting progress in this registry (status
   * `downloading` with percent, then `ready`, or `error` with the reason). Percent changes are reported in
   * whole-percent steps.
   */
  async fetch(arch: string, opts: Omit<FetchOptions, 'modelsDir'> = {}): Promise<ImportResult> {
    const name = opts.name ?? ((opts.includeTop ?? true) ? arch : `${arch}_notop`);
    let last = -1;
    this.setDownloading(name, 0);
    try {
      const result = await fetchModel(arch, {
        ...opts, modelsDir: this.modelsDir,
        onProgress: (p) => {
          opts.onProgress?.(p);
          if (p.phase === 'download' && p.percent !== undefined && p.file.endsWith('.h5') && Math.floor(p.percent) !== last) {
            last = Math.floor(p.percent);
            this.setDownloading(name, last);
          }
        },
      });
      this.transient.delete(name);
      this.rescan();
      return result;
    } catch (e) {
      this.setFailed(name, (e as Error).message);
      throw e;
    }
  }
}

function summary(e: ModelEntry | undefined): unknown {
  return e && [e.status, e.percent, e.error, e.manifest?.created_at, e.verifiedAt];
}
