// Optimizers of the ONNX Runtime trainer, applied in place on Float32Arrays after each step's gradient run, with
// Keras 3's defaults and update rules (keras/src/optimizers/*.py):
//
//   SGD      m ← μ·m − lr·g;  w ← w + m  (nesterov: w ← w + μ·m − lr·g); without momentum w ← w − lr·g
//   RMSprop  v ← ρ·v + (1 − ρ)·g²;  w ← w − lr·g / √(v + ε)          ρ 0.9, ε 1e-7 (momentum 0, not centred)
//   Adam     m ← m + (g − m)(1 − β1);  v ← v + (g² − v)(1 − β2);  w ← w − α·m / (√v + ε),
//            α = lr·√(1 − β2ᵗ) / (1 − β1ᵗ)                              β1 0.9, β2 0.999, ε 1e-7
//   AdamW    Adam after the decoupled decay w ← w − lr·λ·w          λ (weight_decay) 0.004
//
// The state (slots per parameter and the step count) is plain data, so checkpoints can save and restore it.

export type OptimizerName = 'sgd' | 'rmsprop' | 'adam' | 'adamw';
export const OPTIMIZER_NAMES: readonly OptimizerName[] = ['sgd', 'rmsprop', 'adam', 'adamw'];

export interface OptimizerConfig {
  name: OptimizerName;
  /** SGD: momentum (default 0) and Nesterov (default false). */
  momentum?: number;
  nesterov?: boolean;
  /** RMSprop: ρ (default 0.9). */
  rho?: number;
  /** Adam/AdamW: β1, β2 (defaults 0.9, 0.999). */
  beta1?: number;
  beta2?: number;
  /** ε (default 1e-7, Keras). */
  epsilon?: number;
  /** AdamW's decoupled weight decay (default 0.004). */
  weightDecay?: number;
}

/** What an optimizer keeps between steps: named slots per parameter, and the number of steps taken. */
export interface OptimizerState {
  iterations: number;
  slots: Record<string, Record<string, Float32Array>>;
}

export class Optimizer {
  learningRate: number;
  private state: OptimizerState = { iterations: 0, slots: {} };

  constructor(readonly config: OptimizerConfig, learningRate: number) {
    this.learningRate = learningRate;
  }

  /** Keras' defaults filled in (what the reports record). */
  get settings(): Required<OptimizerConfig> {
    const c = this.config;
    return {
      name: c.name, momentum: c.momentum ?? 0, nesterov: c.nesterov ?? false, rho: c.rho ?? 0.9, beta1: c.beta1 ?? 0.9, beta2: c.beta2 ?? 0.999,
      epsilon: c.epsilon ?? 1e-7, weightDecay: c.name === 'adamw' ? (c.weightDecay ?? 0.004) : 0,
    };
  }

  get iterations(): number {
    return this.state.iterations;
  }

  private slot(param: string, slot: string, size: number): Float32Array {
    const s = (this.state.slots[param] ??= {});
    return (s[slot] ??= new Float32Array(size));
  }

  /** One update of every parameter from its gradient (both keyed by parameter name). */
  apply(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>): void {
    const s = this.settings;
    const lr = this.learningRate;
    const t = ++this.state.iterations;
    for (const [name, w] of params) {
      const g = grads.get(name);
      if (!g) continue;
      if (g.length !== w.length) throw new Error(`optimizer: gradient of ${name} has ${g.length} values, the parameter ${w.length}`);
      switch (s.name) {
        case 'sgd': {
          if (s.momentum === 0) {
            for (let i = 0; i < w.length; i++) w[i]! -= lr * g[i]!;
            break;
          }
          const m = this.slot(name, 'momentum', w.length);
          for (let i = 0; i < w.length; i++) {
            m[i] = s.momentum * m[i]! - lr * g[i]!;
            w[i]! += s.nesterov ? s.momentum * m[i]! - lr * g[i]! : m[i]!;
          }
          break;
        }
        case 'rmsprop': {
          const v = this.slot(name, 'velocity', w.length);
          for (let i = 0; i < w.length; i++) {
            v[i] = s.rho * v[i]! + (1 - s.rho) * g[i]! * g[i]!;
            w[i]! -= (lr * g[i]!) / Math.sqrt(v[i]! + s.epsilon);
          }
          break;
        }
        case 'adam':
        case 'adamw': {
          if (s.weightDecay > 0) {
            const decay = 1 - lr * s.weightDecay;
            for (let i = 0; i < w.length; i++) w[i]! *= decay;
          }
          const m = this.slot(name, 'momentum', w.length);
          const v = this.slot(name, 'velocity', w.length);
          const alpha = (lr * Math.sqrt(1 - Math.pow(s.beta2, t))) / (1 - Math.pow(s.beta1, t));
          const b1 = 1 - s.beta1;
          const b2 = 1 - s.beta2;
          for (let i = 0; i < w.length; i++) {
            const gi = g[i]!;
            m[i]! += (gi - m[i]!) * b1;
            v[i]! += (gi * gi - v[i]!) * b2;
            w[i]! -= (alpha * m[i]!) / (Math.sqrt(v[i]!) + s.epsilon);
          }
          break;
        }
      }
    }
  }

  /** A deep copy of the state (checkpoints). */
  saveState(): OptimizerState {
    const slots: OptimizerState['slots'] = {};
    for (const [p, s] of Object.entries(this.state.slots)) slots[p] = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, Float32Array.from(v)]));
    return { iterations: this.state.iterations, slots };
  }

  loadState(state: OptimizerState): void {
    const slots: OptimizerState['slots'] = {};
    for (const [p, s] of Object.entries(state.slots)) slots[p] = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, Float32Array.from(v)]));
    this.state = { iterations: state.iterations, slots };
  }
}
