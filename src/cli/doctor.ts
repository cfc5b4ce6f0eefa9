// `convserve doctor`: what this machine and configuration can do — Node and ONNX Runtime versions (and whether an
// ORT session can actually be created and run), the tfjs backends (the same selection training uses), the models
// and their status, the data directory (writable?), and the limits. Exit code 1 when something essential fails.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Core } from '../app/core.js';
import { SETTINGS } from '../config.js';
import { GraphBuilder } from '../onnx/builder.js';
import { withCatalogCore } from './core.js';

interface Check { ok: boolean; [k: string]: unknown }

export interface DoctorReport {
  ok: boolean;
  node: Check & { version: string; required: string };
  onnxruntime: Check & { version?: string; session_ms?: number; error?: string };
  tfjs: Check & { backend?: string; tf_backend?: string; tried?: { name: string; ok: boolean; error?: string }[]; error?: string };
  models: Check & { dir: string; entries: { name: string; status: string; architecture?: string; provenance?: string; untrained?: boolean; error?: string; install?: string[] }[] };
  data_dir: Check & { path: string; writable: boolean; error?: string };
  limits: Record<string, { env: string; value: unknown }>;
}

const require = createRequire(import.meta.url);

async function checkOrt(): Promise<DoctorReport['onnxruntime']> {
  let version: string | undefined;
  try {
    version = (JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;
    const ort = await import('onnxruntime-node');
    const b = new GraphBuilder('doctor');
    const x = b.input('x', 'float32', [2]);
    b.node('Add', [x, x], {}, { outputs: ['y'] });
    b.output('y', 'float32', [2]);
    const t0 = performance.now();
    const session = await ort.InferenceSession.create(b.serialize().model, { logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } } });
    const out = await session.run({ x: new ort.Tensor('float32', new Float32Array([1, 2]), [2]) });
    await session.release();
    const y = Array.from(out.y!.data as Float32Array);
    if (y[0] !== 2 || y[1] !== 4) throw new Error(`a test graph computed ${JSON.stringify(y)} instead of [2,4]`);
    return { ok: true, version, session_ms: Math.round((performance.now() - t0) * 10) / 10 };
  } catch (e) {
    return { ok: false, version, error: (e as Error).message.split('\n')[0] };
  }
}

async function checkTfjs(): Promise<DoctorReport['tfjs']> {
  try {
    const { selectBackend } = await import('../train/backend.js');
    const s = await selectBackend();
    return { ok: true, backend: s.backend, tf_backend: s.tfBackend, tried: s.tried };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0] };
  }
}

function checkDataDir(dir: string): DoctorReport['data_dir'] {
  const path = resolve(dir);
  try {
    mkdirSync(path, { recursive: true });
    const probe = join(path, `.doctor-${randomUUID()}`);
    writeFileSync(probe, 'ok');
    rmSync(probe);
    return { ok: true, path, writable: true };
  } catch (e) {
    return { ok: false, path, writable: false, error: (e as Error).message };
  }
}

export async function doctor(core: Pick<Core, 'config' | 'registry'>, opts: { tfjs?: boolean } = {}): Promise<DoctorReport> {
  const { config, registry: reg } = core;
  const major = Number(process.versions.node.split('.')[0]);
  const minor = Number(process.versions.node.split('.')[1]);
  const node = { ok: major > 20 || (major === 20 && minor >= 9), version: process.versions.node, required: '>=20.9' };
  const entries = reg.list().map((e) => ({
    name: e.name, status: e.status, ...(e.architecture ? { architecture: e.architecture } : {}), ...(e.provenance ? { provenance: e.provenance } : {}),
    ...(e.provenance ? { untrained: e.provenance === 'synthetic' } : {}), ...(e.error ? { error: e.error } : {}), ...(e.install ? { install: e.install } : {}),
  }));
  const models = { ok: entries.every((e) => e.status !== 'error'), dir: reg.modelsDir, entries };
  const onnxruntime = await checkOrt();
  const tfjs = opts.tfjs === false ? { ok: true, skipped: true } : await checkTfjs();
  const data_dir = checkDataDir(config.dataDir);
  const limits = Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, { env: s.env, value: config[k as keyof typeof config] }]));
  return { ok: node.ok && onnxruntime.ok && tfjs.ok && data_dir.ok, node, onnxruntime, tfjs, models, data_dir, limits };
}

const mark = (ok: boolean) => (ok ? 'ok  ' : 'FAIL');

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('Check this machine and configuration: Node, ONNX Runtime (creates a session), tfjs backends, models, data directory, limits.')
    .option('--no-tfjs', 'skip the tfjs backend probe (it loads TensorFlow.js)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { tfjs: boolean; json?: boolean }) => {
      const r = await withCatalogCore((core) => doctor(core, { tfjs: opts.tfjs }));
      if (opts.json) console.log(JSON.stringify(r, null, 2));
      else {
        console.log(`${mark(r.node.ok)} node ${r.node.version} (requires ${r.node.required})`);
        console.log(`${mark(r.onnxruntime.ok)} onnxruntime-node ${r.onnxruntime.version ?? '?'}: ${r.onnxruntime.ok ? `session created and run in ${r.onnxruntime.session_ms} ms` : r.onnxruntime.error}`);
        if ('skipped' in r.tfjs) console.log('     tfjs: skipped (--no-tfjs)');
        else console.log(`${mark(r.tfjs.ok)} tfjs backend ${r.tfjs.backend ?? '-'} (${r.tfjs.tf_backend ?? r.tfjs.error}); tried ${(r.tfjs.tried ?? []).map((t) => `${t.name}${t.ok ? ' ✓' : ' ✗'}`).join(', ')}`);
        console.log(`${mark(r.data_dir.ok)} data directory ${r.data_dir.path}${r.data_dir.writable ? ' (writable)' : `: ${r.data_dir.error}`}`);
        console.log(`${mark(r.models.ok)} models in ${r.models.dir}:`);
        for (const m of r.models.entries) {
          const extra = m.status === 'missing' ? `install: ${m.install?.join('  or  ')}` : m.error ?? [m.architecture, m.provenance, m.untrained ? 'UNTRAINED weights' : ''].filter(Boolean).join(', ');
          console.log(`       ${m.name.padEnd(16)} ${m.status.padEnd(12)} ${extra}`);
        }
        console.log('     limits:');
        for (const l of Object.values(r.limits)) console.log(`       ${l.env.padEnd(32)} ${String(l.value)}`);
        console.log(r.ok ? 'all essential checks passed' : 'some essential checks FAILED');
      }
      if (!r.ok) process.exitCode = 1;
    });
}
