/**
 * COCO run-length encoding of masks, compatible with pycocotools (`pycocotools.mask.encode`,
 * `area`, `toBbox`, and the compressed `counts` string of its C `rleToString` / `rleFrString`), and
 * COCO annotation JSON for automatic masks, with the fields of segment-anything's amg.py output.
 *
 * The layout, as in pycocotools: the mask is scanned column by column (Fortran order); `counts`
 * alternates runs of 0s and 1s, starting with 0s (so it may start with 0). The string form writes
 * each count (from the fourth on, as the difference to the count two places before) in 5-bit groups,
 * least significant first, each group a character `48 + bits`, with bit 0x20 meaning "more groups
 * follow" and bit 0x10 of the last group carrying the sign.
 */
import { AmgError, type BoxXyxy, type Rle, maskToRle, rleToMask } from './amg-utils.js';
import type { AmgMask } from './automatic-mask-generator.js';

export type { Rle };

/** Compressed RLE, as pycocotools returns it (with `counts` decoded to a string, as amg.py writes it). */
export interface CocoRle {
  /** [height, width]. */
  size: [number, number];
  counts: string;
}

function checkSize(size: readonly number[], what: string): [number, number] {
  const [h, w] = size;
  if (size.length !== 2 || !Number.isInteger(h) || !Number.isInteger(w) || h! < 0 || w! < 0) {
    throw new AmgError(`${what}: size must be [height, width] with non-negative integers, got ${JSON.stringify(size)}`);
  }
  // pycocotools keeps counts in 32-bit unsigned integers.
  if (h! * w! > 0xffffffff) throw new AmgError(`${what}: ${h}x${w} has more pixels than COCO RLE counts can hold (2^32 - 1)`);
  return [h!, w!];
}

/** pycocotools' `rleToString`: the counts as the compressed string. */
export function countsToString(counts: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i]! - (i > 2 ? counts[i - 2]! : 0);
    for (let more = true; more; ) {
      let c = ((x % 32) + 32) % 32; // the low 5 bits, two's complement for negative differences
      x = Math.floor(x / 32); // an arithmetic shift, also for |x| >= 2^31
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** pycocotools' `rleFrString`: the counts of a compressed string (validated: no character outside '0'..'o'). */
export function stringToCounts(s: string, what = 'COCO RLE'): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let scale = 1;
    for (let more = true; more; ) {
      if (p >= s.length) throw new AmgError(`${what}: counts string ends inside a number (at character ${p})`);
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new AmgError(`${what}: character ${JSON.stringify(s[p])} at ${p} is not in a COCO RLE counts string ('0'..'o')`);
      x += (c & 0x1f) * scale;
      scale *= 32;
      more = (c & 0x20) !== 0;
      p++;
      if (!more && c & 0x10) x -= scale; // sign-extend
    }
    if (counts.length > 2) x += counts[counts.length - 2]!;
    counts.push(x);
  }
  return counts;
}

/** Compress an uncompressed RLE (what `pycocotools.mask.frPyObjects` does with one). */
export function compressRle(rle: Rle): CocoRle {
  const [h, w] = checkSize(rle.size, 'compressRle');
  checkCounts(rle.counts, h, w, 'compressRle');
  return { size: [h, w], counts: countsToString(rle.counts) };
}

/** Uncompressed counts of a compressed RLE, checked to cover the mask exactly. */
export function decompressRle(rle: CocoRle): Rle {
  const [h, w] = checkSize(rle.size, 'decompressRle');
  if (typeof rle.counts !== 'string') throw new AmgError(`decompressRle: counts must be a string, got ${typeof rle.counts}`);
  const counts = stringToCounts(rle.counts, 'decompressRle');
  checkCounts(counts, h, w, 'decompressRle');
  return { size: [h, w], counts };
}

function checkCounts(counts: readonly number[], h: number, w: number, what: string): void {
  let total = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (!Number.isInteger(c) || c < 0) throw new AmgError(`${what}: count ${i} is ${c}, not a non-negative integer`);
    total += c;
  }
  if (total !== h * w) throw new AmgError(`${what}: counts cover ${total} pixels of a ${h}x${w} mask`);
}

/** `pycocotools.mask.encode(np.asfortranarray(mask))` for a row-major H x W mask (non-zero = inside). */
export function maskToCocoRle(mask: Uint8Array, height: number, width: number): CocoRle {
  const [h, w] = checkSize([height, width], 'maskToCocoRle');
  if (mask.length !== h * w) throw new AmgError(`maskToCocoRle: mask has ${mask.length} values, not ${h}x${w} = ${h * w}`);
  return { size: [h, w], counts: countsToString(maskToRle(mask, h, w).counts) };
}

/** `pycocotools.mask.decode`: the row-major H x W mask (0 / 1). */
export function cocoRleToMask(rle: CocoRle): Uint8Array {
  return rleToMask(decompressRle(rle));
}

function countsOf(rle: Rle | CocoRle): { h: number; counts: readonly number[] } {
  return { h: rle.size[0], counts: typeof rle.counts === 'string' ? decompressRle(rle as CocoRle).counts : rle.counts };
}

/** `pycocotools.mask.area`: pixels inside. */
export function rleArea(rle: Rle | CocoRle): number {
  const { counts } = countsOf(rle);
  let a = 0;
  for (let i = 1; i < counts.length; i += 2) a += counts[i]!;
  return a;
}

/**
 * `pycocotools.mask.toBbox`: [x, y, width, height] of the tightest box around the inside pixels, with
 * width = last column - first column + 1 (so one pixel wider and taller than segment-anything's own
 * `bbox`, which is x1 - x0 of the inclusive box); [0, 0, 0, 0] for an empty mask.
 */
export function rleBbox(rle: Rle | CocoRle): [number, number, number, number] {
  const { h, counts } = countsOf(rle);
  const m = counts.length - (counts.length % 2); // a trailing run of 0s does not matter
  if (m === 0) return [0, 0, 0, 0];
  let [xs, ys, xe, ye] = [Infinity, Infinity, 0, 0];
  let cc = 0;
  let xp = 0;
  for (let j = 0; j < m; j++) {
    cc += counts[j]!;
    const t = cc - (j % 2); // first pixel of a run of 1s, then its last pixel
    const y = t % h;
    const x = (t - y) / h;
    if (j % 2 === 0) xp = x;
    else if (xp < x) [ys, ye] = [0, h - 1]; // the run wraps from one column into the next
    xs = Math.min(xs, x);
    xe = Math.max(xe, x);
    ys = Math.min(ys, y);
    ye = Math.max(ye, y);
  }
  return [xs, ys, xe - xs + 1, ye - ys + 1];
}

/** One automatic mask as a COCO result annotation, with segment-anything's extra fields. */
export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  segmentation: CocoRle;
  area: number;
  bbox: [number, number, number, number];
  iscrowd: 0;
  predicted_iou: number;
  stability_score: number;
  point_coords: [number, number][];
  crop_box: BoxXyxy;
}

export interface CocoImage {
  id: number;
  file_name: string;
  width: number;
  height: number;
}

export interface CocoDataset {
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: { id: number; name: string }[];
}

function checkedMask(mask: Uint8Array, image: { width: number; height: number }, i: number): Uint8Array {
  if (mask.length !== image.width * image.height) throw new AmgError(`amgToCoco: mask ${i} has ${mask.length} values, the image ${image.height}x${image.width} = ${image.width * image.height}`);
  return mask;
}

/**
 * COCO annotation JSON for the masks of one image (`SamAutomaticMaskGenerator.generate`, either
 * output mode): one class-agnostic category; per mask the compressed RLE, `area` and `bbox` as
 * pycocotools computes them, and `predicted_iou`, `stability_score`, `point_coords`, `crop_box` as
 * segment-anything's amg.py writes them. Annotation ids count from 1, in the order given.
 */
export function amgToCoco(masks: readonly AmgMask[], image: { fileName: string; width: number; height: number; id?: number }): CocoDataset {
  const imageId = image.id ?? 1;
  const annotations = masks.map((m, i): CocoAnnotation => {
    const rle = m.segmentation instanceof Uint8Array ? maskToRle(checkedMask(m.segmentation, image, i), image.height, image.width) : m.segmentation;
    const seg = compressRle(rle);
    if (seg.size[0] !== image.height || seg.size[1] !== image.width) {
      throw new AmgError(`amgToCoco: mask ${i} is ${seg.size[0]}x${seg.size[1]}, the image ${image.height}x${image.width}`);
    }
    return {
      id: i + 1,
      image_id: imageId,
      category_id: 1,
      segmentation: seg,
      area: rleArea(rle),
      bbox: rleBbox(rle),
      iscrowd: 0,
      predicted_iou: m.predictedIou,
      stability_score: m.stabilityScore,
      point_coords: m.pointCoords.map(([x, y]) => [x, y]),
      crop_box: [...m.cropBox] as BoxXyxy,
    };
  });
  return {
    images: [{ id: imageId, file_name: image.fileName, width: image.width, height: image.height }],
    annotations,
    categories: [{ id: 1, name: 'object' }],
  };
}
