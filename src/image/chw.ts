// Float images in CHW layout (batch 1), the working form of the gradient ops: TF-exact bilinear resize
// (half-pixel centres, no antialias — tf.image.resize's default), circular roll and tiles.

/** A 1×C×H×W float image (batch 1), row-major. */
export interface Chw {
  data: Float32Array;
  c: number;
  h: number;
  w: number;
}

interface Axis { lo: Int32Array; hi: Int32Array; t: Float32Array }

/** tf.image.resize bilinear, half_pixel_centers: in = (o + 0.5)·scale − 0.5, lower = max(⌊in⌋, 0), upper = min(⌈in⌉, n−1). */
function axisWeights(inSize: number, outSize: number): Axis {
  const scale = inSize / outSize;
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const t = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    const pos = (o + 0.5) * scale - 0.5;
    const f = Math.floor(pos);
    lo[o] = Math.max(f, 0);
    hi[o] = Math.min(Math.ceil(pos), inSize - 1);
    t[o] = pos - f;
  }
  return { lo, hi, t };
}

export function resizeBilinear(src: Chw, h: number, w: number): Chw {
  if (src.h === h && src.w === w) return { ...src, data: src.data.slice() };
  const ay = axisWeights(src.h, h);
  const ax = axisWeights(src.w, w);
  const out = new Float32Array(src.c * h * w);
  for (let c = 0; c < src.c; c++) {
    const sb = c * src.h * src.w;
    const ob = c * h * w;
    for (let y = 0; y < h; y++) {
      const r0 = sb + ay.lo[y]! * src.w;
      const r1 = sb + ay.hi[y]! * src.w;
      const ty = ay.t[y]!;
      for (let x = 0; x < w; x++) {
        const x0 = ax.lo[x]!, x1 = ax.hi[x]!, tx = ax.t[x]!;
        const top = src.data[r0 + x0]! + (src.data[r0 + x1]! - src.data[r0 + x0]!) * tx;
        const bot = src.data[r1 + x0]! + (src.data[r1 + x1]! - src.data[r1 + x0]!) * tx;
        out[ob + y * w + x] = top + (bot - top) * ty;
      }
    }
  }
  return { data: out, c: src.c, h, w };
}

/** np.roll over H and W: out[y][x] = src[(y − dy) mod h][(x − dx) mod w]. */
export function roll(src: Chw, dy: number, dx: number): Chw {
  const { c, h, w } = src;
  const sy = ((dy % h) + h) % h;
  const sx = ((dx % w) + w) % w;
  if (sy === 0 && sx === 0) return { ...src, data: src.data.slice() };
  const out = new Float32Array(src.data.length);
  for (let ch = 0; ch < c; ch++) {
    const b = ch * h * w;
    for (let y = 0; y < h; y++) {
      const srow = b + ((y - sy + h) % h) * w;
      const orow = b + y * w;
      // two contiguous runs
      out.set(src.data.subarray(srow + w - sx, srow + w), orow);
      out.set(src.data.subarray(srow, srow + w - sx), orow + sx);
    }
  }
  return { data: out, c, h, w };
}

export function extractTile(src: Chw, y0: number, x0: number, th: number, tw: number): Chw {
  const out = new Float32Array(src.c * th * tw);
  for (let c = 0; c < src.c; c++) {
    for (let y = 0; y < th; y++) {
      const s = c * src.h * src.w + (y0 + y) * src.w + x0;
      out.set(src.data.subarray(s, s + tw), c * th * tw + y * tw);
    }
  }
  return { data: out, c: src.c, h: th, w: tw };
}

export function addTile(dst: Chw, tile: Float32Array, y0: number, x0: number, th: number, tw: number): void {
  for (let c = 0; c < dst.c; c++) {
    for (let y = 0; y < th; y++) {
      const d = c * dst.h * dst.w + (y0 + y) * dst.w + x0;
      const s = c * th * tw + y * tw;
      for (let x = 0; x < tw; x++) dst.data[d + x]! += tile[s + x]!;
    }
  }
}

/** Splits [0, n) into ⌈n/tile⌉ near-equal parts (each ≥ tile/2 when n > tile). */
export function tileRanges(n: number, tile: number): [number, number][] {
  const k = Math.max(1, Math.ceil(n / tile));
  return Array.from({ length: k }, (_, i) => [Math.round((i * n) / k), Math.round(((i + 1) * n) / k)] as [number, number]);
}
