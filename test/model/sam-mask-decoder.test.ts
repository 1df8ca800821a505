/**
 * SAM mask decoder (two-way transformer, upscaling, hypernetworks, IoU head) vs the official
 * MaskDecoder, stage by stage, for every recorded prompt case of both photos: the decoder is fed
 * the STORED image embedding, image_pe and prompt embeddings, so the first failing stage is the
 * one reported. Then the low-res logits and IoU predictions after multimask slicing, through the
 * shared-keys path (dense = broadcast no_mask_embed from our prompt encoder) and the chunked path.
 *
 * Tolerance: the fixtures' rule (expectReference); measured numbers are printed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { readTensor } from '../../src/kernels/copy.js';
import { MaskDecoder } from '../../src/model/sam/mask-decoder.js';
import { PromptEncoder } from '../../src/model/sam/prompt-encoder.js';
import type { Weights } from '../../src/weights/weights.js';
import { useGpu } from '../helpers/gpu.js';
import { expectClose } from '../helpers/compare.js';
import { runModel } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';
import { FIXTURES, expectReference } from '../helpers/reference.js';
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

/**
 * The ONNX layer (DESIGN.md 7.2): ONNX Runtime (CPU) on the committed export of the mask decoder
 * (tools/export-onnx-sam-decoder.py; its PyTorch re-implementation matches the reference fixtures,
 * see test/fixtures/onnx/sam-decoder/export.json) vs the engine on seeded inputs: every output and
 * intermediate, per-set dense prompts and the broadcast (shared-keys) path.
 * Tolerance: rel L2 <= 2e-5 per tensor (f32 both; the reference fixtures' noise for these stages
 * is 1e-6 .. 6e-6), |d| <= 1e-3.
 */
describe('ONNX Runtime on the exported mask decoder vs the engine', () => {
  const model = () => new Uint8Array(readFileSync(join(FIXTURES, 'onnx', 'sam-decoder', 'sam_tiny_mask_decoder.onnx')));
  for (const [B, N, broadcast] of [[3, 4, false], [2, 2, true], [1, 7, false]] as const) {
    it(`B=${B}, N=${N}${broadcast ? ', broadcast dense (no mask input)' : ''}`, async () => {
      const ctx = gpu();
      const rng = new Rng(100 * B + N);
      const emb = rng.randn(C * G * G);
      const pe = rng.uniformArray(C * G * G, -1, 1);
      const sparse = rng.randn(B * N * C);
      const denseOne = rng.randn(C, 0.5);
      const dense = broadcast ? new Float32Array(B * C * G * G).map((_, i) => denseOne[Math.floor(i / (G * G)) % C]!) : rng.randn(B * C * G * G);
      const ort = await runModel(model(), {
        image_embeddings: { data: emb, dims: [1, C, G, G] },
        image_pe: { data: pe, dims: [1, C, G, G] },
        sparse: { data: sparse, dims: [B, N, C] },
        dense: { data: dense, dims: [B, C, G, G] },
      });
      await ctx.scopeAsync(async () => {
        const d1 = ctx.upload(denseOne, [1, C, 1, 1]);
        const inp = {
          imageEmbeddings: ctx.upload(emb, [1, C, G, G]),
          imagePeTokens: ctx.upload(toTokens(pe, C, G * G), [1, G * G, C]),
          sparse: ctx.upload(sparse, [B, N, C]),
          dense: broadcast ? d1.asStrided([B, C, G, G], [0, 1, 0, 0], 0) : ctx.upload(dense, [B, C, G, G]),
          batch: B,
        };
        const all = dec.predictMasks(ctx, inp, { capture: true });
        const tol = { relL2: 2e-5, atol: 1e-3 };
        const parts: string[] = [];
        for (const [name, t] of [['masks_all', all.masksAll], ['iou_all', all.iouAll], ['hs', all.hs!], ['keys', all.keys!], ['upscaled', all.upscaled!]] as const) {
          const o = ort[name]!;
          expect([...t.shape], `${name} shape`).toEqual(o.dims);
          const c = expectClose(await readTensor(ctx, t), o.data, tol, `${name} vs ORT`, o.dims);
          parts.push(`${name} ${c.relL2.toExponential(2)}`);
        }
        console.log(`mask decoder vs ORT (B=${B}, N=${N}${broadcast ? ', broadcast' : ''}): rel_l2 ${parts.join(', ')}`);
      });
    });
  }
});

/**
 * Token-to-image attention computed both ways (projected keys, or projections folded into the
 * queries; the decoder picks per call), each against the reference fixtures and ONNX Runtime.
 */
describe('MaskDecoder: folded and projected token-to-image attention', () => {
  for (const fold of ['never', 'always'] as const) {
    it(`fold '${fold}': stored inputs of truck/points2_posneg_multi and truck/boxes_batch3_single`, async () => {
      const ctx = gpu();
      const photo = SAM_PHOTOS[0]!;
      const ref = await PhotoRef.open(photo);
      dec.transformer.fold = fold;
      try {
        for (const name of ['points2_posneg_multi', 'boxes_batch3_single']) {
          const c = photo.cases.find((x) => x.name === name)!;
          await ctx.scopeAsync(async () => {
            const all = dec.predictMasks(ctx, await storedInputs(ctx, ref, c), { capture: true });
            await check(ctx, ref, c, 'decoder.hs', all.hs!, `${name} (fold ${fold})`);
            await check(ctx, ref, c, 'decoder.masks_all', all.masksAll, `${name} (fold ${fold})`);
            await check(ctx, ref, c, 'decoder.iou_all', all.iouAll, `${name} (fold ${fold})`);
          });
        }
        const rng = new Rng(77);
        const [B, N] = [2, 5];
        const emb = rng.randn(C * G * G);
        const pe = rng.uniformArray(C * G * G, -1, 1);
        const sparse = rng.randn(B * N * C);
        const dense = rng.randn(B * C * G * G);
        const model = new Uint8Array(readFileSync(join(FIXTURES, 'onnx', 'sam-decoder', 'sam_tiny_mask_decoder.onnx')));
        const ort = await runModel(model, {
          image_embeddings: { data: emb, dims: [1, C, G, G] },
          image_pe: { data: pe, dims: [1, C, G, G] },
          sparse: { data: sparse, dims: [B, N, C] },
          dense: { data: dense, dims: [B, C, G, G] },
        });
        await ctx.scopeAsync(async () => {
          const all = dec.predictMasks(ctx, {
            imageEmbeddings: ctx.upload(emb, [1, C, G, G]),
            imagePeTokens: ctx.upload(toTokens(pe, C, G * G), [1, G * G, C]),
            sparse: ctx.upload(sparse, [B, N, C]),
            dense: ctx.upload(dense, [B, C, G, G]),
            batch: B,
          });
          const c1 = expectClose(await readTensor(ctx, all.masksAll), ort.masks_all!.data, { relL2: 2e-5, atol: 1e-3 }, `masks_all vs ORT (fold ${fold})`);
          const c2 = expectClose(await readTensor(ctx, all.iouAll), ort.iou_all!.data, { relL2: 2e-5, atol: 1e-3 }, `iou_all vs ORT (fold ${fold})`);
          console.log(`fold '${fold}' vs ORT: masks_all rel_l2 ${c1.relL2.toExponential(2)}, iou_all ${c2.relL2.toExponential(2)}`);
        });
      } finally {
        dec.transformer.fold = 'auto';
      }
    });
  }
});

/**
 * Dispatch plans (src/gpu/dispatch-plan.ts): from the third `forward` with one key the decoder's
 * dispatches are replayed. Each call here gets new prompts and dense embeddings, and every other
 * call a different image embedding, so replays rebind their inputs; each must give the bits of
 * predictMasks run on the same inputs, and results kept from earlier calls must stay as they were.
 */
describe('MaskDecoder: replayed calls', () => {
  for (const [B, multimask] of [[1, true], [3, false]] as const) {
    it(`B=${B}, multimask ${multimask}: six calls, the last four replayed, each equal to predictMasks`, async () => {
      const ctx = gpu();
      const dec = new MaskDecoder(weights, 'mask_decoder', cfg); // its own plans: no call made before this test
      const rng = new Rng(40 + B);
      const N = 3;
      const pe = ctx.upload(rng.uniformArray(C * G * G, -1, 1), [1, G * G, C]);
      const embeddings = [0, 1].map(() => ctx.upload(rng.randn(C * G * G), [1, C, G, G]));
      const [m0, m1] = multimask ? [1, cfg.numMultimaskOutputs + 1] : [0, 1];
      const kept: { masks: Float32Array; tensor: Tensor }[] = [];
      const dispatches: number[] = [];
      for (let call = 0; call < 6; call++) {
        await ctx.scopeAsync(async () => {
          const inp = {
            imageEmbeddings: embeddings[call % 2]!,
            imagePeTokens: pe,
            sparse: ctx.upload(rng.randn(B * N * C), [B, N, C]),
            dense: ctx.upload(rng.randn(B * C * G * G), [B, C, G, G]),
            batch: B,
          };
          const d0 = ctx.dispatchCount;
          const code = vi.spyOn(dec, 'predictMasks');
          const out = dec.forward(ctx, inp, multimask);
          // A replay runs none of the model code.
          expect(code.mock.calls.length, `call ${call + 1}: model code ran`).toBe(call >= 2 ? 0 : 1);
          code.mockRestore();
          dispatches.push(ctx.dispatchCount - d0);
          const all = dec.predictMasks(ctx, inp);
          const masks = (await readTensor(ctx, out.masks)) as Float32Array;
          expect(masks, `call ${call + 1}: masks`).toEqual(await readTensor(ctx, all.masksAll.slice(1, m0, m1)));
          expect(await readTensor(ctx, out.iouPred), `call ${call + 1}: iou`).toEqual(await readTensor(ctx, all.iouAll.slice(1, m0, m1)));
          out.masks.persistent = true; // kept past the scope, to check later calls leave it alone
          kept.push({ masks, tensor: out.masks });
        });
      }
      for (const [i, k] of kept.entries()) {
        expect(await readTensor(ctx, k.tensor), `call ${i + 1}'s masks after the later calls`).toEqual(k.masks);
        k.tensor.persistent = false;
        k.tensor.dispose();
      }
      expect(new Set(dispatches.slice(2)).size, 'every replay encodes the same dispatches').toBe(1);
      dec.dispose();
      console.log(`decoder replays (B=${B}): dispatches per call ${dispatches.join(', ')}`);
    });
  }
});
