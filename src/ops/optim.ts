// Image optimisers for style transfer, written as ask/tell machines so that one job step = one loss+gradient
// evaluation and the whole optimiser state can be checkpointed between steps:
//
//   const x = opt.point();          // where to evaluate next (do not modify)
//   opt.tell(loss(x), grad(x));     // feed the result back
//   opt.current()                   // best accepted iterate (what previews/results show)
//
// - L-BFGS (the old Keras example used scipy's fmin_l_bfgs_b): two-loop recursion over the last m (s, y)
//   pairs, H0 = (s·y / y·y)·I, a line search for the weak Wolfe conditions (Armijo c1 = 1e-4, curvature
//   c2 = 0.9) by bisection/extrapolation ×4 (Lewis & Overton), first step 1/‖g‖ like L-BFGS-B; pairs with
//   s·y ≤ ε‖y‖² are skipped; a non-descent direction or a failed line search resets the memory.
// - Adam (Kingma & Ba; β1 0.9, β2 0.999, ε 1e-8).
// - SGD with keras-io's ExponentialDecay(100, decay_steps 100, rate 0.96, staircase False).
// Arrays are Float32 (an image is ~0.7 M values; 10 pairs = 58 MB); dot products accumulate in float64.
import type { SerializedState } from '../util/serialized-state.js';
import { bytesOf, floatsOf } from '../util/float-bytes.js';

/** Line-search growth factor while the curvature condition is not met and no upper bracket is known. */
const EXTRAPOLATE = 4;

export type OptimizerName = 'lbfgs' | 'adam' | 'sgd';

export interface Optimizer {
  readonly name: OptimizerName;
  point(): Float32Array;
  tell(f: number, g: Float32Array): void;
  current(): Float32Array;
  /** Loss at current() (NaN before the first evaluation). */
  currentLoss(): number;
  evaluations: number;
  iterations: number;
  serialize(): SerializedState;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export interface LbfgsOptions { history?: number; c1?: number; c2?: number; maxLineSearch?: number }

type LbfgsJson = {
  m: number; c1: number; c2: number; maxLs: number; f: number | null; gd: number; alpha: number; lo: number; hi: number | null;
  loF: number | null; trials: number; rho: number[]; phase: 'init' | 'search'; evaluations: number; iterations: number; resets: number;
};

export class Lbfgs implements Optimizer {
  readonly name = 'lbfgs' as const;
  private x: Float32Array;
  private f = Number.NaN;
  private g: Float32Array | null = null;
  private d: Float32Array | null = null;
  private gd = 0;
  private alpha = 1;
  private lo = 0;
  private hi = Number.POSITIVE_INFINITY;
  /** Best point of the bracket satisfying Armijo (alpha = lo): its loss and gradient. */
  private loF = Number.NaN;
  private loG: Float32Array | null = null;
  private trials = 0;
  private S: Float32Array[] = [];
  private Y: Float32Array[] = [];
  private rho: number[] = [];
  private phase: 'init' | 'search' = 'init';
  private trial: Float32Array | null = null;
  evaluations = 0;
  iterations = 0;
  resets = 0;
  private readonly m: number;
  private readonly c1: number;
  private readonly c2: number;
  private readonly maxLs: number;

  constructor(x0: Float32Array, opts: LbfgsOptions = {}) {
    this.x = x0.slice();
    this.m = opts.history ?? 10;
    this.c1 = opts.c1 ?? 1e-4;
    this.c2 = opts.c2 ?? 0.9;
    this.maxLs = opts.maxLineSearch ?? 20;
  }

  point(): Float32Array {
    if (this.phase === 'init') return this.x;
    if (!this.trial) {
      const t = new Float32Array(this.x.length);
      const a = this.alpha;
      for (let i = 0; i < t.length; i++) t[i] = this.x[i]! + a * this.d![i]!;
      this.trial = t;
    }
    return this.trial;
  }

  current(): Float32Array { return this.x; }
  currentLoss(): number { return this.f; }

  tell(f: number, g: Float32Array): void {
    this.evaluations++;
    if (this.phase === 'init') {
      this.f = f;
      this.g = g.slice();
      this.newDirection(true);
      this.phase = 'search';
      return;
    }
    const ok = Number.isFinite(f);
    const armijo = ok && f <= this.f + this.c1 * this.alpha * this.gd;
    const gtd = ok ? dot(g, this.d!) : 0;
    if (armijo && gtd >= this.c2 * this.gd) {
      this.accept(this.point(), f, g);
      return;
    }
    if (!armijo) this.hi = this.alpha;
    else { this.lo = this.alpha; this.loF = f; this.loG = g.slice(); }
    this.trials++;
    if (this.trials >= this.maxLs) {
      if (this.lo > 0 && this.loG) {
        // Accept the best Armijo point found (curvature not reached within the budget).
        const xt = new Float32Array(this.x.length);
        for (let i = 0; i < xt.length; i++) xt[i] = this.x[i]! + this.lo * this.d![i]!;
        this.accept(xt, this.loF, this.loG);
      } else {
        this.reset();
      }
      return;
    }
    this.alpha = Number.isFinite(this.hi) ? (this.lo + this.hi) / 2 : EXTRAPOLATE * this.lo;
    this.trial = null;
  }

  private accept(xt: Float32Array, f: number, g: Float32Array): void {
    const s = new Float32Array(xt.length);
    const y = new Float32Array(xt.length);
    for (let i = 0; i < s.length; i++) { s[i] = xt[i]! - this.x[i]!; y[i] = g[i]! - this.g![i]!; }
    const sy = dot(s, y);
    const yy = dot(y, y);
    if (sy > 1e-10 * yy && sy > 0) {
      this.S.push(s); this.Y.push(y); this.rho.push(1 / sy);
      if (this.S.length > this.m) { this.S.shift(); this.Y.shift(); this.rho.shift(); }
    }
    this.x = xt.slice();
    this.f = f;
    this.g = g.slice();
    this.iterations++;
    this.newDirection(false);
  }

  private reset(): void {
    this.resets++;
    this.S = []; this.Y = []; this.rho = [];
    this.newDirection(true);
  }

  /** d = −H·g by the two-loop recursion; first step (or after a reset) d = −g with α = 1/‖g‖. */
  private newDirection(steepest: boolean): void {
    const g = this.g!;
    const q = Float32Array.from(g);
    const k = this.S.length;
    let alpha0 = 1;
    if (steepest || k === 0) {
      alpha0 = 1 / Math.max(Math.sqrt(dot(g, g)), 1e-30);
    } else {
      const a = new Float64Array(k);
      for (let i = k - 1; i >= 0; i--) {
        a[i] = this.rho[i]! * dot(this.S[i]!, q);
        const yi = this.Y[i]!;
        for (let j = 0; j < q.length; j++) q[j]! -= a[i]! * yi[j]!;
      }
      const gamma = dot(this.S[k - 1]!, this.Y[k - 1]!) / dot(this.Y[k - 1]!, this.Y[k - 1]!);
      for (let j = 0; j < q.length; j++) q[j]! *= gamma;
      for (let i = 0; i < k; i++) {
        const b = this.rho[i]! * dot(this.Y[i]!, q);
        const si = this.S[i]!;
        for (let j = 0; j < q.length; j++) q[j]! += (a[i]! - b) * si[j]!;
      }
    }
    for (let j = 0; j < q.length; j++) q[j] = -q[j]!;
    let gd = dot(g, q);
    if (!(gd < 0)) {
      // Not a descent direction (numerical trouble): steepest descent, memory cleared.
      this.S = []; this.Y = []; this.rho = [];
      for (let j = 0; j < q.length; j++) q[j] = -g[j]!;
      gd = dot(g, q);
      alpha0 = 1 / Math.max(Math.sqrt(-gd), 1e-30);
    }
    this.d = q;
    this.gd = gd;
    this.alpha = alpha0;
    this.lo = 0;
    this.hi = Number.POSITIVE_INFINITY;
    this.loF = Number.NaN;
    this.loG = null;
    this.trials = 0;
    this.trial = null;
  }

  serialize(): SerializedState {
    const json: LbfgsJson = {
      m: this.m, c1: this.c1, c2: this.c2, maxLs: this.maxLs, f: Number.isFinite(this.f) ? this.f : null, gd: this.gd, alpha: this.alpha,
      lo: this.lo, hi: Number.isFinite(this.hi) ? this.hi : null, loF: Number.isFinite(this.loF) ? this.loF : null, trials: this.trials,
      rho: this.rho, phase: this.phase, evaluations: this.evaluations, iterations: this.iterations, resets: this.resets,
    };
    const buffers: Record<string, Buffer> = { x: bytesOf(this.x) };
    if (this.g) buffers.g = bytesOf(this.g);
    if (this.d) buffers.d = bytesOf(this.d);
    if (this.loG) buffers.loG = bytesOf(this.loG);
    this.S.forEach((s, i) => { buffers[`s${i}`] = bytesOf(s); buffers[`y${i}`] = bytesOf(this.Y[i]!); });
    return { json: { optimizer: 'lbfgs', ...json }, buffers };
  }

  static deserialize(data: SerializedState): Lbfgs {
    const j = data.json as LbfgsJson;
    const b = data.buffers!;
    const o = new Lbfgs(floatsOf(b.x!), { history: j.m, c1: j.c1, c2: j.c2, maxLineSearch: j.maxLs });
    o.f = j.f ?? Number.NaN;
    o.g = b.g ? floatsOf(b.g) : null;
    o.d = b.d ? floatsOf(b.d) : null;
    o.loG = b.loG ? floatsOf(b.loG) : null;
    o.gd = j.gd; o.alpha = j.alpha; o.lo = j.lo; o.hi = j.hi ?? Number.POSITIVE_INFINITY; o.loF = j.loF ?? Number.NaN;
    o.trials = j.trials; o.rho = j.rho; o.phase = j.phase; o.evaluations = j.evaluations; o.iterations = j.iterations; o.resets = j.resets;
    for (let i = 0; i < j.rho.length; i++) { o.S.push(floatsOf(b[`s${i}`]!)); o.Y.push(floatsOf(b[`y${i}`]!)); }
    return o;
  }
}

/** Adam or SGD-with-decay: evaluate at x, then update x. */
export class FirstOrder implements Optimizer {
  private x: Float32Array;
  private mom: Float32Array;
  private vel: Float32Array;
  private f = Number.NaN;
  evaluations = 0;
  iterations = 0;

  constructor(readonly name: 'adam' | 'sgd', x0: Float32Array, readonly lr: number) {
    this.x = x0.slice();
    this.mom = new Float32Array(name === 'adam' ? x0.length : 0);
    this.vel = new Float32Array(name === 'adam' ? x0.length : 0);
  }

  point(): Float32Array { return this.x; }
  current(): Float32Array { return this.x; }
  currentLoss(): number { return this.f; }

  /** keras-io ExponentialDecay(lr, decay_steps=100, decay_rate=0.96), staircase False. */
  static sgdRate(lr0: number, t: number): number {
    return lr0 * 0.96 ** (t / 100);
  }

  tell(f: number, g: Float32Array): void {
    this.f = f;
    this.evaluations++;
    const t = ++this.iterations;
    const x = this.x.slice();
    if (this.name === 'sgd') {
      const lr = FirstOrder.sgdRate(this.lr, t - 1);
      for (let i = 0; i < x.length; i++) x[i]! -= lr * g[i]!;
    } else {
      const b1 = 0.9, b2 = 0.999, eps = 1e-8;
      const c1 = 1 - b1 ** t, c2 = 1 - b2 ** t;
      const m = this.mom, v = this.vel;
      for (let i = 0; i < x.length; i++) {
        const gi = g[i]!;
        m[i] = b1 * m[i]! + (1 - b1) * gi;
        v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
        x[i]! -= (this.lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
      }
    }
    this.x = x;
  }

  serialize(): SerializedState {
    const buffers: Record<string, Buffer> = { x: bytesOf(this.x) };
    if (this.name === 'adam') { buffers.m = bytesOf(this.mom); buffers.v = bytesOf(this.vel); }
    return { json: { optimizer: this.name, lr: this.lr, f: Number.isFinite(this.f) ? this.f : null, evaluations: this.evaluations, iterations: this.iterations }, buffers };
  }

  static deserialize(data: SerializedState): FirstOrder {
    const j = data.json as { optimizer: 'adam' | 'sgd'; lr: number; f: number | null; evaluations: number; iterations: number };
    const b = data.buffers!;
    const o = new FirstOrder(j.optimizer, floatsOf(b.x!), j.lr);
    if (j.optimizer === 'adam') { o.mom = floatsOf(b.m!); o.vel = floatsOf(b.v!); }
    o.f = j.f ?? Number.NaN; o.evaluations = j.evaluations; o.iterations = j.iterations;
    return o;
  }
}

export function createOptimizer(name: OptimizerName, x0: Float32Array, lr?: number): Optimizer {
  if (name === 'lbfgs') return new Lbfgs(x0);
  return new FirstOrder(name, x0, lr ?? (name === 'adam' ? ADAM_DEFAULT_LR : SGD_DEFAULT_LR));
}

export function deserializeOptimizer(data: SerializedState): Optimizer {
  const name = (data.json as { optimizer: OptimizerName }).optimizer;
  return name === 'lbfgs' ? Lbfgs.deserialize(data) : FirstOrder.deserialize(data);
}

/** Adam learning rate in caffe pixel units (values ~±128). */
export const ADAM_DEFAULT_LR = 5;
/** keras-io's initial SGD learning rate. */
export const SGD_DEFAULT_LR = 100;
