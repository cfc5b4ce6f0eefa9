// The command line as a user runs it: node dist/cli/main.js (built by `npm test`). --help for every command,
// doctor --json, and one-line errors with a non-zero exit code.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLI } from './helpers/server-process.js';
import { tempDir } from './helpers/app.js';

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'silent', NODE_TEST_CONTEXT: '', ...env }, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Command names listed in a --help text's "Commands:" section. */
function commandsOf(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? '';
  return section.split('\n').map((l) => /^ {2}(\S+)/.exec(l)?.[1]).filter((c): c is string => !!c && c !== 'help');
}

describe('command line', () => {
  it('--help works for the program and for every command and sub-command', () => {
    const top = run(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /^Usage: convserve/m);
    const commands = commandsOf(top.stdout);
    for (const c of ['serve', 'filter', 'config', 'classify', 'models', 'jobs', 'train', 'doctor']) assert.ok(commands.includes(c), `${c} in ${commands.join(', ')}`);
    const leaves: string[][] = [];
    for (const c of commands) {
      const h = run([c, '--help']);
      assert.equal(h.code, 0, `${c} --help: ${h.stderr}`);
      assert.match(h.stdout, new RegExp(`^Usage: convserve ${c}`, 'm'));
      const subs = commandsOf(h.stdout);
      if (!subs.length) leaves.push([c]);
      for (const s of subs) {
        const hs = run([c, s, '--help']);
        assert.equal(hs.code, 0, `${c} ${s} --help: ${hs.stderr}`);
        assert.match(hs.stdout, new RegExp(`^Usage: convserve ${c} ${s}`, 'm'));
        leaves.push([c, s]);
      }
    }
    assert.ok(leaves.length >= 12, leaves.map((l) => l.join(' ')).join(', '));
  });

  it('doctor --json reports node, ORT (a real session), models, data dir and limits', () => {
    const modelsDir = tempDir();
    cpSync(join(import.meta.dirname, '..', 'models', 'mnist-cnn'), join(modelsDir, 'mnist-cnn'), { recursive: true });
    const dataDir = join(tempDir(), 'data');
    const r = run(['doctor', '--json', '--no-tfjs'], { CONVSERVE_MODELS_DIR: modelsDir, CONVSERVE_DATA_DIR: dataDir, CONVSERVE_MAX_BATCH: '3' });
    assert.equal(r.code, 0, r.stderr);
    const d = JSON.parse(r.stdout);
    assert.equal(d.ok, true);
    assert.equal(d.node.version, process.versions.node);
    assert.equal(d.onnxruntime.ok, true);
    assert.match(d.onnxruntime.version, /^\d+\.\d+\.\d+/);
    assert.equal(typeof d.onnxruntime.session_ms, 'number');
    assert.deepEqual(d.data_dir, { ok: true, path: dataDir, writable: true });
    const byName = Object.fromEntries(d.models.entries.map((m: { name: string }) => [m.name, m]));
    assert.equal(byName['mnist-cnn'].status, 'ready');
    assert.equal(byName.vgg19.status, 'missing');
    assert.ok(byName.vgg19.install.some((c: string) => c.includes('convserve models fetch vgg19')));
    assert.deepEqual(d.limits.maxBatch, { env: 'CONVSERVE_MAX_BATCH', value: 3 });
  });

  it('doctor with tfjs reports the backend selection; an unwritable data dir fails with exit code 1', () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    const r = run(['doctor', '--json'], { CONVSERVE_DATA_DIR: join(file, 'data'), CONVSERVE_TF_BACKEND: 'cpu' });
    assert.equal(r.code, 1);
    const d = JSON.parse(r.stdout);
    assert.equal(d.ok, false);
    assert.equal(d.data_dir.writable, false);
    assert.equal(d.tfjs.ok, true);
    assert.equal(d.tfjs.backend, 'cpu');
    assert.ok(d.tfjs.tried.some((t: { name: string; ok: boolean }) => t.name === 'cpu' && t.ok));
    const text = run(['doctor', '--no-tfjs'], { CONVSERVE_DATA_DIR: join(file, 'data') });
    assert.equal(text.code, 1);
    assert.match(text.stdout, /FAIL data directory/);
  });

  it('errors: one line on stderr and exit code 1; JSON with --json; usage errors exit non-zero', () => {
    const missing = run(['filter', '/nonexistent/cat.jpg', '-k', 'edge-3', '-o', join(tempDir(), 'x.png')]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    assert.match(missing.stderr, /^convserve: .*nonexistent/);
    const badKernel = run(['filter', join(import.meta.dirname, '..', 'samples', 'brick.jpg'), '-k', '[[1,2]]', '-o', join(tempDir(), 'x.png'), '--json']);
    assert.equal(badKernel.code, 1);
    const err = JSON.parse(badKernel.stderr.trim());
    assert.equal(err.error.type, 'invalid-kernel');
    assert.match(err.error.message, /odd/);
    const unknown = run(['frobnicate']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown command/);
    const down = run(['jobs', 'list', '--url', 'http://127.0.0.1:9', '--json']);
    assert.equal(down.code, 1);
    assert.match(JSON.parse(down.stderr.trim()).error.message, /cannot reach/);
  });
});
