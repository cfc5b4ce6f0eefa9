// `convserve models …` through commander: synth (reduced width), import, list --json, verify.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Command } from 'commander';
import { registerModelsCommands } from '../src/cli/models.js';
import { writeSyntheticKerasH5 } from '../src/models/synth.js';

const dir = mkdtempSync(join(tmpdir(), 'convserve-'));
const modelsDir = join(dir, 'models');
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(...args: string[]): Promise<string> {
  const program = new Command('convserve').exitOverride();
  registerModelsCommands(program);
  const lines: string[] = [];
  const log = console.log;
  const err = console.error;
  const saved = process.env.CONVSERVE_MODELS_DIR;
  console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
  console.error = () => {};
  process.env.CONVSERVE_MODELS_DIR = modelsDir;
  try {
    await program.parseAsync(['node', 'convserve', ...args]);
  } finally {
    console.log = log;
    console.error = err;
    if (saved === undefined) delete process.env.CONVSERVE_MODELS_DIR; else process.env.CONVSERVE_MODELS_DIR = saved;
  }
  return lines.join('\n');
}

test('models synth / import / list --json / verify', async () => {
  const out = await run('models', 'synth', 'inception_v3', '--width', '0.125', '--seed', '5', '--name', 'inc-small');
  assert.match(out, /inc-small: synthetic inception_v3 \(seed 5\) written to .*inc-small/);

  const h5 = join(dir, 'vgg.h5');
  await writeSyntheticKerasH5('vgg19', h5, { seed: 1, includeTop: false, width: 1 / 8 });
  // The real architecture: a reduced-width file is rejected with the precise shape error.
  await assert.rejects(run('models', 'import', 'vgg-small', '--arch', 'vgg19', '--weights', h5), /block1_conv1.*expected shape \[3, 3, 3, 64\], found \[3, 3, 3, 8\]/);

  const list = JSON.parse(await run('models', 'list', '--json')) as { name: string; status: string; install?: string[]; task?: string }[];
  const byName = Object.fromEntries(list.map((e) => [e.name, e]));
  assert.equal(byName['inc-small']!.status, 'ready');
  assert.equal(byName['inc-small']!.task, 'classification');
  assert.equal(byName.vgg19!.status, 'missing');
  assert.deepEqual(byName.vgg19!.install, ['convserve models fetch vgg19', 'convserve models synth vgg19']);
  assert.equal(byName['vgg-small'], undefined, 'the failed import left nothing behind');

  assert.match(await run('models', 'verify', 'inc-small'), /inc-small: ok/);
  assert.deepEqual(JSON.parse(await run('models', 'verify', 'inc-small', '--json')), { name: 'inc-small', ok: true, status: 'ready' });
  const synth = JSON.parse(await run('models', 'synth', 'inception_v3', '--width', '0.125', '--name', 'inc-json', '--json'));
  assert.deepEqual([synth.name, synth.provenance, synth.untrained, synth.task], ['inc-json', 'synthetic', true, 'classification']);
  assert.match(await run('models', 'list'), /inc-small\s+ready\s+inception_v3, classification, synthetic/);
});
