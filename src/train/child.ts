// Runs a training function in a child Node process and streams its progress messages back.
//
// Why: tfjs-node cannot load in a worker thread, and training must never run on the HTTP server's thread. The child
// is forked with the parent's exec arguments (minus test-runner/inspector flags), so it works both from the built
// dist/*.js and from the .ts sources under `node --import tsx`.
//
// The target is any exported function `(args, progress) => Promise<result>` in a module; `args`, progress messages
// and the result cross the process boundary with structured clone ('advanced' serialization: typed arrays are fine,
// functions and class instances are not).
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type ChildTask<A, P, R> = (args: A, progress: (p: P) => void) => Promise<R> | R;

/** Messages on the wire. */
export type ChildMessage<P = unknown, R = unknown> =
  | { kind: 'ready' }
  | { kind: 'run'; module: string; exportName: string; args: unknown }
  | { kind: 'progress'; value: P }
  | { kind: 'result'; value: R }
  | { kind: 'error'; message: string; stack?: string; name?: string };

export interface RunInChildOptions<P> {
  onProgress?: (p: P) => void;
  /** Aborting kills the child (SIGTERM, then SIGKILL after 5 s) and rejects with the abort reason. */
  signal?: AbortSignal;
  /** Extra environment for the child (merged over process.env). */
  env?: Record<string, string | undefined>;
  /** Exec arguments for the child; default: the parent's, without --test*, --inspect*, --watch*. */
  execArgv?: string[];
}

export class ChildTaskError extends Error {
  constructor(message: string, readonly childStack?: string, readonly exitCode?: number | null, readonly signalCode?: string | null) {
    super(message);
    this.name = 'ChildTaskError';
  }
}

const here = fileURLToPath(import.meta.url);
/** child-entry.js next to this file when running from dist, child-entry.ts under tsx. */
export const CHILD_ENTRY = join(dirname(here), `child-entry${extname(here)}`);

export function childExecArgv(argv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (/^--(test|inspect|watch|experimental-test)/.test(a)) continue;
    out.push(a);
  }
  return out;
}

/** Accepts a module path or URL; a missing `x.js` next to an existing `x.ts` means "the source under tsx". */
export function resolveTaskModule(module: string | URL): string {
  const path = module instanceof URL ? fileURLToPath(module) : module.startsWith('file:') ? fileURLToPath(module) : module;
  if (!existsSync(path) && path.endsWith('.js') && existsSync(path.slice(0, -3) + '.ts')) return pathToFileURL(path.slice(0, -3) + '.ts').href;
  return pathToFileURL(path).href;
}

/**
 * Forks a child process, runs `module[exportName](args, progress)` in it and resolves with its result.
 * Progress messages arrive through `onProgress` as they are sent.
 */
export function runInChild<A, P, R>(module: string | URL, exportName: string, args: A, opts: RunInChildOptions<P> = {}): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    if (opts.signal?.aborted) { reject(opts.signal.reason); return; }
    const moduleUrl = resolveTaskModule(module);
    const child: ChildProcess = fork(CHILD_ENTRY, [], {
      execArgv: opts.execArgv ?? childExecArgv(),
      env: { ...process.env, ...opts.env },
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      finish(() => reject(opts.signal?.reason ?? new Error('aborted')));
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
      killTimer.unref();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('message', (raw) => {
      const m = raw as ChildMessage<P, R>;
      if (m.kind === 'ready') {
        // The child listens now (an ESM entry under a loader may start after an early message would arrive).
        child.send({ kind: 'run', module: moduleUrl, exportName, args } satisfies ChildMessage);
      } else if (m.kind === 'progress') {
        try { opts.onProgress?.(m.value); } catch { /* a failing listener must not kill the run */ }
      } else if (m.kind === 'result') {
        finish(() => resolve(m.value));
      } else if (m.kind === 'error') {
        const e = new ChildTaskError(m.message, m.stack);
        if (m.name) e.name = m.name;
        finish(() => reject(e));
      }
    });
    child.on('error', (e) => finish(() => reject(e)));
    child.on('exit', (code, signal) => {
      if (killTimer) clearTimeout(killTimer);
      finish(() => reject(new ChildTaskError(`training child exited before returning a result (code ${code}, signal ${signal})`, undefined, code, signal)));
    });
  });
}
