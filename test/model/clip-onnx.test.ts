/**
 * CLIP towers against ONNX Runtime (DESIGN.md 7.2) on ONNX exports of the towers with the same
 * seeded weights (tools/export-onnx-clip.py; its re-implementation is checked against the official
 * code's fixtures before export, see test/fixtures/onnx/clip/export-report.json):
 *  - vision at the native 64 px, stage by stage (ln_pre, each block, image_features);
 *  - vision at 96 px (6x6 grid): the position table resized by open_clip's rule (antialiased
 *    bicubic) at export time vs the engine's own resize at run time;
 *  - text with QuickGELU and with exact GELU (all 34 reference strings, truncated ones included).
 * Both sides are f32; the declared gate is rel L2 <= 1e-5 (measured values are printed).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClipModel } from '../../src/model/clip/clip.js';
import { TapRecorder } from '../../src/model/clip/taps.js';
import { resizeGridAntialias } from '../../src/model/clip/vision.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { expectClose } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { runModel } from '../helpers/onnx.js';
import { FIXTURES } from '../helpers/reference.js';
import { loadTiny, readF32, tinyTensor } from './clip-helpers.js';

const DIR = join(FIXTURES, 'onnx', 'clip');
const REL = 1e-5;
const gpu = useGpu();
let io: SafetensorsFile;
let model: ClipModel;
let geluModel: ClipModel;

beforeAll(async () => {
  io = await SafetensorsFile.open(join(DIR, 'clip_tiny_io.safetensors'));
  model = await loadTiny(gpu());
  geluModel = await loadTiny(gpu(), { act: 'gelu', towers: 'text' });
});
afterAll(async () => {
  model?.dispose();
  geluModel?.dispose();
  await io?.close();
});

const onnx = (name: string): Uint8Array => readFileSync(join(DIR, name));

function close(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>, shape: readonly number[], relL2 = REL): void {
  const c = expectClose(actual, expected, { relL2 }, name, shape);
  console.log(`${name}: rel_l2 ${c.relL2.toExponential(2)} (gate ${relL2.toExponential(0)}), max_abs ${c.maxAbs.toExponential(2)}`);
}

describe('CLIP vision tower vs ONNX Runtime', () => {
  it('64 px: ln_pre, resblock0, resblock1, image_features', async () => {
    const ctx = gpu();
    const pixels = await io.readF32('vision.pixels');
    const ort = await runModel(onnx('clip_tiny_vision.onnx'), { pixels: { data: pixels, dims: [2, 3, 64, 64] } });
    // The .onnx is the one the script checked: ORT reproduces the export-time torch outputs.
    close('onnx vs torch image_features', ort.image_features!.data, await io.readF32('vision.torch.image_features'), [2, 64]);
    const x = ctx.upload(pixels, [2, 3, 64, 64]);
    const rec = new TapRecorder(ctx);
    const f = model.encodeImage(ctx, x, { tap: rec.tap });
    try {
      close('vision ln_pre', await readF32(ctx, rec.get('visual.ln_pre')), ort.ln_pre!.data, [2, 17, 96]);
      close('vision resblock0', await readF32(ctx, rec.get('visual.resblock0')), ort.resblock0!.data, [2, 17, 96]);
      close('vision resblock1', await readF32(ctx, rec.get('visual.resblock1')), ort.resblock1!.data, [2, 17, 96]);
      close('vision image_features', await readF32(ctx, f), ort.image_features!.data, [2, 64]);
    } finally {
      rec.dispose();
      f.dispose();
      x.dispose();
    }
  });

  it('96 px: position table resized at run time (open_clip rule) vs baked into the export', async () => {
    const ctx = gpu();
    const pixels = await io.readF32('vision96.pixels');
    const ort = await runModel(onnx('clip_tiny_vision_96.onnx'), { pixels: { data: pixels, dims: [2, 3, 96, 96] } });
    close('onnx vs torch image_features (96)', ort.image_features!.data, await io.readF32('vision96.torch.image_features'), [2, 64]);
    expect(model.visual!.isPrepared(96)).toBe(false);
    const x = ctx.upload(pixels, [2, 3, 96, 96]);
    expect(() => model.encodeImage(ctx, x)).toThrow(/not resized for a 6x6 grid.*prepare/);
    await model.prepareImageSize(ctx, 96);
    const f = model.encodeImage(ctx, x);
    close('vision image_features (96 px)', await readF32(ctx, f), ort.image_features!.data, [2, 64]);
    f.dispose();
    x.dispose();
  });
});

describe('position-table resize vs torch F.interpolate', () => {
  const W = 96;
  for (const g of [6, 3]) {
    it(`antialiased bicubic (open_clip) to ${g}x${g} on the CPU`, async () => {
      const pos = await tinyTensor('visual.positional_embedding');
      const mine = new Float32Array((1 + g * g) * W);
      mine.set(pos.subarray(0, W));
      mine.set(resizeGridAntialias(pos.subarray(W), 4, 4, W, g, g), W);
      close(`pos_embed aa ${g}x${g}`, mine, await io.readF32(`pos_embed.aa.${g}x${g}`), [1 + g * g, W], 1e-6);
      // At a downscale the antialiased filter is a different function: the rules must differ.
      if (g < 4) {
        const plain = await io.readF32(`pos_embed.bicubic.${g}x${g}`);
        let d = 0;
        for (let i = 0; i < plain.length; i++) d = Math.max(d, Math.abs(plain[i]! - mine[i]!));
        expect(d).toBeGreaterThan(1e-2);
      }
    });

    it(`plain bicubic (F.interpolate default) to ${g}x${g} on the GPU`, async () => {
      const ctx = gpu();
      const m = await loadTiny(ctx, { posEmbedInterpolation: 'bicubic', towers: 'vision' });
      try {
        const t = m.visual!.positionTable(ctx, g, g);
        close(`pos_embed bicubic ${g}x${g}`, await readF32(ctx, t), await io.readF32(`pos_embed.bicubic.${g}x${g}`), [1 + g * g, W], 1e-6);
      } finally {
        m.dispose();
      }
    });
  }
});

describe('CLIP text tower vs ONNX Runtime', () => {
  for (const act of ['quick_gelu', 'gelu'] as const) {
    it(`${act}: 34 strings (incl. truncated), full context and trimmed`, async () => {
      const ctx = gpu();
      const ids = await io.readI32('text.token_ids');
      const B = ids.length / 77;
      const table = await tinyTensor('token_embedding.weight');
      const ort = await runModel(onnx(act === 'gelu' ? 'clip_tiny_text_gelu.onnx' : 'clip_tiny_text.onnx'), {
        token_ids: { data: BigInt64Array.from(ids, (v) => BigInt(v)), dims: [B, 77] },
        token_embedding: { data: table, dims: [49408, 64] },
      });
      close(`onnx vs torch text_features (${act})`, ort.text_features!.data, await io.readF32(`text.torch.${act}.text_features`), [B, 64]);
      const m = act === 'gelu' ? geluModel : model;
      expect(m.config.act).toBe(act);
      for (const trim of [false, true]) {
        const f = m.encodeText(ctx, { ids, shape: [B, 77] }, { trim });
        close(`text_features ${act}${trim ? ' (trimmed)' : ''}`, await readF32(ctx, f), ort.text_features!.data, [B, 64]);
        f.dispose();
      }
    });
  }
});
