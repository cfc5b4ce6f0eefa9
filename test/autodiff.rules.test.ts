// The op registry (src/onnx/vjp/registry.ts): every op with a VJP declares what its backward pass reads from
// the forward pass (its gradient kind), and that declaration is checked here against the nodes the VJP really
// emits for a one-op graph; every supported op is documented in docs/autodiff.md.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RULES, SUPPORTED_OPS, gradientGraph } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { DataType, decodeModel, encodeModel, onnx } from '../src/onnx/proto.js';

interface KindCase {
  /** Graph inputs: name → dims ('bool' for a boolean input). */
  inputs: Record<string, number[] | 'bool'>;
  /** Builds the op under test; returns its output that feeds the loss. */
  build: (b: GraphBuilder) => string;
  /** Values to differentiate (default: every float graph input). */
  wrt?: string[];
}

const X = { x: [2, 3, 4, 5] };
const XY = { x: [2, 3, 4, 5], y: [2, 3, 4, 5] };
const unary = (op: string, attrs: Record<string, number | number[]> = {}): KindCase => ({ inputs: X, build: (b) => b.node(op, ['x'], attrs) });
const binary = (op: string): KindCase => ({ inputs: XY, build: (b) => b.node(op, ['x', 'y']) });

const CASES: Record<string, KindCase> = {
  Relu: unary('Relu'), LeakyRelu: unary('LeakyRelu'), Abs: unary('Abs'), Sqrt: unary('Sqrt'), Neg: unary('Neg'),
  Exp: unary('Exp'), Log: unary('Log'), Reciprocal: unary('Reciprocal'), Sigmoid: unary('Sigmoid'), Tanh: unary('Tanh'),
  Softmax: unary('Softmax'), LogSoftmax: unary('LogSoftmax'), Identity: unary('Identity'), Dropout: unary('Dropout'),
  Cast: unary('Cast', { to: DataType.FLOAT }), GlobalAveragePool: unary('GlobalAveragePool'), Flatten: unary('Flatten'),
  Transpose: unary('Transpose', { perm: [0, 2, 3, 1] }),
  ReduceSum: unary('ReduceSum'), ReduceMean: unary('ReduceMean', { axes: [2, 3] }), ReduceSumSquare: unary('ReduceSumSquare'),
  MaxPool: unary('MaxPool', { kernel_shape: [2, 2], strides: [2, 2] }),
  AveragePool: unary('AveragePool', { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
  Add: binary('Add'), Sub: binary('Sub'), Mul: binary('Mul'), Div: binary('Div'), Sum: binary('Sum'),
  Pow: { inputs: X, build: (b) => b.node('Pow', ['x', b.scalar(3)]) },
  Clip: { inputs: X, build: (b) => b.node('Clip', ['x', b.scalar(-0.5), b.scalar(0.5)]) },
  Where: { inputs: { c: 'bool', ...XY }, build: (b) => b.node('Where', ['c', 'x', 'y']) },
  MatMul: { inputs: { a: [3, 4], b: [4, 5] }, build: (b) => b.node('MatMul', ['a', 'b']) },
  Gemm: { inputs: { a: [3, 4], b: [4, 5], c: [5] }, build: (b) => b.node('Gemm', ['a', 'b', 'c']) },
  Conv: {
    inputs: X, wrt: ['x', 'w'],
    build: (b) => b.node('Conv', ['x', b.weight('w', [2, 3, 3, 3], new Float32Array(54))], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
  },
  BatchNormalization: {
    inputs: X, wrt: ['x'],
    build: (b) => b.node('BatchNormalization', ['x', ...['s', 'bias', 'mean', 'var'].map((n) => b.weight(n, [3], new Float32Array(3).fill(1)))]),
  },
  Reshape: { inputs: X, build: (b) => b.node('Reshape', ['x', b.ints([6, -1])]) },
  Squeeze: { inputs: { x: [2, 1, 5] }, build: (b) => b.node('Squeeze', ['x', b.ints([1])]) },
  Unsqueeze: { inputs: X, build: (b) => b.node('Unsqueeze', ['x', b.ints([0])]) },
  Expand: { inputs: { x: [3, 1] }, build: (b) => b.node('Expand', ['x', b.ints([2, 3, 4])]) },
  Concat: { inputs: XY, build: (b) => b.node('Concat', ['x', 'y'], { axis: 1 }) },
  Split: { inputs: X, build: (b) => b.nodeMulti('Split', ['x', b.ints([1, 2])], { axis: 1 }, { outputs: 2 })[0]! },
  Slice: { inputs: X, build: (b) => b.node('Slice', ['x', b.ints([1]), b.ints([3]), b.ints([2])]) },
  Pad: { inputs: X, build: (b) => b.node('Pad', ['x', b.ints([0, 0, 1, 2, 0, 0, 2, 1])]) },
};

/** Which of the op's inputs / outputs the backward nodes read (other than through Shape/Size, and integer constants). */
function observedKind(c: KindCase): string {
  const b = new GraphBuilder('kind');
  for (const [name, dims] of Object.entries(c.inputs)) {
    if (dims === 'bool') b.input(name, 'bool', [2, 3, 4, 5]);
    else b.input(name, 'float32', dims);
  }
  const y = c.build(b);
  const opNode = b.nodes[b.nodes.length - 1]!;
  b.node('ReduceSum', [y], { keepdims: 0 }, { outputs: ['loss'] });
  b.output('loss');
  const forward = new Set(b.nodes.map((n) => n.name));
  const wrt = c.wrt ?? Object.entries(c.inputs).filter(([, d]) => d !== 'bool').map(([n]) => n);
  const g = decodeModel(gradientGraph(b.serialize().model, { loss: 'loss', wrt })).graph!;
  const intConstants = new Set((g.initializer ?? []).filter((t) => t.dataType !== DataType.FLOAT).map((t) => t.name));
  const op = g.node!.find((n) => n.name === opNode.name)!; // MaxPool may have gained its Indices output
  const ins = new Set((op.input ?? []).filter((v) => v && !intConstants.has(v)));
  const outs = new Set((op.output ?? []).filter((v) => v));
  let readsInput = false;
  let readsOutput = false;
  for (const n of g.node!) {
    if (forward.has(n.name) || n.opType === 'Shape' || n.opType === 'Size') continue;
    for (const v of n.input ?? []) {
      if (ins.has(v)) readsInput = true;
      if (outs.has(v)) readsOutput = true;
    }
  }
  return readsInput && readsOutput ? 'input+output' : readsInput ? 'input' : readsOutput ? 'output' : 'linear';
}

describe('autodiff: op registry', () => {
  it('every op with a VJP has a kind check below (add one with the op)', () => {
    assert.deepEqual(SUPPORTED_OPS.filter((op) => !CASES[op]), []);
  });

  for (const [op, c] of Object.entries(CASES)) {
    it(`${op}: the declared gradient kind matches what its backward nodes read`, () => {
      const grad = RULES[op]?.grad;
      assert.ok(typeof grad === 'object', `${op} has no VJP`);
      assert.equal(observedKind(c), grad.kind);
    });
  }

  it('ops declared non-differentiable cut the gradient path: d/dx through them is zero, not an error', async () => {
    const nonDiff = Object.entries(RULES).filter(([, r]) => r.grad === 'none').map(([op]) => op);
    assert.ok(['Shape', 'Floor', 'Greater', 'ArgMax'].every((op) => nonDiff.includes(op)));
    // loss = Σ x · Floor(x): only the first factor carries gradient.
    const b = new GraphBuilder('floor');
    b.input('x', 'float32', [4]);
    b.node('ReduceSum', [b.node('Mul', ['x', b.node('Floor', ['x'])])], { keepdims: 0 }, { outputs: ['loss'] });
    b.output('loss');
    const g = decodeModel(gradientGraph(b.serialize().model, { loss: 'loss', wrt: ['x'] })).graph!;
    assert.ok(!g.node!.some((n) => n.opType === 'Floor' && (n.input ?? []).some((v) => v.startsWith('grad/'))));
  });

  it('an op from another domain is unsupported even when its type name is known', () => {
    const b = new GraphBuilder('domain');
    b.input('x', 'float32', [4]);
    const r = b.node('Relu', ['x'], {}, { domain: 'com.example', name: 'custom_relu' });
    b.node('ReduceSum', [r], { keepdims: 0 }, { outputs: ['loss'] });
    b.output('loss');
    const m = onnx.ModelProto.decode(b.serialize().model);
    m.opsetImport.push({ domain: 'com.example', version: 1 });
    assert.throws(() => gradientGraph(encodeModel(m), { loss: 'loss', wrt: ['x'] }), /unsupported op 'com\.example\.Relu' \(node 'custom_relu'\)/);
  });

  it('docs/autodiff.md lists every op with a VJP', () => {
    const doc = readFileSync(new URL('../docs/autodiff.md', import.meta.url), 'utf8');
    const missing = SUPPORTED_OPS.filter((op) => !new RegExp(`\\b${op}\\b`).test(doc));
    assert.deepEqual(missing, []);
  });
});
