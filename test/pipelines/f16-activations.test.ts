/**
 * The f16 path (ContextOptions.activations 'f16' with f16 weights: activations stored as halves
 * inside the encoders, accumulation and softmax / layernorm statistics in f32) against the f32
 * path on the tiny reference models, under the f16 rule (DESIGN.md §7, issue 13): every model output
 * rel L2 <= 1e-2, binary masks IoU >= 0.99, label maps >= 97 % of pixels. Both paths run here on
 * whatever adapter the tests have (lavapipe offers shader-f16); without shader-f16 the file skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.js';
import { readTensor } from '../../src/kernels/copy.js';
import type { ClipModel } from '../../src/model/clip/clip.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { loadTiny } from '../model/clip-helpers.js';
import { BUNDLE, CLASSES } from '../model/samclip-fixture.js';
import { compare, maskIoU } from '../helpers/compare.js';
import { agreement } from '../helpers/reference.js';
import { Rng } from '../helpers/random.js';
import { usePhotos } from '../helpers/photos.js';
import { TINY_WEIGHTS } from './sam-fixture.js';

const photoImage = usePhotos();

let f32: GpuContext;
let f16: GpuContext;

beforeAll(async () => {
  f32 = await GpuContext.create();
  f16 = await GpuContext.create({ preferF16: true, activations: 'f16' });
});
afterAll(() => {
  f32?.destroy();
  f16?.destroy();
});

function relL2(got: ArrayLike<number>, want: ArrayLike<number>, what: string): number {
  const d = compare(got, want);
  console.log(`f16 rule, ${what}: rel L2 ${d.relL2.toExponential(2)} (gate 1e-2), max abs ${d.maxAbs.toExponential(2)}`);
  expect(d.nonFiniteMismatch, `${what}: NaN/Inf mismatches`).toBe(0);
  return d.relL2;
}

describe('f16 activations vs the f32 path (tiny models)', () => {
  it('the f16 context really stores activations in f16 (shader-f16 present)', (t) => {
    if (!f16.features.f16) t.skip('needs shader-f16');
    expect(f16.activationDtype).toBe('f16');
    expect(f32.activationDtype).toBe('f32');
  });

  it('SAM: image embedding, low-res logits, IoU predictions and masks', async (t) => {
    if (!f16.features.f16) return t.skip('needs shader-f16');
    const run = async (ctx: GpuContext) => {
      const p = await SamPredictor.load(ctx, TINY_WEIGHTS);
      const emb = await p.encode(photoImage('truck'));
      const e = (await readTensor(ctx, emb.tensor)) as Float32Array;
      const r = await p.predict(emb, { points: [[500, 375], [1100, 600]], labels: [1, 0] }, { multimaskOutput: true });
      emb.dispose();
      p.dispose();
      return { e, r };
    };
    // Both paths at once: on a CPU adapter most of each is shader compiles, which run on the
    // driver's threads and overlap.
    const [a, b] = await Promise.all([run(f32), run(f16)]);
    expect(relL2(b.e, a.e, 'SAM image embedding')).toBeLessThanOrEqual(1e-2);
    expect(relL2(b.r.lowResLogits, a.r.lowResLogits, 'SAM low-res logits')).toBeLessThanOrEqual(1e-2);
    expect(relL2(b.r.iouPredictions, a.r.iouPredictions, 'SAM IoU predictions')).toBeLessThanOrEqual(1e-2);
    a.r.masks.forEach((m, i) => {
      const v = maskIoU(b.r.masks[i]!, m);
      console.log(`f16 rule, SAM mask ${i}: IoU ${v.toFixed(5)} (gate 0.99)`);
      expect(v).toBeGreaterThanOrEqual(0.99);
    });
  });

  const clipRun = async (ctx: GpuContext, fn: (m: ClipModel) => ReturnType<ClipModel['encodeImage']>) => {
    const m = await loadTiny(ctx);
    try {
      return (await readTensor(ctx, fn(m))) as Float32Array;
    } finally {
      m.dispose();
    }
  };

  it('CLIP: image features', async (t) => {
    if (!f16.features.f16) return t.skip('needs shader-f16');
    const pixels = new Rng(3).randn(3 * 64 * 64);
    const run = (ctx: GpuContext) => clipRun(ctx, (m) => m.encodeImage(ctx, ctx.upload(pixels, [1, 3, 64, 64])));
    expect(relL2(await run(f16), await run(f32), 'CLIP image features')).toBeLessThanOrEqual(1e-2);
  });

  it('CLIP: text features', async (t) => {
    if (!f16.features.f16) return t.skip('needs shader-f16');
    const ids = new Int32Array(2 * 77);
    [[49406, 320, 1125, 539, 320, 2368, 49407], [49406, 320, 1929, 49407]].forEach((row, b) => ids.set(row, b * 77));
    const run = (ctx: GpuContext) => clipRun(ctx, (m) => m.encodeText(ctx, { ids, shape: [2, 77] }, { trim: true }));
    expect(relL2(await run(f16), await run(f32), 'CLIP text features')).toBeLessThanOrEqual(1e-2);
  });

  it('SAM-CLIP: classification probabilities, head-only and refined label maps', async (t) => {
    if (!f16.features.f16) return t.skip('needs shader-f16');
    const run = async (ctx: GpuContext) => {
      const m = await SamClip.load(ctx, BUNDLE);
      const cls = await m.classify(photoImage('dog'), CLASSES);
      const head = await m.segmentSemantic(photoImage('dog'), CLASSES);
      const refined = await m.segmentSemantic(photoImage('dog'), CLASSES, { refine: true });
      m.dispose();
      return { cls, head, refined };
    };
    const a = await run(f32);
    const b = await run(f16);
    expect(relL2(b.cls.probs, a.cls.probs, 'SAM-CLIP class probabilities')).toBeLessThanOrEqual(1e-2);
    for (const k of ['head', 'refined'] as const) {
      const v = agreement(b[k].labelMap, a[k].labelMap);
      console.log(`f16 rule, SAM-CLIP ${k} label map: ${(100 * v).toFixed(3)}% of pixels agree (gate 97%)`);
      expect(v).toBeGreaterThanOrEqual(0.97);
    }
  });
});
