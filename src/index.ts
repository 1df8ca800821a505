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
export { Weights, WeightError, type RenameTable } from './weights/weights.js';
export { detectFamily, type Family } from './weights/families.js';

// SAM
export { Sam, SAM_MASK_THRESHOLD } from './model/sam/sam.js';
export { loadSamWeights, type LoadSamOptions } from './model/sam/load.js';
export { samConfigFromWeights, type SamConfig } from './model/sam/config.js';
export {
  SamPredictor,
  SamImageEmbedding,
  PromptError,
  lowResMask,
  type SamPoints,
  type SamPrompt,
  type PredictOptions,
  type SamPrediction,
} from './pipelines/sam-predictor.js';
export { SamAutomaticMaskGenerator, type AmgOptions, type AmgMask } from './pipelines/automatic-mask-generator.js';
