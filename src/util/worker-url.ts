// Starting a worker thread (or child process) from a module that may be running as compiled JS (dist/) or
// as TypeScript under tsx (tests, development). Node 20 does not carry tsx's loader hooks into worker
// threads, so a .ts worker is started through a tiny bootstrap that registers tsx first.
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function isRunningTypeScript(moduleUrl: string): boolean {
  return moduleUrl.endsWith('.ts');
}

/** `new Worker` for the sibling module `name` (without extension) of `moduleUrl`. */
export function startWorker(moduleUrl: string, name: string, options: WorkerOptions = {}): Worker {
  if (!isRunningTypeScript(moduleUrl)) return new Worker(new URL(`./${name}.js`, moduleUrl), options);
  const target = new URL(`./${name}.ts`, moduleUrl).href;
  const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(target)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
