// Starts the real service as a child process (node dist/cli/main.js serve) on a free port.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  port: number;
  logs: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startServerProcess(env: Record<string, string> = {}, timeoutMs = 60_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', CONVSERVE_AUTO_FETCH: 'false', CONVSERVE_AUTO_INSTALL: 'false', NODE_TEST_CONTEXT: '', CONVSERVE_DATA_DIR: mkdtempSync(join(tmpdir(), 'convserve-data-')), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms:\n${logs.join('')}`)), timeoutMs);
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      logs.push(d.toString());
      buf += d.toString();
      const m = /"msg":"convserve listening"/.test(buf) && /"port":(\d+)/.exec(buf);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    void exited.then((e) => { clearTimeout(timer); reject(new Error(`server exited early (${e.code ?? e.signal}):\n${logs.join('')}`)); });
  });
  return { child, url: `http://127.0.0.1:${port}`, port, logs, exited };
}
