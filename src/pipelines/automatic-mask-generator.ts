/**
 * SAM's "segment everything" (segment_anything/automatic_mask_generator.py): prompt the model
 * with a grid of single foreground points, keep the confident and stable masks, remove
 * duplicates, optionally repeat on overlapping crops and clean up small regions.
 *
 * Per crop (the whole image first; `cropNLayers` adds (2^i)^2 crops per layer):
 *   encode the crop; for each batch of `pointsPerBatch` grid points decode 3 masks per point;
 *   drop masks with predicted IoU <= predIouThresh; upscale the survivors to the crop size and
 *   drop those with stability score < stabilityScoreThresh (|logits > 1| / |logits > -1|);
 *   binarise (> 0), box them, drop boxes near a crop edge that is not an image edge;
 *   box NMS inside the crop (boxNmsThresh, scored by predicted IoU).
 * Across crops: NMS preferring smaller crops (score 1 / crop area). Then, with
 * minMaskRegionArea > 0: fill small holes, remove small islands, NMS again preferring unchanged masks.
 *
 * The same pipeline serves SAM and SAM 2 (sam2/automatic_mask_generator.py differs only in its
 * default predicted-IoU threshold, 0.8, which the predictor supplies: `amgDefaults`): anything
 * implementing `AmgPredictor` (SamPredictor, Sam2Predictor) can be used.
 *
 * Where it runs: decoding and the upscaling of the low-res logits on the GPU; the IoU filter
 * reads back only IoU predictions, so only surviving masks are upscaled (gathered rows); the
 * stability counts are a GPU reduction and the binary masks come back bit-packed. Boxes, NMS,
 * RLE and connected components run on the CPU.
 */
import type { GpuContext } from '../gpu/context.js';
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import type { Tensor } from '../gpu/tensor.js';
import { type ImageU8, checkImage, cropImage, toRgb } from '../image/image.js';
import { type ImageInput, toImageU8 } from '../image/image-input.js';
import { gatherRows } from '../kernels/gather.js';
import { thresholdBits, thresholdCounts, unpackMaskBits } from '../model/sam/stage-kernels.js';
import {
  AmgError,
  type BoxXyxy,
  type Rle,
  areaFromRle,
  boxXyxyToXywh,
  buildAllLayerPointGrids,
  generateCropBoxes,
  isBoxNearCropEdge,
  maskToBox,
  maskToRle,
  nms,
  removeSmallRegions,
  rleToMask,
  stabilityScore,
  uncropBox,
  uncropMask,
} from './amg-utils.js';

/** An encoded image as the generator needs it. */
export interface AmgEmbedding {
  readonly originalSize: readonly [number, number];
  dispose(): void;
}

/** What the generator needs from a predictor (SamPredictor, Sam2Predictor). */
export interface AmgPredictor<E extends AmgEmbedding = AmgEmbedding> {
  readonly ctx: GpuContext;
  /** Logits above this are inside a mask. */
  readonly maskThreshold: number;
  /** Option defaults of this model's official generator, where they differ from SAM's. */
  readonly amgDefaults?: Partial<Pick<AmgOptions, 'predIouThresh'>>;
  /** `encode` paced by a larger call's pacer (progress, cancellation), or not. */
  encodePaced(image: ImageU8, pacer: Pacer | null): Promise<E>;
  /** Points in image pixels (interleaved x, y) -> the model's input frame. */
  gridToModelFrame(points: ArrayLike<number>, emb: E): number[];
  /**
   * One foreground point per prompt set (model frame), multimask: low-res logits [B, M, L, L] and
   * IoU [B, M], owned by the caller (not by any scope).
   */
  decodePoints(emb: E, coords: number[]): Promise<{ masks: Tensor; iouPred: Tensor }>;
  /** Low-res logits [N, 1, L, L] -> logits at the image size [N, 1, H, W]. */
  postprocess(emb: E, lowRes: Tensor): Tensor;
  /** Masks `postprocess` can take at once for this image. */
  postprocessChunk(emb: E): number;
}

export interface AmgOptions {
  /** Points per side of the grid (32); null when `pointGrids` is given. */
  pointsPerSide?: number | null;
  /** Points decoded together (64). */
  pointsPerBatch?: number;
  predIouThresh?: number;
  stabilityScoreThresh?: number;
  stabilityScoreOffset?: number;
  boxNmsThresh?: number;
  cropNLayers?: number;
  cropNmsThresh?: number;
  cropOverlapRatio?: number;
  cropNPointsDownscaleFactor?: number;
  /** Explicit grids per crop layer, interleaved (x, y) in [0, 1]. Exclusive with pointsPerSide. */
  pointGrids?: Float64Array[] | null;
  /** Fill holes and remove islands smaller than this (pixels); 0 = off. */
  minMaskRegionArea?: number;
  /** 'binary_mask' (Uint8Array H x W) or 'uncompressed_rle'. */
  outputMode?: 'binary_mask' | 'uncompressed_rle';
}

export interface AmgMask {
  segmentation: Uint8Array | Rle;
  /** Pixels in the mask. */
  area: number;
  /** XYWH of the inclusive pixel box (w = x1 - x0, as upstream). */
  bbox: BoxXyxy;
  predictedIou: number;
  /** The grid point that produced the mask, in image pixels. */
  pointCoords: [number, number][];
  stabilityScore: number;
  /** XYWH of the crop the mask came from. */
  cropBox: BoxXyxy;
}

/** MaskData of upstream: one record per surviving mask, masks kept as RLE. */
export interface AmgRecord {
  rle: Rle;
  box: BoxXyxy;
  iou: number;
  point: [number, number];
  stability: number;
  crop: BoxXyxy;
}

const DEFAULTS = {
  pointsPerSide: 32,
  pointsPerBatch: 64,
  predIouThresh: 0.88,
  stabilityScoreThresh: 0.95,
  stabilityScoreOffset: 1.0,
  boxNmsThresh: 0.7,
  cropNLayers: 0,
  cropNmsThresh: 0.7,
  cropOverlapRatio: 512 / 1500,
  cropNPointsDownscaleFactor: 1,
  minMaskRegionArea: 0,
  outputMode: 'binary_mask' as const,
};

/** The part of a crop's progress given to its image encoding (the point batches share the rest). */
const ENCODE_SHARE = 0.4;

export class SamAutomaticMaskGenerator<E extends AmgEmbedding = AmgEmbedding> {
  readonly opts: Required<Omit<AmgOptions, 'pointGrids' | 'pointsPerSide'>>;
  readonly pointGrids: Float64Array[];
  /** Timings of the last `generate` (ms): encode, decode + filters, NMS and clean-up. */
  lastTimings: { encodeMs: number; decodeMs: number; postMs: number; masksDecoded: number } = { encodeMs: 0, decodeMs: 0, postMs: 0, masksDecoded: 0 };

  constructor(
    readonly predictor: AmgPredictor<E>,
    opts: AmgOptions = {},
  ) {
    const pps = opts.pointsPerSide === undefined && !opts.pointGrids ? DEFAULTS.pointsPerSide : opts.pointsPerSide ?? null;
    if ((pps === null) === !opts.pointGrids) throw new AmgError('SamAutomaticMaskGenerator: give exactly one of pointsPerSide and pointGrids');
    const o = { ...DEFAULTS, ...predictor.amgDefaults, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS & AmgOptions;
    const positiveInt = (v: number, what: string) => {
      if (!Number.isInteger(v) || v < 1) throw new AmgError(`SamAutomaticMaskGenerator: ${what} must be a positive integer, got ${v}`);
    };
    // Upper bounds keep a typo from planning millions of decodes: 1024 points per side is 1 M points
    // per crop, and 6 crop layers are 1,365 crops.
    const inRange = (v: number, what: string, min: number, max: number) => {
      if (!Number.isInteger(v) || v < min || v > max) throw new AmgError(`SamAutomaticMaskGenerator: ${what} must be an integer in [${min}, ${max}], got ${v}`);
    };
    inRange(o.pointsPerBatch, 'pointsPerBatch', 1, 4096);
    positiveInt(o.cropNPointsDownscaleFactor, 'cropNPointsDownscaleFactor');
    inRange(o.cropNLayers, 'cropNLayers', 0, 6);
    if (o.outputMode !== 'binary_mask' && o.outputMode !== 'uncompressed_rle') throw new AmgError(`SamAutomaticMaskGenerator: unknown outputMode '${String(o.outputMode)}'`);
    if (pps !== null) {
      inRange(pps, 'pointsPerSide', 1, 1024);
      this.pointGrids = buildAllLayerPointGrids(pps, o.cropNLayers, o.cropNPointsDownscaleFactor);
    } else {
      this.pointGrids = opts.pointGrids!;
      if (this.pointGrids.length < o.cropNLayers + 1) throw new AmgError(`SamAutomaticMaskGenerator: ${this.pointGrids.length} point grids for ${o.cropNLayers + 1} crop layers`);
    }
    this.opts = {
      pointsPerBatch: o.pointsPerBatch,
      predIouThresh: o.predIouThresh,
      stabilityScoreThresh: o.stabilityScoreThresh,
      stabilityScoreOffset: o.stabilityScoreOffset,
      boxNmsThresh: o.boxNmsThresh,
      cropNLayers: o.cropNLayers,
      cropNmsThresh: o.cropNmsThresh,
      cropOverlapRatio: o.cropOverlapRatio,
      cropNPointsDownscaleFactor: o.cropNPointsDownscaleFactor,
      minMaskRegionArea: o.minMaskRegionArea,
      outputMode: o.outputMode,
    };
  }

  /** Masks for the whole image (HWC uint8; non-RGB converted like convert('RGB')). */
  async generate(input: ImageInput, opts: ProgressOptions = {}): Promise<AmgMask[]> {
    const image = await toImageU8(input, { what: 'SamAutomaticMaskGenerator.generate', signal: opts.signal });
    checkImage(image, 'SamAutomaticMaskGenerator.generate');
    const rgb = toRgb(image);
    this.lastTimings = { encodeMs: 0, decodeMs: 0, postMs: 0, masksDecoded: 0 };
    const pacer = Pacer.for(this.predictor.ctx, opts, 'SamAutomaticMaskGenerator.generate');
    let data = await this.generateMasks(rgb, pacer);
    const t0 = performance.now();
    if (this.opts.minMaskRegionArea > 0) {
      data = postprocessSmallRegions(data, this.opts.minMaskRegionArea, Math.max(this.opts.boxNmsThresh, this.opts.cropNmsThresh));
    }
    const out = data.map((r) => ({
      segmentation: this.opts.outputMode === 'binary_mask' ? rleToMask(r.rle) : r.rle,
      area: areaFromRle(r.rle),
      bbox: boxXyxyToXywh(r.box),
      predictedIou: r.iou,
      pointCoords: [r.point],
      stabilityScore: r.stability,
      cropBox: boxXyxyToXywh(r.crop),
    }));
    this.lastTimings.postMs += performance.now() - t0;
    return out;
  }

  private async generateMasks(image: ImageU8, pacer: Pacer | null): Promise<AmgRecord[]> {
    const orig: [number, number] = [image.height, image.width];
    const { boxes: crops, layers } = generateCropBoxes(orig, this.opts.cropNLayers, this.opts.cropOverlapRatio);
    let data: AmgRecord[] = [];
    const C = crops.length;
    for (let i = 0; i < C; i++) data.push(...(await this.processCrop(image, crops[i]!, layers[i]!, orig, pacer?.part(i / C, (i + 1) / C) ?? null)));
    if (crops.length > 1) {
      const t0 = performance.now();
      // Prefer masks from smaller crops.
      const scores = data.map((r) => 1 / ((r.crop[2] - r.crop[0]) * (r.crop[3] - r.crop[1])));
      data = nms(data.map((r) => r.box), scores, this.opts.cropNmsThresh).map((i) => data[i]!);
      this.lastTimings.postMs += performance.now() - t0;
    }
    return data;
  }

  private async processCrop(image: ImageU8, crop: BoxXyxy, layer: number, orig: [number, number], pacer: Pacer | null): Promise<AmgRecord[]> {
    const [x0, y0, x1, y1] = crop;
    const full = x0 === 0 && y0 === 0 && x1 === image.width && y1 === image.height;
    const cropped = full ? image : cropImage(image, x0, y0, x1 - x0, y1 - y0);
    const t0 = performance.now();
    // The encoder is a fixed share of a crop's work here; the batches of points share the rest.
    const emb = await this.predictor.encodePaced(cropped, pacer?.part(0, ENCODE_SHARE) ?? null);
    this.lastTimings.encodeMs += performance.now() - t0;
    try {
      const grid = this.pointGrids[layer]!;
      const n = grid.length / 2;
      const points = new Float64Array(2 * n);
      for (let k = 0; k < n; k++) {
        points[2 * k] = grid[2 * k]! * cropped.width;
        points[2 * k + 1] = grid[2 * k + 1]! * cropped.height;
      }
      let data: AmgRecord[] = [];
      const t1 = performance.now();
      for (let b0 = 0; b0 < n; b0 += this.opts.pointsPerBatch) {
        const b1 = Math.min(n, b0 + this.opts.pointsPerBatch);
        data.push(...(await this.processBatch(emb, points.subarray(2 * b0, 2 * b1), crop, orig)));
        pacer?.check();
        pacer?.note(`masks for points ${b1}/${n}`, ENCODE_SHARE * n + (1 - ENCODE_SHARE) * b1, n);
      }
      this.lastTimings.decodeMs += performance.now() - t1;
      const t2 = performance.now();
      // Duplicates within the crop, in crop coordinates (boxes are moved afterwards).
      const keep = nms(data.map((r) => r.box), data.map((r) => r.iou), this.opts.boxNmsThresh);
      data = keep.map((i) => data[i]!);
      for (const r of data) {
        r.box = uncropBox(r.box, crop);
        r.point = [r.point[0] + x0, r.point[1] + y0];
      }
      this.lastTimings.postMs += performance.now() - t2;
      return data;
    } finally {
      emb.dispose();
    }
  }

  /** One batch of grid points (crop pixels): decode, filter, binarise, box, RLE. */
  private async processBatch(emb: E, points: Float64Array, crop: BoxXyxy, orig: [number, number]): Promise<AmgRecord[]> {
    const predictor = this.predictor;
    const ctx = predictor.ctx;
    const o = this.opts;
    const [ch, cw] = emb.originalSize;
    const [origH, origW] = orig;
    const coords = predictor.gridToModelFrame(points, emb);
    const B = coords.length / 2;
    const task = ctx.task(); // not an async scope: other calls may run on the context meanwhile
    try {
      const out = await predictor.decodePoints(emb, coords);
      task.own(out.masks);
      task.own(out.iouPred);
      const M = out.masks.dim(1);
      const L = out.masks.dim(2);
      this.lastTimings.masksDecoded += B * M;
      const iou = (await ctx.read(out.iouPred)) as Float32Array;
      // Mask j of point b is row b * M + j, like upstream's flatten(0, 1); the point repeats M times.
      const keep1: number[] = [];
      for (let i = 0; i < B * M; i++) if (!(o.predIouThresh > 0) || iou[i]! > o.predIouThresh) keep1.push(i);
      const records: AmgRecord[] = [];
      if (keep1.length === 0) return records;
      const table = task.run(() => out.masks.reshape([B * M, L * L]));
      const chunk = predictor.postprocessChunk(emb);
      const t = predictor.maskThreshold;
      for (let k0 = 0; k0 < keep1.length; k0 += chunk) {
        const ids = keep1.slice(k0, k0 + chunk);
        const { up, bits } = task.run(() => {
          const up = predictor.postprocess(emb, gatherRows(ctx, table, ids).reshape([ids.length, 1, L, L]));
          return { up, bits: thresholdBits(ctx, up, t) };
        });
        const counts = await thresholdCounts(ctx, up, t + o.stabilityScoreOffset, t - o.stabilityScoreOffset);
        const words = (await ctx.read(bits)) as Uint32Array;
        up.dispose();
        bits.dispose();
        for (let k = 0; k < ids.length; k++) {
          const stability = stabilityScore(counts[2 * k]!, counts[2 * k + 1]!);
          if (o.stabilityScoreThresh > 0 && !(stability >= o.stabilityScoreThresh)) continue;
          const mask = unpackMaskBits(words, k, ch * cw);
          const box = maskToBox(mask, ch, cw);
          if (isBoxNearCropEdge(box, crop, [0, 0, origW, origH])) continue;
          const i = ids[k]!;
          const b = Math.floor(i / M);
          records.push({
            rle: maskToRle(uncropMask(mask, crop, origH, origW), origH, origW),
            box,
            iou: iou[i]!,
            point: [points[2 * b]!, points[2 * b + 1]!],
            stability,
            crop,
          });
        }
      }
      return records;
    } finally {
      task.dispose();
    }
  }
}

/**
 * postprocess_small_regions: fill small holes and remove small islands in every mask, then NMS
 * with unchanged masks preferred (score 1) over changed ones (score 0). Changed masks that survive
 * get their new RLE and box.
 */
export function postprocessSmallRegions(data: AmgRecord[], minArea: number, nmsThresh: number): AmgRecord[] {
  if (data.length === 0) return data;
  const masks: Uint8Array[] = [];
  const boxes: BoxXyxy[] = [];
  const scores: number[] = [];
  for (const r of data) {
    const [h, w] = r.rle.size;
    const m0 = rleToMask(r.rle);
    const a = removeSmallRegions(m0, h, w, minArea, 'holes');
    const b = removeSmallRegions(a.mask, h, w, minArea, 'islands');
    masks.push(b.mask);
    boxes.push(maskToBox(b.mask, h, w));
    scores.push(a.changed || b.changed ? 0 : 1);
  }
  const keep = nms(boxes, scores, nmsThresh);
  return keep.map((i) => {
    const r = data[i]!;
    if (scores[i] === 0) {
      const [h, w] = r.rle.size;
      return { ...r, rle: maskToRle(masks[i]!, h, w), box: boxes[i]! };
    }
    return r;
  });
}
