/**
 * SAM-CLIP pipeline stages against the reference fixtures (test/fixtures/reference/samclip), each
 * stage fed the STORED upstream tensors as the fixtures' README lists them:
 *   rR.dense + T -> S (and P);  r112.pooled + T -> classification logits;
 *   r160.S -> head-only label map;  r256.S -> refinement fallback labels;
 *   r256.P -> mask prompts and points;  r256.image_embedding + mask prompts + point coords -> decoder;
 *   refine.low_res_logits + refine.head_label_map -> refined label map and fallback mask.
 * Float tensors: the fixtures' rule (rel_l2 printed); discrete choices exact; label maps >= 99.9%.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyInto, readTensor } from '../../src/kernels/copy.js';
import { labelMap } from '../../src/model/samclip/label-kernels.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { planRefinement, resolveRefinement, softmaxClasses } from '../../src/pipelines/refinement.js';
import { decodeClasses, finalizeLabels, maskPromptInputs, scoreMaps } from '../../src/pipelines/semantic-segmentation.js';
import { classificationLogits } from '../../src/pipelines/zero-shot-classification.js';
import type { SafetensorsFile } from '../../src/weights/safetensors.js';
import { useGpu } from '../helpers/gpu.js';
import { agreement, expectReference, openReference } from '../helpers/reference.js';
import { BUNDLE, CLASSES, PHOTOS, SYN, checkRef, decodeBitPlanes, uploadRef } from '../model/samclip-fixture.js';

const gpu = useGpu();
const C = CLASSES.length;
let model: SamClip;
let text: SafetensorsFile;
let T: Float32Array;
const scale = () => model.logitScale;

beforeAll(async () => {
  model = await SamClip.load(gpu(), BUNDLE);
  text = await openReference('samclip/samclip_tiny.text.safetensors');
  T = await text.readF32('T');
});
afterAll(async () => {
  model?.dispose();
  await text?.close();
});

/** S [C, g, g] from stored dense [1, g, g, D] and stored T, compared with rR.S; returns it on the host. */
async function checkScores(file: SafetensorsFile, R: number, entries: Record<string, import('../helpers/reference.js').ManifestTensor>, label: string) {
  const ctx = gpu();
  const dense = await uploadRef(ctx, file, `r${R}.dense`);
  const Tt = ctx.upload(T, [C, 64]);
  const S = scoreMaps(ctx, dense, Tt, scale());
  await checkRef(ctx, S, file, `r${R}.S`, entries[`r${R}.S`]!, `${label}:r${R}.S`);
  const s = (await readTensor(ctx, S)) as Float32Array;
  const g = R / 16;
  const tm = new Float32Array(s.length);
  for (let c = 0; c < C; c++) for (let n = 0; n < g * g; n++) tm[n * C + c] = s[c * g * g + n]!;
  const P = softmaxClasses(tm, g * g, C);
  const r = expectReference(P, await file.readF32(`r${R}.P`), entries[`r${R}.P`]!, `${label}:r${R}.P`);
  console.log(`${label}:r${R}.P: rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)})`);
  for (const t of [dense, Tt, S]) t.dispose();
}

describe('logit scale', () => {
  it('exp(logit_scale) equals the stored multiplier', async () => {
    const stored = (await text.readF32('logit_scale_exp'))[0]!;
    expect(Math.abs(model.logitScale - stored) / stored).toBeLessThan(1e-6);
  });
});

describe('scores S and probabilities P from the stored dense embeddings and T', () => {
  it('synthetic inputs at 256 / 160 px', async () => {
    const f = await openReference('samclip/samclip_tiny.synthetic.safetensors');
    for (const R of [256, 160]) await checkScores(f, R, SYN, 'synthetic');
    await f.close();
  });
  for (const photo of PHOTOS) {
    it(`photo ${photo.name} at 256 / 160 px`, async () => {
      const f = await openReference(`samclip/${photo.file}`);
      for (const R of [256, 160]) await checkScores(f, R, photo.tensors, photo.name);
      await f.close();
    });
  }
});

describe('classification logits from the stored pooled embedding at 112 px', () => {
  const cases = [{ name: 'synthetic', file: 'samclip/samclip_tiny.synthetic.safetensors', entries: SYN }, ...PHOTOS.map((p) => ({ name: p.name, file: `samclip/${p.file}`, entries: p.tensors }))];
  for (const c of cases) {
    it(c.name, async () => {
      const f = await openReference(c.file);
      const { logits, probs } = classificationLogits(await f.readF32('r112.pooled'), T, C, scale());
      for (const [name, v] of [['r112.cls_logits', logits], ['r112.cls_probs', probs]] as const) {
        const r = expectReference(v, await f.readF32(name), c.entries[name]!, `${c.name}:${name}`);
        console.log(`${c.name}:${name}: rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)})`);
      }
      await f.close();
    });
  }
});

for (const photo of PHOTOS) {
  describe(`photo ${photo.name}: label maps and refinement`, () => {
    let f: SafetensorsFile;
    const [H, W] = photo.original_size;
    const E = photo.tensors;
    beforeAll(async () => {
      f = await openReference(`samclip/${photo.file}`);
    });
    afterAll(async () => f?.close());

    const stored = async (name: string) => decodeBitPlanes(new Uint8Array(await f.readRaw(name)), 3, H, W);

    it('head-only label map: stored r160.S upsampled to the original size, argmax', async () => {
      const ctx = gpu();
      const S = (await uploadRef(ctx, f, 'r160.S')).reshape([C, 10, 10]);
      const raw = (await readTensor(ctx, labelMap(ctx, S, { outSize: [H, W] }))) as Uint32Array;
      const a = agreement(finalizeLabels(raw, { classes: C, background: -1 }).labels, await stored('seg.label_map'));
      console.log(`${photo.name}: head-only label map agreement ${(100 * a).toFixed(4)}% (${Math.round((1 - a) * H * W)} pixels differ)`);
      expect(a).toBeGreaterThanOrEqual(0.999);
      S.dispose();
    });

    it('fallback labels: stored r256.S through SAM post-processing, argmax', async () => {
      const ctx = gpu();
      const S = (await uploadRef(ctx, f, 'r256.S')).reshape([C, 16, 16]);
      const raw = (await readTensor(ctx, labelMap(ctx, S, { outSize: [H, W], frame: { size: 256, inputSize: photo.input_size } }))) as Uint32Array;
      const a = agreement(finalizeLabels(raw, { classes: C, background: -1 }).labels, await stored('refine.head_label_map'));
      console.log(`${photo.name}: fallback label map agreement ${(100 * a).toFixed(4)}%`);
      expect(a).toBeGreaterThanOrEqual(0.999);
      S.dispose();
    });

    it('mask prompts and points from the stored r256.P (points exact)', async () => {
      const ctx = gpu();
      const P = await f.readF32('r256.P');
      const plan = planRefinement(P, C, 16, 16, photo.input_size, 16, resolveRefinement({}, 16));
      const decoded = Array.from(await f.readI32('refine.decoded_classes'));
      expect(plan.decoded).toEqual(decoded);
      expect(plan.decoded.map((c) => CLASSES[c])).toEqual(photo.decoded_classes);
      const num = Array.from(await f.readI32('refine.num_points'));
      expect(plan.points.map((p) => p.tokens.length)).toEqual(num);
      const tok = await f.readI32('refine.point_tokens');
      const coords = await f.readF32('refine.point_coords');
      for (let c = 0; c < C; c++) {
        for (let k = 0; k < 3; k++) {
          const t = plan.points[c]!.tokens[k] ?? [-1, -1];
          const xy = plan.points[c]!.coords[k] ?? [-1, -1];
          expect([...t], `class ${c} point ${k} token`).toEqual([tok[(c * 3 + k) * 2], tok[(c * 3 + k) * 2 + 1]]);
          expect([...xy], `class ${c} point ${k} coords`).toEqual([coords[(c * 3 + k) * 2], coords[(c * 3 + k) * 2 + 1]]);
        }
      }
      // Mask prompts for every class (the fixture stores all classes, decoded or not).
      const all = planRefinement(P, C, 16, 16, photo.input_size, 16, resolveRefinement({ pointThreshold: 0 }, 16));
      expect(all.decoded).toEqual([0, 1, 2, 3, 4, 5]);
      const m = maskPromptInputs(ctx, all, 16, 16, 64);
      await checkRef(ctx, m, f, 'refine.mask_prompts', E['refine.mask_prompts']!, `${photo.name}:refine.mask_prompts`);
      m.dispose();
    });

    it('decoder: stored image embedding + mask prompts + point coords -> low-res logits, IoU', async () => {
      const ctx = gpu();
      const decoded = Array.from(await f.readI32('refine.decoded_classes'));
      const num = await f.readI32('refine.num_points');
      const coords = await f.readF32('refine.point_coords');
      const emb = await uploadRef(ctx, f, 'r256.image_embedding');
      const allPrompts = await uploadRef(ctx, f, 'refine.mask_prompts');
      const pts = decoded.map((c) => Array.from({ length: num[c]! }, (_, k) => [coords[(c * 3 + k) * 2]!, coords[(c * 3 + k) * 2 + 1]!] as [number, number]));
      const masks = ctx.scope(() => {
        const out = ctx.empty([decoded.length, 1, 64, 64]);
        decoded.forEach((c, k) => copyInto(ctx, allPrompts.slice(0, c, c + 1), out.slice(0, k, k + 1)));
        return out;
      });
      const { lowRes, iou } = await decodeClasses(ctx, model.backend.sam, emb, masks, pts);
      await checkRef(ctx, lowRes, f, 'refine.low_res_logits', E['refine.low_res_logits']!, `${photo.name}:refine.low_res_logits`);
      const r = expectReference(iou, await f.readF32('refine.iou_predictions'), E['refine.iou_predictions']!, `${photo.name}:refine.iou_predictions`);
      console.log(`${photo.name}:refine.iou_predictions: rel_l2 ${r.relL2.toExponential(2)}`);
      for (const t of [emb, allPrompts, masks, lowRes]) t.dispose();
    });

    it('refined label map and fallback mask from the stored low-res logits and fallback labels', async () => {
      const ctx = gpu();
      const decoded = Array.from(await f.readI32('refine.decoded_classes'));
      const low = (await uploadRef(ctx, f, 'refine.low_res_logits')).reshape([decoded.length, 64, 64]);
      const head = await stored('refine.head_label_map');
      const fb = ctx.upload(Uint32Array.from(head), [H * W], 'u32');
      const raw = (await readTensor(ctx, labelMap(ctx, low, { outSize: [H, W], frame: { size: 256, inputSize: photo.input_size }, fallback: fb }))) as Uint32Array;
      const { labels, fallback } = finalizeLabels(raw, { classes: C, background: -1, decoded });
      const a = agreement(labels, await stored('refine.label_map'));
      const fbMask = Uint8Array.from(raw, (v) => (v >>> 16) & 1);
      const expectedFb = decodeBitPlanes(new Uint8Array(await f.readRaw('refine.fallback_mask')), 1, H, W);
      const af = agreement(fbMask, expectedFb);
      const refCount = (E['refine.fallback_mask'] as unknown as { true_count: number }).true_count;
      console.log(`${photo.name}: refined label map agreement ${(100 * a).toFixed(4)}%, fallback mask ${(100 * af).toFixed(4)}% (${fallback} fallback pixels, reference ${refCount})`);
      expect(a).toBeGreaterThanOrEqual(0.999);
      expect(af).toBeGreaterThanOrEqual(0.999);
      low.dispose();
      fb.dispose();
    });
  });
}
