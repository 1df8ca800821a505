/** samclip-webgpu: SAM, SAM 2, CLIP and SAM-CLIP on WebGPU with hand-written WGSL kernels. */
export { GpuContext, TensorTask, type ContextOptions, type BindingRange } from './gpu/context.js';
export type { Progress, ProgressOptions } from './gpu/pacer.js';
export { latestWins } from './util/latest-wins.js';
export { acquireDevice, describeAdapter, type DeviceOptions, type AdapterDescription } from './gpu/device.js';
export { Tensor } from './gpu/tensor.js';
export type { DType } from './gpu/dtype.js';
export * from './gpu/errors.js';
export { Profiler, type KernelRow, type ProfileRecord } from './gpu/profiler.js';
export * as ops from './kernels/index.js';
export { type KernelTuning, type TunableKey, defaultTuning } from './gpu/tuning.js';
export { tuneKernels, localStorageTuningStore, parseTuningSetting, type TuningStore, type TuneOptions, type TuneReport } from './kernels/tuner.js';
export * from './text/index.js';
export * from './image/index.js';
export { SafetensorsFile, SafetensorsError, SafetensorsLimitError, openSafetensors, type HeaderLimits, type FromUrlOptions } from './weights/safetensors.js';
export type { LimitExceeded } from './util/limits.js';
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
export {
  SamAutomaticMaskGenerator,
  type AmgOptions,
  type AmgMask,
  type AmgPredictor,
  type AmgEmbedding,
} from './pipelines/automatic-mask-generator.js';
export { maskToCocoRle, cocoRleToMask, compressRle, decompressRle, rleArea, rleBbox, amgToCoco, type CocoRle, type CocoAnnotation, type CocoDataset, type Rle } from './pipelines/coco-rle.js';

// SAM 2 / 2.1 (image predictor)
export { Sam2, SAM2_MASK_THRESHOLD, type Sam2ImageFeatures } from './model/sam2/sam2.js';
export { loadSam2Weights, type LoadSam2Options, type Sam2Source } from './model/sam2/load.js';
export {
  sam2ConfigFromWeights,
  sam2Preset,
  hieraBlocks,
  type Sam2Config,
  type HieraConfig,
  type Sam2ConfigOverrides,
} from './model/sam2/config.js';
export { Sam2Predictor, Sam2ImageEmbedding, sam2TransformCoords, type Sam2Prediction } from './pipelines/sam2-predictor.js';
export { pthAsSafetensors } from './weights/pth-safetensors.js';

// CLIP / OpenCLIP
export { ClipModel, type ClipModelOptions, type ClipConfig } from './model/clip/clip.js';
export { ClipError, type ClipAct } from './model/clip/config.js';
export { loadClip, clipFamilyOf, type LoadClipOptions, type ClipFamily } from './model/clip/load.js';
export {
  ClipClassifier,
  TextEmbeddingCache,
  IMAGENET_TEMPLATES,
  type ClipClassifierOptions,
  type ClassifyOptions,
  type ClassScore,
  type Classification,
} from './pipelines/clip-classifier.js';

// SAM-CLIP (merged bundle or composite SAM + CLIP)
export {
  SamClip,
  SamClipImageEmbedding,
  MIN_IMAGE_SIDE,
  type SamClipMode,
  type TemplateChoice,
  type SamClipLoadOptions,
  type SamClipCompositeOptions,
} from './pipelines/samclip.js';
export { SamclipBundleError, SAMCLIP_BUNDLE_FORMAT, validateSamclipBundle, type SamclipConfig } from './model/samclip/bundle.js';
export type {
  ClassifyOptions as SamClipClassifyOptions,
  Classification as SamClipClassification,
} from './pipelines/zero-shot-classification.js';
export type { SemanticSegmentation, SemanticSegmentationOptions } from './pipelines/semantic-segmentation.js';
export type { TextPromptedOptions, TextPromptedResult } from './pipelines/text-prompted.js';
export { RefinementError, type RefinementOptions } from './pipelines/refinement.js';
export { DenseClip, DenseClipError, DENSE_CLIP_METHODS, type DenseClipMethod, type DenseClipOptions } from './model/clip/dense-clip.js';

// Models by name: registry, resumable verified downloads, caches (Node's file cache: samclip-webgpu/node)
export * from './hub/index.js';
