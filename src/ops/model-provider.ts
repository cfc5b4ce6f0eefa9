// Resolves model names to loaded engine sessions. Sessions load on first use (or eagerly at start), are
// reloaded when a model folder is replaced (fine-tune, re-import) and unloaded when it disappears.
import type { Engine } from '../engine/engine.js';
import type { ClassifierModel } from './classify.js';
import type { ModelProvider } from './classify-service.js';
import type { Logger } from '../util/logger.js';
import { notFound, unavailable } from '../util/problem.js';
import { readLabels } from '../models/manifest.js';
import type { ModelEntry, ModelRegistry } from '../models/registry.js';

interface Loaded {
  /** Identity of the folder contents the session was loaded from. */
  stamp: string;
  model: Promise<ClassifierModel>;
  loadMs?: number;
}

export interface LoadedStatus {
  state: 'loading' | 'loaded' | 'failed';
  load_ms?: number;
  error?: string;
}

export class EngineModelProvider implements ModelProvider {
  private readonly loaded = new Map<string, Loaded>();
  private readonly loadState = new Map<string, LoadedStatus>();

  constructor(private readonly registry: ModelRegistry, private readonly engine: Engine, private readonly logger: Logger) {
    registry.on('change', (entry) => { void this.sync(entry); });
  }

  /** Engine-side state of a model (for GET /v1/models). */
  engineState(name: string): LoadedStatus | undefined {
    return this.loadState.get(name);
  }

  async classifier(name: string): Promise<ClassifierModel> {
    const entry = this.registry.get(name);
    if (!entry) {
      const known = this.registry.list().map((m) => m.name);
      throw notFound('unknown-model', `No model named '${name}'. Models: ${known.join(', ') || '(none)'}.`, { models: known });
    }
    assertReady(entry);
    return this.load(entry);
  }

  /** Loads every ready classification model (at start-up; failures are logged, not thrown). */
  async loadAllReady(): Promise<void> {
    await Promise.all(this.registry.list().filter((e) => e.status === 'ready').map((e) => this.load(e).catch(() => undefined)));
  }

  private stampOf(entry: ModelEntry): string {
    return `${entry.modelPath}|${entry.manifest?.created_at}|${JSON.stringify(entry.manifest?.files.sha256)}`;
  }

  private load(entry: ModelEntry): Promise<ClassifierModel> {
    const stamp = this.stampOf(entry);
    const existing = this.loaded.get(entry.name);
    if (existing && existing.stamp === stamp) return existing.model;
    const sessionKey = `${entry.name}@${Date.now().toString(36)}`;
    const manifest = entry.manifest!;
    this.loadState.set(entry.name, { state: 'loading' });
    const model = (async () => {
      // Files replaced or damaged on disk since their last verified load are caught here, not served.
      const checked = await this.registry.verifyIfChanged(entry.name);
      if (checked?.status === 'error') throw new Error(checked.error);
      const labels = readLabels(entry.dir, manifest);
      const info = await this.engine.load(sessionKey, { path: entry.modelPath! });
      // Warm-up: ORT's first run allocates and plans; pay it now rather than in the first user's request.
      const { channels, height, width, name: inputName } = manifest.input;
      const warm = await this.engine.run(sessionKey, { [inputName]: { dims: [1, channels, height, width], data: new Float32Array(channels * height * width) } }, { fetches: [manifest.output.name], warmUp: true });
      this.loadState.set(entry.name, { state: 'loaded', load_ms: Math.round(info.loadMs + warm.computeMs) });
      this.logger.info({ model: entry.name, load_ms: Math.round(info.loadMs), provider: info.provider }, 'model loaded');
      if (existing) void existing.model.then((old) => this.engine.unload(old.sessionKey)).catch(() => undefined);
      return { name: entry.name, sessionKey, manifest, labels } satisfies ClassifierModel;
    })();
    model.catch((e: unknown) => {
      this.loadState.set(entry.name, { state: 'failed', error: (e as Error).message });
      this.logger.error({ model: entry.name, err: e }, 'model failed to load');
      if (this.loaded.get(entry.name)?.model === model) this.loaded.delete(entry.name);
    });
    this.loaded.set(entry.name, { stamp, model });
    return model;
  }

  /** Registry change: reload a replaced model that was in use, drop a removed one. */
  private async sync(entry: ModelEntry): Promise<void> {
    const current = this.loaded.get(entry.name);
    if (!current) return;
    if (entry.status !== 'ready') {
      this.loaded.delete(entry.name);
      this.loadState.delete(entry.name);
      const old = await current.model.catch(() => undefined);
      if (old) await this.engine.unload(old.sessionKey).catch(() => undefined);
      return;
    }
    if (this.stampOf(entry) !== current.stamp) await this.load(entry).catch(() => undefined);
  }
}

function assertReady(entry: ModelEntry): void {
  switch (entry.status) {
    case 'ready':
      if (entry.manifest?.task !== 'classification') throw unavailable('model-not-classifier', `Model '${entry.name}' is not a classification model.`);
      return;
    case 'missing':
      throw unavailable('model-not-installed', `Model '${entry.name}' is not installed. Install it with: ${entry.install?.join('  or  ') ?? `convserve models fetch ${entry.name}`}`, { install: entry.install ?? [] });
    case 'downloading':
      throw unavailable('model-downloading', `Model '${entry.name}' is downloading${entry.percent !== undefined ? ` (${entry.percent}%)` : ''}; try again when GET /v1/models shows it ready.`, { percent: entry.percent }, 30);
    case 'error':
      throw unavailable('model-error', `Model '${entry.name}' cannot be used: ${entry.error}`, { error: entry.error });
  }
}
