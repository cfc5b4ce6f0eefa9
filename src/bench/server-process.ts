// A real `convserve serve` process for end-to-end benchmarks: started on a free port with the given
// environment, ready when /readyz says so; its resident memory read from the OS. And a lean HTTP client for it.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
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

/** One file as a multipart/form-data body, encoded once (what curl or python-requests send: one buffer, its length known). */
export function multipartBody(field: string, filename: string, type: string, bytes: Buffer): { body: Buffer; contentType: string } {
  const boundary = `----convserve-bench-${Date.now().toString(36)}`;
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n`;
  return { body: Buffer.concat([Buffer.from(head), bytes, Buffer.from(`\r\n--${boundary}--\r\n`)]), contentType: `multipart/form-data; boundary=${boundary}` };
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * A keep-alive client (one connection reused, as real clients do) on node:http: the least client-side cost,
 * so the bench measures the server. Node's fetch with a FormData body costs the client several ms more
 * (the bench reports that client separately).
 */
export class KeepAliveClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(readonly baseUrl: string) {}

  post(path: string, body: Buffer, contentType: string): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, this.baseUrl), { method: 'POST', agent: this.agent, headers: { 'content-type': contentType, 'content-length': body.length } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
