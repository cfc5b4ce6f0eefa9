// scripts/test-setup.mjs, run as `npm test` runs it: finds Chromium and redis-server, passes their paths on,
// and, when they are missing and it may not install, fails with one line naming the command to run.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const SCRIPT = join(import.meta.dirname, '..', 'scripts', 'test-setup.mjs');
const empty = mkdtempSync(join(tmpdir(), 'convserve-setup-'));
/** An environment in which neither program can be found: nothing on PATH, no playwright browser cache. */
const NOTHING = { PATH: join(empty, 'bin'), HOME: empty, PLAYWRIGHT_BROWSERS_PATH: empty };

function setup(args: string[], env: Record<string, string | undefined>) {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('test setup (scripts/test-setup.mjs)', () => {
  it('finds Chromium and redis-server and runs the test command with their paths, passing its exit status on', () => {
    const r = setup(['node', '-e', 'console.log(JSON.stringify([process.env.CHROMIUM_PATH, process.env.REDIS_SERVER_PATH])); process.exit(3)'], {});
    assert.equal(r.status, 3, r.stderr);
    const [chromium, redis] = JSON.parse(r.stdout) as [string, string];
    for (const path of [chromium, redis]) accessSync(path, constants.X_OK);
    assert.match(spawnSync(chromium, ['--version'], { encoding: 'utf8' }).stdout, /chrom/i);
    assert.match(spawnSync(redis, ['--version'], { encoding: 'utf8' }).stdout, /^Redis server/);
  });

  it('missing programs and no install allowed: one line naming the command, and the tests do not run', () => {
    const marker = join(empty, 'ran');
    const r = setup(['node', '-e', `require('node:fs').writeFileSync(${JSON.stringify(marker)}, '')`], { ...NOTHING, CONVSERVE_TEST_NO_INSTALL: '1', CHROMIUM_PATH: undefined, REDIS_SERVER_PATH: undefined });
    assert.equal(r.status, 1);
    assert.equal(existsSync(marker), false, 'the test command must not run');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^test setup: chromium, redis-server not found .*CHROMIUM_PATH.*REDIS_SERVER_PATH/);
    if (existsSync('/usr/bin/apt-get')) assert.match(lines[0]!, /run: (sudo )?apt-get update && (sudo )?apt-get install -y --no-install-recommends chromium redis-server/);
  });

  it('--dry-run prints the install it would run for what is missing, and runs nothing', () => {
    const r = setup(['--dry-run'], { ...NOTHING, CHROMIUM_PATH: undefined, REDIS_SERVER_PATH: process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^REDIS_SERVER_PATH=.*redis-server$/m);
    if (existsSync('/usr/bin/apt-get')) assert.match(r.stdout, /^would run \(as root\): apt-get update -qq && apt-get install -y -qq --no-install-recommends .* chromium$/m);
    assert.equal(r.stderr, '');
  });

  it('a variable that points at no working program is an error of its own, not a silent fallback', () => {
    const notAProgram = join(empty, 'chromium');
    writeFileSync(notAProgram, 'not a program');
    const r = setup(['node', '-e', '0'], { CHROMIUM_PATH: notAProgram });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trimEnd(), `test setup: CHROMIUM_PATH=${notAProgram} is not a working chromium (it must answer --version); fix or unset it`);
  });
});
