// Entry point of the child process started by ./child.ts: waits for one 'run' message, imports the module, runs
// the exported task with a progress callback that posts messages to the parent, posts the result, and exits.
import type { ChildMessage } from './child.js';

function send(m: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) { resolve(); return; }
    process.send(m, undefined, undefined, () => resolve());
  });
}

process.once('message', async (raw) => {
  const m = raw as ChildMessage;
  if (m.kind !== 'run') return;
  try {
    const mod = (await import(m.module)) as Record<string, unknown>;
    const fn = mod[m.exportName];
    if (typeof fn !== 'function') throw new Error(`${m.module} has no exported function '${m.exportName}'`);
    const result = await fn(m.args, (value: unknown) => { void send({ kind: 'progress', value }); });
    await send({ kind: 'result', value: result });
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    await send({ kind: 'error', message: err.message, stack: err.stack, name: err.name });
  }
  process.disconnect?.();
  process.exit(0);
});
void send({ kind: 'ready' });
