import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { synthesizeModel } from '../src/models/synth.js';
import { tempDir, testPattern } from './helpers/app.js';
import { startServerProcess } from './helpers/server-process.js';

async function models(url: string): Promise<{ name: string; status: string }[]> {
  return ((await (await fetch(`${url}/v1/models`)).json()) as { models: { name: string; status: string }[] }).models;
}

describe('models appear without a restart', () => {
  it('SIGHUP rescans the models directory: a model installed meanwhile becomes ready and classifies', async () => {
    const modelsDir = tempDir();
    const server = await startServerProcess({ CONVSERVE_MODELS_DIR: modelsDir });
    try {
      assert.equal((await models(server.url)).find((m) => m.name === 'vgg19')?.status, 'missing');
      await synthesizeModel('vgg19', { modelsDir, name: 'vgg19', width: 0.125, seed: 9 });
      server.child.kill('SIGHUP');
      let status = '';
      for (let i = 0; i < 200 && status !== 'ready'; i++) {
        status = (await models(server.url)).find((m) => m.name === 'vgg19')?.status ?? '';
        if (status !== 'ready') await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 'ready');
      const form = new FormData();
      form.append('image', new Blob([(await testPattern(64, 48)).png], { type: 'image/png' }), 'p.png');
      const res = await fetch(`${server.url}/v1/classify?model=vgg19&top=3`, { method: 'POST', body: form });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { predictions: unknown[]; weights: { untrained: boolean } };
      assert.equal(body.predictions.length, 3);
      assert.equal(body.weights.untrained, true);
      assert.equal(server.child.exitCode, null, 'the process is still the same one');
    } finally {
      server.child.kill('SIGKILL');
    }
  });
});
