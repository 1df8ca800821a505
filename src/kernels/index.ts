/** The WGSL kernel library: one op per module. */
export * from './activation.js';
export * from './attention.js';
export * from './conv-transpose2d.js';
export * from './conv2d.js';
export * from './copy.js';
export * from './elementwise.js';
export * from './gather.js';
export * from './l2-normalize.js';
export * from './layernorm.js';
export * from './matmul.js';
export { subgroupMatrixEligible } from './matmul-gpu.js';
export * from './maxpool2d.js';
export * from './reduce.js';
export * from './resize.js';
export * from './resize-antialias.js';
export * from './softmax.js';
