// Engine.stop() while a timed-out run is still computing in its retired worker: the process must neither abort
// (terminating a worker inside onnxruntime's native run() ends in an uncaught C++ Napi::Error, SIGABRT) nor
// hang; the worker is closed once the run returns and the process then exits normally.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';

it('stopping the engine during a timed-out run ends the process normally once the run returns', () => {
  const child = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'helpers', 'engine-stop-child.ts')], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, LOG_LEVEL: 'silent' },
  });
  assert.equal(child.signal, null, `the child was killed by ${child.signal}: ${child.stderr.slice(-500)}`);
  assert.equal(child.status, 0, child.stderr.slice(-500));
  const report = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { slug: string; stoppedMidRun: boolean };
  assert.equal(report.slug, 'inference-timeout');
  // The case that used to abort: stop() returned while the native run was still going.
  assert.equal(report.stoppedMidRun, true);
});
