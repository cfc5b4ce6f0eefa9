// Worker thread of buildGraphFile (grad-session.ts): builds one gradient or target graph, writes it to the
// file it was given, answers once and exits.
import { writeFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { addDreamLoss } from './dream.js';
import { type GraphBuildReply, type GraphSpec, buildForwardModel, buildGradientModel } from './grad-session.js';
import { RECIPES, type StyleRecipe, addStyleLoss, addTargetOutputs } from './style.js';

if (!parentPort) throw new Error('the graph build worker must run in a worker thread');
const port = parentPort;

const isStyleRecipe = (name: string): name is StyleRecipe => Object.hasOwn(RECIPES, name);

function styleRecipe(name: string): StyleRecipe {
  if (!isStyleRecipe(name)) throw new Error(`unknown style recipe '${name}'`);
  return name;
}

function build({ modelPath, recipe }: GraphSpec): Uint8Array {
  switch (recipe.kind) {
    case 'dream-gradient':
      return buildGradientModel(modelPath, (b) => addDreamLoss(b, { layers: recipe.layers, crop: recipe.crop }));
    case 'style-gradient':
      return buildGradientModel(modelPath, (b) => addStyleLoss(b, styleRecipe(recipe.recipe)));
    case 'style-targets':
      return buildForwardModel(modelPath, (b) => addTargetOutputs(b, styleRecipe(recipe.recipe)));
  }
}

// workerData is whatever buildGraphFile passed: { spec, file }.
const { spec, file } = workerData as { spec: GraphSpec; file: string };
let reply: GraphBuildReply;
try {
  const t0 = performance.now();
  writeFileSync(file, build(spec));
  reply = { ok: true, ms: performance.now() - t0 };
} catch (e) {
  reply = { ok: false, message: e instanceof Error ? e.message : String(e) };
}
port.postMessage(reply);
