/**
 * The automatic mask generator's CPU helpers against numbers derived by hand from the upstream
 * formulas (segment_anything/utils/amg.py, torchvision.ops.nms, cv2 8-connected components).
 * No GPU.
 */
import { describe, expect, it } from 'vitest';
import {
  areaFromRle,
  boxXyxyToXywh,
  buildAllLayerPointGrids,
  buildPointGrid,
  connectedComponents,
  generateCropBoxes,
  isBoxNearCropEdge,
  maskToBox,
  maskToRle,
  nms,
  removeSmallRegions,
  rleToMask,
  stabilityScore,
  uncropMask,
} from '../../src/pipelines/amg-utils.js';

function maskFrom(rows: string[]): { m: Uint8Array; h: number; w: number } {
  const h = rows.length;
  const w = rows[0]!.length;
  const m = new Uint8Array(h * w);
  rows.forEach((r, y) => [...r].forEach((c, x) => (m[y * w + x] = c === '#' ? 1 : 0)));
  return { m, h, w };
}

describe('point grids', () => {
  it('cell centres, x fastest', () => {
    expect(Array.from(buildPointGrid(1))).toEqual([0.5, 0.5]);
    expect(Array.from(buildPointGrid(2))).toEqual([0.25, 0.25, 0.75, 0.25, 0.25, 0.75, 0.75, 0.75]);
    const g = buildPointGrid(32);
    expect(g.length).toBe(2 * 32 * 32);
    // linspace(1/64, 63/64, 32): k/32 + 1/64, exact in binary.
    for (let k = 0; k < 32; k++) expect(g[2 * k]).toBe(k / 32 + 1 / 64);
    expect(g[2 * 32 + 1]).toBe(1 / 32 + 1 / 64);
  });
  it('per crop layer: int(n / scale^i) per side', () => {
    expect(buildAllLayerPointGrids(32, 2, 2).map((g) => g.length / 2)).toEqual([1024, 256, 64]);
    expect(buildAllLayerPointGrids(5, 1, 2).map((g) => g.length / 2)).toEqual([25, 4]);
    expect(() => buildPointGrid(0)).toThrow(/positive integer/);
  });
});

describe('crop boxes', () => {
  it('1800x1200, one layer, overlap 512/1500 (hand-computed from generate_crop_boxes)', () => {
    // short side 1200: overlap = int(512/1500 * 1200) = 409; crop_w = ceil((409 + 1800) / 2) = 1105,
    // crop_h = ceil((409 + 1200) / 2) = 805; x0 in {0, 696}, y0 in {0, 396}; product(x0s, y0s).
    const { boxes, layers } = generateCropBoxes([1200, 1800], 1, 512 / 1500);
    expect(boxes).toEqual([
      [0, 0, 1800, 1200],
      [0, 0, 1105, 805],
      [0, 396, 1105, 1200],
      [696, 0, 1800, 805],
      [696, 396, 1800, 1200],
    ]);
    expect(layers).toEqual([0, 1, 1, 1, 1]);
    const two = generateCropBoxes([534, 800], 2, 512 / 1500);
    expect(two.boxes.length).toBe(1 + 4 + 16);
    for (const b of two.boxes) expect(b[0] >= 0 && b[1] >= 0 && b[2] <= 800 && b[3] <= 534 && b[0] < b[2] && b[1] < b[3]).toBe(true);
  });
});

describe('boxes, RLE, stability', () => {
  it('maskToBox: inclusive XYXY; empty -> zeros', () => {
    const { m, h, w } = maskFrom(['.....', '..#..', '.....', '....#']);
    expect(maskToBox(m, h, w)).toEqual([2, 1, 4, 3]);
    expect(maskToBox(new Uint8Array(12), 3, 4)).toEqual([0, 0, 0, 0]);
    expect(boxXyxyToXywh([2, 1, 4, 3])).toEqual([2, 1, 2, 2]);
  });
  it('RLE in column-major order, starting with a zero run', () => {
    const { m, h, w } = maskFrom(['.##', '#.#']);
    const rle = maskToRle(m, h, w);
    expect(rle).toEqual({ size: [2, 3], counts: [1, 2, 1, 2] });
    expect(areaFromRle(rle)).toBe(4);
    expect(Array.from(rleToMask(rle))).toEqual(Array.from(m));
    const first = maskFrom(['#.', '..']);
    expect(maskToRle(first.m, 2, 2).counts).toEqual([0, 1, 3]);
    expect(maskToRle(new Uint8Array(6), 2, 3).counts).toEqual([6]);
  });
  it('stability score is intersection / union as float32', () => {
    expect(stabilityScore(3, 4)).toBe(0.75);
    expect(stabilityScore(1, 3)).toBe(Math.fround(1 / 3));
    expect(Number.isNaN(stabilityScore(0, 0))).toBe(true);
  });
  it('near a crop edge but not an image edge (atol 20)', () => {
    expect(isBoxNearCropEdge([10, 10, 95, 50], [0, 0, 100, 100], [0, 0, 200, 200])).toBe(true);
    expect(isBoxNearCropEdge([10, 10, 50, 50], [0, 0, 100, 100], [0, 0, 200, 200])).toBe(false);
    // A crop at (100, 100): the box is moved to image coordinates before comparing.
    expect(isBoxNearCropEdge([30, 30, 60, 60], [100, 100, 200, 200], [0, 0, 200, 200])).toBe(false);
    expect(isBoxNearCropEdge([5, 30, 60, 60], [100, 100, 200, 200], [0, 0, 200, 200])).toBe(true);
    expect(isBoxNearCropEdge([30, 30, 99, 99], [100, 100, 200, 200], [0, 0, 200, 200])).toBe(false);
  });
  it('uncropMask pads into the full frame', () => {
    const out = uncropMask(Uint8Array.from([1, 0, 0, 1]), [1, 1, 3, 3], 3, 4);
    expect(Array.from(out)).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]);
  });
});

describe('nms (torchvision semantics)', () => {
  const boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]];
  const scores = [0.9, 0.8, 0.7, 0.95];
  it('keeps by decreasing score, drops IoU > threshold', () => {
    // IoU(box 3, box 1) = 81 / 119 = 0.681; identical boxes have IoU 1.
    expect(nms(boxes, scores, 0.7)).toEqual([3, 1, 2]);
    expect(nms(boxes, scores, 0.5)).toEqual([3, 2]);
    expect(nms(boxes, scores, 81 / 119)).toEqual([3, 1, 2]);
    expect(nms([], [], 0.5)).toEqual([]);
  });
  it('equal scores keep their input order', () => {
    expect(nms([[0, 0, 5, 5], [0, 0, 5, 5]], [1, 1], 0.5)).toEqual([0]);
    expect(nms([[0, 0, 5, 5], [10, 10, 15, 15]], [1, 1], 0.5)).toEqual([0, 1]);
  });
});

describe('small regions', () => {
  const { m, h, w } = maskFrom([
    '.......',
    '.####..',
    '.#.##..',
    '.####..',
    '.####..',
    '.......',
    '......#',
  ]);
  it('8-connected components in raster order', () => {
    const { labels, sizes } = connectedComponents(m, h, w);
    expect(sizes).toEqual([49 - 16, 15, 1]);
    expect(labels[1 * w + 1]).toBe(1);
    expect(labels[6 * w + 6]).toBe(2);
    const diag = maskFrom(['#.', '.#']);
    expect(connectedComponents(diag.m, 2, 2).sizes).toEqual([2, 2]);
  });
  it('holes: fills background components below the area', () => {
    const r = removeSmallRegions(m, h, w, 2, 'holes');
    expect(r.changed).toBe(true);
    expect(r.mask[2 * w + 2]).toBe(1);
    expect(r.mask.reduce((a, b) => a + b, 0)).toBe(17);
    expect(removeSmallRegions(m, h, w, 1, 'holes').changed).toBe(false);
  });
  it('islands: removes foreground components below the area, keeps the largest when all are', () => {
    const r = removeSmallRegions(m, h, w, 2, 'islands');
    expect(r.changed).toBe(true);
    expect(r.mask[6 * w + 6]).toBe(0);
    expect(r.mask.reduce((a, b) => a + b, 0)).toBe(15);
    const all = removeSmallRegions(m, h, w, 100, 'islands');
    expect(all.mask.reduce((a, b) => a + b, 0)).toBe(15);
    expect(all.mask[1 * w + 1]).toBe(1);
  });
});
