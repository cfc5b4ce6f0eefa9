// Which TensorFlow.js backend training would use (tfjs-node-gpu → tfjs-node → wasm → cpu): probed once, in a
// child process (tfjs never loads in the service's process), when first asked for; logged when known.
import type { BackendSelection } from '../train/backend.js';
import { runInChild } from '../train/child.js';
import type { Logger } from '../util/logger.js';

export interface TfjsInfo {
  state: 'probing' | 'done' | 'failed';
  backend?: string;
  tf_backend?: string;
  tried?: { name: string; ok: boolean; error?: string }[];
  error?: string;
}

export class TfjsProbe {
  private info: TfjsInfo | undefined;

  constructor(private readonly logger: Logger) {}

  /** The selection so far; the first call starts the probe (`probing` until it answers). */
  state(): TfjsInfo {
    if (!this.info) {
      this.info = { state: 'probing' };
      runInChild<unknown, unknown, BackendSelection>(new URL('../train/backend.js', import.meta.url), 'backendProbeTask', {}).then((s) => {
        this.info = { state: 'done', backend: s.backend, tf_backend: s.tfBackend, tried: s.tried };
        this.logger.info({ tfjs_backend: s.backend, tried: s.tried.map((t) => `${t.name}:${t.ok ? 'ok' : 'unavailable'}`) }, 'TensorFlow.js backend selected');
      }, (e: unknown) => {
        this.info = { state: 'failed', error: (e instanceof Error ? e.message : String(e)).split('\n')[0] };
      });
    }
    return this.info;
  }
}
