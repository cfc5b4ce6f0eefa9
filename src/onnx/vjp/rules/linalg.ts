// MatMul (batched, broadcasting, 1-D operands) and Gemm: gradients are products with the other operand.
import type { VjpContext } from '../context.js';
import { type SDim, broadcastDims } from '../dims.js';
import { type OpRule, type Vjp, fail, g0, num } from '../rule.js';
import type { InferArgs } from '../static.js';

function swapLast(ctx: VjpContext, v: string, r: number): string {
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return ctx.op('Transpose', [v], { perm });
}

const matMulVjp: Vjp = (args) => {
  const { ctx, x: [A, B], need } = args;
  const ra = ctx.rank(A!);
  const rb = ctx.rank(B!);
  if (ra === undefined || rb === undefined) fail(args, 'operand ranks unknown (declare input shapes or reshape with a constant-length shape)');
  let g = g0(args);
  let a2 = A!;
  let b2 = B!;
  let ra2 = ra!;
  let rb2 = rb!;
  if (ra === 1) { a2 = ctx.op('Unsqueeze', [A!, ctx.ints([0])]); ra2 = 2; g = ctx.op('Unsqueeze', [g, ctx.ints([rb === 1 ? 0 : -2])]); }
  if (rb === 1) { b2 = ctx.op('Unsqueeze', [B!, ctx.ints([-1])]); rb2 = 2; g = ctx.op('Unsqueeze', [g, ctx.ints([-1])]); }
  const oneD = ra === 1 || rb === 1;
  const batchOf = (d: SDim[] | undefined, r: number): SDim[] | undefined => (d && r >= 2 ? [...d.slice(0, -2), 1, 1] : undefined);
  const out: (string | undefined)[] = [undefined, undefined];
  if (need[0]) {
    const da = ctx.op('MatMul', [g, swapLast(ctx, b2, rb2)]);
    out[0] = oneD ? ctx.unbroadcast(da, A!, [undefined]) : ctx.unbroadcast(da, A!, [batchOf(ctx.dims(B!), rb!)]);
  }
  if (need[1]) {
    const db = ctx.op('MatMul', [swapLast(ctx, a2, ra2), g]);
    out[1] = oneD ? ctx.unbroadcast(db, B!, [undefined]) : ctx.unbroadcast(db, B!, [batchOf(ctx.dims(A!), ra!)]);
  }
  return out;
};

const gemmVjp: Vjp = (args) => {
  const { ctx, x: [A, B, C], a, need } = args;
  const g = g0(args);
  const alpha = num(a.alpha, 1);
  const beta = num(a.beta, 1);
  const tA = num(a.transA, 0);
  const tB = num(a.transB, 0);
  const f = (v: number): { float: number } => ({ float: v });
  const out: (string | undefined)[] = [undefined, undefined, undefined];
  if (A === B && need[0] && tA !== tB) {
    // A Gram matrix (X·Xᵀ or Xᵀ·X): the two operand gradients g·X + gᵀ·X (resp. X·gᵀ + X·g) are one product
    // with the symmetrised g, a C×C sum instead of a second GEMM over X and a C×HW sum.
    const sym = ctx.op('Add', [g, ctx.op('Transpose', [g], { perm: [1, 0] })]);
    out[0] = tB ? ctx.op('Gemm', [sym, A!], { alpha: f(alpha) }) : ctx.op('Gemm', [A!, sym], { alpha: f(alpha) });
  } else {
    if (need[0]) {
      out[0] = tA
        ? ctx.op('Gemm', [B!, g], { alpha: f(alpha), transA: tB, transB: 1 })
        : ctx.op('Gemm', [g, B!], { alpha: f(alpha), transB: tB ? 0 : 1 });
    }
    if (need[1]) {
      out[1] = tB
        ? ctx.op('Gemm', [g, A!], { alpha: f(alpha), transA: 1, transB: tA })
        : ctx.op('Gemm', [A!, g], { alpha: f(alpha), transA: tA ? 0 : 1 });
    }
  }
  if (C && need[2]) {
    const gc = beta === 1 ? g : ctx.op('Mul', [g, ctx.scalar(beta)]);
    out[2] = ctx.unbroadcast(gc, C, [ctx.dims(args.y[0]!)]);
  }
  return out;
};

const inferMatMul = ({ dims, set }: InferArgs): void => {
  const x = dims(0); const y = dims(1);
  if (!x || !y) return;
  const xa = x.length === 1 ? [1, x[0]!] : x;
  const ya = y.length === 1 ? [y[0]!, 1] : y;
  const batch = broadcastDims([xa.slice(0, -2), ya.slice(0, -2)]);
  const out = [...batch, xa[xa.length - 2]!, ya[ya.length - 1]!];
  if (x.length === 1) out.splice(out.length - 2, 1);
  if (y.length === 1) out.splice(out.length - 1, 1);
  set(0, out);
};

const inferGemm = ({ a, dims, set }: InferArgs): void => {
  const x = dims(0); const y = dims(1);
  if (!x || !y) return;
  set(0, [a.transA ? x[1]! : x[0]!, a.transB ? y[0]! : y[1]!]);
};

export const linalgRules: Record<string, OpRule> = {
  MatMul: { infer: inferMatMul, grad: { kind: 'input', vjp: matMulVjp } },
  Gemm: { infer: inferGemm, grad: { kind: 'input', vjp: gemmVjp } },
};
