/**
 * The merged SAM-CLIP pipelines end to end on the reference photos (the .jpg decoded by readImage in, label maps out)
 * against test/fixtures/reference/samclip: classification probabilities, the shared native pass
 * (SAM embedding and dense CLIP features from one backbone pass), head-only and refined label maps
 * (>= 99.9% of pixels), decoded classes and points (exact); plus the API's options (background,
 * seeded points, a precomputed embedding, the SAM predictor on the shared embedding,
 * text-prompted masks) and its errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageU8 } from '../../src/image/image.js';
import { readTensor } from '../../src/kernels/copy.js';
import { SamClip, type SamClipImageEmbedding } from '../../src/pipelines/samclip.js';
import { maskIoU } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { usePhotos } from '../helpers/photos.js';
import { REFERENCE, agreement, expectReference, openReference } from '../helpers/reference.js';
import { BUNDLE, CLASSES, PHOTOS, checkRef, decodeBitPlanes } from '../model/samclip-fixture.js';

const gpu = useGpu();
let model: SamClip;
const photo = usePhotos();

beforeAll(async () => {
  model = await SamClip.load(gpu(), BUNDLE);
});
afterAll(() => model?.dispose());

for (const p of PHOTOS) {
  describe(`photo ${p.name}`, () => {
    const [H, W] = p.original_size;
    let emb: SamClipImageEmbedding;
    afterAll(() => emb?.dispose());

    it('classification probabilities at 112 px', async () => {
      const f = await openReference(`samclip/${p.file}`);
      const r = await model.classify(photo(p.name), CLASSES);
      const c = expectReference(r.probs, await f.readF32('r112.cls_probs'), p.tensors['r112.cls_probs']!, `${p.name}:cls_probs`);
      console.log(`${p.name}: classify end to end, probs rel_l2 ${c.relL2.toExponential(2)}; top-1 ${r.ranked[0]!.label} ${r.ranked[0]!.prob.toFixed(4)}`);
      expect(r.ranked[0]!.label).toBe(p.refinement_checks.cls_top1);
      await f.close();
    });

    it('one native pass: SAM embedding and dense features', async () => {
      const ctx = gpu();
      emb = await model.embed(photo(p.name));
      expect(emb.inputSize).toEqual(p.input_size);
      const f = await openReference(`samclip/${p.file}`);
      await checkRef(ctx, emb.sam.tensor, f, 'r256.image_embedding', p.tensors['r256.image_embedding']!, `${p.name}:e2e r256.image_embedding`);
      await checkRef(ctx, emb.dense, f, 'r256.dense', p.tensors['r256.dense']!, `${p.name}:e2e r256.dense`);
      await f.close();
    });

    it('head-only semantic segmentation', async () => {
      const f = await openReference(`samclip/${p.file}`);
      const r = await model.segmentSemantic(photo(p.name), CLASSES);
      expect([r.width, r.height, r.refined]).toEqual([W, H, false]);
      const a = agreement(r.labelMap, decodeBitPlanes(new Uint8Array(await f.readRaw('seg.label_map')), 3, H, W));
      console.log(`${p.name}: head-only end to end agreement ${(100 * a).toFixed(4)}%, pixel counts ${Array.from(r.pixelCounts).join(' ')}`);
      expect(a).toBeGreaterThanOrEqual(0.999);
      expect(r.masks.length).toBe(CLASSES.length);
      expect(r.masks[1]!.reduce((s, v) => s + v, 0)).toBe(r.pixelCounts[1]);
      await f.close();
    });

    it('refined semantic segmentation (from the shared embedding): classes, points, label map', async () => {
      const f = await openReference(`samclip/${p.file}`);
      const r = await model.segmentSemantic(emb, CLASSES, { refine: true });
      expect(r.decodedClasses).toEqual(Array.from(await f.readI32('refine.decoded_classes')));
      expect(r.points!.map((q) => q.tokens.length)).toEqual(Array.from(await f.readI32('refine.num_points')));
      const tok = await f.readI32('refine.point_tokens');
      r.points!.forEach((q, c) => q.tokens.forEach((t, k) => expect(t).toEqual([tok[(c * 3 + k) * 2], tok[(c * 3 + k) * 2 + 1]])));
      const a = agreement(r.labelMap, decodeBitPlanes(new Uint8Array(await f.readRaw('refine.label_map')), 3, H, W));
      console.log(`${p.name}: refined end to end agreement ${(100 * a).toFixed(4)}%, fallback pixels ${r.fallbackPixels} (reference ${(p.refinement_checks as { fallback_pixels: number }).fallback_pixels}), IoU ${Array.from(r.iouPredictions!, (v) => v.toFixed(4)).join(' ')}`);
      // 99.99 % from the .jpg (measured 99.9971 % truck, 99.9984 % dog on lavapipe). With a decoder
      // that is not libjpeg-turbo (jpeg-js, max 26 levels off) this fell to 51 % / 68 %.
      expect(a).toBeGreaterThanOrEqual(0.9999);
      await f.close();
    });

    it('refined from the image gives the same map as from the embedding', async () => {
      const a = await model.segmentSemantic(photo(p.name), CLASSES, { refine: true, masks: false });
      const b = await model.segmentSemantic(emb, CLASSES, { masks: false });
      expect(agreement(a.labelMap, b.labelMap)).toBe(1);
      expect(a.masks).toEqual([]);
    });
  });
}

describe('options', () => {
  const img = () => photo('dog');

  it('background prompt and threshold: background is the last label', async () => {
    const plain = await model.segmentSemantic(img(), CLASSES);
    const withPrompt = await model.segmentSemantic(img(), CLASSES, { background: ['sky', 'building'].map((s) => `${s} background`) });
    expect(withPrompt.classes).toEqual([...CLASSES, 'background']);
    let top = 0;
    for (const v of withPrompt.labelMap) top = Math.max(top, v);
    expect(top).toBeLessThanOrEqual(CLASSES.length);
    expect(withPrompt.pixelCounts[CLASSES.length]).toBeGreaterThan(0);
    const zero = await model.segmentSemantic(img(), CLASSES, { backgroundThreshold: 0 });
    expect(agreement(zero.labelMap, plain.labelMap)).toBe(1);
    expect(zero.pixelCounts[CLASSES.length]).toBe(0);
    const half = await model.segmentSemantic(img(), CLASSES, { backgroundThreshold: 0.9 });
    const bgPixels = half.pixelCounts[CLASSES.length]!;
    console.log(`dog: backgroundThreshold 0.9 -> ${bgPixels} background pixels of ${half.labelMap.length}`);
    expect(bgPixels).toBeGreaterThan(0);
    // Non-background pixels keep their head-only label.
    for (let i = 0; i < half.labelMap.length; i += 997) if (half.labelMap[i] !== CLASSES.length) expect(half.labelMap[i]).toBe(plain.labelMap[i]);
  });

  it('seeded point selection is reproducible and differs from the default order', async () => {
    const e = await model.embed(img());
    try {
      const a = await model.segmentSemantic(e, CLASSES, { seed: 7, masks: false });
      const b = await model.segmentSemantic(e, CLASSES, { seed: 7, masks: false });
      const d = await model.segmentSemantic(e, CLASSES, { masks: false });
      expect(a.points).toEqual(b.points);
      expect(agreement(a.labelMap, b.labelMap)).toBe(1);
      expect(a.points).not.toEqual(d.points);
      const one = await model.segmentSemantic(e, CLASSES, { maxPoints: 1, pointThreshold: 0.6, masks: false });
      expect(one.points!.every((q) => q.tokens.length <= 1)).toBe(true);
    } finally {
      e.dispose();
    }
  });

  it('the SAM predictor works on the shared embedding', async () => {
    const e = await model.embed(img());
    try {
      const r = await model.predictor.predict(e.sam, { points: [[400, 260]], labels: [1] });
      expect(r.masks.length).toBe(3);
      expect(r.masks[0]!.length).toBe(534 * 800);
      // Same embedding as a separate SAM encode of the same image.
      const own = await model.predictor.encode(img());
      const x = (await readTensor(gpu(), own.tensor)) as Float32Array;
      const y = (await readTensor(gpu(), e.sam.tensor)) as Float32Array;
      expect(Array.from(x)).toEqual(Array.from(y));
      own.dispose();
    } finally {
      e.dispose();
    }
  });

  it('text-prompted masks', async () => {
    const r = await model.segmentText(img(), 'a dog');
    expect(r.masks.length).toBe(3);
    expect(r.best.length).toBe(534 * 800);
    expect(r.points.length).toBeGreaterThanOrEqual(1);
    expect(r.points.length).toBeLessThanOrEqual(3);
    for (let i = 1; i < r.iouPredictions.length; i++) expect(r.iouPredictions[i - 1]!).toBeGreaterThanOrEqual(r.iouPredictions[i]!);
    for (const [x, y] of r.points) expect(x >= 0 && x <= 800 && y >= 0 && y <= 534).toBe(true);
    console.log(`dog: segmentText('a dog') points ${JSON.stringify(r.points)} confident ${r.confident} IoU ${Array.from(r.iouPredictions, (v) => v.toFixed(3)).join(' ')}`);
    const single = await model.segmentText(img(), 'a dog', { multimaskOutput: false });
    expect(single.masks.length).toBe(1);
  });

  it('errors: empty or duplicate classes, an image too small, a disposed embedding', async () => {
    await expect(model.segmentSemantic(img(), [])).rejects.toThrow(/class list is empty/);
    await expect(model.classify(img(), [])).rejects.toThrow(/class list is empty/);
    await expect(model.segmentSemantic(img(), ['dog', 'sky', 'dog'])).rejects.toThrow(/duplicate class 'dog' at positions 0 and 2/);
    await expect(model.segmentSemantic(img(), ['dog'], { background: 'dog' })).rejects.toThrow(/duplicate class 'dog'/);
    const tiny: ImageU8 = { width: 8, height: 12, channels: 3, data: new Uint8Array(8 * 12 * 3) };
    await expect(model.segmentSemantic(tiny, ['dog'])).rejects.toThrow(/too small \(8x12\).*at least 16x16/);
    await expect(model.classify(tiny, ['dog'])).rejects.toThrow(/too small/);
    const thin: ImageU8 = { width: 4000, height: 16, channels: 3, data: new Uint8Array(4000 * 16 * 3) };
    await expect(model.segmentSemantic(thin, ['dog'], { refine: true })).rejects.toThrow(/too narrow/);
    await expect(model.segmentText(img(), '  ')).rejects.toThrow(/non-empty string/);
    await expect(model.segmentSemantic(img(), ['dog'], { backgroundThreshold: 2 })).rejects.toThrow(/backgroundThreshold 2/);
    await expect(model.segmentSemantic(img(), ['dog'], { refine: true, maxPoints: 0 })).rejects.toThrow(/maxPoints 0/);
    const e = await model.embed(img());
    e.dispose();
    await expect(model.segmentSemantic(e, ['dog'])).rejects.toThrow(/disposed/);
    // A plain SAM checkpoint is not a bundle: the missing head is named, composite mode suggested.
    await expect(SamClip.load(gpu(), `${REFERENCE}/sam_tiny.weights.safetensors`)).rejects.toThrow(/missing its CLIP head \('clip_head\.\*' keys\).*SamClip\.composite/);
    await expect(SamClip.load(gpu(), `${REFERENCE}/clip_tiny.weights.safetensors`)).rejects.toThrow(/not a SAM-CLIP bundle: no SAM backbone/);
  });
});

describe('f16 weights', () => {
  function relL2(a: Float32Array, b: Float32Array): number {
    let d = 0;
    let n = 0;
    for (let i = 0; i < a.length; i++) {
      d += (a[i]! - b[i]!) ** 2;
      n += b[i]! ** 2;
    }
    return Math.sqrt(d / n);
  }

  it('f16 weights against the f32 model: embeddings rel L2 <= 1e-2, point-prompt mask IoU >= 0.99 (DESIGN 7), label maps', async () => {
    const m16 = await SamClip.load(gpu(), BUNDLE, { dtype: 'f16' });
    const img = photo('dog');
    const e32 = await model.embed(img);
    const e16 = await m16.embed(img);
    try {
      for (const [what, x, y] of [
        ['SAM embedding', e16.sam.tensor, e32.sam.tensor],
        ['dense CLIP features', e16.dense, e32.dense],
      ] as const) {
        const r = relL2((await readTensor(gpu(), x)) as Float32Array, (await readTensor(gpu(), y)) as Float32Array);
        console.log(`dog: f16 vs f32 ${what} rel_l2 ${r.toExponential(2)} (gate 1e-2)`);
        expect(r).toBeLessThanOrEqual(1e-2);
      }
      const prompt = { points: [[400, 260]] as [number, number][], labels: [1], multimaskOutput: false };
      const a = await model.predictor.predict(e32.sam, prompt);
      const b = await m16.predictor.predict(e16.sam, prompt);
      const maskIou = maskIoU(a.masks[0]!, b.masks[0]!);
      console.log(`dog: f16 vs f32 point-prompt mask IoU ${maskIou.toFixed(4)} (gate 0.99)`);
      expect(maskIou).toBeGreaterThanOrEqual(0.99);

      const p32 = (await model.classify(img, CLASSES)).probs;
      const p16 = (await m16.classify(img, CLASSES)).probs;
      const c = expectReference(p16, p32, { shape: [6], dtype: 'F32', absmax: 1 }, 'f16 classify probs', 100);
      console.log(`dog: f16 vs f32 classification probs rel_l2 ${c.relL2.toExponential(2)} (gate 1e-2)`);

      // Label maps: the head-only map is an argmax of cosine scores and must hold to 99%. The refined
      // map argmaxes decoder logits across classes; with this tiny random-weight model many pixels
      // are near-ties between classes, so a few percent flip under f16 rounding: reported, gated loosely.
      for (const refine of [false, true]) {
        const m32 = await model.segmentSemantic(refine ? e32 : img, CLASSES, { refine, masks: false });
        const m16r = await m16.segmentSemantic(refine ? e16 : img, CLASSES, { refine, masks: false });
        const agree = agreement(m32.labelMap, m16r.labelMap);
        console.log(`dog: f16 vs f32 ${refine ? 'refined' : 'head-only'} label agreement ${(100 * agree).toFixed(3)}%`);
        expect(agree).toBeGreaterThanOrEqual(refine ? 0.97 : 0.99);
      }
    } finally {
      e32.dispose();
      e16.dispose();
      m16.dispose();
    }
  });
});
