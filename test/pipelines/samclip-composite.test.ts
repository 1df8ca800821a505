/**
 * Composite mode (public SAM + CLIP weights) on small configurations: the reference fixtures' tiny
 * SAM and tiny CLIP (seeded weights), end to end on a real photo. Its stages are covered one by
 * one elsewhere (SAM encoder / decoder vs the fixtures, dense CLIP vs ONNX Runtime); here the glue
 * is checked against independent computations: classification = the CLIP classifier's, head-only
 * labels = argmax of the bilinearly upsampled scores computed on the host, the native pass = SAM's
 * own encode + the dense features resampled to the native grid, refined maps well-formed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIP_MEAN, CLIP_STD, fixedResize, normalizeToChw } from '../../src/image/preprocess.js';
import { readTensor } from '../../src/kernels/copy.js';
import type { ClipModel } from '../../src/model/clip/clip.js';
import { resampleToNativeGrid } from '../../src/model/samclip/backends.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { ClipClassifier } from '../../src/pipelines/clip-classifier.js';
import { DenseClip } from '../../src/model/clip/dense-clip.js';
import { expectClose } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { usePhotos } from '../helpers/photos.js';
import { REFERENCE, agreement } from '../helpers/reference.js';
import { loadTiny } from '../model/clip-helpers.js';

const gpu = useGpu();
const photo = usePhotos();
const dog = () => photo('dog');
const CLASSES = ['dog', 'grass', 'sky', 'road'];
let clip: ClipModel;
let model: SamClip;

beforeAll(async () => {
  clip = await loadTiny(gpu());
  model = await SamClip.composite(gpu(), { sam: `${REFERENCE}/sam_tiny.weights.safetensors`, clip }, { dense: { window: 64, stride: 32 } });
});
afterAll(() => {
  model?.dispose();
  clip?.dispose();
});

describe('resampling dense features to the native grid', () => {
  it('bilinear at token centres, zero in the padding', () => {
    // A 2 x 4 grid whose feature 0 is the column index and feature 1 the row index.
    const src = new Float32Array(2 * 4 * 2);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) src.set([j, i], (i * 4 + j) * 2);
    // Native grid 4 x 4 of 16-px tokens; the image fills 32 x 64 px of the 64 x 64 input.
    const out = resampleToNativeGrid(src, 2, 4, 2, 4, 16, [32, 64]);
    // Token (0, j): centre x = 16 j + 8 of 64 -> source column (16 j + 8) / 64 * 4 - 0.5 = j.
    for (let j = 0; j < 4; j++) expect(out[(0 * 4 + j) * 2]).toBeCloseTo(j, 6);
    // Token (1, 0): centre y = 24 of 32 -> source row 24 / 32 * 2 - 0.5 = 1.
    expect(out[(1 * 4 + 0) * 2 + 1]).toBeCloseTo(1, 6);
    // Rows 2 and 3 lie in the padding.
    expect(Array.from(out.slice(2 * 4 * 2))).toEqual(new Array(2 * 4 * 2).fill(0));
  });
});

describe('composite mode, tiny SAM + tiny CLIP', () => {
  it('reports its configuration', () => {
    expect(model.mode).toBe('composite');
    expect(model.resolutions).toEqual({ native: 256, seg: 128, cls: 64 });
    expect(model.embedDim).toBe(64);
  });

  it('classification equals the CLIP classifier on the same model', async () => {
    const mine = await model.classify(dog(), CLASSES, { templates: 'single' });
    const ref = await (await ClipClassifier.create(gpu(), clip)).classify(dog(), CLASSES, { templates: ['a photo of a {}.'] });
    expectClose(mine.probs, ref.probs, { relL2: 1e-5 }, 'composite classify probs');
    expect(mine.ranked.map((r) => r.label)).toEqual(ref.ranked.map((r) => r.label));
  });

  it('head-only labels = argmax of the host-upsampled scores of the dense features', async () => {
    const ctx = gpu();
    const r = await model.segmentSemantic(dog(), CLASSES, { templates: 'single' });
    // Independent path: the dense features of the bicubic-resized, CLIP-normalised image, S on the host.
    const dc = new DenseClip(ctx, clip);
    const resized = fixedResize(dog(), 128, 128, 'bicubic');
    const x = ctx.upload(normalizeToChw(resized, { mean: CLIP_MEAN, std: CLIP_STD, divide255: true }), [1, 3, 128, 128]);
    const f = await dc.features(ctx, x, { window: 64, stride: 32 });
    const feats = (await readTensor(ctx, f)) as Float32Array;
    f.dispose();
    x.dispose();
    dc.dispose();
    const T = await model.classEmbeddings(CLASSES, { templates: 'single' });
    const g = 8;
    const S = new Float64Array(CLASSES.length * g * g);
    for (let c = 0; c < CLASSES.length; c++) {
      for (let t = 0; t < g * g; t++) {
        let s = 0;
        for (let d = 0; d < 64; d++) s += feats[t * 64 + d]! * T[c * 64 + d]!;
        S[c * g * g + t] = model.logitScale * s;
      }
    }
    const [H, W] = [534, 800];
    const tap = (o: number, n: number, out: number) => {
      const s = Math.max((o + 0.5) * (n / out) - 0.5, 0);
      const i0 = Math.min(Math.floor(s), n - 1);
      return [i0, Math.min(i0 + 1, n - 1), s - i0] as const;
    };
    let same = 0;
    let n = 0;
    for (let y = 0; y < H; y += 7) {
      const [y0, y1, wy] = tap(y, g, H);
      for (let xx = 0; xx < W; xx += 7) {
        const [x0, x1, wx] = tap(xx, g, W);
        let best = -Infinity;
        let arg = 0;
        for (let c = 0; c < CLASSES.length; c++) {
          const at = (i: number, j: number) => S[c * g * g + i * g + j]!;
          const v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) + wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1));
          if (v > best) [best, arg] = [v, c];
        }
        same += r.labelMap[y * W + xx] === arg ? 1 : 0;
        n++;
      }
    }
    console.log(`composite head-only: ${same} of ${n} sampled pixels agree with the host computation`);
    expect(same / n).toBeGreaterThanOrEqual(0.999);
  });

  it('one native pass = SAM encode + dense features resampled to the 16 x 16 grid', async () => {
    const ctx = gpu();
    const e = await model.embed(dog());
    try {
      const own = await model.predictor.encode(dog());
      expect(Array.from((await readTensor(ctx, e.sam.tensor)) as Float32Array)).toEqual(Array.from((await readTensor(ctx, own.tensor)) as Float32Array));
      own.dispose();
      const sq = await model.backend.denseSquare(ctx, dog(), 128);
      const expected = resampleToNativeGrid((await readTensor(ctx, sq)) as Float32Array, 8, 8, 64, 16, 16, e.inputSize);
      sq.dispose();
      expectClose((await readTensor(ctx, e.dense)) as Float32Array, expected, { relL2: 1e-6 }, 'native dense');
    } finally {
      e.dispose();
    }
  });

  it('refined segmentation and text-prompted masks run end to end on the photo', async () => {
    const r = await model.segmentSemantic(dog(), CLASSES, { refine: true });
    expect(r.refined).toBe(true);
    expect([r.width, r.height]).toEqual([800, 534]);
    expect(r.decodedClasses!.every((c) => c >= 0 && c < CLASSES.length)).toBe(true);
    let max = 0;
    for (const v of r.labelMap) max = Math.max(max, v);
    expect(max).toBeLessThan(CLASSES.length);
    const head = await model.segmentSemantic(dog(), CLASSES, {});
    console.log(`composite refined: decoded ${r.decodedClasses!.map((c) => CLASSES[c]).join(', ')}; fallback ${r.fallbackPixels} px; agreement with head-only ${(100 * agreement(r.labelMap, head.labelMap)).toFixed(1)}%`);
    const t = await model.segmentText(dog(), 'a dog');
    expect(t.masks.length).toBe(3);
    expect(t.best.length).toBe(800 * 534);
  });

  it('errors: a CLIP model without a text tower', async () => {
    const visionOnly = await loadTiny(gpu(), { towers: 'vision' });
    await expect(SamClip.composite(gpu(), { sam: `${REFERENCE}/sam_tiny.weights.safetensors`, clip: visionOnly })).rejects.toThrow(/needs both CLIP towers/);
    visionOnly.dispose();
  });
});
