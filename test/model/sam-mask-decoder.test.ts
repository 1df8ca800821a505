/**
 * SAM mask decoder (two-way transformer, upscaling, hypernetworks, IoU head) vs the official
 * MaskDecoder, stage by stage, for every recorded prompt case of both photos: the decoder is fed
 * the STORED image embedding, image_pe and prompt embeddings, so the first failing stage is the
 * one reported. Then the low-res logits and IoU predictions after multimask slicing, through the
 * shared-keys path (dense = broadcast no_mask_embed from our prompt encoder) and the chunked path.
 *
 * Tolerance: the fixtures' rule (expectReference); measured numbers are printed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { readTensor } from '../../src/kernels/copy.js';
import { MaskDecoder } from '../../src/model/sam/mask-decoder.js';
import { PromptEncoder } from '../../src/model/sam/prompt-encoder.js';
import type { Weights } from '../../src/weights/weights.js';
import { useGpu } from '../helpers/gpu.js';
import { expectReference } from '../helpers/reference.js';
import { PhotoRef, SAM_PHOTOS, type SamCase, loadTinyWeights, logStage, tinySamConfigFromManifest, transformedPrompts } from '../pipelines/sam-fixture.js';

const gpu = useGpu();
const cfg = tinySamConfigFromManifest();
const C = cfg.promptEmbedDim;
const G = cfg.imageEmbeddingSize;
let weights: Weights;
let dec: MaskDecoder;
let enc: PromptEncoder;

beforeAll(async () => {
  weights = await loadTinyWeights(gpu(), { include: (k) => k.startsWith('mask_decoder.') || k.startsWith('prompt_encoder.') });
  dec = new MaskDecoder(weights, 'mask_decoder', cfg);
  enc = await PromptEncoder.create(gpu(), weights, 'prompt_encoder', cfg);
  weights.assertAllUsed('prompt encoder + mask decoder');
});

/** NCHW [1, C, h, w] -> token-major [1, h*w, C]. */
function toTokens(nchw: Float32Array, c: number, hw: number): Float32Array {
  const out = new Float32Array(c * hw);
  for (let k = 0; k < c; k++) for (let p = 0; p < hw; p++) out[p * c + k] = nchw[k * hw + p]!;
  return out;
}

async function storedInputs(ctx: GpuContext, ref: PhotoRef, c: SamCase) {
  const sparseName = ref.caseTensor(c, 'sparse_embeddings');
  const sparseShape = ref.entry(sparseName).shape;
  const denseName = ref.caseTensor(c, 'dense_embeddings');
  return {
    imageEmbeddings: await ref.upload(ctx, 'image_embedding'),
    imagePeTokens: ctx.upload(toTokens(await ref.f32('image_pe'), C, G * G), [1, G * G, C]),
    sparse: sparseShape[1]! > 0 ? await ref.upload(ctx, sparseName) : null,
    dense: await ref.upload(ctx, denseName),
    batch: sparseShape[0]!,
  };
}

async function check(ctx: GpuContext, ref: PhotoRef, c: SamCase, stage: string, t: Tensor, label: string): Promise<void> {
  const name = ref.caseTensor(c, stage);
  const e = ref.entry(name);
  expect(t.size, `${label} ${stage} size`).toBe(e.shape.reduce((a, b) => a * b, 1));
  const r = expectReference(await readTensor(ctx, t), await ref.f32(name), e, `${label} ${stage}`);
  logStage(`${label} ${stage}`, r);
}

describe('MaskDecoder vs official (tiny SAM), stored inputs', () => {
  for (const photo of SAM_PHOTOS) {
    for (const c of photo.cases) {
      it(`${photo.name}/${c.name}: hs, keys, upscaled, masks_all, iou_all, low_res_logits, iou_predictions`, async () => {
        const ctx = gpu();
        const ref = await PhotoRef.open(photo);
        const label = `${photo.name}/${c.name}`;
        await ctx.scopeAsync(async () => {
          const inp = await storedInputs(ctx, ref, c);
          const all = dec.predictMasks(ctx, inp, { capture: true });
          await check(ctx, ref, c, 'decoder.hs', all.hs!, label);
          await check(ctx, ref, c, 'decoder.keys', all.keys!, label);
          await check(ctx, ref, c, 'decoder.upscaled', all.upscaled!, label);
          await check(ctx, ref, c, 'decoder.masks_all', all.masksAll, label);
          await check(ctx, ref, c, 'decoder.iou_all', all.iouAll, label);
          const out = dec.forward(ctx, inp, c.multimask_output);
          const m = c.multimask_output ? cfg.numMultimaskOutputs : 1;
          expect([...out.masks.shape]).toEqual([inp.batch, m, 4 * G, 4 * G]);
          await check(ctx, ref, c, 'low_res_logits', out.masks, label);
          await check(ctx, ref, c, 'iou_predictions', out.iouPred, label);
        });
      });
    }
  }
});

describe('MaskDecoder: shared-keys and chunked paths', () => {
  const photo = SAM_PHOTOS[0]!;
  for (const name of ['point1_multi', 'boxes_batch3_single', 'mask_refine_single']) {
    it(`${photo.name}/${name}: prompt encoder -> decoder (broadcast dense, own image_pe), chunks of 2`, async () => {
      const ctx = gpu();
      const ref = await PhotoRef.open(photo);
      const c = photo.cases.find((x) => x.name === name)!;
      await ctx.scopeAsync(async () => {
        const masks = c.mask_input ? await ref.upload(ctx, c.mask_input, [1, 1, 4 * G, 4 * G]) : undefined;
        const p = enc.forward(ctx, { ...transformedPrompts(c), masks });
        const inp = {
          imageEmbeddings: await ref.upload(ctx, 'image_embedding'),
          imagePeTokens: enc.densePeTokenMajor(),
          sparse: p.sparse,
          dense: p.dense,
          batch: transformedPrompts(c).batch,
        };
        for (const maxBatch of [undefined, 2]) {
          const out = dec.forward(ctx, inp, c.multimask_output, { maxBatch });
          await check(ctx, ref, c, 'low_res_logits', out.masks, `${photo.name}/${name} (maxBatch ${maxBatch ?? 'auto'})`);
          await check(ctx, ref, c, 'iou_predictions', out.iouPred, `${photo.name}/${name} (maxBatch ${maxBatch ?? 'auto'})`);
        }
      });
    });
  }
});
