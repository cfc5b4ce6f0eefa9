// Reverse-mode automatic differentiation over ONNX graphs. onnxruntime-node has no autodiff and no training
// ops, so the backward pass is written out as ordinary inference ops appended to the forward graph: one
// session run then returns the loss and the input gradient together.
//
//   gradientGraph(bytes, { loss, wrt })   serialised ModelProto → serialised ModelProto (the public contract)
//   gradientModel(model, options)         the same on a decoded ModelProto
//   appendGradients(builder, options)     lower level: append backward nodes to a GraphBuilder in place
//                                         (for the ops that build their losses with GraphBuilder)
//
// Everything op-specific (static shape inference, whether gradients flow, the VJP) is one rule record per op
// type in ./vjp/rules/*.ts, gathered by ./vjp/registry.ts; docs/autodiff.md explains them.
import { GraphBuilder } from './builder.js';
import {
  type GraphProto, type ModelProto, type NodeProto,
  decodeModel, encodeModel, floatTensor, makeValueInfo, onnx,
} from './proto.js';
import { AutodiffError, VjpContext, type VjpOptions } from './vjp/context.js';
import { attrs } from './vjp/dims.js';
import { RULES, ruleOf } from './vjp/registry.js';
import { StaticInfo } from './vjp/static.js';

export { AutodiffError } from './vjp/context.js';
export type { VjpOptions } from './vjp/context.js';
export { RULES } from './vjp/registry.js';
export type { GradKind, OpRule, Vjp, VjpArgs } from './vjp/rule.js';

export interface GradientOptions {
  /** Name of the scalar value to differentiate (exposed as graph output `loss`). */
  loss: string;
  /**
   * Values to differentiate with respect to: graph inputs (e.g. the image) and/or initializers (weights and
   * biases); each gets an output `<name>_grad` with the same shape.
   */
  wrt: string[];
}

export interface GradientModelOptions extends GradientOptions, VjpOptions {
  /**
   * Which forward graph outputs to keep. 'available' (default): those computed anyway by the nodes the loss
   * needs (activations on the loss path, the inputs); outputs that would need extra nodes (e.g. a classifier
   * top after the chosen layers) are pruned with those nodes. 'all': keep every forward output and its nodes.
   */
  keepOutputs?: 'available' | 'all';
}

export interface AppendGradientsOptions extends GradientOptions, VjpOptions {
  /** Opset of the default domain the backward nodes are written for (default 17, the builder's). Must be ≥ 13. */
  opset?: number;
}

/** Op types with a VJP (gradients flow through them), in registry order. */
export const SUPPORTED_OPS: readonly string[] = Object.keys(RULES).filter((op) => typeof RULES[op]!.grad === 'object');

/**
 * Public contract: takes a serialised ModelProto, returns one whose graph has the forward inputs and
 * (available) outputs, plus `loss` and `<name>_grad` for every name in `wrt`, with every node the loss and
 * gradients do not need pruned. Throws {@link AutodiffError} (an Error naming op and node) for unsupported ops.
 */
export function gradientGraph(model: Uint8Array, options: GradientOptions & Partial<GradientModelOptions>): Uint8Array {
  return encodeModel(gradientModel(decodeModel(model), options));
}

/** {@link gradientGraph} on a decoded ModelProto (the input is not modified). */
export function gradientModel(model: ModelProto, options: GradientModelOptions): ModelProto {
  const graph = model.graph;
  if (!graph) throw new AutodiffError('autodiff: model has no graph');
  const imports = model.opsetImport ?? [];
  const def = imports.find((o) => !o.domain || o.domain === 'ai.onnx');
  const opset = def ? Number(def.version) : 0;
  if (opset < 13) throw new AutodiffError(`autodiff: opset ${opset} is not supported (need ≥ 13)`);
  const outOpset = Math.max(opset, 17); // ScatterElements(reduction='add') needs ≥ 16; 13…17 share semantics for our ops

  const nodes = (graph.node ?? []).map(copyNode);
  const forwardOutputs = graph.output ?? [];
  const targets = [options.loss, ...(options.keepOutputs === 'all' ? forwardOutputs.map((o) => o.name ?? '') : [])];
  const retained = ancestorNodes(nodes, targets);
  const b = GraphBuilder.fromGraph({
    name: graph.name ?? 'graph', node: nodes.filter((_, i) => retained.has(i)), input: graph.input ?? [], output: [],
    initializer: graph.initializer ?? [],
  });
  const grads = appendGradients(b, { ...options, opset: outOpset });

  const produced = new Set<string>([
    ...b.inputs.map((v) => v.name ?? ''), ...b.initializers.map((t) => t.name ?? ''),
    ...b.nodes.flatMap((n) => n.output ?? []),
  ]);
  const outNames = new Set<string>();
  for (const o of forwardOutputs) {
    if (produced.has(o.name ?? '') && !outNames.has(o.name ?? '')) { b.outputs.push(o); outNames.add(o.name ?? ''); }
  }
  if (!outNames.has('loss')) {
    if (options.loss !== 'loss') {
      if (b.hasValue('loss')) throw new AutodiffError(`autodiff: the graph already has a value named 'loss' that is not options.loss ('${options.loss}')`);
      b.node('Identity', [options.loss], {}, { outputs: ['loss'] });
    }
    b.outputs.push(makeValueInfo('loss', 'float32'));
    outNames.add('loss');
  }
  for (const w of options.wrt) {
    const name = `${w}_grad`;
    if (b.hasValue(name)) throw new AutodiffError(`autodiff: the graph already has a value named '${name}'`);
    b.node('Identity', [grads[w]!], {}, { outputs: [name] });
    const inInfo = b.inputs.find((v) => v.name === w);
    const init = b.initializers.find((t) => t.name === w);
    b.outputs.push(inInfo?.type ? { name, type: inInfo.type } : makeValueInfo(name, 'float32', init ? (init.dims ?? []).map(Number) : undefined));
  }

  const pruned = pruneUnused(b.toGraph());
  const keepInfo = new Set(pruned.node!.flatMap((n) => n.output ?? []));
  return onnx.ModelProto.create({
    irVersion: Math.max(Number(model.irVersion ?? 8), 8),
    producerName: model.producerName || 'convserve',
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: model.modelVersion,
    docString: model.docString,
    metadataProps: model.metadataProps,
    opsetImport: [
      ...imports.filter((o) => o.domain && o.domain !== 'ai.onnx'),
      { domain: '', version: outOpset },
    ],
    graph: {
      ...pruned,
      valueInfo: (graph.valueInfo ?? []).filter((v) => keepInfo.has(v.name ?? '')),
      docString: graph.docString,
    },
  });
}

/**
 * Appends to `b` the backward nodes computing d loss / d w for every w in `options.wrt`, and returns the name
 * of each gradient value (`{ [w]: gradName }`). Nothing is marked as an output and nothing is pruned (use
 * {@link pruneUnused} / {@link gradientModel} for that). Forward nodes of `b` may be modified in place: a
 * MaxPool on the gradient path gets its `Indices` output. The graph must be for opset ≥ 16 when it has
 * max-pools on the gradient path (GraphBuilder emits 17).
 */
export function appendGradients(b: GraphBuilder, options: AppendGradientsOptions): Record<string, string> {
  const opset = options.opset ?? 17;
  if (opset < 13) throw new AutodiffError(`autodiff: opset ${opset} is not supported (need ≥ 13)`);
  const nodes = b.nodes.slice();
  const info = new StaticInfo(nodes, b.inputs, b.initializers, ruleOf);
  const ctx = new VjpContext(b, info, opset, options);
  const inputNames = new Set(b.inputs.map((v) => v.name ?? ''));
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => { if (o) producer.set(o, i); }));
  if (!producer.has(options.loss) && !inputNames.has(options.loss)) {
    throw new AutodiffError(`autodiff: loss '${options.loss}' is not produced by any node of the graph`);
  }
  const initializerNames = new Set(b.initializers.map((t) => t.name ?? ''));
  for (const w of options.wrt) {
    if (!inputNames.has(w) && !initializerNames.has(w)) {
      throw new AutodiffError(`autodiff: wrt '${w}' is neither a graph input nor an initializer`);
    }
  }

  // Nodes the loss depends on, in topological order.
  const order = topoAncestors(nodes, producer, [options.loss]);
  const lossAncestors = new Set<string>([options.loss]);
  for (const i of order) for (const x of nodes[i]!.input ?? []) if (x) lossAncestors.add(x);
  // Values that depend differentiably on a wrt input.
  const reach = new Set<string>(options.wrt);
  for (const i of order) {
    const n = nodes[i]!;
    if (!(n.input ?? []).some((x) => x && reach.has(x) && !info.nonFloat.has(x))) continue;
    if (ruleOf(n)?.grad === 'none') continue;
    for (const o of n.output ?? []) if (o && !info.nonFloat.has(o)) reach.add(o);
  }
  const onPath = (v: string): boolean => reach.has(v) && lossAncestors.has(v) && !info.nonFloat.has(v);

  const contributions = new Map<string, string[]>();
  const accumulated = new Map<string, string | undefined>();
  const accumulate = (v: string): string | undefined => {
    if (accumulated.has(v)) return accumulated.get(v);
    const list = contributions.get(v) ?? [];
    const g = list.length === 0 ? undefined : list.length === 1 ? list[0] : ctx.op('Sum', list, {}, 'acc');
    if (g && list.length > 1 && list.every((c) => ctx.maskedBy.get(c) === v)) ctx.maskedBy.set(g, v);
    accumulated.set(v, g);
    return g;
  };
  if (onPath(options.loss)) {
    const lossDims = info.dims.get(options.loss);
    const seed = lossDims && lossDims.length === 0
      ? b.scalar(1)
      : ctx.op('ConstantOfShape', [ctx.shape(options.loss)], { value: floatTensor('', [1], new Float32Array([1])) }, 'seed');
    contributions.set(options.loss, [seed]);
  }

  for (let k = order.length - 1; k >= 0; k--) {
    const node = nodes[order[k]!]!;
    const outs = node.output ?? [];
    if (!outs.some((o) => o && onPath(o) && (contributions.get(o)?.length ?? 0) > 0)) continue;
    const ins = (node.input ?? []).map((x) => x ?? '');
    const need = ins.map((x) => x !== '' && onPath(x));
    if (!need.some((v) => v)) continue;
    const op = node.opType ?? '';
    const grad = ruleOf(node)?.grad;
    if (typeof grad !== 'object') {
      const name = node.name || outs[0] || '?';
      throw new AutodiffError(
        `autodiff: unsupported op '${node.domain ? `${node.domain}.` : ''}${op}' (node '${name}') on the path from wrt to the loss`, op, name,
      );
    }
    const gy = outs.map((o) => (o && onPath(o) ? accumulate(o) : undefined));
    const res = grad.vjp({ ctx, node, x: ins, y: outs.map((o) => o ?? ''), gy, need, a: attrs(node.attribute ?? []) });
    ins.forEach((x, i) => {
      const g = res[i];
      if (!need[i] || !g) return;
      const list = contributions.get(x) ?? [];
      list.push(g);
      contributions.set(x, list);
    });
  }

  const grads: Record<string, string> = {};
  for (const w of options.wrt) grads[w] = accumulate(w) ?? ctx.zerosLike(w);
  return grads;
}

/**
 * Drops nodes whose outputs reach no graph output, and initializers no remaining node or output uses.
 * Initializers (including external-data references) are passed through untouched.
 */
export function pruneUnused(graph: GraphProto): GraphProto {
  const nodes = graph.node ?? [];
  const keep = ancestorNodes(nodes, (graph.output ?? []).map((o) => o.name ?? ''));
  const kept = nodes.filter((_, i) => keep.has(i));
  const used = new Set<string>([
    ...kept.flatMap((n) => n.input ?? []), ...(graph.output ?? []).map((o) => o.name ?? ''),
  ]);
  return { ...graph, node: kept, initializer: (graph.initializer ?? []).filter((t) => used.has(t.name ?? '')) };
}

function copyNode(n: NodeProto): NodeProto {
  return { ...n, input: [...(n.input ?? [])], output: [...(n.output ?? [])], attribute: n.attribute ?? [] };
}

/** Indices of the nodes the `targets` depend on. */
function ancestorNodes(nodes: NodeProto[], targets: string[]): Set<number> {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => { if (o) producer.set(o, i); }));
  return new Set(topoAncestors(nodes, producer, targets));
}

/** Iterative DFS post-order over the producers of `targets`: a topological order of their ancestor nodes. */
function topoAncestors(nodes: NodeProto[], producer: Map<string, number>, targets: string[]): number[] {
  const state = new Uint8Array(nodes.length); // 0 new, 1 open, 2 done
  const order: number[] = [];
  for (const t of targets) {
    const start = producer.get(t);
    if (start === undefined || state[start] === 2) continue;
    const stack: [number, number][] = [[start, 0]];
    state[start] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const ins = nodes[top[0]]!.input ?? [];
      if (top[1] < ins.length) {
        const x = ins[top[1]++]!;
        const p = x ? producer.get(x) : undefined;
        if (p === undefined || state[p] === 2) continue;
        if (state[p] === 1) throw new AutodiffError(`autodiff: the graph has a cycle through '${x}'`);
        state[p] = 1;
        stack.push([p, 0]);
      } else {
        state[top[0]] = 2;
        order.push(top[0]);
        stack.pop();
      }
    }
  }
  return order;
}
