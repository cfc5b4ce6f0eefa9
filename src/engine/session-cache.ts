// Sessions built on demand — the gradient graphs: seconds of protobuf work each, tens of MB of weights, and
// an ORT arena of hundreds of MB while a job uses them. Each key is built once into a private temporary
// folder and loaded into the engine from that file, so the main thread keeps no copy of the bytes and an
// idle release (the session unloaded from every worker, see IdlePolicy) costs only a reload from disk when
// the key is used again. The cache is bounded: past `maxEntries`, the least recently used entry that is not
// in use is unloaded from the engine and its file deleted. Entries used within `inUseGraceMs` are never
// evicted (a job between two steps), so the bound is soft while every entry is busy.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EngineRunEvent, SessionCacheLimits, SessionInfo, SessionLoadOptions, SessionSource } from './types.js';

/** What the cache needs of the engine (an interface, so engine.ts can own a cache without an import cycle). */
export interface SessionHost {
  load(key: string, source: SessionSource, options?: SessionLoadOptions): Promise<SessionInfo>;
  unload(key: string): Promise<void>;
  on(event: 'run', listener: (e: EngineRunEvent) => void): unknown;
  on(event: 'stop', listener: () => void): unknown;
}

/**
 * Writes the session's .onnx model to `file` (nothing to answer), or answers with its model: bytes (the cache
 * writes them to `file`, so no copy stays on the main thread) or a path the builder owns (loaded as is; it is
 * not deleted on eviction — e.g. an explanation graph that must sit next to its model's weights file).
 */
export type SessionBuilder = (file: string) => Promise<void | SessionSource>;

interface Entry {
  file: string;
  lastUsed: number;
  loaded: boolean;
  ready: Promise<string>;
}

export const DEFAULT_CACHE_LIMITS: SessionCacheLimits = { maxEntries: 4, idleReleaseMs: 30_000, inUseGraceMs: 30_000, memArena: true };

export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private dir: string | undefined;
  private evictTimer: NodeJS.Timeout | undefined;
  readonly stats = { builds: 0, evictions: 0 };

  constructor(private readonly host: SessionHost, readonly limits: SessionCacheLimits) {
    host.on('run', (e) => this.touch(e.key));
    host.on('stop', () => this.close());
  }

  /**
   * Resolves with `key` once its session is loaded; concurrent callers share one build. `memArena` overrides the
   * cache's arena setting for this session (off for a session run once per job: an arena would only keep its
   * peak activations alive).
   */
  ensure(key: string, build: SessionBuilder, opts: { memArena?: boolean } = {}): Promise<string> {
    const hit = this.entries.get(key);
    if (hit) {
      hit.lastUsed = performance.now();
      return hit.ready;
    }
    const file = join(this.folder(), `${randomUUID()}.onnx`);
    const entry: Entry = { file, lastUsed: performance.now(), loaded: false, ready: Promise.resolve(key) };
    entry.ready = this.buildAndLoad(key, entry, build, opts.memArena ?? this.limits.memArena);
    this.entries.set(key, entry);
    entry.ready.then(() => this.evictOverCap(), () => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
      rmSync(file, { force: true });
    });
    return entry.ready;
  }

  /** Cached keys, least recently used first. */
  keys(): string[] {
    return [...this.entries].sort((a, b) => a[1].lastUsed - b[1].lastUsed).map(([k]) => k);
  }

  private async buildAndLoad(key: string, entry: Entry, build: SessionBuilder, memArena: boolean): Promise<string> {
    const built = await build(entry.file);
    let source: SessionSource = { path: entry.file };
    if (built && 'bytes' in built) writeFileSync(entry.file, built.bytes);
    else if (built) source = built;
    this.stats.builds++;
    const idle = this.limits.idleReleaseMs > 0 ? { afterMs: this.limits.idleReleaseMs, action: 'release' as const } : undefined;
    await this.host.load(key, source, { memArena, idle });
    entry.loaded = true;
    entry.lastUsed = performance.now();
    return key;
  }

  private touch(key: string): void {
    const e = this.entries.get(key);
    if (e) e.lastUsed = performance.now();
  }

  private async evictOverCap(): Promise<void> {
    clearTimeout(this.evictTimer);
    this.evictTimer = undefined;
    while (this.entries.size > this.limits.maxEntries) {
      const now = performance.now();
      const candidates = [...this.entries].filter(([, e]) => e.loaded).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
      const victim = candidates.find(([, e]) => now - e.lastUsed >= this.limits.inUseGraceMs);
      if (!victim) {
        // Everything is in use: look again when the least recently used entry leaves its grace period.
        const oldest = candidates[0];
        if (oldest) this.evictTimer = setTimeout(() => void this.evictOverCap(), Math.max(10, oldest[1].lastUsed + this.limits.inUseGraceMs - now)).unref();
        return;
      }
      const [key, entry] = victim;
      this.entries.delete(key);
      this.stats.evictions++;
      rmSync(entry.file, { force: true });
      await this.host.unload(key).catch(() => undefined);
    }
  }

  private folder(): string {
    if (!this.dir) {
      this.dir = mkdtempSync(join(tmpdir(), 'convserve-sessions-'));
      liveFolders.add(this.dir);
    }
    return this.dir;
  }

  private close(): void {
    clearTimeout(this.evictTimer);
    this.entries.clear();
    if (this.dir) {
      rmSync(this.dir, { recursive: true, force: true });
      liveFolders.delete(this.dir);
      this.dir = undefined;
    }
  }
}

// Folders of caches whose engine was never stopped are removed when the process exits (one listener in all).
const liveFolders = new Set<string>();
process.once('exit', () => {
  for (const d of liveFolders) rmSync(d, { recursive: true, force: true });
});
