// Backend selection: wasm wins on this machine (the native tfjs-node packages are not installed), every attempt is
// reported, an explicit order is honoured, and the selection also works in a child process (src/train/child.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { BACKEND_ORDER, selectBackend, tf, wasmBinariesDir, type BackendSelection } from '../src/train/backend.js';
import { runInChild, childExecArgv, ChildTaskError } from '../src/train/child.js';
import { existsSync } from 'node:fs';

const require = createRequire(import.meta.url);
function installed(pkg: string): boolean {
  try { require.resolve(pkg); return true; } catch { return false; }
}

test('selectBackend tries tfjs-node-gpu, tfjs-node, then wasm, and reports each attempt', async () => {
  const sel = await selectBackend();
  assert.deepEqual(BACKEND_ORDER, ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu']);
  // Oracle: what is actually resolvable in node_modules here.
  assert.equal(installed('@tensorflow/tfjs-node-gpu'), false);
  assert.equal(installed('@tensorflow/tfjs-node'), false);
  assert.equal(sel.backend, 'wasm');
  assert.equal(sel.tfBackend, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(sel.tried.map((t) => [t.name, t.ok]), [['tfjs-node-gpu', false], ['tfjs-node', false], ['wasm', true]]);
  for (const t of sel.tried.slice(0, 2)) assert.match(t.error ?? '', /Cannot find (package|module) '@tensorflow\/tfjs-node/);
  assert.ok(existsSync(wasmBinariesDir() + 'tfjs-backend-wasm.wasm'));
  // Same promise the second time.
  assert.equal(await selectBackend(), sel);
  // wasm actually computes: a matmul against a direct computation.
  const r = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5], [6]])).dataSync();
  assert.deepEqual(Array.from(r), [17, 39]);
});

test('an explicit order is honoured, and cpu is the last resort', async () => {
  const cpu = await selectBackend({ order: ['cpu'] });
  assert.equal(cpu.backend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  const fallback = await selectBackend({ order: ['tfjs-node'] });
  assert.deepEqual(fallback.tried.map((t) => [t.name, t.ok]), [['tfjs-node', false], ['cpu', true]]);
  const back = await selectBackend({ order: ['wasm'] });
  assert.equal(back.backend, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
});

test('runInChild runs a task in a child process with the same exec args and streams its progress', async () => {
  assert.ok(!childExecArgv(['--import', 'tsx', '--test', '--test-concurrency=2']).some((a) => a.startsWith('--test')));
  const progress: unknown[] = [];
  const sel = await runInChild<unknown, unknown, BackendSelection>(
    new URL('../src/train/backend.js', import.meta.url), 'backendProbeTask', {}, { onProgress: (p) => progress.push(p) },
  );
  assert.deepEqual(progress, [{ type: 'probing' }]);
  assert.equal(sel.backend, 'wasm');
  assert.deepEqual(sel.tried.map((t) => t.ok), [false, false, true]);
  await assert.rejects(
    runInChild(new URL('../src/train/backend.js', import.meta.url), 'noSuchExport', {}),
    (e: unknown) => e instanceof ChildTaskError && /no exported function 'noSuchExport'/.test(e.message),
  );
});

test('runInChild streams training progress and aborting kills the run', async () => {
  const ac = new AbortController();
  const seen: string[] = [];
  const reason = new Error('stop now');
  await assert.rejects(
    runInChild(new URL('../src/train/mnist.js', import.meta.url), 'trainMnistInChild', { epochs: 1, limit: 64, out: '/nonexistent/never-written' }, {
      signal: ac.signal,
      onProgress: (p: { type: string }) => { seen.push(p.type); if (p.type === 'start') ac.abort(reason); },
    }),
    (e: unknown) => e === reason,
  );
  assert.deepEqual(seen, ['start']);
});
