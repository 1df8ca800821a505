/** samclip-webgpu: SAM, CLIP and SAM-CLIP on WebGPU with hand-written WGSL kernels. */
export { GpuContext, type ContextOptions, type BindingRange } from './gpu/context.js';
export { acquireDevice, loadDawn, describeAdapter, type DeviceOptions, type AdapterDescription } from './gpu/device.js';
export { Tensor } from './gpu/tensor.js';
export type { DType } from './gpu/dtype.js';
export * from './gpu/errors.js';
export { Profiler, type KernelRow, type ProfileRecord } from './gpu/profiler.js';
export * as ops from './kernels/index.js';
export * from './text/index.js';
export * from './image/index.js';
export { SafetensorsFile, SafetensorsError } from './weights/safetensors.js';
