// The shape of one op's rule record (micrograd/tinygrad style: everything the autodiff knows about an op type
// in one object): how it transforms static dims and element types, whether gradients flow through it, what
// the backward pass reads from the forward pass, and the VJP that appends the backward nodes.
import type { NodeProto } from '../proto.js';
import { AutodiffError, type VjpContext } from './context.js';
import type { ShapeRule } from './static.js';

export interface VjpArgs {
  ctx: VjpContext;
  node: NodeProto;
  /** Node inputs ('' for an omitted optional input). */
  x: string[];
  /** Node outputs. */
  y: string[];
  /** Upstream gradient of each output (undefined: the output does not reach the loss). */
  gy: (string | undefined)[];
  /** Which inputs need a gradient (they lie on a path from a `wrt` value to the loss). */
  need: boolean[];
  a: Record<string, unknown>;
}

/** Appends the backward nodes of one forward node; returns the gradient of each input (undefined where not needed). */
export type Vjp = (args: VjpArgs) => (string | undefined)[];

/**
 * What the backward pass reads from the forward pass, besides the upstream gradient and tensor sizes
 * (Shape/Size) and integer operands such as axes or pads. It says which forward tensors stay alive for the
 * backward pass; test/autodiff.rules.test.ts checks each declaration against the nodes the VJP emits.
 * - 'linear': nothing — a fixed linear map of the upstream gradient (Add, Reshape, Slice, AveragePool, …)
 * - 'input': forward inputs (Mul: the other operand, Conv: the weights / the data, Log: x)
 * - 'output': only forward outputs (Relu, Exp, Sigmoid, Softmax)
 * - 'input+output': both (Div; MaxPool: x and y for k×k/k pools, only its Indices output otherwise)
 */
export type GradKind = 'linear' | 'input' | 'output' | 'input+output';

export interface OpRule extends ShapeRule {
  /**
   * 'none': the outputs carry no gradient (integer results, piecewise-constant functions such as Floor), so
   * they are constants for the autodiff. A VJP with its kind: gradients flow. Absent: the op is not supported
   * on a path from `wrt` to the loss (an AutodiffError names it).
   */
  grad?: 'none' | { kind: GradKind; vjp: Vjp };
}

/** Throws the AutodiffError of a rule that cannot handle this node. */
export const fail = (args: Pick<VjpArgs, 'node' | 'y'>, what: string): never => {
  throw new AutodiffError(
    `autodiff: ${args.node.opType} (node '${args.node.name || args.y[0]}'): ${what}`, args.node.opType ?? '', args.node.name ?? undefined,
  );
};

/** A numeric attribute with its default. */
export const num = (v: unknown, d: number): number => (v === undefined ? d : Number(v));
/** An ints attribute, or n copies of the default. */
export const list = (v: unknown, n: number, d: number): number[] => (Array.isArray(v) ? (v as number[]) : Array(n).fill(d));

/** Upstream gradient of output 0, which every single-output rule requires. */
export const g0 = (args: VjpArgs): string => args.gy[0] ?? fail(args, 'missing upstream gradient');
