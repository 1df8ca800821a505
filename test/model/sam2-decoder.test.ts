/**
 * SAM 2's prompt encoder and mask decoder against the official code, stage by stage from the
 * recorded per-image tensors (`image_embed`, `high_res_feats.0/1`), for every prompt case on both
 * photos: sparse and dense prompt embeddings, the transformer's tokens (and image tokens), the
 * upscaled embedding after both high-resolution skips, all four masks and IoU predictions before
 * selection, then the selected low-res logits, IoU and object score, and the dynamic multimask
 * decisions (stability score and token) the manifest records. Prompts are the recorded
 * model-frame coordinates (`transformed_*`), so a failure here is the decoder's.
 * Also: image_pe, and the encoder's last stage (high_res_feats, image_embed) from the recorded
 * `preprocessed` input.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readTensor } from '../../src/kernels/copy.js';
import { sam2ConfigFromWeights } from '../../src/model/sam2/config.js';
import { boxesAsPoints } from '../../src/model/sam2/prompt-encoder.js';
import { Sam2, type Sam2ImageFeatures } from '../../src/model/sam2/sam2.js';
import type { EncoderPrompts } from '../../src/model/sam/prompt-encoder.js';
import { useGpu } from '../helpers/gpu.js';
import { SAM2_PHOTOS, type Sam2Case, type Sam2Photo, Sam2Ref, checkAgainst, loadSam2TinyWeights, tinyOverrides } from './sam2-fixture.js';

const gpu = useGpu();
let model: Sam2;

beforeAll(async () => {
  const ctx = gpu();
  const weights = await loadSam2TinyWeights(ctx, (k) => !/^(maskmem_tpos_enc|no_mem_pos_enc|no_obj_ptr|no_obj_embed_spatial|mask_downsample\.|memory_|obj_ptr)/.test(k));
  model = await Sam2.create(ctx, weights, sam2ConfigFromWeights(weights, tinyOverrides()));
});

afterAll(() => model?.dispose());

/** The case's prompts in the model frame, from the recorded transformed coordinates. */
export function modelFramePrompts(c: Sam2Case): Omit<EncoderPrompts, 'masks'> {
  const boxes = c.transformed_box_corners?.map((b) => [b[0]![0]!, b[0]![1]!, b[1]![0]!, b[1]![1]!]);
  const batch = boxes ? boxes.length : 1;
  const out: Omit<EncoderPrompts, 'masks'> = { batch };
  if (c.transformed_point_coords) out.points = { coords: c.transformed_point_coords.flat(), labels: c.point_labels! };
  if (boxes) out.boxes = boxes.flat();
  return out;
}

async function recordedFeatures(ref: Sam2Ref): Promise<Sam2ImageFeatures> {
  const ctx = gpu();
  const imageEmbed = await ref.upload(ctx, 'image_embed');
  return {
    imageEmbed,
    highRes: { s0: await ref.upload(ctx, 'high_res_feats.0'), s1: await ref.upload(ctx, 'high_res_feats.1') },
    visionFeatures: imageEmbed,
  };
}

function disposeFeatures(f: Sam2ImageFeatures): void {
  for (const t of [f.imageEmbed, f.highRes.s0, f.highRes.s1]) t.dispose();
}

async function checkCase(photo: Sam2Photo, c: Sam2Case): Promise<void> {
  const ctx = gpu();
  const ref = await Sam2Ref.open(photo);
  const label = `${photo.name}/${c.name}`;
  const f = await recordedFeatures(ref);
  const prompts: EncoderPrompts = modelFramePrompts(c);
  if (c.mask_input) {
    const L = model.lowResSize;
    prompts.masks = ctx.upload(await ref.f32(c.mask_input), [prompts.batch, 1, L, L]);
  }
  try {
    // Stage 1: prompt encoder.
    const pe = model.promptEncoder;
    const { sparse, dense } = pe.forward(ctx, boxesAsPoints(prompts));
    const sparseName = ref.caseTensor(c, 'sparse_embeddings');
    // A mask alone has no sparse tokens at all (no padding point either: upstream pads only points).
    const noSparse = ref.entry(sparseName).shape[1] === 0;
    expect(sparse === null, `${label}: no sparse tokens`).toBe(noSparse);
    if (sparse) await checkAgainst(ref, await readTensor(ctx, sparse), sparseName, `${label} sparse_embeddings`);
    const denseName = ref.caseTensor(c, 'dense_embeddings');
    if (denseName !== 'dense_embeddings_no_mask') await checkAgainst(ref, await readTensor(ctx, dense), denseName, `${label} dense_embeddings`);
    // Stage 2: the decoder from the recorded prompt embeddings.
    const recSparse = noSparse ? null : await ref.upload(ctx, sparseName);
    const recDense = denseName === 'dense_embeddings_no_mask' ? dense : await ref.upload(ctx, denseName);
    const all = model.maskDecoder.predictMasks(
      ctx,
      { imageEmbeddings: f.imageEmbed, imagePeTokens: pe.densePeTokenMajor(), sparse: recSparse, dense: recDense, batch: prompts.batch, highRes: f.highRes },
      { capture: true },
    );
    const stages: [string, unknown][] = [
      ['decoder.hs', all.hs],
      ['decoder.keys', all.keys],
      ['decoder.upscaled', all.upscaled],
      ['decoder.masks_all', all.masksAll],
      ['decoder.iou_all', all.iouAll],
    ];
    for (const [stage, t] of stages) {
      const name = c.tensors[stage];
      if (name) await checkAgainst(ref, await readTensor(ctx, t as never), name, `${label} ${stage}`);
    }
    // Stage 3: selection (multimask slice, or the stability fallback) and the object score.
    const out = await model.decode(ctx, f, prompts, c.multimask_output);
    await checkAgainst(ref, await readTensor(ctx, out.masks), ref.caseTensor(c, 'low_res_logits'), `${label} low_res_logits`);
    await checkAgainst(ref, await readTensor(ctx, out.iouPred), ref.caseTensor(c, 'iou_predictions'), `${label} iou_predictions`);
    await checkAgainst(ref, await readTensor(ctx, out.objectScoreLogits), ref.caseTensor(c, 'object_score_logits'), `${label} object_score_logits`);
    if (c.dynamic_multimask_via_stability) {
      const rec = c.dynamic_multimask_via_stability;
      expect(out.choices!.length).toBe(rec.length);
      rec.forEach((r, b) => {
        const token = r.stable ? 0 : Number(/multimask token (\d)/.exec(r.output)![1]);
        expect(out.choices![b]!.token, `${label} set ${b}: returned token (${r.output})`).toBe(token);
        expect(out.choices![b]!.stability, `${label} set ${b}: stability`).toBeCloseTo(r.stability_score, 5);
      });
    }
    for (const t of [out.masks, out.iouPred, out.objectScoreLogits, recSparse, sparse]) t?.dispose();
  } finally {
    disposeFeatures(f);
    prompts.masks?.dispose();
  }
}

describe('SAM 2 prompt encoder + mask decoder vs official, from the recorded image features', () => {
  for (const photo of SAM2_PHOTOS) {
    for (const c of photo.cases) it(`${photo.name}/${c.name}`, () => checkCase(photo, c));
  }

  it('image_pe (get_dense_pe) and the no-mask dense embedding', async () => {
    const ctx = gpu();
    const ref = await Sam2Ref.open(SAM2_PHOTOS.find((p) => p.name === 'truck')!);
    const pe = model.promptEncoder.densePe();
    await checkAgainst(ref, await readTensor(ctx, pe), 'image_pe', 'truck image_pe');
    pe.dispose();
    // The dense embedding without a mask: no_mask_embed broadcast over the grid (read one pixel per channel).
    const d = model.promptEncoder.denseEmbeddings(ctx, 1);
    const { promptEmbedDim: C, imageEmbeddingSize: g } = model.config;
    const v = await readTensor(ctx, d);
    const perChannel = Float32Array.from({ length: C }, (_, c) => v[c * g * g + g + 1]!);
    await checkAgainst(ref, perChannel, 'dense_embeddings_no_mask', 'truck dense_embeddings_no_mask');
    d.dispose();
  });
});

describe('SAM 2 image features vs official, from the recorded input', () => {
  for (const photo of SAM2_PHOTOS) {
    it(`${photo.name}: high_res_feats and image_embed (= FPN level 2 + no_mem_embed)`, async () => {
      const ctx = gpu();
      const ref = await Sam2Ref.open(photo);
      const input = await ref.upload(ctx, 'preprocessed');
      const f = model.encodeImage(ctx, input);
      try {
        await checkAgainst(ref, await readTensor(ctx, f.highRes.s0), 'high_res_feats.0');
        await checkAgainst(ref, await readTensor(ctx, f.highRes.s1), 'high_res_feats.1');
        await checkAgainst(ref, await readTensor(ctx, f.imageEmbed), 'image_embed');
      } finally {
        input.dispose();
        disposeFeatures(f);
        f.visionFeatures.dispose();
      }
    });
  }
});

/**
 * Dispatch plans (src/gpu/dispatch-plan.ts) with SAM 2's high-resolution skips as inputs: five
 * decodes of seven points alternating between the two photos' recorded features, the last three
 * replayed; each must give the bits of predictMasks run on the same inputs.
 */
describe('SAM 2 mask decoder: replayed calls', () => {
  it('five calls over two photos, the last three replayed, each equal to predictMasks', async () => {
    const ctx = gpu();
    const features = await Promise.all(SAM2_PHOTOS.map(async (p) => recordedFeatures(await Sam2Ref.open(p))));
    const dec = model.maskDecoder;
    const pe = model.promptEncoder;
    try {
      for (let call = 0; call < 5; call++) {
        const f = features[call % features.length]!;
        await ctx.scopeAsync(async () => {
          // Seven points: a sparse layout no fixture case has, so this key starts with no plan.
          const coords = Array.from({ length: 14 }, (_, i) => 60 + 37 * i + 40 * call);
          const { sparse, dense } = pe.forward(ctx, { batch: 1, points: { coords, labels: [1, 1, 0, 1, 0, 1, 1] } });
          const inp = { imageEmbeddings: f.imageEmbed, imagePeTokens: pe.densePeTokenMajor(), sparse, dense, batch: 1, highRes: f.highRes };
          const code = vi.spyOn(dec, 'predictMasks');
          const replayed = dec.predictMasksReplayed(ctx, inp);
          expect(code.mock.calls.length, `call ${call + 1}: model code ran`).toBe(call >= 2 ? 0 : 1);
          code.mockRestore();
          const direct = dec.predictMasks(ctx, inp);
          expect(await readTensor(ctx, replayed.masksAll), `call ${call + 1}: masks`).toEqual(await readTensor(ctx, direct.masksAll));
          expect(await readTensor(ctx, replayed.iouAll), `call ${call + 1}: iou`).toEqual(await readTensor(ctx, direct.iouAll));
          expect(await readTensor(ctx, replayed.objectScoreLogits!), `call ${call + 1}: object score`).toEqual(await readTensor(ctx, direct.objectScoreLogits!));
        });
      }
    } finally {
      for (const f of features) disposeFeatures(f);
    }
  });
});
