// A real redis-server for tests: on a free port, with its files in a temp dir, no persistence unless asked
// (`appendOnly`: AOF, so that a server stopped and started again on the same port and dir keeps its data).
// The binary is REDIS_SERVER_PATH (set by the test setup) or `redis-server` on the PATH. Plus the worker
// processes of the distributed mode (node dist/cli/main.js worker; run `npm run build` first).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { CLI } from './server-process.js';
import { tempDir } from './app.js';

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export interface RedisServer {
  url: string;
  port: number;
  /** Its data directory (the AOF files when `appendOnly`). */
  dir: string;
  child: ChildProcess;
  /** SIGKILL by default; SIGTERM lets it write its AOF and exit cleanly. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface RedisOptions {
  port?: number;
  dir?: string;
  appendOnly?: boolean;
}

export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const p = opts.port ?? await freePort();
  const dir = opts.dir ?? tempDir('convserve-redis-');
  const child = spawn(process.env.REDIS_SERVER_PATH ?? 'redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', opts.appendOnly ? 'yes' : 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${logs.join('')}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      logs.push(d.toString());
      if (/Ready to accept connections/.test(logs.join(''))) { clearTimeout(timer); resolve(); }
    });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`redis-server could not be started (REDIS_SERVER_PATH=${process.env.REDIS_SERVER_PATH ?? 'unset'}): ${e.message}`)); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited (${code}):\n${logs.join('')}`)); });
  });
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    dir,
    child,
    async stop(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill(signal);
        await exited;
      }
    },
  };
}

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  logs: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `convserve worker`, resolved once it says it is taking jobs. */
export async function startWorkerProcess(env: Record<string, string>, args: string[] = [], timeoutMs = 60_000): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, 'worker', ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', CONVSERVE_AUTO_FETCH: 'false', NODE_TEST_CONTEXT: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start in ${timeoutMs} ms:\n${logs.join('')}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      logs.push(d.toString());
      if (/"msg":"worker ready"/.test(logs.join(''))) { clearTimeout(timer); resolve(); }
    });
    child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    void exited.then((e) => { clearTimeout(timer); reject(new Error(`worker exited early (${e.code ?? e.signal}):\n${logs.join('')}`)); });
  });
  return { child, pid: child.pid!, logs, exited };
}

/** Ends a child process (SIGKILL unless it already exited) and waits for it. */
export async function killProcess(p: { child: ChildProcess; exited: Promise<unknown> }): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await p.exited;
}
