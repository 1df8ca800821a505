/**
 * `samclip-webgpu/node`: the Node-only half of the library, never reachable from the browser entry
 * (`samclip-webgpu`): image files (JPEG / PNG decoding with EXIF orientation, PNG writing), drawing
 * helpers for masks and label maps, files on disk, Dawn, and the hub's Node defaults. Loading it
 * registers the Node defaults of fromPretrained (the CLI's file cache, a fetch that honours
 * HTTPS_PROXY, node:crypto), see src/node/hub.ts. See docs/api.md, "Installing, Node and browsers".
 *
 * Keep this file a plain list of re-exports, grouped by what they are for.
 */
import { useNodeHub } from './hub.js';

// Image files: decoding (EXIF orientation applied), PNG output.
export { ImageFileError } from '../io/errors.js';
export { readImage, decodeImage, sniffImageFormat, type DecodedImage, type DecodeOptions, type ImageFormat } from '../io/decode.js';
export { applyOrientation, isExifOrientation, type ExifOrientation } from '../io/orientation.js';
export { encodePng, writePng, maskToGrey } from '../io/encode.js';

// Drawing masks, boxes, points and label maps onto an image (what the CLI's overlays use).
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
} from '../io/draw.js';
export { measureText, rasterizeText, glyph, CELL_WIDTH, CELL_HEIGHT, GLYPH_WIDTH, GLYPH_HEIGHT } from '../io/font.js';

// Dawn (the `webgpu` package): GpuContext.create() loads it by itself on Node; this is for code
// that wants Dawn's GPU object directly.
export { loadDawn } from '../gpu/device.js';

// Files on disk: positioned reads of safetensors / .pth files, atomic safetensors writing.
export { NodeFileSource } from '../weights/safetensors-source.js';
export { writeSafetensorsFile, type WriteSafetensorsOptions, type WriteSafetensorsResult } from '../weights/safetensors-writer.js';

// The hub on Node: the file cache, the proxy-aware fetch, the defaults fromPretrained uses.
export { FileModelCache, defaultCacheDir, nodeSha256, type FileCacheOptions } from './hub-cache.js';
export { createNodeFetch, nodeFetch, proxyFor, type NodeFetchOptions } from './hub-fetch.js';
export { nodeHubDefaults, nodeHubOptions, useNodeHub } from './hub.js';

useNodeHub();
