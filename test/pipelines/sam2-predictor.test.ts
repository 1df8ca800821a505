/**
 * Sam2Predictor vs the official SAM2ImagePredictor on the photos (tiny SAM 2.1, reference
 * fixtures, test/fixtures/reference/sam2/README.md).
 *
 * The photos are decoded from the .jpg files by the repository's Node decoder (`readImage`, equal to
 * Pillow's decode, which made the fixtures: test/io/decode-exact.test.ts).
 *
 *  - Preprocessing on the GPU (ToTensor, antialiased bilinear to S x S, Normalize) vs `preprocessed`.
 *  - Prompt mapping (x / W * S, y / H * S in float32) vs the recorded transformed coordinates: exact.
 *  - Every case from the STORED image features: low-res logits, IoU and object score under the
 *    fixtures' rule, the single-mask fallback decisions, masks >= 99.99 % of pixels.
 *  - End to end from the decoded photo: encode -> image features under the fixtures' rule, then
 *    every case's masks >= 99.99 %.
 *  - Automatic masks on the same pipeline; chaining; errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readTensor } from '../../src/kernels/copy.js';
import { SamAutomaticMaskGenerator } from '../../src/pipelines/automatic-mask-generator.js';
import { PromptError } from '../../src/pipelines/sam-predictor.js';
import { Sam2Predictor, type Sam2ImageEmbedding, type Sam2Prediction, sam2TransformCoords } from '../../src/pipelines/sam2-predictor.js';
import type { SamPrompt } from '../../src/pipelines/prompt-sets.js';
import { useGpu } from '../helpers/gpu.js';
import { agreement, expectMasksAgree } from '../helpers/reference.js';
import { SAM2_PHOTOS, SAM2_WEIGHTS, type Sam2Case, type Sam2Photo, Sam2Ref, checkAgainst, tinyOverrides } from '../model/sam2-fixture.js';
import { usePhotos } from '../helpers/photos.js';

const gpu = useGpu();
const photoImage = usePhotos();
let predictor: Sam2Predictor;
const MASK_AGREEMENT = 0.9999;

beforeAll(async () => {
  predictor = await Sam2Predictor.load(gpu(), SAM2_WEIGHTS, { overrides: tinyOverrides(), dtype: 'f32' });
});

function boxesOf(c: Sam2Case): number[][] | null {
  if (!c.box) return null;
  return Array.isArray(c.box[0]) ? (c.box as number[][]) : [c.box as number[]];
}

function promptsOf(c: Sam2Case, mask?: Float32Array): SamPrompt[] {
  const boxes = boxesOf(c);
  const base: SamPrompt = {};
  if (c.point_coords) {
    base.points = c.point_coords.map((q) => [q[0]!, q[1]!] as [number, number]);
    base.labels = c.point_labels!;
  }
  if (mask) base.maskInput = mask;
  return boxes ? boxes.map((b) => ({ ...base, box: b as [number, number, number, number] })) : [base];
}

async function checkCase(photo: Sam2Photo, c: Sam2Case, emb: Sam2ImageEmbedding, label: string, opts: { logits: boolean }): Promise<Sam2Prediction[]> {
  const ref = await Sam2Ref.open(photo);
  const mask = c.mask_input ? await ref.f32(c.mask_input) : undefined;
  const preds = await predictor.predictBatch(emb, promptsOf(c, mask), { multimaskOutput: c.multimask_output });
  if (opts.logits) {
    const cat = (f: (p: Sam2Prediction) => ArrayLike<number>) => new Float32Array(preds.flatMap((p) => Array.from(f(p))));
    await checkAgainst(ref, cat((p) => p.lowResLogits), ref.caseTensor(c, 'low_res_logits'), `${label} low_res_logits`);
    await checkAgainst(ref, cat((p) => p.iouPredictions), ref.caseTensor(c, 'iou_predictions'), `${label} iou_predictions`);
    await checkAgainst(ref, cat((p) => [p.objectScoreLogit]), ref.caseTensor(c, 'object_score_logits'), `${label} object_score_logits`);
  }
  (c.dynamic_multimask_via_stability ?? []).forEach((r, b) => {
    expect(preds[b]!.choice!.token, `${label} set ${b}: ${r.output}`).toBe(r.stable ? 0 : Number(/token (\d)/.exec(r.output)![1]));
  });
  const mn = ref.caseTensor(c, 'masks');
  expectMasksAgree(preds, await ref.file.readRaw(mn), ref.entry(mn).unpacked_shape!, label, MASK_AGREEMENT);
  return preds;
}

describe('Sam2Predictor: preprocessing and prompt mapping', () => {
  for (const photo of SAM2_PHOTOS) {
    it(`${photo.name}: ToTensor + antialiased resize + Normalize on the GPU matches preprocessed`, async () => {
      const ctx = gpu();
      const ref = await Sam2Ref.open(photo);
      const t = predictor.model.preprocess(ctx, photoImage(photo.name));
      expect(t.shape).toEqual([1, 3, 256, 256]);
      await checkAgainst(ref, await readTensor(ctx, t), 'preprocessed');
      t.dispose();
    });

    it(`${photo.name}: prompts map to the recorded model-frame coordinates exactly`, () => {
      const S = predictor.model.imageSize;
      for (const c of photo.cases) {
        if (c.point_coords) expect(sam2TransformCoords(c.point_coords.flat(), photo.original_size, S), c.name).toEqual(c.transformed_point_coords!.flat());
        const boxes = boxesOf(c);
        if (boxes) expect(sam2TransformCoords(boxes.flat(), photo.original_size, S), c.name).toEqual(c.transformed_box_corners!.flat(2));
      }
    });
  }
});

describe('Sam2Predictor vs official, from the stored image features', () => {
  for (const photo of SAM2_PHOTOS) {
    for (const c of photo.cases) {
      it(`${photo.name}/${c.name}`, async () => {
        const ref = await Sam2Ref.open(photo);
        const emb = predictor.embeddingFrom(
          { imageEmbed: await ref.f32('image_embed'), highRes: [await ref.f32('high_res_feats.0'), await ref.f32('high_res_feats.1')] },
          photo.original_size,
        );
        try {
          await checkCase(photo, c, emb, `${photo.name}/${c.name}`, { logits: true });
        } finally {
          emb.dispose();
        }
      });
    }
  }
});

describe('Sam2Predictor end to end from the decoded photo', () => {
  for (const photo of SAM2_PHOTOS) {
    it(`${photo.name}: encode -> image features, then every case's masks`, async () => {
      const ctx = gpu();
      const ref = await Sam2Ref.open(photo);
      const emb = await predictor.encode(photoImage(photo.name));
      try {
        expect(emb.originalSize).toEqual(photo.original_size);
        await checkAgainst(ref, await readTensor(ctx, emb.features.imageEmbed), 'image_embed', `${photo.name} image_embed (end to end)`);
        await checkAgainst(ref, await readTensor(ctx, emb.features.highRes.s0), 'high_res_feats.0', `${photo.name} high_res_feats.0 (end to end)`);
        await checkAgainst(ref, await readTensor(ctx, emb.features.highRes.s1), 'high_res_feats.1', `${photo.name} high_res_feats.1 (end to end)`);
        for (const c of photo.cases) await checkCase(photo, c, emb, `${photo.name}/${c.name} (end to end)`, { logits: false });
      } finally {
        emb.dispose();
      }
    });
  }
});

describe('Sam2Predictor: the rest of the API', () => {
  it('setImage / predict on the current image, chaining a low-res mask, returnLogits', async () => {
    const img = photoImage('dog');
    await predictor.setImage(img);
    const first = await predictor.predict({ points: [[300, 300]], labels: [1] });
    expect(first.masks.length).toBe(3);
    expect(first.lowResSize).toBe(64);
    const best = Array.from(first.iouPredictions).indexOf(Math.max(...first.iouPredictions));
    const refined = await predictor.predict({ points: [[300, 300]], labels: [1], maskInput: first.lowResLogits.slice(best * 64 * 64, (best + 1) * 64 * 64) }, { multimaskOutput: false, returnLogits: true });
    expect(refined.masks.length).toBe(1);
    expect(refined.choice).toBeDefined();
    // The binary mask is the returned logits > 0.
    const fromLogits = refined.logits![0]!.map((v) => (v > 0 ? 1 : 0));
    expect(agreement(fromLogits, refined.masks[0]!)).toBe(1);
    // Returned low-res logits are clamped like the official predictor's.
    expect(Math.max(...first.lowResLogits.map(Math.abs))).toBeLessThanOrEqual(32);
    predictor.resetImage();
    await expect(predictor.predict({ points: [[1, 1]], labels: [1] })).rejects.toThrow(/no image: call setImage/);
  });

  it('prompt errors name the prompt set and the problem', async () => {
    const emb = await predictor.encode(photoImage('dog'));
    try {
      await expect(predictor.predict(emb, { points: [[900, 10]], labels: [1] })).rejects.toThrow(/point 0 \(900, 10\) lies outside the 800x534 image/);
      await expect(predictor.predict(emb, { points: [[10, 10]], labels: [2] })).rejects.toThrow(PromptError);
      await expect(predictor.predict(emb, { maskInput: new Float32Array(256 * 256) })).rejects.toThrow(/mask input has 65536 values; expected 1 x 64 x 64/);
      await expect(predictor.predictBatch(emb, [{ box: [1, 1, 5, 5] }, { points: [[2, 2]], labels: [1] }])).rejects.toThrow(/must share a structure/);
    } finally {
      emb.dispose();
    }
    await expect(predictor.predict(emb, { points: [[10, 10]], labels: [1] })).rejects.toThrow(/disposed/);
  });

  it('automatic masks on the same pipeline: every mask is the predictor\'s own for its grid point', async () => {
    const img = photoImage('dog');
    // SAM2AutomaticMaskGenerator's default IoU threshold (0.8, not SAM's 0.88) comes with the predictor.
    expect(new SamAutomaticMaskGenerator(predictor).opts.predIouThresh).toBe(0.8);
    // The tiny random model's IoU estimates sit near 0.5: lower thresholds so that masks survive.
    const amg = new SamAutomaticMaskGenerator(predictor, { pointsPerSide: 4, predIouThresh: 0.4, stabilityScoreThresh: 0.5 });
    const masks = await amg.generate(img);
    expect(masks.length).toBeGreaterThan(0);
    const emb = await predictor.encode(img);
    try {
      for (const m of masks.slice(0, 3)) {
        expect(m.predictedIou).toBeGreaterThan(0.4);
        const [x, y] = m.pointCoords[0]!;
        const p = await predictor.predict(emb, { points: [[x, y]], labels: [1] });
        const k = Array.from(p.iouPredictions).findIndex((v) => Math.abs(v - m.predictedIou) < 1e-6);
        expect(k, `the generator's IoU ${m.predictedIou} is one of the point's three`).toBeGreaterThanOrEqual(0);
        expect(agreement(p.masks[k]!, m.segmentation as Uint8Array)).toBe(1);
        expect(m.area).toBe(p.masks[k]!.reduce((a, v) => a + v, 0));
      }
    } finally {
      emb.dispose();
    }
  });
});
