// Inference graph → training graph, in place on a GraphBuilder: every BatchNormalization becomes
// batchNormTraining (batch statistics, exposed for the moving averages) and every Dropout becomes
// dropoutWithMask with a new float 0/1 mask input per node, so an imported model can be trained with
// gradientGraph / appendGradients without touching its nodes by hand. Node order stays topological.
import type { GraphBuilder } from './builder.js';
import { type Dim, type NodeProto, makeValueInfo } from './proto.js';
import { attrs } from './vjp/dims.js';
import { ruleOf } from './vjp/registry.js';
import { StaticInfo } from './vjp/static.js';
import { batchNormTraining, dropoutWithMask } from './train-layers.js';

export interface TrainingBatchNorm {
  /** The replaced node's name. */
  node: string;
  scale: string;
  bias: string;
  /** Running statistics (initializers of the inference graph) to update from `batchMean` / `batchVariance`. */
  runningMean: string;
  runningVariance: string;
  /** Batch statistics per channel, [C] (biased variance). Graph outputs when `exposeStatistics`. */
  batchMean: string;
  batchVariance: string;
  /** The node's momentum attribute (ONNX default 0.9): running = momentum·running + (1 − momentum)·batch. */
  momentum: number;
}

export interface TrainingDropout {
  node: string;
  /** New graph input: float 0/1 (1 = keep), shaped like the dropout's input. */
  mask: string;
  rate: number;
}

export interface TrainingGraph {
  batchNorms: TrainingBatchNorm[];
  dropouts: TrainingDropout[];
}

/**
 * Rewrites `b` in place (see the file comment). With `exposeStatistics` the batch mean/variance of every
 * BatchNormalization become graph outputs (fetch them with the loss to update the running statistics).
 */
export function toTrainingGraph(b: GraphBuilder, opts: { exposeStatistics?: boolean } = {}): TrainingGraph {
  const info = new StaticInfo(b.nodes, b.inputs, b.initializers, ruleOf);
  const original = b.nodes.splice(0);
  const rename = new Map<string, string>();
  const result: TrainingGraph = { batchNorms: [], dropouts: [] };
  const emit = (n: NodeProto): void => {
    b.nodes.push({ ...n, input: (n.input ?? []).map((v) => rename.get(v) ?? v) });
  };
  for (const n of original) {
    const ins = (n.input ?? []).map((v) => rename.get(v) ?? v);
    const a = attrs(n.attribute ?? []);
    const name = n.name || n.output![0]!;
    if (n.opType === 'BatchNormalization' && (!n.domain || n.domain === 'ai.onnx')) {
      const [x, scale, bias, mean, variance] = ins;
      const rank = info.rank(n.input![0]!);
      if (rank === undefined) throw new Error(`toTrainingGraph: rank of the input of BatchNormalization '${name}' is unknown`);
      const bn = batchNormTraining(b, x!, scale!, bias!, { epsilon: a.epsilon === undefined ? 1e-5 : Number(a.epsilon), rank });
      rename.set(n.output![0]!, bn.y);
      result.batchNorms.push({
        node: name, scale: scale!, bias: bias!, runningMean: mean!, runningVariance: variance!,
        batchMean: bn.mean, batchVariance: bn.variance, momentum: a.momentum === undefined ? 0.9 : Number(a.momentum),
      });
      if (opts.exposeStatistics) { b.output(bn.mean, 'float32'); b.output(bn.variance, 'float32'); }
    } else if (n.opType === 'Dropout' && (!n.domain || n.domain === 'ai.onnx')) {
      const ratioInput = ins[1] ? info.floats.get(ins[1]) : undefined;
      if (ins[1] && !ratioInput) throw new Error(`toTrainingGraph: Dropout '${name}' has a non-constant ratio`);
      const rate = ratioInput?.[0] ?? (a.ratio === undefined ? 0.5 : Number(a.ratio));
      const mask = b.fresh(`${name}_mask`);
      const dims = info.dims.get(n.input![0]!);
      b.inputs.push(makeValueInfo(mask, 'float32', dims?.map((d, i): Dim => (typeof d === 'number' ? d : typeof d === 'string' ? d.replace(/^sym:/, '') : `${mask}_${i}`))));
      rename.set(n.output![0]!, dropoutWithMask(b, ins[0]!, mask, rate));
      result.dropouts.push({ node: name, mask, rate });
    } else {
      emit(n);
    }
  }
  for (const o of b.outputs) if (o.name && rename.has(o.name)) o.name = rename.get(o.name)!;
  return result;
}
