// Named convolution kernels (the seed lecture's, plus the standard 5×5 blur/unsharp and emboss), and the
// validation of user-supplied ones.
import { badRequest } from '../util/problem.js';

export interface KernelSpec {
  /** Rows of the matrix, top to bottom (odd × odd). Applied as cross-correlation (as Keras' Conv2D). */
  matrix: number[][];
  /** Divisor; default sum of the entries, or 1 when they sum to 0. */
  scale?: number;
  description: string;
}

const GAUSS5 = [1, 4, 6, 4, 1];
const outer = (a: number[], b: number[]) => a.map((x) => b.map((y) => x * y));

export const NAMED_KERNELS: Record<string, KernelSpec> = {
  identity: { matrix: [[0, 0, 0], [0, 1, 0], [0, 0, 0]], description: 'Returns the image unchanged.' },
  'edge-1': { matrix: [[1, 0, -1], [0, 0, 0], [-1, 0, 1]], description: 'Diagonal edge detector (zero-sum).' },
  'edge-2': { matrix: [[0, 1, 0], [1, -4, 1], [0, 1, 0]], description: '4-neighbour Laplacian edge detector (zero-sum).' },
  'edge-3': { matrix: [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], description: '8-neighbour Laplacian edge detector (zero-sum).' },
  sharpen: { matrix: [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], description: 'Sharpen.' },
  'box-blur': { matrix: [[1, 1, 1], [1, 1, 1], [1, 1, 1]], scale: 9, description: 'Box blur, 1/9 of the 3×3 sum.' },
  'gaussian-blur-3': { matrix: [[1, 2, 1], [2, 4, 2], [1, 2, 1]], scale: 16, description: 'Gaussian blur 3×3 (1/16).' },
  'gaussian-blur-5': { matrix: outer(GAUSS5, GAUSS5), scale: 256, description: 'Gaussian blur 5×5 (binomial, 1/256).' },
  'unsharp-5': {
    // 2·identity − gaussian-5, i.e. −1/256 × the 5×5 binomial with 476 in the centre.
    matrix: outer(GAUSS5, GAUSS5).map((row, i) => row.map((v, j) => (i === 2 && j === 2 ? 476 : -v))),
    scale: 256,
    description: 'Unsharp masking 5×5 (−1/256 × binomial, centre 476).',
  },
  emboss: { matrix: [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], description: 'Emboss.' },
};

export interface ResolvedKernel {
  name: string;
  matrix: number[][];
  width: number;
  height: number;
  scale: number;
  sum: number;
}

/**
 * A named kernel, or a custom one from a JSON matrix (string or array). Odd sizes 1…maxSize per side,
 * finite numbers only; every rejection says exactly what is wrong.
 */
export function resolveKernel(kernel: unknown, maxSize: number): ResolvedKernel {
  if (kernel === undefined || kernel === null || kernel === '') {
    throw badRequest('invalid-kernel', `A kernel is required: one of ${Object.keys(NAMED_KERNELS).join(', ')}, or a JSON matrix such as [[0,-1,0],[-1,5,-1],[0,-1,0]].`);
  }
  let matrix: unknown = kernel;
  let name = 'custom';
  if (typeof kernel === 'string') {
    const trimmed = kernel.trim();
    if (trimmed.startsWith('[')) {
      try { matrix = JSON.parse(trimmed); } catch (e) {
        throw badRequest('invalid-kernel', `The kernel is not valid JSON: ${(e as Error).message}`);
      }
    } else {
      const named = NAMED_KERNELS[trimmed];
      if (!named) throw badRequest('unknown-kernel', `Unknown kernel '${trimmed}'. Named kernels: ${Object.keys(NAMED_KERNELS).join(', ')}; or pass a JSON matrix.`);
      name = trimmed;
      matrix = named.matrix;
    }
  }
  const rows = validateMatrix(matrix, maxSize);
  const sum = rows.flat().reduce((a, b) => a + b, 0);
  const namedScale = NAMED_KERNELS[name]?.scale;
  const scale = namedScale ?? (Math.abs(sum) < 1e-12 ? 1 : sum);
  return { name, matrix: rows, width: rows[0]!.length, height: rows.length, scale, sum };
}

function validateMatrix(m: unknown, maxSize: number): number[][] {
  const bad = (detail: string) => badRequest('invalid-kernel', detail);
  if (!Array.isArray(m) || m.length === 0) throw bad('The kernel must be a non-empty array of rows, e.g. [[0,-1,0],[-1,5,-1],[0,-1,0]].');
  if (!m.every(Array.isArray)) throw bad('Every row of the kernel must be an array of numbers.');
  const rows = m as unknown[][];
  const width = rows[0]!.length;
  rows.forEach((r, i) => {
    if (r.length !== width) throw bad(`Ragged kernel: row 0 has ${width} entries, row ${i} has ${r.length}.`);
    r.forEach((v, j) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`Kernel entry [${i}][${j}] is ${JSON.stringify(v)}; every entry must be a finite number.`);
    });
  });
  const height = rows.length;
  if (width % 2 === 0 || height % 2 === 0) throw bad(`Kernel is ${height}×${width}; both sides must be odd (1, 3, 5, … ${maxSize}) so it has a centre.`);
  if (width > maxSize || height > maxSize) throw bad(`Kernel is ${height}×${width}; the largest allowed is ${maxSize}×${maxSize} (CONVSERVE_MAX_KERNEL_SIZE).`);
  return rows as number[][];
}
