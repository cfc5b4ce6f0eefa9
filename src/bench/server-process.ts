// A real `convserve serve` process for end-to-end benchmarks: started on a free port with the given
// environment, ready when /readyz says so; its resident memory read from the OS.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Resident set size of the server process, in MB. */
  rssMb(): number;
  stop(): Promise<void>;
}

export async function startServerProcess(env: Record<string, string>, readyTimeoutMs = 300_000): Promise<ServerProcess> {
  const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', CONVSERVE_AUTO_FETCH: 'false', CONVSERVE_AUTO_INSTALL: 'false', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolvePort, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const m = /"port":(\d+)/.exec(buf);
      if (m) { child.stdout!.off('data', onData); child.stdout!.resume(); resolvePort(Number(m[1])); }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (c) => reject(new Error(`server exited with ${c}`)));
  });
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + readyTimeoutMs;
  for (;;) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    if (r?.ok) break;
    if (Date.now() > until) throw new Error(`server not ready after ${readyTimeoutMs} ms: ${r ? await r.text() : 'no answer'}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  return {
    url,
    child,
    rssMb: () => rssOf(child.pid!),
    stop: () => new Promise((res) => {
      if (child.exitCode !== null) return res();
      child.once('exit', () => res());
      child.kill('SIGTERM');
    }),
  };
}

function rssOf(pid: number): number {
  const status = `/proc/${pid}/status`;
  if (existsSync(status)) {
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(status, 'utf8'))?.[1];
    if (kb) return Math.round(Number(kb) / 1024);
  }
  return Math.round(Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)]).toString().trim()) / 1024);
}
