// Entry of the child process buildGraphFile (grad-session.ts) forks: receives one GraphSpec and a file name,
// builds that gradient or target graph into the file, answers and exits. A child rather than a worker thread because the build's garbage (the
// decoded protobuf, the weights read into Buffers, the encoded model: hundreds of MB) would otherwise stay in
// the server's malloc arenas after the build; a process gives all of it back when it exits.
import { writeFileSync } from 'node:fs';
import { addDreamLoss } from './dream.js';
import {
  type GraphBuildReply, type GraphBuildRequest, type GraphSpec, type StyleGraphLayers, buildForwardModel, buildGradientModel,
} from './grad-session.js';
import { RECIPES, type StyleLossSpec, type StyleRecipe, addStyleLoss, addTargetOutputs } from './style.js';

const send = process.send?.bind(process);
if (!send) throw new Error('graph-build-task.ts is the entry of a forked child process');

const isStyleRecipe = (name: string): name is StyleRecipe => Object.hasOwn(RECIPES, name);

function styleLossSpec(layers: StyleGraphLayers): StyleLossSpec {
  const { recipe } = layers;
  if (!isStyleRecipe(recipe)) throw new Error(`unknown style recipe '${recipe}'`);
  return { ...layers, recipe };
}

function build({ modelPath, recipe }: GraphSpec): Uint8Array {
  switch (recipe.kind) {
    case 'dream-gradient':
      return buildGradientModel(modelPath, (b) => addDreamLoss(b, { layers: recipe.layers, crop: recipe.crop }));
    case 'style-gradient':
      return buildGradientModel(modelPath, (b) => addStyleLoss(b, styleLossSpec(recipe.style)));
    case 'style-targets':
      return buildForwardModel(modelPath, (b) => addTargetOutputs(b, styleLossSpec(recipe.style)));
  }
}

process.once('message', (request: GraphBuildRequest) => {
  let reply: GraphBuildReply;
  try {
    const t0 = performance.now();
    writeFileSync(request.file, build(request.spec));
    reply = { ok: true, ms: performance.now() - t0 };
  } catch (e) {
    reply = { ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  send(reply, undefined, undefined, () => process.exit(0));
});
