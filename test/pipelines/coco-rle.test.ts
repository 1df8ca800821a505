/**
 * COCO RLE against pycocotools 2.0.11 (its C encoder is the reference): for 20 fixed masks
 * (test/fixtures/coco/rle-cases.safetensors, tools/gen-coco-rle-fixtures.py: empty, full, single
 * pixels, rows, columns, a run wrapping into the next column, checkerboard, seeded random masks,
 * 480x640 masks with counts past 2^15) the compressed counts string, `area` and `bbox` must be
 * identical, and decoding pycocotools' string must give the mask back. Plus malformed input and the
 * COCO annotation JSON built from automatic masks. No GPU.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { maskToRle } from '../../src/pipelines/amg-utils.js';
import type { AmgMask } from '../../src/pipelines/automatic-mask-generator.js';
import {
  amgToCoco,
  cocoRleToMask,
  compressRle,
  countsToString,
  decompressRle,
  maskToCocoRle,
  rleArea,
  rleBbox,
  stringToCounts,
} from '../../src/pipelines/coco-rle.js';
import { mismatches } from '../helpers/compare.js';
import { readSafetensorsSimple } from '../helpers/read-safetensors-simple.js';
import { FIXTURES } from '../helpers/reference.js';

interface Case {
  name: string;
  size: [number, number];
  counts: string;
  area: number;
  bbox: [number, number, number, number];
}

const fixture = readSafetensorsSimple(join(FIXTURES, 'coco', 'rle-cases.safetensors'));
const CASES = JSON.parse(fixture.metadata.cases!) as Case[];

/** The row-major mask of a case (stored 8 pixels a byte, most significant bit first, as np.packbits). */
function mask(c: Case): Uint8Array {
  const packed = fixture.u8(`mask.${c.name}`);
  const n = c.size[0] * c.size[1];
  return Uint8Array.from({ length: n }, (_, i) => (packed[i >> 3]! >> (7 - (i & 7))) & 1);
}

describe('pycocotools parity', () => {
  it('the fixture is pycocotools 2.0.11 on 20 masks', () => {
    expect(fixture.metadata.pycocotools).toBe('2.0.11');
    expect(CASES).toHaveLength(20);
    // The long-run cases really exercise multi-character numbers and negative differences.
    expect(Math.max(...CASES.map((c) => c.size[0] * c.size[1]))).toBeGreaterThan(2 ** 15);
  });

  for (const c of CASES) {
    it(`${c.name} (${c.size[0]}x${c.size[1]}): counts string, area and bbox equal pycocotools'`, () => {
      const m = mask(c);
      const [h, w] = c.size;
      const ours = maskToCocoRle(m, h, w);
      expect(ours.size).toEqual([h, w]);
      expect(ours.counts).toBe(c.counts);
      expect(rleArea(ours)).toBe(c.area);
      expect(rleBbox(ours)).toEqual(c.bbox);
      // Uncompressed counts (what the automatic mask generator keeps) give the same numbers.
      const raw = maskToRle(m, h, w);
      expect(rleArea(raw)).toBe(c.area);
      expect(rleBbox(raw)).toEqual(c.bbox);
      expect(compressRle(raw).counts).toBe(c.counts);
      // Decoding pycocotools' own string.
      expect(mismatches(decompressRle({ size: [h, w], counts: c.counts }).counts, raw.counts)).toEqual({ diff: 0, first: -1 });
      expect(mismatches(cocoRleToMask({ size: [h, w], counts: c.counts }), m).diff).toBe(0);
    });
  }
});

describe('the string coding beyond the fixtures', () => {
  it('round-trips counts past 2^31 and large negative differences', () => {
    const counts = [0, 2 ** 31 + 5, 3, 2 ** 32 - 10, 1, 7, 2 ** 20, 0x7fffffff, 5];
    expect(stringToCounts(countsToString(counts))).toEqual(counts);
  });
});

describe('bad input', () => {
  const size: [number, number] = [5, 7];
  it.each([
    ['a character outside the alphabet', { size, counts: 'S1 ' }, /character " " at 2 is not in a COCO RLE counts string/],
    ['a number cut short', { size, counts: 'S' }, /counts string ends inside a number/],
    ['counts that do not cover the mask', { size, counts: 'R1' }, /counts cover 34 pixels of a 5x7 mask/],
    ['a negative count', { size, counts: '0S1O' }, /count 2 is -1, not a non-negative integer/],
    ['a bad size', { size: [5, -7] as [number, number], counts: 'S1' }, /size must be \[height, width\]/],
  ])('%s', (_, rle, re) => {
    expect(() => cocoRleToMask(rle)).toThrow(re);
  });

  it('a mask of the wrong length', () => {
    expect(() => maskToCocoRle(new Uint8Array(34), 5, 7)).toThrow(/mask has 34 values, not 5x7 = 35/);
  });
});

describe('amgToCoco', () => {
  const [h, w] = [6, 9];
  const a = new Uint8Array(h * w);
  for (let y = 1; y < 4; y++) for (let x = 2; x < 7; x++) a[y * w + x] = 1;
  const b = new Uint8Array(h * w);
  b[5 * w + 8] = 1;
  const masks: AmgMask[] = [
    { segmentation: a, area: 15, bbox: [2, 1, 4, 2], predictedIou: 0.93, pointCoords: [[4.5, 2.5]], stabilityScore: 0.97, cropBox: [0, 0, 9, 6] },
    { segmentation: maskToRle(b, h, w), area: 1, bbox: [8, 5, 0, 0], predictedIou: 0.9, pointCoords: [[8.5, 5.5]], stabilityScore: 0.96, cropBox: [0, 0, 9, 6] },
  ];

  it('images, annotations (RLE, pycocotools area and bbox, amg.py fields) and one category', () => {
    const coco = amgToCoco(masks, { fileName: 'photo.jpg', width: w, height: h });
    expect(coco.images).toEqual([{ id: 1, file_name: 'photo.jpg', width: w, height: h }]);
    expect(coco.categories).toEqual([{ id: 1, name: 'object' }]);
    expect(coco.annotations.map((x) => x.id)).toEqual([1, 2]);
    const [first, second] = coco.annotations;
    expect(first).toEqual({
      id: 1,
      image_id: 1,
      category_id: 1,
      segmentation: maskToCocoRle(a, h, w),
      area: 15,
      // pycocotools' box is one pixel wider and taller than segment-anything's own bbox (x1 - x0).
      bbox: [2, 1, 5, 3],
      iscrowd: 0,
      predicted_iou: 0.93,
      stability_score: 0.97,
      point_coords: [[4.5, 2.5]],
      crop_box: [0, 0, 9, 6],
    });
    expect(second!.segmentation).toEqual(maskToCocoRle(b, h, w));
    expect([second!.area, ...second!.bbox]).toEqual([1, 8, 5, 1, 1]);
    expect(cocoRleToMask(second!.segmentation)).toEqual(b);
    // Plain JSON: survives a round trip unchanged.
    expect(JSON.parse(JSON.stringify(coco))).toEqual(coco);
  });

  it('a mask of another size than the image is refused by index', () => {
    expect(() => amgToCoco(masks, { fileName: 'x.jpg', width: w + 1, height: h })).toThrow(/mask 0 has 54 values, the image 6x10 = 60/);
  });
});
