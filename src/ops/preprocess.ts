// Moved to src/image/ (image/resize.ts, image/preprocess.ts). This re-export only keeps src/train compiling
// while it is reorganised in parallel; delete it once train/ imports image/ directly.
export { resizeForModel } from '../image/resize.js';
export { toInputTensor } from '../image/preprocess.js';
