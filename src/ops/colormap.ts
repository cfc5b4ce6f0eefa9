// Colour-mapping a scalar map for display: values → [0, 1] → a 256-level colour table (Turbo by default).
import { TURBO } from './colormap-turbo.js';

/** Writes the table colour of t ∈ [0, 1] (clamped; NaN → 0) into out[o…o+2]. */
export function colorAt(t: number, out: Uint8Array | Buffer, o: number, table: Uint8Array = TURBO): void {
  const level = t > 0 ? (t < 1 ? Math.round(t * 255) : 255) : 0;
  out[o] = table[level * 3]!;
  out[o + 1] = table[level * 3 + 1]!;
  out[o + 2] = table[level * 3 + 2]!;
}
