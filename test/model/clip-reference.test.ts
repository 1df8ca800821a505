/**
 * CLIP towers against the official openai/CLIP code (test/fixtures/reference/clip_tiny.*): every
 * recorded stage under the fixtures' rule (rel_l2 <= max(1e-4, 20 noise), max_abs gate), fed
 * with the stored upstream inputs (`images` -> vision, `token_ids` -> text), plus each block run
 * alone on the stored output of the block before it, so the first failing stage is the one
 * reported. Measured rel_l2 per stage is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClipModel } from '../../src/model/clip/clip.js';
import { TapRecorder } from '../../src/model/clip/taps.js';
import { eotPositions } from '../../src/model/clip/text.js';
import { expectReference, openReference } from '../helpers/reference.js';
import { useGpu } from '../helpers/gpu.js';
import { CLIP_MANIFEST, loadTiny, pickRows, readF32, swap01 } from './clip-helpers.js';
import type { SafetensorsFile } from '../../src/weights/safetensors.js';

const gpu = useGpu();
const T = CLIP_MANIFEST.tensors;
const SUBSET: number[] = CLIP_MANIFEST.text_subset;
let model: ClipModel;
let ref: SafetensorsFile;

beforeAll(async () => {
  model = await loadTiny(gpu());
  ref = await openReference('clip_tiny.safetensors');
});
afterAll(async () => {
  model?.dispose();
  await ref?.close();
});

function report(name: string, r: { relL2: number; maxAbs: number; relL2Gate: number }): void {
  console.log(`clip_tiny ${name}: rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)}), max_abs ${r.maxAbs.toExponential(2)}`);
}

describe('clip_tiny config from shapes', () => {
  it('matches the manifest config', () => {
    const c = CLIP_MANIFEST.config;
    const v = model.config.vision!;
    const t = model.config.text!;
    expect([v.width, v.layers, v.patch, v.imageSize, v.heads]).toEqual([c.vision_width, c.vision_layers, c.vision_patch_size, c.image_resolution, CLIP_MANIFEST.vision_heads]);
    expect([t.width, t.layers, t.heads, t.contextLength, t.vocabSize]).toEqual([c.transformer_width, c.transformer_layers, c.transformer_heads, c.context_length, c.vocab_size]);
    expect(model.config.embedDim).toBe(c.embed_dim);
    expect(model.config.act).toBe('quick_gelu');
    // LayerNorm eps 1e-5 everywhere in CLIP (DESIGN.md 4). An eps slip moves these outputs by
    // ~5e-6 relative, below the fixtures' gate, so it is asserted here.
    expect([v.eps, t.eps]).toEqual([1e-5, 1e-5]);
    expect(model.logitScale).toBeCloseTo(100, 4);
  });
});

describe('clip_tiny vision tower vs openai/CLIP', () => {
  it('images -> conv1, ln_pre, resblocks, ln_post, image_features', async () => {
    const ctx = gpu();
    const images = await ref.readF32('images');
    const x = ctx.upload(images, [3, 3, 64, 64]);
    const rec = new TapRecorder(ctx);
    const feats = model.encodeImage(ctx, x, { tap: rec.tap });
    try {
      report('visual.conv1', expectReference(await readF32(ctx, rec.get('visual.conv1')), await ref.readF32('visual.conv1'), T['visual.conv1'], 'visual.conv1'));
      report('visual.ln_pre', expectReference(await readF32(ctx, rec.get('visual.ln_pre')), await ref.readF32('visual.ln_pre'), T['visual.ln_pre'], 'visual.ln_pre'));
      for (const i of [0, 1]) {
        const name = `visual.resblock${i}`;
        const mine = swap01(await readF32(ctx, rec.get(name)), 3, 17, 96); // NLD -> LND
        report(name, expectReference(mine, await ref.readF32(name), T[name], name));
      }
      report('visual.ln_post', expectReference(await readF32(ctx, rec.get('visual.ln_post')), await ref.readF32('visual.ln_post'), T['visual.ln_post'], 'visual.ln_post'));
      report('image_features', expectReference(await readF32(ctx, feats), await ref.readF32('image_features'), T.image_features, 'image_features'));
    } finally {
      rec.dispose();
      feats.dispose();
      x.dispose();
    }
  });

  it('resblock1 alone on the stored resblock0 output', async () => {
    const ctx = gpu();
    const r0 = swap01(await ref.readF32('visual.resblock0'), 17, 3, 96); // LND -> NLD
    const x = ctx.upload(r0, [3, 17, 96]);
    const y = model.visual!.transformer.resblocks[1]!.forward(ctx, x);
    const mine = swap01(await readF32(ctx, y), 3, 17, 96);
    report('visual.resblock1 (isolated)', expectReference(mine, await ref.readF32('visual.resblock1'), T['visual.resblock1'], 'visual.resblock1 isolated'));
    x.dispose();
    y.dispose();
  });
});

describe('clip_tiny text tower vs openai/CLIP', () => {
  const run = async (trim: boolean) => {
    const ctx = gpu();
    const all = await ref.readI32('token_ids');
    const ids = pickRows(all, 77, SUBSET);
    const rec = new TapRecorder(ctx);
    const feats = model.encodeText(ctx, { ids, shape: [SUBSET.length, 77] }, { tap: rec.tap, trim });
    return { ctx, rec, feats };
  };

  it('token_ids -> token_embedding, resblocks, ln_final, text_features (full context)', async () => {
    const { ctx, rec, feats } = await run(false);
    try {
      const B = SUBSET.length;
      report('text.token_embedding', expectReference(await readF32(ctx, rec.get('text.token_embedding')), await ref.readF32('text.token_embedding'), T['text.token_embedding'], 'text.token_embedding'));
      for (const i of [0, 1]) {
        const name = `text.resblock${i}`;
        const mine = swap01(await readF32(ctx, rec.get(name)), B, 77, 64);
        report(name, expectReference(mine, await ref.readF32(name), T[name], name));
      }
      report('text.ln_final', expectReference(await readF32(ctx, rec.get('text.ln_final')), await ref.readF32('text.ln_final'), T['text.ln_final'], 'text.ln_final'));
      report('text_features', expectReference(await readF32(ctx, feats), await ref.readF32('text_features'), T.text_features, 'text_features'));
    } finally {
      rec.dispose();
      feats.dispose();
    }
  });

  it('trimmed context (first max(eot)+1 positions) gives the same text_features', async () => {
    // Leave out the over-long (truncated) strings, whose end token sits at position 76.
    const ctx = gpu();
    const all = pickRows(await ref.readI32('token_ids'), 77, SUBSET);
    const eot = eotPositions(all, SUBSET.length, 77);
    const keep = [...eot.keys()].filter((r) => eot[r]! < 40);
    expect(keep.length).toBeGreaterThanOrEqual(5);
    const rec = new TapRecorder(ctx);
    const feats = model.encodeText(ctx, { ids: pickRows(all, 77, keep), shape: [keep.length, 77] }, { tap: rec.tap, trim: true });
    expect(rec.get('text.token_embedding').dim(1)).toBe(Math.max(...keep.map((r) => eot[r]!)) + 1);
    const expected = pickRows(await ref.readF32('text_features'), 64, keep);
    report('text_features (trimmed)', expectReference(await readF32(ctx, feats), expected, T.text_features, 'text_features trimmed'));
    rec.dispose();
    feats.dispose();
  });

  it('resblock1 alone on the stored resblock0 output (causal)', async () => {
    const ctx = gpu();
    const B = SUBSET.length;
    const x = ctx.upload(swap01(await ref.readF32('text.resblock0'), 77, B, 64), [B, 77, 64]);
    const y = model.text!.transformer.resblocks[1]!.forward(ctx, x, true);
    const mine = swap01(await readF32(ctx, y), B, 77, 64);
    report('text.resblock1 (isolated)', expectReference(mine, await ref.readF32('text.resblock1'), T['text.resblock1'], 'text.resblock1 isolated'));
    x.dispose();
    y.dispose();
  });
});

describe('clip_tiny logits', () => {
  it('logits_per_image = exp(logit_scale) * cos(image, text)', async () => {
    const ctx = gpu();
    const img = ctx.upload(await ref.readF32('images'), [3, 3, 64, 64]);
    const ids = pickRows(await ref.readI32('token_ids'), 77, SUBSET);
    const fi = model.encodeImage(ctx, img);
    const ft = model.encodeText(ctx, { ids, shape: [SUBSET.length, 77] }, { trim: true });
    const logits = model.logits(ctx, fi, ft);
    expect(logits.shape).toEqual([3, SUBSET.length]);
    report('logits_per_image', expectReference(await readF32(ctx, logits), await ref.readF32('logits_per_image'), T.logits_per_image, 'logits_per_image'));
    for (const t of [img, fi, ft, logits]) t.dispose();
  });
});

describe('bad input to the towers', () => {
  it('pixels and token ids of the wrong shape or range are named', () => {
    const ctx = gpu();
    const x = ctx.upload(new Float32Array(3 * 60 * 64), [1, 3, 60, 64]);
    expect(() => model.encodeImage(ctx, x)).toThrow(/input 60x64 must be positive multiples of the patch size 16/);
    const y = ctx.upload(new Float32Array(4 * 64 * 64), [1, 4, 64, 64]);
    expect(() => model.encodeImage(ctx, y)).toThrow(/pixels must be \[B, 3, H, W\], got \[1, 4, 64, 64\]/);
    x.dispose();
    y.dispose();
    const ids = new Int32Array(2 * 77);
    ids[5] = 49408;
    expect(() => model.encodeText(ctx, { ids, shape: [2, 77] })).toThrow(/id 49408 at position 5 is outside \[0, 49408\)/);
    expect(() => model.encodeText(ctx, { ids: new Int32Array(78), shape: [1, 78] })).toThrow(/78 tokens are longer than the model's context length 77/);
    expect(() => model.encodeText(ctx, { ids: new Int32Array(10), shape: [2, 77] })).toThrow(/10 token ids for shape \[2, 77\]/);
  });
});
