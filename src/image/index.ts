/** CPU image preprocessing: Pillow-compatible resizing and the SAM / CLIP / SAM-CLIP input transforms. */
export { ImageError, checkImage, cropImage, toRgb, type ImageU8 } from './image.js';
export { toImageU8, isImageU8, EXACT_BITMAP_OPTIONS, type ImageInput, type ImageInputOptions } from './image-input.js';
export {
  pilResize,
  pilCoefficients,
  premultiplyAlpha,
  unpremultiplyAlpha,
  PIL_PRECISION_BITS,
  type PilFilter,
  type PilBox,
  type PilResizeOptions,
  type PilCoefficients,
} from './pil-resize.js';
export { samResizeShape, applyCoords, applyBoxes, shortSideResizeShape, centerCropOffsets } from './transforms.js';
export {
  SAM_PIXEL_MEAN,
  SAM_PIXEL_STD,
  CLIP_MEAN,
  CLIP_STD,
  normalizeToChw,
  samPreprocess,
  clipPreprocess,
  fixedResize,
  samclipPreprocess,
  type NormalizeOptions,
  type SamPreprocessOptions,
  type SamPreprocessed,
  type ClipPreprocessOptions,
  type ClipPreprocessed,
  type SamclipPreprocessed,
} from './preprocess.js';
