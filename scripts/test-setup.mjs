#!/usr/bin/env node
// The test suite's external programs, found (or installed) before the tests run:
//   Chromium      for test/web.test.ts (driven by playwright-core)      → CHROMIUM_PATH
//   redis-server  for the Redis cluster test (started on a free port)   → REDIS_SERVER_PATH
//
//   node scripts/test-setup.mjs [--dry-run] [COMMAND ARGS…]
//
// Each program is looked for in its variable, then on PATH (chromium, chromium-browser, google-chrome[-stable];
// redis-server), then in the usual places that are often not on PATH; a candidate must answer `--version`. When one is
// missing and this process is root on a machine with apt-get, it installs Debian's package quietly
// (noninteractive); otherwise it fails with one line naming the command to run. CONVSERVE_TEST_NO_INSTALL=1
// never installs. --dry-run prints what it found and the install commands it would run, and runs nothing.
// Then it runs COMMAND (the test runner) with the variables set, and exits with its status.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The programs, where to look for them beyond PATH, and how each platform installs them. */
export const TOOLS = [
  {
    id: 'chromium',
    env: 'CHROMIUM_PATH',
    names: ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'],
    places: () => [
      '/snap/bin/chromium', '/opt/google/chrome/chrome',
      '/Applications/Chromium.app/Contents/MacOS/Chromium', '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
      playwrightChromium(),
    ],
    apt: 'chromium',
    brew: 'brew install --cask chromium',
  },
  {
    id: 'redis-server',
    env: 'REDIS_SERVER_PATH',
    names: ['redis-server'],
    places: () => ['/opt/homebrew/bin/redis-server', '/usr/local/opt/redis/bin/redis-server'],
    apt: 'redis-server',
    brew: 'brew install redis',
  },
];

/** Path of a working executable for `tool` in `env`, undefined when there is none, or an error line when the variable is wrong. */
export function locate(tool, env = process.env) {
  const given = env[tool.env];
  if (given) return works(given) ? { path: given } : { error: `${tool.env}=${given} is not a working ${tool.id} (it must answer --version); fix or unset it` };
  const onPath = (env.PATH ?? '').split(delimiter).filter(Boolean).flatMap((dir) => tool.names.map((n) => join(dir, n)));
  const path = [...onPath, ...tool.places().filter(Boolean)].find(works);
  return path ? { path } : {};
}

/** For the tests that run without this script in front: the tool's path, or an Error with the command to run. */
export function findTool(id) {
  const tool = TOOLS.find((t) => t.id === id);
  const found = locate(tool);
  if (found.path) return found.path;
  throw new Error(`test setup: ${found.error ?? failureLine([tool])}`);
}

function works(path) {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
  } catch {
    return false;
  }
  return spawnSync(path, ['--version'], { stdio: 'ignore', timeout: 30_000 }).status === 0;
}

/** Where playwright-core keeps a browser it downloaded itself (`npx playwright-core install chromium`). */
function playwrightChromium() {
  try {
    const { chromium } = createRequire(import.meta.url)('playwright-core');
    return chromium.executablePath();
  } catch {
    return undefined;
  }
}

function osRelease() {
  try {
    return Object.fromEntries(readFileSync('/etc/os-release', 'utf8').split('\n').map((l) => l.match(/^(\w+)=("?)(.*)\2$/)).filter(Boolean).map((m) => [m[1], m[3]]));
  } catch {
    return {};
  }
}

// apt-get waits this long for another apt/dpkg run (unattended upgrades on a fresh machine) instead of failing.
const LOCK_WAIT = 'DPkg::Lock::Timeout=300';
const isRoot = () => process.getuid?.() === 0;
const hasApt = () => works('/usr/bin/apt-get');

/**
 * The commands that install `missing` here, as [program, args] (empty when there is no automatic way).
 * Debian packages Chromium as `chromium`; Ubuntu's only `chromium-browser` is a snap stub that does not run in
 * containers, so there the browser comes from playwright-core's own installer (with its system libraries).
 */
function installPlan(missing) {
  if (!hasApt()) return [];
  const ubuntu = osRelease().ID === 'ubuntu';
  const packages = missing.filter((t) => !(ubuntu && t.id === 'chromium')).map((t) => t.apt);
  const plan = [];
  if (packages.length) {
    plan.push(['apt-get', ['update', '-qq']]);
    plan.push(['apt-get', ['install', '-y', '-qq', '--no-install-recommends', '-o', LOCK_WAIT, ...packages]]);
  }
  if (ubuntu && missing.some((t) => t.id === 'chromium')) plan.push([process.execPath, [join(ROOT, 'node_modules', 'playwright-core', 'cli.js'), 'install', '--with-deps', 'chromium']]);
  return plan;
}

/** A plan step as a shell command; `forPerson` leaves out the options that only keep an unattended run quiet. */
const show = ([program, args], forPerson = false) => [program === process.execPath ? 'node' : program,
  ...args.filter((a, i) => !forPerson || !(a === '-qq' || a === LOCK_WAIT || args[i + 1] === LOCK_WAIT)).map((a) => a.replace(ROOT + '/', ''))].join(' ');

/** The one line printed when programs are missing and will not be installed. */
function failureLine(missing) {
  const plan = installPlan(missing);
  const sudo = isRoot() ? '' : 'sudo ';
  const run = plan.length
    ? plan.map((step) => sudo + show(step, true)).join(' && ')
    : `install ${missing.map((t) => t.id).join(' and ')}${process.platform === 'darwin' ? ` (${missing.map((t) => t.brew).join(' && ')})` : ''}`;
  return `${missing.map((t) => t.id).join(', ')} not found (looked at ${missing.map((t) => t.env).join(', ')}, PATH and the usual places); run: ${run} — or set ${missing.map((t) => t.env).join(' / ')}`;
}

function install(plan) {
  console.error(`test setup: installing: ${plan.map((step) => show(step)).join(' && ')}`);
  for (const [program, args] of plan) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', PATH: `${process.env.PATH ?? ''}${delimiter}${SYSTEM_PATH}` };
    const r = spawnSync(program === 'apt-get' ? '/usr/bin/apt-get' : program, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status !== 0) {
      process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-20).join('\n') + '\n');
      fail(`test setup: \`${show([program, args])}\` failed (exit ${r.status ?? r.signal}); run it yourself, or set ${TOOLS.map((t) => t.env).join(' / ')}`);
    }
  }
}

function fail(line) {
  console.error(line);
  process.exit(1);
}

async function main(argv) {
  const dryRun = argv[0] === '--dry-run';
  const command = dryRun ? [] : argv;
  const found = new Map();
  const locateAll = () => {
    for (const tool of TOOLS) {
      const r = locate(tool);
      if (r.error) fail(`test setup: ${r.error}`);
      if (r.path) found.set(tool, r.path);
    }
    return TOOLS.filter((t) => !found.has(t));
  };
  let missing = locateAll();
  if (dryRun) {
    for (const [tool, path] of found) console.log(`${tool.env}=${path}`);
    const plan = installPlan(missing);
    if (missing.length) console.log(plan.length ? `would run (as root): ${plan.map((step) => show(step)).join(' && ')}` : failureLine(missing));
    return 0;
  }
  if (missing.length) {
    const plan = installPlan(missing);
    if (!plan.length || !isRoot() || process.env.CONVSERVE_TEST_NO_INSTALL === '1') fail(`test setup: ${failureLine(missing)}`);
    install(plan);
    missing = locateAll();
    if (missing.length) fail(`test setup: installed, but still no ${missing.map((t) => t.id).join(', ')}; ${failureLine(missing)}`);
  }
  const env = { ...process.env, ...Object.fromEntries([...found].map(([tool, path]) => [tool.env, path])) };
  if (command.length === 0) {
    for (const [tool, path] of found) console.log(`${tool.env}=${path}`);
    return 0;
  }
  const [program, ...args] = command;
  const child = spawn(program === 'node' ? process.execPath : program, args, { env, stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  return await new Promise((done) => {
    child.on('error', (err) => fail(`test setup: cannot run ${program}: ${err.message}`));
    child.on('exit', (code, signal) => done(code ?? 128 + (osConstants.signals[signal] ?? 0)));
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = await main(process.argv.slice(2));
