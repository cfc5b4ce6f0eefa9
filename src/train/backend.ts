// TensorFlow.js backend selection at run time. Order of preference:
//   @tensorflow/tfjs-node-gpu ('tensorflow', CUDA) → @tensorflow/tfjs-node ('tensorflow') → @tensorflow/tfjs-backend-wasm
//   ('wasm', binaries loaded from the npm package's dist folder) → 'cpu' (pure JS, always there).
// The native packages are optional: they are never listed in package.json (they do not install on every machine);
// whichever is installed and loads wins. Each attempt is recorded for logs and `GET /v1/info`.
//
// tfjs-node cannot load in a worker thread: call selectBackend() in the CLI process or in a child process
// (see ./child.ts), never on the HTTP server's thread.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { installConv2DGradientOverride } from './wasm-conv-grad.js';

export type BackendName = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendName[] = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'];

export interface BackendAttempt {
  /** Candidate name (package flavour), e.g. 'tfjs-node' or 'wasm'. */
  name: BackendName;
  ok: boolean;
  /** Why the candidate was not used (module not installed, failed to initialise…). */
  error?: string;
}

export interface BackendSelection {
  /** The candidate that won. */
  backend: BackendName;
  /** The tfjs backend name now active (`tf.getBackend()`): 'tensorflow', 'wasm' or 'cpu'. */
  tfBackend: string;
  tried: BackendAttempt[];
  /** Extra facts about the active backend (wasm SIMD/threads), for logs. */
  details: Record<string, unknown>;
}

export interface SelectBackendOptions {
  /**
   * Candidates to try, in order. Default: env CONVSERVE_TF_BACKEND (comma-separated names) or
   * {@link BACKEND_ORDER}. 'cpu' is always appended as the last resort.
   */
  order?: readonly BackendName[];
}

const require = createRequire(import.meta.url);

function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.slice(0, 300);
}

/** Directory (with trailing slash) holding tfjs-backend-wasm's .wasm binaries inside node_modules. */
export function wasmBinariesDir(): string {
  return dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + '/';
}

async function tryNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<void> {
  // A variable specifier keeps TypeScript from resolving a package that is deliberately not a dependency.
  const spec: string = pkg;
  await import(spec);
  if (!tf.findBackend('tensorflow') && !tf.findBackendFactory('tensorflow')) {
    throw new Error(`${pkg} loaded but registered no 'tensorflow' backend on this @tensorflow/tfjs copy (version mismatch?)`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`tf.setBackend('tensorflow') failed`);
}

async function tryWasm(): Promise<void> {
  // The emscripten glue adds process-wide 'uncaughtException'/'unhandledRejection' listeners that rethrow (and
  // make Node print the whole minified module as the error location). Remove whatever it added.
  const before = {
    uncaughtException: process.listeners('uncaughtException'),
    unhandledRejection: process.listeners('unhandledRejection'),
  };
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(wasmBinariesDir());
    if (!(await tf.setBackend('wasm'))) throw new Error(`tf.setBackend('wasm') failed`);
  } finally {
    for (const l of process.listeners('uncaughtException')) {
      if (!before.uncaughtException.includes(l)) process.removeListener('uncaughtException', l);
    }
    for (const l of process.listeners('unhandledRejection')) {
      if (!before.unhandledRejection.includes(l)) process.removeListener('unhandledRejection', l);
    }
  }
}

let cached: Promise<BackendSelection> | undefined;

function envOrder(): BackendName[] | undefined {
  const raw = process.env.CONVSERVE_TF_BACKEND?.trim();
  if (!raw) return undefined;
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.filter((n) => !(BACKEND_ORDER as readonly string[]).includes(n));
  if (bad.length > 0) throw new Error(`CONVSERVE_TF_BACKEND: unknown backend ${bad.join(', ')} (known: ${BACKEND_ORDER.join(', ')})`);
  return names as BackendName[];
}

/**
 * Picks the fastest TensorFlow.js backend that loads here and activates it. The first call does the work;
 * later calls without options return the same selection. Also installs the Conv2D gradient override needed
 * to train convnets on wasm (see ./wasm-conv-grad.ts).
 */
export function selectBackend(opts: SelectBackendOptions = {}): Promise<BackendSelection> {
  if (opts.order === undefined && cached) return cached;
  const p = doSelect(opts.order ?? envOrder() ?? BACKEND_ORDER);
  if (opts.order === undefined) cached = p;
  return p;
}

async function doSelect(order: readonly BackendName[]): Promise<BackendSelection> {
  const tried: BackendAttempt[] = [];
  const candidates = order.includes('cpu') ? order : [...order, 'cpu' as const];
  for (const name of candidates) {
    try {
      if (name === 'tfjs-node-gpu') await tryNative('@tensorflow/tfjs-node-gpu');
      else if (name === 'tfjs-node') await tryNative('@tensorflow/tfjs-node');
      else if (name === 'wasm') await tryWasm();
      else if (!(await tf.setBackend('cpu'))) throw new Error(`tf.setBackend('cpu') failed`);
      await tf.ready();
      tried.push({ name, ok: true });
      installConv2DGradientOverride();
      const details: Record<string, unknown> = { tfjs: tf.version.tfjs };
      if (name === 'wasm') {
        details.simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
        details.threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
      }
      return { backend: name, tfBackend: tf.getBackend(), tried, details };
    } catch (e) {
      tried.push({ name, ok: false, error: errorText(e) });
    }
  }
  throw new Error(`no TensorFlow.js backend could be initialised: ${tried.map((t) => `${t.name}: ${t.error}`).join('; ')}`);
}

export { tf };

/**
 * Child-process task (see ./child.ts): selects the backend in a fresh process and reports the selection. Lets the
 * HTTP server learn which backend training would use without loading tfjs on its own thread.
 */
export async function backendProbeTask(_args: unknown, progress: (p: { type: 'probing' }) => void): Promise<BackendSelection> {
  progress({ type: 'probing' });
  return selectBackend();
}
