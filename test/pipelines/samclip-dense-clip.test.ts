/**
 * Composite mode's dense CLIP features (src/pipelines/dense-clip.ts) against ONNX Runtime on an
 * ONNX export of the same computation with the tiny reference CLIP weights
 * (tools/export-onnx-dense-clip.py; its tower is checked against the official code's fixtures
 * first, see test/fixtures/onnx/dense-clip/export-report.json): the three methods on a batch of
 * native-size inputs, and sliding windows over a larger input. Gate: rel L2 <= 1e-5 (f32 both sides).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTensor } from '../../src/kernels/copy.js';
import type { ClipModel } from '../../src/model/clip/clip.js';
import { DenseClip, type DenseClipMethod, slideOrigins } from '../../src/model/clip/dense-clip.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { expectClose } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { runModel } from '../helpers/onnx.js';
import { FIXTURES } from '../helpers/reference.js';
import { loadTiny } from '../model/clip-helpers.js';

const DIR = join(FIXTURES, 'onnx', 'dense-clip');
const REL = 1e-5;
const gpu = useGpu();
let io: SafetensorsFile;
let clip: ClipModel;
let dense: DenseClip;

beforeAll(async () => {
  io = await SafetensorsFile.open(join(DIR, 'dense_clip_io.safetensors'));
  clip = await loadTiny(gpu());
  dense = new DenseClip(gpu(), clip);
});
afterAll(async () => {
  dense?.dispose();
  clip?.dispose();
  await io?.close();
});

function close(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>, shape: readonly number[]) {
  const c = expectClose(actual, expected, { relL2: REL }, name, shape);
  console.log(`${name}: rel_l2 ${c.relL2.toExponential(2)} (gate ${REL.toExponential(0)}), max_abs ${c.maxAbs.toExponential(2)}`);
}

describe('dense CLIP features vs ONNX Runtime', () => {
  it('slide window origins follow mmseg slide_inference', () => {
    expect(slideOrigins(96, 64, 32)).toEqual([0, 32]);
    expect(slideOrigins(112, 64, 32)).toEqual([0, 32, 48]);
    expect(slideOrigins(448, 224, 112)).toEqual([0, 112, 224]);
    expect(slideOrigins(64, 64, 32)).toEqual([0]);
    expect(slideOrigins(50, 64, 32)).toEqual([0]);
  });

  it('maskclip / value / baseline on a batch of native-size inputs', async () => {
    const ctx = gpu();
    const pixels = await io.readF32('batch.pixels');
    const ort = await runModel(readFileSync(join(DIR, 'dense_clip_tiny.onnx')), { pixels: { data: pixels, dims: [4, 3, 64, 64] } });
    const x = ctx.upload(pixels, [4, 3, 64, 64]);
    const results: Record<string, Float32Array> = {};
    for (const m of ['maskclip', 'value', 'baseline'] as DenseClipMethod[]) {
      close(`onnx vs export-time torch: ${m}`, ort[m]!.data, await io.readF32(`batch.torch.${m}`), [4, 4, 4, 64]);
      const t = dense.forwardBatch(ctx, x, m);
      expect(t.shape).toEqual([4, 4, 4, 64]);
      results[m] = (await readTensor(ctx, t)) as Float32Array;
      close(`engine vs ORT: ${m}`, results[m]!, ort[m]!.data, [4, 4, 4, 64]);
      t.dispose();
    }
    // The methods are different computations (a swapped-in method would not pass by accident).
    const diff = (a: Float32Array, b: Float32Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    expect(diff(results.maskclip!, results.value!)).toBeGreaterThan(1e-2);
    expect(diff(results.maskclip!, results.baseline!)).toBeGreaterThan(1e-2);
    x.dispose();
  });

  it('sliding windows over a 96 x 112 input (64-px windows, stride 32), averaged per token', async () => {
    const ctx = gpu();
    const pixels = await io.readF32('slide.pixels');
    const ort = await runModel(readFileSync(join(DIR, 'dense_clip_tiny_slide.onnx')), { pixels: { data: pixels, dims: [1, 3, 96, 112] } });
    close('onnx vs export-time torch: slide', ort.dense!.data, await io.readF32('slide.torch.dense'), [1, 6, 7, 64]);
    const x = ctx.upload(pixels, [1, 3, 96, 112]);
    const t = await dense.features(ctx, x, { window: 64, stride: 32 });
    expect(t.shape).toEqual([1, 6, 7, 64]);
    close('engine vs ORT: slide', (await readTensor(ctx, t)) as Float32Array, ort.dense!.data, [1, 6, 7, 64]);
    t.dispose();
    x.dispose();
  });

  it('rejects bad options and inputs', async () => {
    const ctx = gpu();
    expect(() => dense.windowing({ window: 60 })).toThrow(/window 60 must be a positive multiple of the 16-px patch/);
    expect(() => dense.windowing({ stride: 80 })).toThrow(/stride 80 must be a multiple of the 16-px patch, at most the window 64/);
    const x = ctx.empty([1, 3, 64, 64]);
    expect(() => dense.forwardBatch(ctx, x, 'attention' as DenseClipMethod)).toThrow(/unknown method 'attention'/);
    const odd = ctx.empty([1, 3, 72, 64]);
    await expect(dense.features(ctx, odd)).rejects.toThrow(/multiple of the 16-px patch/);
    x.dispose();
    odd.dispose();
  });
});
