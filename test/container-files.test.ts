// The container files: the Dockerfile linted by dockerfile-utils and read with dockerfile-ast (its parser), and
// compose.yaml read and checked for the topology the README describes (Redis with AOF, one API, two workers,
// shared volumes, healthchecks). There is no Docker here, so the healthcheck commands themselves are run
// against a real HTTP server and a real redis-server, and Redis is started with the compose file's options.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Copy, DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { parse as parseYaml } from 'yaml';
// @ts-expect-error -- plain .mjs script without types
import { findTool } from '../scripts/test-setup.mjs';

const ROOT = join(import.meta.dirname, '..');
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const COMPOSE_TEXT = readFileSync(join(ROOT, 'compose.yaml'), 'utf8');

// compose.yaml is read with the `yaml` package (strict: duplicate keys and bad syntax are errors).
type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };
const readYaml = (text: string): Yaml => parseYaml(text, { strict: true, uniqueKeys: true }) as Yaml;

// ---- helpers --------------------------------------------------------------------------------------------------
const isMap = (v: Yaml | undefined): v is { [key: string]: Yaml } => typeof v === 'object' && v !== null && !Array.isArray(v);
function map(v: Yaml | undefined, what: string): { [key: string]: Yaml } {
  assert.ok(isMap(v), `${what} is a map`);
  return v;
}
function strings(v: Yaml | undefined, what: string): string[] {
  assert.ok(Array.isArray(v) && v.every((s) => typeof s === 'string'), `${what} is a list of strings`);
  return v as string[];
}

/** The Dockerfile's instructions grouped by build stage (a stage starts at its FROM). */
function stages(): { name: string | null; instructions: Instruction[] }[] {
  const out: { name: string | null; instructions: Instruction[] }[] = [];
  for (const ins of DockerfileParser.parse(DOCKERFILE).getInstructions()) {
    if (ins.getKeyword() === 'FROM') out.push({ name: ins.getArguments()[2]?.getValue() ?? null, instructions: [] });
    else out.at(-1)?.instructions.push(ins);
  }
  return out;
}
const args = (ins: Instruction) => ins.getArguments().map((a) => a.getValue());
const content = (ins: Instruction) => ins.getArgumentsContent() ?? '';

/** The JSON-form HEALTHCHECK CMD of the Dockerfile, as argv. */
function dockerHealthcheck(): string[] {
  const hc = stages().at(-1)!.instructions.filter((i) => i.getKeyword() === 'HEALTHCHECK');
  assert.equal(hc.length, 1, 'one HEALTHCHECK in the runtime stage');
  const json = content(hc[0]!).slice(content(hc[0]!).indexOf('CMD') + 3).trim();
  return JSON.parse(json) as string[];
}

async function freePort(): Promise<number> {
  const srv = createTcpServer();
  await new Promise<void>((done) => srv.listen(0, '127.0.0.1', done));
  const { port } = srv.address() as AddressInfo;
  await new Promise((done) => srv.close(done));
  return port;
}

/** Redis's raw reply to one inline command (QUIT follows, so the reply ends when the server closes). */
async function redisReply(port: number, command: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.write(`${command}\r\nQUIT\r\n`);
  let reply = '';
  for await (const chunk of socket) reply += String(chunk);
  return reply.replace(/\+OK\r\n$/, ''); // QUIT's answer
}

/** Runs a healthcheck argv (["node", "-e", …]) with this Node and `env`; its exit status. */
function runCheck(argv: string[], env: Record<string, string>): number | null {
  assert.equal(argv[0], 'node');
  return spawnSync(process.execPath, argv.slice(1), { env: { ...process.env, ...env }, timeout: 20_000 }).status;
}

// ---- Dockerfile -----------------------------------------------------------------------------------------------
describe('Dockerfile', () => {
  it('lints clean with dockerfile-utils: no errors, no warnings', () => {
    assert.deepEqual(validate(DOCKERFILE).map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
  });

  it('the linter does flag a broken Dockerfile (so a clean result means something)', () => {
    const broken = DOCKERFILE.replace('--interval=30s', '--interval=30x').replace('WORKDIR /app', 'workdir app');
    assert.ok(validate(broken).length >= 3, 'bad duration, lower-case instruction, relative WORKDIR');
  });

  it('builds in a stage with dev dependencies, runs from a stage with production dependencies and the built files', () => {
    const [build, runtime, ...rest] = stages();
    assert.equal(rest.length, 0);
    assert.equal(build!.name, 'build');
    assert.equal(runtime!.name, 'runtime');
    const runs = (s: typeof build) => s!.instructions.filter((i) => i.getKeyword() === 'RUN').map(content).join('\n');
    assert.match(runs(build), /npm ci --ignore-scripts/);
    assert.doesNotMatch(runs(build), /--omit=dev/);
    assert.match(runs(build), /npm run build/);
    assert.match(runs(runtime), /npm ci --omit=dev --ignore-scripts/);
    const fromBuild = runtime!.instructions.filter((i) => i instanceof Copy && i.getFromFlag()?.getValue() === 'build').map(args);
    assert.deepEqual(fromBuild, [['/app/dist', './dist']]);
  });

  it('downloads no CUDA provider unless the documented build arg asks for it', () => {
    const runtime = stages().at(-1)!;
    const arg = runtime.instructions.find((i) => i.getKeyword() === 'ARG' && content(i).startsWith('ONNXRUNTIME_NODE_INSTALL'));
    assert.equal(arg && content(arg), 'ONNXRUNTIME_NODE_INSTALL=skip');
    assert.match(DOCKERFILE, /--build-arg ONNXRUNTIME_NODE_INSTALL=cuda12/, 'the CUDA variant is documented');
    // With --ignore-scripts, onnxruntime-node's installer (the only thing that downloads CUDA) runs only here:
    const installer = stages().flatMap((s) => s.instructions).filter((i) => content(i).includes('onnxruntime-node/script/install.js'));
    assert.equal(installer.length, 1);
    assert.match(content(installer[0]!), /if \[ "\$ONNXRUNTIME_NODE_INSTALL" != "skip" \]/);
  });

  it('runs as a non-root user, listens on every interface with API keys required, keeps /models and /data in volumes', () => {
    const runtime = stages().at(-1)!.instructions;
    const user = runtime.filter((i) => i.getKeyword() === 'USER').map(content);
    assert.equal(user.length, 1);
    assert.doesNotMatch(user[0]!, /^(root|0)(:|$)/);
    const env = Object.fromEntries(runtime.filter((i) => i.getKeyword() === 'ENV').flatMap((i) => content(i).split(/\s*\\?\n\s*|\s+/)).filter(Boolean).map((p) => p.split('=') as [string, string]));
    assert.equal(env.HOST, '0.0.0.0');
    assert.equal(env.CONVSERVE_MODELS_DIR, '/models');
    assert.equal(env.CONVSERVE_DATA_DIR, '/data');
    // glibc reads these at process start only: the image is where the service gets them (docs/memory.md).
    assert.deepEqual([env.MALLOC_ARENA_MAX, env.MALLOC_MMAP_THRESHOLD_, env.MALLOC_TRIM_THRESHOLD_], ['2', '131072', '131072']);
    const volumes = runtime.filter((i) => i.getKeyword() === 'VOLUME').flatMap((i) => JSON.parse(content(i)) as string[]);
    assert.deepEqual(volumes.sort(), ['/data', '/models']);
    assert.match(DOCKERFILE, /API keys are then required[\s\S]*CONVSERVE_API_KEYS_FILE[\s\S]*CONVSERVE_API_KEYS\b/);
  });

  it('its HEALTHCHECK (Node, no curl) passes against a server answering /healthz and fails without one', async () => {
    const argv = dockerHealthcheck();
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(req.url === '/healthz' ? 200 : 404).end();
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const port = String((server.address() as AddressInfo).port);
    try {
      // Asynchronous spawn: the server answers on this event loop.
      const status = await new Promise<number | null>((done) => spawn(process.execPath, argv.slice(1), { env: { ...process.env, PORT: port }, stdio: 'ignore' }).on('exit', done));
      assert.equal(status, 0);
      assert.deepEqual(paths, ['/healthz']);
    } finally {
      await new Promise((done) => server.close(done));
    }
    assert.equal(runCheck(argv, { PORT: String(await freePort()) }), 1);
  });
});

// ---- compose.yaml ---------------------------------------------------------------------------------------------
describe('compose.yaml', () => {
  const compose = map(readYaml(COMPOSE_TEXT), 'the document');
  const services = map(compose.services, 'services');
  const service = (name: string) => map(services[name], `service ${name}`);
  const env = (name: string) => map(service(name).environment, `${name}.environment`);

  it('has exactly redis, one api and two workers', () => {
    assert.deepEqual(Object.keys(services).sort(), ['api', 'redis', 'worker']);
    assert.deepEqual(strings(service('api').command, 'api.command'), ['serve']);
    assert.equal(map(service('api').deploy ?? {}, 'api.deploy').replicas ?? 1, 1);
    assert.deepEqual(strings(service('worker').command, 'worker.command'), ['worker', '--concurrency', '1']);
    assert.equal(map(service('worker').deploy, 'worker.deploy').replicas, 2);
    for (const s of ['api', 'worker']) {
      assert.equal(service(s).build, '.', `${s} is built from the Dockerfile`);
      assert.equal(service(s).image, service('api').image, 'one image for both roles');
    }
  });

  it('api and workers reach Redis by its service name, after it is healthy', () => {
    const redisPort = 6379;
    for (const s of ['api', 'worker']) {
      const url = new URL(String(env(s).CONVSERVE_REDIS_URL));
      assert.equal(url.protocol, 'redis:');
      assert.equal(url.hostname, 'redis');
      assert.equal(Number(url.port || redisPort), redisPort);
      assert.equal(map(map(service(s).depends_on, `${s}.depends_on`).redis, `${s}.depends_on.redis`).condition, 'service_healthy');
    }
  });

  it('api and workers share the models and data volumes at the paths the image uses; every volume is declared', () => {
    const declared = Object.keys(map(compose.volumes, 'volumes')).sort();
    const used = new Set<string>();
    for (const s of Object.keys(services)) for (const v of strings(service(s).volumes ?? [], `${s}.volumes`)) used.add(v.split(':')[0]!);
    assert.deepEqual([...used].sort(), declared);
    for (const s of ['api', 'worker']) assert.deepEqual(strings(service(s).volumes, `${s}.volumes`).sort(), ['data:/data', 'models:/models']);
    assert.deepEqual(strings(service('redis').volumes, 'redis.volumes'), ['redis-data:/data']);
  });

  it('the api gets its API keys from a mounted secret file', () => {
    const secrets = strings(service('api').secrets, 'api.secrets');
    assert.equal(env('api').CONVSERVE_API_KEYS_FILE, `/run/secrets/${secrets[0]}`);
    assert.ok(map(map(compose.secrets, 'secrets')[secrets[0]!], 'the secret').file, 'the secret comes from a file');
    assert.ok(strings(service('api').ports, 'api.ports').includes('8080:8080'));
  });

  it('every service has a healthcheck; the api\'s is the image\'s', () => {
    for (const s of Object.keys(services)) {
      const test = strings(map(service(s).healthcheck, `${s}.healthcheck`).test, `${s}.healthcheck.test`);
      assert.equal(test[0], 'CMD', s);
    }
    assert.deepEqual(strings(map(service('api').healthcheck, 'api.healthcheck').test, 'api.healthcheck.test').slice(1), dockerHealthcheck());
  });

  describe('with a real redis-server', () => {
    let redis: ChildProcess;
    let port: number;
    before(async () => {
      port = await freePort();
      // The compose file's Redis options, on a free port in a temp dir: a real Redis accepts them.
      const command = strings(service('redis').command, 'redis.command');
      assert.equal(command[0], 'redis-server');
      redis = spawn(process.env.REDIS_SERVER_PATH ?? findTool('redis-server'), [...command.slice(1), '--port', String(port), '--bind', '127.0.0.1', '--dir', mkdtempSync(join(tmpdir(), 'convserve-redis-')), '--save', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      redis.stdout!.on('data', (d: Buffer) => { out += d; });
      for (let i = 0; i < 200 && !out.includes('Ready to accept connections'); i++) {
        assert.equal(redis.exitCode, null, `redis-server exited: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(out, /Ready to accept connections/);
    });
    after(() => { redis?.kill('SIGKILL'); });

    it('runs with AOF on and no eviction (what BullMQ needs)', async () => {
      assert.equal(await redisReply(port, 'CONFIG GET appendonly'), '*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n');
      assert.equal(await redisReply(port, 'CONFIG GET maxmemory-policy'), '*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n');
    });

    it('the worker healthcheck passes while Redis answers and fails when it is gone', async () => {
      const argv = strings(map(service('worker').healthcheck, 'worker.healthcheck').test, 'worker.healthcheck.test').slice(1);
      assert.equal(runCheck(argv, { CONVSERVE_REDIS_URL: `redis://127.0.0.1:${port}` }), 0);
      assert.equal(runCheck(argv, { CONVSERVE_REDIS_URL: `redis://127.0.0.1:${await freePort()}` }), 1);
    });
  });
});
