/**
 * CPU helpers of SAM's automatic mask generator, with the semantics of
 * segment_anything/utils/amg.py and torchvision.ops (box NMS):
 *
 *  - point grids: cell centres of an n x n grid in [0, 1]^2, x fastest (build_point_grid);
 *  - crop boxes: the whole image, then (2^i)^2 overlapping crops per layer (generate_crop_boxes);
 *  - stability score: |logits > t + offset| / |logits > t - offset| (from counts);
 *  - boxes of binary masks, inclusive XYXY pixel indices, [0, 0, 0, 0] for an empty mask;
 *  - the "near a crop edge but not the image edge" filter (atol 20 px);
 *  - uncompressed RLE in column-major (COCO) order, and back;
 *  - greedy NMS: highest score first, drop boxes whose IoU with a kept box exceeds the threshold
 *    (areas (x1 - x0) * (y1 - y0), as torchvision computes them on these inclusive boxes);
 *  - removal of small holes / islands via 8-connected components (cv2.connectedComponentsWithStats
 *    semantics: label 0 is the background of the working mask).
 * Masks are Uint8Array row-major (H x W), 0 / 1.
 */
import { SamclipError } from '../gpu/errors.js';

export class AmgError extends SamclipError {
  override name = 'AmgError';
}

/** [x0, y0, x1, y1] */
export type BoxXyxy = [number, number, number, number];

/** n x n points, row-major over y, x fastest: (x_j, y_i) with centres (k + 0.5) / n, as numpy's linspace gives them. */
export function buildPointGrid(n: number): Float64Array {
  if (!Number.isInteger(n) || n < 1) throw new AmgError(`buildPointGrid: points per side must be a positive integer, got ${n}`);
  const offset = 1 / (2 * n);
  const side = new Float64Array(n);
  // numpy.linspace(offset, 1 - offset, n): start + i * step, the last value exactly the stop.
  const step = n > 1 ? (1 - offset - offset) / (n - 1) : 0;
  for (let i = 0; i < n; i++) side[i] = offset + i * step;
  if (n > 1) side[n - 1] = 1 - offset;
  const out = new Float64Array(2 * n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      out[2 * (i * n + j)] = side[j]!;
      out[2 * (i * n + j) + 1] = side[i]!;
    }
  }
  return out;
}

/** One grid per crop layer; layer i has int(n / scale^i) points per side. */
export function buildAllLayerPointGrids(nPerSide: number, nLayers: number, scalePerLayer: number): Float64Array[] {
  const out: Float64Array[] = [];
  for (let i = 0; i <= nLayers; i++) out.push(buildPointGrid(Math.trunc(nPerSide / scalePerLayer ** i)));
  return out;
}

/** generate_crop_boxes: XYXY integer crops and their layer index. */
export function generateCropBoxes(imSize: readonly [number, number], nLayers: number, overlapRatio: number): { boxes: BoxXyxy[]; layers: number[] } {
  const [imH, imW] = imSize;
  const boxes: BoxXyxy[] = [[0, 0, imW, imH]];
  const layers = [0];
  const shortSide = Math.min(imH, imW);
  const cropLen = (origLen: number, nCrops: number, overlap: number) => Math.trunc(Math.ceil((overlap * (nCrops - 1) + origLen) / nCrops));
  for (let layer = 0; layer < nLayers; layer++) {
    const nPerSide = 2 ** (layer + 1);
    const overlap = Math.trunc(overlapRatio * shortSide * (2 / nPerSide));
    const cropW = cropLen(imW, nPerSide, overlap);
    const cropH = cropLen(imH, nPerSide, overlap);
    const x0s = Array.from({ length: nPerSide }, (_, i) => Math.trunc((cropW - overlap) * i));
    const y0s = Array.from({ length: nPerSide }, (_, i) => Math.trunc((cropH - overlap) * i));
    // itertools.product(x0s, y0s): x outer, y inner.
    for (const x0 of x0s) {
      for (const y0 of y0s) {
        boxes.push([x0, y0, Math.min(x0 + cropW, imW), Math.min(y0 + cropH, imH)]);
        layers.push(layer + 1);
      }
    }
  }
  return { boxes, layers };
}

/** calculate_stability_score from the two counts (NaN for an empty union, which no threshold keeps). */
export function stabilityScore(countAboveHigh: number, countAboveLow: number): number {
  return Math.fround(countAboveHigh / countAboveLow);
}

/** batched_mask_to_box for one mask: inclusive XYXY, [0, 0, 0, 0] when empty. */
export function maskToBox(mask: Uint8Array, h: number, w: number): BoxXyxy {
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let first = -1;
    let last = -1;
    for (let x = 0; x < w; x++) {
      if (mask[row + x]) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    if (y < y0) y0 = y;
    y1 = y;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
  }
  return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1, y1];
}

export function boxXyxyToXywh(b: readonly number[]): BoxXyxy {
  return [b[0]!, b[1]!, b[2]! - b[0]!, b[3]! - b[1]!];
}

export function uncropBox(b: BoxXyxy, crop: BoxXyxy): BoxXyxy {
  return [b[0] + crop[0], b[1] + crop[1], b[2] + crop[0], b[3] + crop[1]];
}

/** is_box_near_crop_edge for one box (in crop coordinates). */
export function isBoxNearCropEdge(box: BoxXyxy, crop: BoxXyxy, orig: BoxXyxy, atol = 20): boolean {
  const b = uncropBox(box, crop);
  for (let i = 0; i < 4; i++) {
    const nearCrop = Math.abs(b[i]! - crop[i]!) <= atol;
    const nearImage = Math.abs(b[i]! - orig[i]!) <= atol;
    if (nearCrop && !nearImage) return true;
  }
  return false;
}

/** Place a crop's mask (ch x cw) into an H x W frame at (crop[0], crop[1]) (uncrop_masks). */
export function uncropMask(mask: Uint8Array, crop: BoxXyxy, origH: number, origW: number): Uint8Array {
  const [x0, y0, x1, y1] = crop;
  if (x0 === 0 && y0 === 0 && x1 === origW && y1 === origH) return mask;
  const cw = x1 - x0;
  const ch = y1 - y0;
  const out = new Uint8Array(origH * origW);
  for (let y = 0; y < ch; y++) out.set(mask.subarray(y * cw, (y + 1) * cw), (y + y0) * origW + x0);
  return out;
}

/** Uncompressed RLE (pycocotools layout): counts alternate 0-runs and 1-runs in column-major order. */
export interface Rle {
  size: [number, number];
  counts: number[];
}

export function maskToRle(mask: Uint8Array, h: number, w: number): Rle {
  const counts: number[] = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x]! ? 1 : 0;
      if (v !== current) {
        counts.push(run);
        run = 0;
        current = v;
      }
      run++;
    }
  }
  counts.push(run);
  return { size: [h, w], counts };
}

export function rleToMask(rle: Rle): Uint8Array {
  const [h, w] = rle.size;
  const out = new Uint8Array(h * w);
  let idx = 0;
  let v = 0;
  for (const c of rle.counts) {
    if (v) {
      for (let k = idx; k < idx + c; k++) out[(k % h) * w + Math.floor(k / h)] = 1;
    }
    idx += c;
    v ^= 1;
  }
  if (idx !== h * w) throw new AmgError(`rleToMask: counts cover ${idx} pixels of a ${h}x${w} mask`);
  return out;
}

export function areaFromRle(rle: Rle): number {
  let a = 0;
  for (let i = 1; i < rle.counts.length; i += 2) a += rle.counts[i]!;
  return a;
}

/**
 * Greedy non-maximum suppression (torchvision.ops.nms): indices of kept boxes, by decreasing
 * score. Equal scores keep their input order (a stable sort; torch's sort does not promise one).
 */
export function nms(boxes: readonly (readonly number[])[], scores: ArrayLike<number>, iouThreshold: number): number[] {
  const n = boxes.length;
  if (scores.length !== n) throw new AmgError(`nms: ${n} boxes but ${scores.length} scores`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const area = boxes.map((b) => (b[2]! - b[0]!) * (b[3]! - b[1]!));
  const suppressed = new Uint8Array(n);
  const keep: number[] = [];
  for (let oi = 0; oi < n; oi++) {
    const i = order[oi]!;
    if (suppressed[i]) continue;
    keep.push(i);
    const bi = boxes[i]!;
    for (let oj = oi + 1; oj < n; oj++) {
      const j = order[oj]!;
      if (suppressed[j]) continue;
      const bj = boxes[j]!;
      const iw = Math.max(0, Math.min(bi[2]!, bj[2]!) - Math.max(bi[0]!, bj[0]!));
      const ih = Math.max(0, Math.min(bi[3]!, bj[3]!) - Math.max(bi[1]!, bj[1]!));
      const inter = iw * ih;
      const iou = inter / (area[i]! + area[j]! - inter);
      if (iou > iouThreshold) suppressed[j] = 1;
    }
  }
  return keep;
}

/**
 * 8-connected component labels of the non-zero pixels (0 = background), with each label's pixel
 * count; labels are numbered in raster order of their first pixel, like OpenCV's.
 */
export function connectedComponents(mask: Uint8Array, h: number, w: number): { labels: Int32Array; sizes: number[] } {
  const labels = new Int32Array(h * w);
  const sizes = [0];
  const stack: number[] = [];
  for (let p = 0; p < h * w; p++) {
    if (!mask[p]) {
      sizes[0]!++;
      continue;
    }
    if (labels[p]) continue;
    const id = sizes.length;
    let count = 0;
    labels[p] = id;
    stack.push(p);
    while (stack.length) {
      const q = stack.pop()!;
      count++;
      const y = Math.floor(q / w);
      const x = q - y * w;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if ((dx === 0 && dy === 0) || xx < 0 || xx >= w) continue;
          const r = yy * w + xx;
          if (mask[r] && !labels[r]) {
            labels[r] = id;
            stack.push(r);
          }
        }
      }
    }
    sizes.push(count);
  }
  return { labels, sizes };
}

/**
 * remove_small_regions: mode 'holes' fills background components smaller than `areaThresh`,
 * 'islands' removes foreground components smaller than it (keeping the largest when all are).
 */
export function removeSmallRegions(mask: Uint8Array, h: number, w: number, areaThresh: number, mode: 'holes' | 'islands'): { mask: Uint8Array; changed: boolean } {
  const holes = mode === 'holes';
  const working = new Uint8Array(h * w);
  for (let p = 0; p < h * w; p++) working[p] = (mask[p] ? 1 : 0) ^ (holes ? 1 : 0);
  const { labels, sizes } = connectedComponents(working, h, w);
  const small = new Set<number>();
  for (let i = 1; i < sizes.length; i++) if (sizes[i]! < areaThresh) small.add(i);
  if (small.size === 0) return { mask, changed: false };
  const fill = new Set<number>([0, ...small]);
  let keep: Set<number>;
  if (holes) {
    keep = fill;
  } else {
    keep = new Set<number>();
    for (let i = 0; i < sizes.length; i++) if (!fill.has(i)) keep.add(i);
    if (keep.size === 0) {
      let best = 1;
      for (let i = 2; i < sizes.length; i++) if (sizes[i]! > sizes[best]!) best = i;
      keep.add(best);
    }
  }
  const out = new Uint8Array(h * w);
  for (let p = 0; p < h * w; p++) out[p] = keep.has(labels[p]!) ? 1 : 0;
  return { mask: out, changed: true };
}
