/**
 * The tiny models (SAM, CLIP, SAM 2.1, SAM-CLIP) end to end under a GPU adapter's kernel choices, against the official reference
 * fixtures, on whatever adapter runs the tests.
 *
 * On a GPU the engine runs `defaultTuning(false)`'s rule: 8x8-block and few-row subgroup matmuls
 * (`tiled8_nt`, `rows_sg`), flash attention, subgroup row reductions and GPU workgroup sizes. On a
 * CPU adapter (lavapipe, where CI runs) every other model test runs the CPU-adapter rule, whose
 * kernels and model paths differ (windowed attention as matrix products, barrier-free matmuls,
 * one row per invocation). The kernel tests force each variant on small shapes; this file forces a
 * GPU's whole rule on the models, so that a GPU's first run is not the first time those kernels
 * meet real layouts (strided q/k/v views, rel-pos, padded windows, stacked weights, per-batch
 * biases). On a GPU adapter it repeats what the other files check.
 *
 * The same fixtures' rules as the model tests: encoder outputs and logits under the recorded
 * rel L2 / max-abs gates, masks and SAM-CLIP's refined label map >= 99.99 % of pixels, CLIP
 * features and SAM-CLIP's class probabilities under their gates; and SAM's
 * f16 activations under the f16 rule against this f32 path (rel L2 <= 1e-2, mask IoU >= 0.99).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.js';
import { debugFlags } from '../../src/gpu/debug.js';
import { defaultTuning } from '../../src/gpu/tuning.js';
import { readTensor } from '../../src/kernels/copy.js';
import type { ClipModel } from '../../src/model/clip/clip.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import type { SamPrompt } from '../../src/pipelines/prompt-sets.js';
import { Sam2Predictor } from '../../src/pipelines/sam2-predictor.js';
import { compare, maskIoU } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { usePhotos } from '../helpers/photos.js';
import { agreement, expectMasksAgree, expectReference, openReference } from '../helpers/reference.js';
import { CLIP_MANIFEST, loadTiny, pickRows, readF32 } from '../model/clip-helpers.js';
import { SAM2_PHOTOS, SAM2_WEIGHTS, Sam2Ref, checkAgainst, tinyOverrides } from '../model/sam2-fixture.js';
import { BUNDLE, CLASSES, PHOTOS as SAMCLIP_PHOTOS, decodeBitPlanes } from '../model/samclip-fixture.js';
import { PhotoRef, SAM_PHOTOS, TINY_WEIGHTS, casePrompts, logStage } from './sam-fixture.js';

const gpu = useGpu();
const photoImage = usePhotos();
const MASK_AGREEMENT = 0.9999;
/** Every pipeline this file's context compiles (its own cache: a context per test file). */
const compiled: string[] = [];
let dump: typeof debugFlags.dumpWgsl;

beforeAll(() => {
  const ctx = gpu();
  Object.assign(ctx.tuning, defaultTuning(false, ctx.features));
  dump = debugFlags.dumpWgsl;
  debugFlags.dumpWgsl = (key, code) => {
    compiled.push(key);
    dump?.(key, code);
  };
});
afterAll(() => {
  debugFlags.dumpWgsl = dump;
});

describe("a GPU's kernel choices on the whole tiny models", () => {
  it('SAM: encode the truck photo, then every recorded case (low-res logits, IoU, masks)', async () => {
    const ctx = gpu();
    const predictor = await SamPredictor.load(ctx, TINY_WEIGHTS);
    const photo = SAM_PHOTOS.find((p) => p.name === 'truck')!;
    const ref = await PhotoRef.open(photo);
    const emb = await predictor.encode(photoImage(photo.name));
    try {
      const r = expectReference(await readTensor(ctx, emb.tensor), await ref.f32('image_embedding'), ref.entry('image_embedding'), 'GPU choices: truck image_embedding');
      logStage('GPU choices: truck image_embedding', r);
      for (const c of photo.cases) {
        const label = `GPU choices: truck/${c.name}`;
        const mask = c.mask_input ? await ref.f32(c.mask_input) : undefined;
        const preds = await predictor.predictBatch(emb, casePrompts(c, mask), { multimaskOutput: c.multimask_output });
        const low = new Float32Array(preds.flatMap((p) => Array.from(p.lowResLogits)));
        const iou = new Float32Array(preds.flatMap((p) => Array.from(p.iouPredictions)));
        const ln = ref.caseTensor(c, 'low_res_logits');
        logStage(`${label} low_res_logits`, expectReference(low, await ref.f32(ln), ref.entry(ln), `${label} low_res_logits`));
        const iouName = ref.caseTensor(c, 'iou_predictions');
        expectReference(iou, await ref.f32(iouName), ref.entry(iouName), `${label} iou_predictions`);
        const mn = ref.caseTensor(c, 'masks');
        expectMasksAgree(preds, await ref.file.readRaw(mn), ref.entry(mn).unpacked_shape!, label, MASK_AGREEMENT);
      }
    } finally {
      emb.dispose();
      predictor.dispose();
    }
  });

  it('CLIP: image features and text features (full context and trimmed)', async () => {
    const ctx = gpu();
    const T = CLIP_MANIFEST.tensors;
    const model: ClipModel = await loadTiny(ctx);
    const ref = await openReference('clip_tiny.safetensors');
    try {
      const x = ctx.upload(await ref.readF32('images'), [3, 3, 64, 64]);
      const fi = model.encodeImage(ctx, x);
      const ri = expectReference(await readF32(ctx, fi), await ref.readF32('image_features'), T.image_features, 'GPU choices: clip image_features');
      console.log(`GPU choices: clip image_features rel_l2 ${ri.relL2.toExponential(2)}`);
      const subset: number[] = CLIP_MANIFEST.text_subset;
      const ids = pickRows(await ref.readI32('token_ids'), 77, subset);
      const want = await ref.readF32('text_features');
      for (const trim of [false, true]) {
        const ft = model.encodeText(ctx, { ids, shape: [subset.length, 77] }, { trim });
        const rt = expectReference(await readF32(ctx, ft), want, T.text_features, `GPU choices: clip text_features (trim ${trim})`);
        console.log(`GPU choices: clip text_features (trim ${trim}) rel_l2 ${rt.relL2.toExponential(2)}`);
        ft.dispose();
      }
      fi.dispose();
      x.dispose();
    } finally {
      model.dispose();
      await ref.close();
    }
  });

  it('SAM 2.1: encode the dog photo (image and high-res features), then every recorded case', async () => {
    const ctx = gpu();
    const predictor = await Sam2Predictor.load(ctx, SAM2_WEIGHTS, { overrides: tinyOverrides(), dtype: 'f32' });
    const photo = SAM2_PHOTOS.find((p) => p.name === 'dog')!;
    const ref = await Sam2Ref.open(photo);
    const emb = await predictor.encode(photoImage(photo.name));
    try {
      await checkAgainst(ref, await readTensor(ctx, emb.features.imageEmbed), 'image_embed', 'GPU choices: dog image_embed');
      await checkAgainst(ref, await readTensor(ctx, emb.features.highRes.s0), 'high_res_feats.0', 'GPU choices: dog high_res_feats.0');
      await checkAgainst(ref, await readTensor(ctx, emb.features.highRes.s1), 'high_res_feats.1', 'GPU choices: dog high_res_feats.1');
      for (const c of photo.cases) {
        const label = `GPU choices: dog/${c.name}`;
        const mask = c.mask_input ? await ref.f32(c.mask_input) : undefined;
        const boxes = c.box ? (Array.isArray(c.box[0]) ? (c.box as number[][]) : [c.box as number[]]) : null;
        const base: SamPrompt = c.point_coords ? { points: c.point_coords.map((q) => [q[0]!, q[1]!] as [number, number]), labels: c.point_labels! } : {};
        if (mask) base.maskInput = mask;
        const prompts = boxes ? boxes.map((b) => ({ ...base, box: b as [number, number, number, number] })) : [base];
        const preds = await predictor.predictBatch(emb, prompts, { multimaskOutput: c.multimask_output });
        await checkAgainst(ref, new Float32Array(preds.flatMap((p) => Array.from(p.lowResLogits))), ref.caseTensor(c, 'low_res_logits'), `${label} low_res_logits`);
        const mn = ref.caseTensor(c, 'masks');
        expectMasksAgree(preds, await ref.file.readRaw(mn), ref.entry(mn).unpacked_shape!, label, MASK_AGREEMENT);
      }
    } finally {
      emb.dispose();
      predictor.dispose();
    }
  });

  it('SAM-CLIP: classification and the refined label map of the dog photo', async () => {
    const ctx = gpu();
    const model = await SamClip.load(ctx, BUNDLE);
    const p = SAMCLIP_PHOTOS.find((x) => x.name === 'dog')!;
    const [H, W] = p.original_size;
    const f = await openReference(`samclip/${p.file}`);
    try {
      const c = await model.classify(photoImage(p.name), CLASSES);
      expectReference(c.probs, await f.readF32('r112.cls_probs'), p.tensors['r112.cls_probs']!, 'GPU choices: samclip dog cls_probs');
      const r = await model.segmentSemantic(photoImage(p.name), CLASSES, { refine: true });
      expect(r.decodedClasses).toEqual(Array.from(await f.readI32('refine.decoded_classes')));
      const a = agreement(r.labelMap, decodeBitPlanes(new Uint8Array(await f.readRaw('refine.label_map')), 3, H, W));
      console.log(`GPU choices: samclip dog refined label map agreement ${(100 * a).toFixed(4)}%`);
      expect(a).toBeGreaterThanOrEqual(0.9999);
    } finally {
      await f.close();
      model.dispose();
    }
  });

  it('SAM with f16 activations under the same choices: the f16 rule against the f32 path', async (t) => {
    const ctx = gpu();
    if (!ctx.features.f16) return t.skip('needs shader-f16');
    const f16 = await GpuContext.create({ preferF16: true, activations: 'f16' });
    Object.assign(f16.tuning, defaultTuning(false, f16.features));
    const run = async (c: GpuContext) => {
      const p = await SamPredictor.load(c, TINY_WEIGHTS);
      const emb = await p.encode(photoImage('dog'));
      const e = (await readTensor(c, emb.tensor)) as Float32Array;
      const r = await p.predict(emb, { points: [[300, 300], [570, 200]], labels: [1, 0] }, { multimaskOutput: true });
      emb.dispose();
      p.dispose();
      return { e, r };
    };
    try {
      const [a, b] = await Promise.all([run(ctx), run(f16)]);
      for (const [what, x, y] of [['image embedding', b.e, a.e], ['low-res logits', b.r.lowResLogits, a.r.lowResLogits], ['IoU', b.r.iouPredictions, a.r.iouPredictions]] as const) {
        const d = compare(x, y);
        console.log(`GPU choices, f16 rule, SAM ${what}: rel L2 ${d.relL2.toExponential(2)} (gate 1e-2)`);
        expect(d.nonFiniteMismatch, what).toBe(0);
        expect(d.relL2, what).toBeLessThanOrEqual(1e-2);
      }
      a.r.masks.forEach((m, i) => expect(maskIoU(b.r.masks[i]!, m), `mask ${i} IoU`).toBeGreaterThanOrEqual(0.99));
    } finally {
      f16.destroy();
    }
  });

  it("ran a GPU's kernels, not the CPU adapter's", () => {
    const ctx = gpu();
    const variants = new Set(compiled.flatMap((k) => [...k.matchAll(/"variant":"(\w+)"/g)].map((m) => m[1]!)));
    const names = new Set(compiled.map((k) => k.split('{')[0]!));
    console.log(`GPU choices: ${compiled.length} pipelines; matmul variants ${[...variants].join(', ')}; kernels ${[...names].join(', ')}`);
    expect(variants.has('tiled8_nt')).toBe(true);
    if (ctx.features.subgroups) expect(variants.has('rows_sg')).toBe(true);
    // The CPU adapter's matmuls and its chunked attention (scores as matmuls + attention_softmax) never ran.
    for (const cpu of ['direct_nt', 'direct_sg_nt']) expect(variants.has(cpu), cpu).toBe(false);
    expect(names.has('attention_softmax')).toBe(false);
    expect(names.has('attention')).toBe(true);
  });
});
