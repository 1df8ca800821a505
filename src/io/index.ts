/**
 * Node-only image I/O for the CLI (and Node users): JPEG / PNG decoding with EXIF orientation,
 * PNG encoding, and drawing helpers for mask overlays and label maps. Not part of the browser
 * library: it imports Node built-ins and the CLI's decoder packages.
 */
export { ImageFileError } from './errors.js';
export {
  ImageLimitError,
  checkImageSize,
  DEFAULT_MAX_IMAGE_BYTES,
  DEFAULT_MAX_MEGAPIXELS,
  type ImageSizeLimits,
} from './image-limits.js';
export { readImage, decodeImage, sniffImageFormat, type DecodedImage, type DecodeOptions, type ImageFormat } from './decode.js';
export { applyOrientation, isExifOrientation, type ExifOrientation } from './orientation.js';
export { encodePng, writePng, maskToGrey } from './encode.js';
export {
  toCanvas,
  fillMask,
  outlineMask,
  fillRect,
  drawRect,
  drawMarker,
  palette,
  colorizeLabels,
  blendLabels,
  drawText,
  drawLegend,
  legendScale,
  type Canvas,
  type Rgb,
  type LegendEntry,
} from './draw.js';
export { measureText, rasterizeText, glyph, CELL_WIDTH, CELL_HEIGHT, GLYPH_WIDTH, GLYPH_HEIGHT } from './font.js';
