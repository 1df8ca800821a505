/**
 * Size arithmetic of the official preprocessing, kept apart from the pixels so prompt coordinates,
 * mask post-processing and the resize all agree on the same integers.
 *
 * - SAM: `ResizeLongestSide.get_preprocess_shape` (float64 scale, then int(x + 0.5)) and
 *   `apply_coords` / `apply_boxes` (float64, per-axis ratio of new to old size).
 * - torchvision (CLIP): `Resize(int)` output size (int() truncation of size·long/short) and
 *   `CenterCrop` offsets (Python's round(), i.e. half to even).
 */
import { ImageError } from './image.js';

function checkDims(h: number, w: number, what: string): void {
  if (!Number.isInteger(h) || h < 1 || !Number.isInteger(w) || w < 1) {
    throw new ImageError(`${what}: image size must be positive integers (H, W), got (${h}, ${w})`);
  }
}

function checkTarget(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1) throw new ImageError(`${what}: target length must be a positive integer, got ${n}`);
}

/** SAM's `get_preprocess_shape`: [newH, newW] with the longest side equal to `longSide`. */
export function samResizeShape(oldH: number, oldW: number, longSide: number): [number, number] {
  checkDims(oldH, oldW, 'samResizeShape');
  checkTarget(longSide, 'samResizeShape');
  const scale = (longSide * 1.0) / Math.max(oldH, oldW);
  // Python's int() truncates; the values are positive, so this is floor(x + 0.5).
  return [Math.trunc(oldH * scale + 0.5), Math.trunc(oldW * scale + 0.5)];
}

/**
 * SAM's `ResizeLongestSide.apply_coords`: points given as interleaved [x0, y0, x1, y1, …] in
 * original-image pixels, returned (float64, like numpy) in resized-input pixels. The predictor
 * then hands them to the model as float32.
 */
export function applyCoords(
  points: ArrayLike<number>,
  originalSize: readonly [number, number],
  targetLength: number,
): Float64Array {
  if (points.length % 2 !== 0) {
    throw new ImageError(`applyCoords: expected interleaved (x, y) pairs, got ${points.length} numbers`);
  }
  const [oldH, oldW] = originalSize;
  const [newH, newW] = samResizeShape(oldH, oldW, targetLength);
  const sx = newW / oldW;
  const sy = newH / oldH;
  const out = new Float64Array(points.length);
  for (let i = 0; i < points.length; i += 2) {
    out[i] = points[i]! * sx;
    out[i + 1] = points[i + 1]! * sy;
  }
  return out;
}

/** SAM's `apply_boxes`: boxes as [x0, y0, x1, y1, …] (4 numbers each), both corners mapped. */
export function applyBoxes(
  boxes: ArrayLike<number>,
  originalSize: readonly [number, number],
  targetLength: number,
): Float64Array {
  if (boxes.length % 4 !== 0) {
    throw new ImageError(`applyBoxes: expected 4 numbers per box (x0, y0, x1, y1), got ${boxes.length} numbers`);
  }
  return applyCoords(boxes, originalSize, targetLength);
}

/**
 * torchvision `Resize(size)` with an int: the shorter side becomes `size`, the longer one
 * int(size · long / short). Returns [newH, newW].
 */
export function shortSideResizeShape(h: number, w: number, size: number): [number, number] {
  checkDims(h, w, 'shortSideResizeShape');
  checkTarget(size, 'shortSideResizeShape');
  const short = Math.min(h, w);
  const long = Math.max(h, w);
  const newLong = Math.trunc((size * long) / short);
  return w <= h ? [newLong, size] : [size, newLong];
}

/** Python 3's round() for the halves that (n − m) / 2 can produce: ties go to the even integer. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** torchvision `CenterCrop` offsets [top, left] for a crop of cropH × cropW out of h × w. */
export function centerCropOffsets(h: number, w: number, cropH: number, cropW: number): [number, number] {
  checkDims(h, w, 'centerCropOffsets');
  checkDims(cropH, cropW, 'centerCropOffsets crop');
  if (cropH > h || cropW > w) {
    // torchvision would pad with zeros first; no preprocessing path here needs that.
    throw new ImageError(`centerCropOffsets: crop ${cropH}×${cropW} is larger than the ${h}×${w} image`);
  }
  return [roundHalfEven((h - cropH) / 2), roundHalfEven((w - cropW) / 2)];
}
