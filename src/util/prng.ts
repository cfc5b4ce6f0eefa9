// The project's one seeded random-number generator. Everything that must be reproducible from a seed
// (synthetic weights, DeepDream's random rolls, style transfer's noise start, training shuffles and
// augmentation) draws from a Prng, so a seed means the same thing everywhere and nothing needs Math.random.

/** sfc32: small, fast, good-quality 32-bit generator (PractRand-clean); seeded via splitmix32. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** The second Box–Muller value, kept for the next normal() call. */
  private spareNormal: number | undefined;

  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix(); this.b = splitmix(); this.c = splitmix(); this.d = splitmix();
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** The next 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n) (n ≤ 2³²). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal N(mean, std²) by the Box–Muller transform (two values per pair of uniforms). */
  normal(mean = 0, std = 1): number {
    if (this.spareNormal !== undefined) {
      const z = this.spareNormal;
      this.spareNormal = undefined;
      return mean + std * z;
    }
    // 1 − u keeps the logarithm's argument in (0, 1].
    const r = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.spareNormal = r * Math.sin(theta);
    return mean + std * r * Math.cos(theta);
  }

  /** Fills `out` with uniform values in [lo, hi). The state lives in locals in the hot loop (≈10× faster). */
  fillUniform(out: Float32Array, lo: number, hi: number): Float32Array {
    const scale = (hi - lo) / 4294967296;
    let a = this.a, b = this.b, c = this.c, d = this.d;
    for (let i = 0; i < out.length; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      out[i] = lo + (t >>> 0) * scale;
    }
    this.a = a; this.b = b; this.c = c; this.d = d;
    return out;
  }

  /** Fills `out` with normal values N(mean, std²). */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** A uniformly random permutation of 0…n−1 (Fisher–Yates). */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i]!; p[i] = p[j]!; p[j] = t;
    }
    return p;
  }

  /** This generator as a `() => number` in [0, 1), for code written against Math.random's shape. */
  asFunction(): () => number {
    return () => this.uniform();
  }
}
