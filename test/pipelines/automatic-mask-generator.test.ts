/**
 * SAM automatic mask generation ("segment everything") on the tiny model and a real photo (dog,
 * 800x534).
 *
 * The random tiny model's logits are small (|x| < ~3), so the thresholds are scaled to it: with
 * upstream's defaults (IoU 0.88, stability offset 1.0) nothing would survive. Its masks are noisy
 * blobs whose boxes all span the whole photo, so box NMS at any threshold below 1 keeps exactly one
 * (the highest predicted IoU): the filters are compared with NMS at 1.0 (nothing suppressed: the
 * whole filtered set, in NMS order) and at 0.7 (one mask). The filters are checked
 * against a CPU re-implementation of upstream's _process_batch / _process_crop on the SAME
 * upscaled logits (SamPredictor.predictBatch with returnLogits: decode, postprocess and binarise
 * shared, everything after it independent: IoU filter, stability score counted on the float
 * logits, boxes, NMS written out again here). Every kept mask must match exactly (same set, order,
 * IoU, stability, box, area). Then: outputs well-formed (segmentation vs area and bbox, scores above
 * the thresholds, NMS property), RLE output, crop layers, small-region clean-up.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type AmgMask, type AmgOptions, SamAutomaticMaskGenerator } from '../../src/pipelines/automatic-mask-generator.js';
import { type Rle, buildPointGrid, connectedComponents, generateCropBoxes, rleToMask } from '../../src/pipelines/amg-utils.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import type { ImageU8 } from '../../src/image/image.js';
import { useGpu } from '../helpers/gpu.js';
import { usePhotos } from '../helpers/photos.js';
import { TINY_WEIGHTS } from './sam-fixture.js';

const gpu = useGpu();
const photo = usePhotos();
let predictor: SamPredictor;
let image: ImageU8;

/** Thresholds scaled to the random tiny model (see the header). */
const OPTS: AmgOptions = {
  pointsPerSide: 6,
  pointsPerBatch: 16,
  predIouThresh: 0.4,
  stabilityScoreThresh: 0.55,
  stabilityScoreOffset: 0.1,
  boxNmsThresh: 1.0,
};

beforeAll(async () => {
  predictor = await SamPredictor.load(gpu(), TINY_WEIGHTS);
  image = photo('dog');
});

interface Expected {
  point: [number, number];
  iou: number;
  stability: number;
  box: [number, number, number, number];
  area: number;
}

/** Upstream's per-batch filters for the full-image crop, written out independently (before NMS). */
async function referenceFiltered(o: AmgOptions): Promise<Expected[]> {
  const W = image.width;
  const H = image.height;
  const emb = await predictor.encode(image);
  const grid = buildPointGrid(o.pointsPerSide!);
  const n = grid.length / 2;
  const found: Expected[] = [];
  try {
    for (let b0 = 0; b0 < n; b0 += o.pointsPerBatch!) {
      const pts: [number, number][] = [];
      for (let k = b0; k < Math.min(n, b0 + o.pointsPerBatch!); k++) pts.push([grid[2 * k]! * W, grid[2 * k + 1]! * H]);
      const preds = await predictor.predictBatch(emb, pts.map((p) => ({ points: [p], labels: [1] })), { multimaskOutput: true, returnLogits: true });
      preds.forEach((p, b) => {
        for (let j = 0; j < p.masks.length; j++) {
          const iou = p.iouPredictions[j]!;
          if (!(iou > o.predIouThresh!)) continue;
          const logits = p.logits![j]!;
          let hi = 0;
          let lo = 0;
          for (let i = 0; i < logits.length; i++) {
            if (logits[i]! > o.stabilityScoreOffset!) hi++;
            if (logits[i]! > -o.stabilityScoreOffset!) lo++;
          }
          const stability = Math.fround(hi / lo);
          if (!(stability >= o.stabilityScoreThresh!)) continue;
          const m = p.masks[j]!;
          let [x0, y0, x1, y1, area] = [W, H, -1, -1, 0];
          for (let y = 0; y < H; y++) {
            for (let x = 0; x < W; x++) {
              if (!m[y * W + x]) continue;
              area++;
              x0 = Math.min(x0, x);
              x1 = Math.max(x1, x);
              y0 = Math.min(y0, y);
              y1 = Math.max(y1, y);
            }
          }
          const box: [number, number, number, number] = area ? [x0, y0, x1, y1] : [0, 0, 0, 0];
          // The whole image is the crop: no box is near a crop edge that is not an image edge.
          found.push({ point: pts[b]!, iou, stability, box, area });
        }
      });
    }
  } finally {
    emb.dispose();
  }
  return found;
}

/** Greedy NMS by predicted IoU (stable for ties), IoU of XYXY boxes with areas (x1-x0)(y1-y0). */
function referenceNms(found: Expected[], thresh: number): Expected[] {
  const order = found.map((_, i) => i).sort((a, b) => found[b]!.iou - found[a]!.iou || a - b);
  const kept: Expected[] = [];
  for (const i of order) if (!kept.some((k) => boxIou(k.box, found[i]!.box) > thresh)) kept.push(found[i]!);
  return kept;
}

function boxIou(a: readonly number[], b: readonly number[]): number {
  const inter = Math.max(0, Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!)) * Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
  return inter / ((a[2]! - a[0]!) * (a[3]! - a[1]!) + (b[2]! - b[0]!) * (b[3]! - b[1]!) - inter);
}

const xyxy = (m: AmgMask) => [m.bbox[0], m.bbox[1], m.bbox[0] + m.bbox[2], m.bbox[1] + m.bbox[3]];

/** Every record describes its own segmentation: area, inclusive box, scores above the gates. */
function checkWellFormed(masks: AmgMask[], o: AmgOptions, W: number, H: number): void {
  for (const [i, m] of masks.entries()) {
    const seg = m.segmentation instanceof Uint8Array ? m.segmentation : rleToMask(m.segmentation as Rle);
    expect(seg.length, `mask ${i} size`).toBe(W * H);
    let [x0, y0, x1, y1, area] = [W, H, -1, -1, 0];
    for (let p = 0; p < seg.length; p++) {
      if (!seg[p]) continue;
      area++;
      const x = p % W;
      const y = Math.floor(p / W);
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
    expect(m.area, `mask ${i} area`).toBe(area);
    expect(area, `mask ${i} non-empty`).toBeGreaterThan(0);
    expect(m.bbox, `mask ${i} bbox (XYWH)`).toEqual([x0, y0, x1 - x0, y1 - y0]);
    expect(m.predictedIou, `mask ${i} predicted IoU`).toBeGreaterThan(o.predIouThresh!);
    expect(m.stabilityScore, `mask ${i} stability`).toBeGreaterThanOrEqual(o.stabilityScoreThresh!);
    const [cx, cy, cw, ch] = m.cropBox;
    const [px, py] = m.pointCoords[0]!;
    expect(px >= cx && px <= cx + cw && py >= cy && py <= cy + ch, `mask ${i} point inside its crop`).toBe(true);
    expect(x0 >= cx && x1 < cx + cw && y0 >= cy && y1 < cy + ch, `mask ${i} inside its crop`).toBe(true);
  }
}

describe('SamAutomaticMaskGenerator (tiny SAM, dog photo)', () => {
  it('matches a CPU re-implementation of the filters on the same logits; outputs well-formed', async () => {
    const found = await referenceFiltered(OPTS);
    const candidates = 3 * OPTS.pointsPerSide! ** 2;
    expect(found.length, 'the thresholds keep some masks and drop others').toBeGreaterThan(2);
    expect(found.length).toBeLessThan(candidates);
    for (const nmsThresh of [1.0, 0.7]) {
      const o = { ...OPTS, boxNmsThresh: nmsThresh };
      const amg = new SamAutomaticMaskGenerator(predictor, o);
      const t0 = performance.now();
      const masks = await amg.generate(image);
      const ms = performance.now() - t0;
      const ref = referenceNms(found, nmsThresh);
      console.log(`AMG (box NMS ${nmsThresh}): ${masks.length} masks of ${candidates} candidates (${found.length} pass the IoU and stability filters) ` +
        `in ${(ms / 1000).toFixed(1)} s; timings ${JSON.stringify(amg.lastTimings, (_, v) => (typeof v === 'number' ? Math.round(v) : v))}`);
      expect(amg.lastTimings.masksDecoded).toBe(candidates);
      expect(masks.length).toBe(ref.length);
      masks.forEach((m, i) => {
        const r = ref[i]!;
        expect(m.pointCoords[0], `mask ${i} point`).toEqual(r.point);
        expect(m.predictedIou, `mask ${i} iou`).toBe(r.iou);
        expect(m.stabilityScore, `mask ${i} stability`).toBe(r.stability);
        expect(xyxy(m), `mask ${i} box`).toEqual(r.box);
        expect(m.area, `mask ${i} area`).toBe(r.area);
        expect(m.cropBox).toEqual([0, 0, image.width, image.height]);
      });
      checkWellFormed(masks, o, image.width, image.height);
      for (let i = 0; i < masks.length; i++) {
        for (let j = i + 1; j < masks.length; j++) expect(boxIou(xyxy(masks[i]!), xyxy(masks[j]!)), `NMS: masks ${i}, ${j}`).toBeLessThanOrEqual(nmsThresh);
      }
    }
  });

  it('uncompressed RLE output equals the binary masks', async () => {
    const o = { ...OPTS, pointsPerSide: 4 };
    const bin = await new SamAutomaticMaskGenerator(predictor, o).generate(image);
    const rle = await new SamAutomaticMaskGenerator(predictor, { ...o, outputMode: 'uncompressed_rle' }).generate(image);
    expect(rle.length).toBe(bin.length);
    rle.forEach((m, i) => {
      const r = m.segmentation as Rle;
      expect(r.size).toEqual([image.height, image.width]);
      expect(r.counts.reduce((a, b) => a + b, 0)).toBe(image.width * image.height);
      expect(Array.from(rleToMask(r))).toEqual(Array.from(bin[i]!.segmentation as Uint8Array));
    });
  });

  it('crop layers: crops from generate_crop_boxes, masks inside their crop, cross-crop NMS', async () => {
    const o: AmgOptions = { ...OPTS, pointsPerSide: 4, cropNLayers: 1, cropNPointsDownscaleFactor: 2, boxNmsThresh: 0.7, cropNmsThresh: 0.7 };
    const amg = new SamAutomaticMaskGenerator(predictor, o);
    const masks = await amg.generate(image);
    expect(amg.lastTimings.masksDecoded).toBe(3 * (16 + 4 * 4));
    const crops = generateCropBoxes([image.height, image.width], 1, 512 / 1500).boxes.map((b) => JSON.stringify([b[0], b[1], b[2] - b[0], b[3] - b[1]]));
    console.log(`AMG with one crop layer: ${masks.length} masks, crops used ${[...new Set(masks.map((m) => JSON.stringify(m.cropBox)))].join(' ')}`);
    expect(masks.length).toBeGreaterThan(0);
    for (const m of masks) expect(crops).toContain(JSON.stringify(m.cropBox));
    checkWellFormed(masks, o, image.width, image.height);
    for (let i = 0; i < masks.length; i++) {
      for (let j = i + 1; j < masks.length; j++) expect(boxIou(xyxy(masks[i]!), xyxy(masks[j]!))).toBeLessThanOrEqual(0.7);
    }
  });

  it('small-region clean-up: no hole or island below the area remains', async () => {
    const minArea = 400;
    const o: AmgOptions = { ...OPTS, pointsPerSide: 4, minMaskRegionArea: minArea };
    const raw = await new SamAutomaticMaskGenerator(predictor, { ...o, minMaskRegionArea: 0 }).generate(image);
    const masks = await new SamAutomaticMaskGenerator(predictor, o).generate(image);
    const W = image.width;
    const H = image.height;
    let changed = 0;
    for (const m of masks) {
      const seg = m.segmentation as Uint8Array;
      const fg = connectedComponents(seg, H, W);
      const islands = fg.sizes.slice(1);
      if (islands.length > 1) for (const s of islands) expect(s).toBeGreaterThanOrEqual(minArea);
      const inv = seg.map((v) => 1 - v);
      for (const s of connectedComponents(inv, H, W).sizes.slice(1)) expect(s).toBeGreaterThanOrEqual(minArea);
      if (!raw.some((r) => Array.from(r.segmentation as Uint8Array).every((v, i) => v === seg[i]))) changed++;
    }
    console.log(`small-region clean-up: ${raw.length} masks before, ${masks.length} after, ${changed} changed`);
    checkWellFormed(masks, { ...o }, W, H);
  });

  it('option errors', () => {
    expect(() => new SamAutomaticMaskGenerator(predictor, { pointsPerSide: null })).toThrow(/exactly one of pointsPerSide and pointGrids/);
    expect(() => new SamAutomaticMaskGenerator(predictor, { pointsPerSide: 4, pointGrids: [buildPointGrid(2)] })).toThrow(/exactly one/);
    expect(() => new SamAutomaticMaskGenerator(predictor, { pointsPerBatch: 0 })).toThrow(/pointsPerBatch must be an integer in \[1, 4096\], got 0/);
    expect(() => new SamAutomaticMaskGenerator(predictor, { pointsPerSide: 3000 })).toThrow(/pointsPerSide must be an integer in \[1, 1024\], got 3000/);
    expect(() => new SamAutomaticMaskGenerator(predictor, { cropNLayers: 8 })).toThrow(/cropNLayers must be an integer in \[0, 6\], got 8/);
    expect(() => new SamAutomaticMaskGenerator(predictor, { pointsPerSide: null, pointGrids: [buildPointGrid(2)], cropNLayers: 1 })).toThrow(/1 point grids for 2 crop layers/);
  });
});
