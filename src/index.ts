// convserve as a library: the pieces that are useful without the HTTP service.
export { gradientGraph, gradientModel, appendGradients, SUPPORTED_OPS, AutodiffError } from './onnx/autodiff.js';
export { GraphBuilder } from './onnx/builder.js';
export { loadConfig, SETTINGS } from './config.js';
export { createCore, type Core, type CoreOptions, type CoreWith, type InferenceCore } from './app/core.js';
export { startService } from './server/service.js';
export { NAMED_KERNELS, resolveKernel } from './ops/kernels.js';
export { filterImage } from './ops/filter.js';
