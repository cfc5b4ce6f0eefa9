// The real server process (node dist/cli/main.js serve; run `npm run build` first), killed with SIGKILL
// mid-job and started again on the same data directory; plus the `convserve jobs` / `blur-sweep` commands.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { tempDir, testPattern } from './helpers/app.js';
import { blurNTimes, decodeRaw, getJson, pollJob, readSse, submitBlur } from './helpers/jobs.js';
import { CLI, startServerProcess } from './helpers/server-process.js';

const run = promisify(execFile);

describe('jobs across a crash (kill -9) and the jobs CLI', () => {
  it('a running job resumes from its last checkpoint after kill -9 and succeeds; earlier results survive', async () => {
    const dataDir = tempDir('convserve-restart-');
    // A slow job is an operator setting (step_delay_ms left the public API): 60 ms before every blur step.
    const env = { CONVSERVE_DATA_DIR: dataDir, CONVSERVE_CHECKPOINT_STEPS: '3', CONVSERVE_CHECKPOINT_MS: '600000', CONVSERVE_BLUR_SWEEP_STEP_DELAY_MS: '60' };
    const W = 36, H = 24;
    const { raw, png } = await testPattern(W, H);
    let server = await startServerProcess(env);
    try {
      const early = await submitBlur(server.url, png, { steps: 2 });
      await pollJob(server.url, early.body.id, (j) => j.status === 'succeeded');
      const earlyResult = Buffer.from(await (await fetch(`${server.url}/v1/jobs/${early.body.id}/result`)).arrayBuffer());

      const long = await submitBlur(server.url, png, { steps: 40, preview_every: 4 });
      const id = long.body.id as string;
      // Wait for a checkpoint to be on disk and a few more steps past it.
      await pollJob(server.url, id, (j) => j.progress.step >= 8);
      const ckptStep = JSON.parse(readFileSync(join(dataDir, 'jobs', id, 'job.json'), 'utf8')).checkpoint?.step as number;
      assert.ok(ckptStep >= 3, `checkpoint at ${ckptStep}`);
      const seenBefore = await readSse(`${server.url}/v1/jobs/${id}/events`, { until: (_e, all) => all.length >= 4 });
      server.child.kill('SIGKILL');
      assert.equal((await server.exited).signal, 'SIGKILL');

      server = await startServerProcess(env);
      // The client reconnects with the last id it saw: it gets the rest, across the restart.
      const rest = await readSse(`${server.url}/v1/jobs/${id}/events`, { lastEventId: seenBefore.at(-1)!.id });
      assert.equal(rest[0]!.id, seenBefore.at(-1)!.id + 1);
      const done = rest.at(-1)!;
      assert.equal(done.event, 'done');
      assert.equal(done.data.status, 'succeeded');
      const resumed = rest.find((e) => e.event === 'resumed')!;
      assert.ok(resumed, 'a resumed event');
      assert.ok(resumed.data.from_step >= 3, `resumed from ${resumed.data.from_step}`);
      const firstAfter = rest.slice(rest.indexOf(resumed)).find((e) => e.event === 'progress')!;
      assert.equal(firstAfter.data.step, resumed.data.from_step + 1, 'the first step after the restart continues from the checkpoint, not from 0');
      assert.ok(firstAfter.data.step > 1);

      const job = (await getJson(`${server.url}/v1/jobs/${id}`)).body;
      assert.equal(job.status, 'succeeded');
      assert.equal(job.previews.length, 10, 'one preview per 4 steps, none lost or duplicated by the resume');
      const out = await decodeRaw(Buffer.from(await (await fetch(`${server.url}${job.result.url}`)).arrayBuffer()));
      assert.ok(out.data.equals(await blurNTimes(raw, W, H, 1, 40)), 'the resumed result equals 40 blurs');
      const pLast = await decodeRaw(Buffer.from(await (await fetch(`${server.url}${job.previews[9]}`)).arrayBuffer()));
      assert.ok(pLast.data.equals(out.data));

      const again = await fetch(`${server.url}/v1/jobs/${early.body.id}/result`);
      assert.equal(again.status, 200);
      assert.ok(Buffer.from(await again.arrayBuffer()).equals(earlyResult), 'the result finished before the crash is still served');

      // The CLI against this server.
      const cliEnv = { ...process.env, CONVSERVE_URL: server.url, NODE_TEST_CONTEXT: '' };
      const shown = JSON.parse((await run(process.execPath, [CLI, 'jobs', 'show', id, '--json'], { env: cliEnv })).stdout);
      assert.equal(shown.status, 'succeeded');
      const listed = JSON.parse((await run(process.execPath, [CLI, 'jobs', 'list', '--status', 'succeeded', '--json'], { env: cliEnv })).stdout);
      assert.deepEqual(listed.map((j: { id: string }) => j.id).sort(), [id, early.body.id].sort());
      const w = await submitBlur(server.url, png, { steps: 5 });
      const outFile = join(dataDir, 'waited.png');
      const waited = await run(process.execPath, [CLI, 'jobs', 'wait', w.body.id, '--json', '-o', outFile], { env: cliEnv });
      const lines = waited.stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(lines.at(-1).status, 'succeeded');
      assert.deepEqual(lines.filter((l) => l.event === 'progress').map((l) => l.data.step), [1, 2, 3, 4, 5]);
      assert.ok((await decodeRaw(readFileSync(outFile))).data.equals(await blurNTimes(raw, W, H, 1, 5)));
      const missing = await run(process.execPath, [CLI, 'jobs', 'cancel', '00000000-0000-4000-8000-000000000000'], { env: cliEnv }).catch((e: { code: number; stderr: string }) => e);
      assert.equal((missing as { code: number }).code, 1);
      assert.match((missing as { stderr: string }).stderr, /404/);
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it('convserve blur-sweep runs the kind in-process', async () => {
    const dir = tempDir('convserve-blur-cli-');
    const { raw, png } = await testPattern(20, 16);
    writeFileSync(join(dir, 'in.png'), png);
    const { stdout } = await run(process.execPath, [CLI, 'blur-sweep', join(dir, 'in.png'), '-o', join(dir, 'out.png'), '--steps', '4', '--sigma', '0.7', '--json'], { env: { ...process.env, NODE_TEST_CONTEXT: '' } });
    assert.equal(JSON.parse(stdout).steps, 4);
    assert.ok((await decodeRaw(readFileSync(join(dir, 'out.png')))).data.equals(await blurNTimes(raw, 20, 16, 0.7, 4)));
    const bad = await run(process.execPath, [CLI, 'blur-sweep', join(dir, 'in.png'), '-o', join(dir, 'x.png'), '--steps', '0'], { env: { ...process.env, NODE_TEST_CONTEXT: '' } }).catch((e: { code: number; stderr: string }) => e);
    assert.equal((bad as { code: number }).code, 1);
    assert.match((bad as { stderr: string }).stderr, /steps/);
  });
});
