// The Turbo colour map (Anton Mikhailov, Google, 2019: a perceptually smoother, brighter-in-the-middle
// replacement for Jet) as a 256-entry 8-bit sRGB table, evaluated from Ruofei Du's published degree-5 polynomial
// fit of the original table (Apache-2.0; max error ≈ 1/255 per channel). Index 0 = low (dark blue), 255 = high
// (dark red).

/** Polynomial coefficients c0…c5 per channel: v(t) = Σ c_i tⁱ, t ∈ [0, 1]. */
const COEFFS: readonly (readonly number[])[] = [
  [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
  [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
  [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
];

function build(): Uint8Array {
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    for (let c = 0; c < 3; c++) {
      const v = COEFFS[c]!.reduceRight((acc, k) => acc * t + k, 0);
      table[i * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, v)));
    }
  }
  return table;
}

/** TURBO[3i…3i+2] = the RGB of level i / 255. */
export const TURBO: Uint8Array = build();
