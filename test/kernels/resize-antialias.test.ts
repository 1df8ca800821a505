import { describe, expect, it } from 'vitest';
import type { ImageLayout } from '../../src/kernels/conv2d.js';
import { resizeAntialiasCpu } from '../../src/kernels/cpu/resize-antialias.js';
import { packBytes, resizeAntialias, resizeAntialiasBytes } from '../../src/kernels/resize-antialias.js';
import { expectClose, type Tolerance } from '../helpers/compare.js';
import { nchwToNhwc, nhwcToNchw } from '../helpers/layout.js';
import { useGpu } from '../helpers/gpu.js';
import { type OnnxConst, runOnnx } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

interface Case {
  name: string;
  /** Logical NCHW input shape. */
  x: [number, number, number, number];
  out: [number, number];
  layout?: ImageLayout;
  scale?: number;
  tol: Tolerance;
}

// Each output is a convex combination of inputs with weights computed in f32 on both sides (in
// slightly different orders: ORT precomputes per-axis tables, we recompute per output), so the
// difference is a few ulp of the inputs' magnitude. Measured at most 9e-7 relative L2.
const f32: Tolerance = { relL2: 2e-6, atol: 1e-5, rtol: 1e-5 };

const cases: Case[] = [
  // SAM 2's preprocessing in miniature: a wide photo squeezed to a square (both axes downsampled).
  { name: 'downsample both axes, non-integer ratios', x: [1, 3, 45, 67], out: [16, 16], tol: f32 },
  { name: 'downsample by an integer factor', x: [2, 2, 24, 24], out: [6, 8], tol: f32 },
  { name: 'upsample (plain bilinear)', x: [1, 2, 7, 9], out: [19, 23], tol: f32 },
  { name: 'one axis up, the other down', x: [1, 3, 40, 6], out: [9, 17], tol: f32 },
  { name: 'same size (identity)', x: [1, 2, 5, 7], out: [5, 7], tol: { relL2: 0, atol: 0 } },
  { name: 'to 1x1 (mean-like)', x: [1, 2, 6, 5], out: [1, 1], tol: f32 },
  { name: 'NHWC', x: [1, 5, 31, 20], out: [8, 11], layout: 'nhwc', tol: f32 },
  { name: 'large magnitudes', x: [1, 3, 33, 17], out: [10, 7], scale: 1e4, tol: { relL2: 2e-6, atol: 1e-5 * 1e4, rtol: 1e-5 } },
];

const i64 = (name: string, data: number[]): OnnxConst => ({ name, dims: [data.length], data, type: 'int64' });

/**
 * ONNX Resize (opset 18), linear, half_pixel, antialias = 1 and exclude_outside = 1: PyTorch's
 * antialiased bilinear. exclude_outside matters: PyTorch drops the filter taps that fall outside
 * the image and renormalises (pytorch/pytorch#183546); with ONNX's default 0, ORT keeps them and
 * differs by ~10% near the borders.
 */
function reference(x: Float32Array, shape: readonly number[], out: readonly [number, number]): Promise<Float32Array> {
  return runOnnx(
    {
      nodes: [
        { op: 'Resize', inputs: ['X', '', '', 'sizes'], outputs: ['Y'], attrs: { mode: 'linear', coordinate_transformation_mode: 'half_pixel', antialias: 1, exclude_outside: 1 } },
      ],
      inputs: [{ name: 'X', dims: [...shape] }],
      outputs: ['Y'],
      initializers: [i64('sizes', [shape[0]!, shape[1]!, out[0], out[1]])],
      opset: 18,
    },
    { X: { data: x, dims: [...shape] } },
  );
}

describe('resizeAntialias vs onnxruntime', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const ctx = gpu();
      const n = c.x.reduce((p, d) => p * d, 1);
      const x = new Rng(n + c.out[0]).randn(n, c.scale ?? 1);
      const [N, C, H, W] = c.x;
      const t = c.layout === 'nhwc' ? ctx.upload(nchwToNhwc(x, c.x), [N, H, W, C]) : ctx.upload(x, c.x);
      const y = resizeAntialias(ctx, t, c.out[0], c.out[1], { layout: c.layout });
      expect(y.shape).toEqual(c.layout === 'nhwc' ? [N, ...c.out, C] : [N, C, ...c.out]);
      const got = await ctx.read(y);
      const outShape = [N, C, ...c.out];
      const gotNchw = c.layout === 'nhwc' ? nhwcToNchw(got, outShape) : got;
      const want = await reference(x, c.x, c.out);
      expectClose(gotNchw, want, c.tol, `resizeAntialias ${c.name} vs ORT`, outShape);
      expectClose(resizeAntialiasCpu(x, c.x, ...c.out), want, c.tol, `CPU reference ${c.name} vs ORT`, outShape);
    });
  }

  it('the triangle filter widened by the scale, worked by hand', async () => {
    const ctx = gpu();
    // 1..6 to 2 columns: scale 3, support 3; output 0 is centred at 1.5 and takes columns 0..4 with
    // weights 2/3, 1, 2/3, 1/3, 0 (sum 8/3): (2/3 + 2 + 2 + 4/3) / (8/3) = 2.25; output 1 mirrors it.
    const x = ctx.upload(Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 1, 1, 6]);
    expect(Array.from(await ctx.read(resizeAntialias(ctx, x, 1, 2)))).toEqual([2.25, 4.75]);
    // To one column: centre 3, support 6, all columns, weights 1 - |j - 2.5| / 6: the mean 3.5.
    expect(Array.from(await ctx.read(resizeAntialias(ctx, x, 1, 1)))).toEqual([3.5]);
  });

  it('reads a strided view (a crop) in place', async () => {
    const ctx = gpu();
    const x = new Rng(9).randn(2 * 30 * 40);
    const t = ctx.upload(x, [1, 2, 30, 40]);
    const crop = t.slice(2, 3, 27).slice(3, 5, 38); // [1, 2, 24, 33]
    const dense = new Float32Array(2 * 24 * 33);
    for (let c = 0; c < 2; c++) for (let y = 0; y < 24; y++) for (let xx = 0; xx < 33; xx++) dense[(c * 24 + y) * 33 + xx] = x[(c * 30 + y + 3) * 40 + xx + 5]!;
    const got = await ctx.read(resizeAntialias(ctx, crop, 7, 10));
    expectClose(got, await reference(dense, [1, 2, 24, 33], [7, 10]), f32, 'cropped view', [1, 2, 7, 10]);
  });

  it('bytes: ToTensor (/ 255) fused into the first pass of an HWC uint8 image', async () => {
    const ctx = gpu();
    const [H, W] = [37, 53];
    const rng = new Rng(21);
    const bytes = new Uint8Array(H * W * 3).map(() => Math.floor(rng.next() * 256));
    const words = ctx.upload(packBytes(bytes), [Math.ceil(bytes.length / 4)], 'u32');
    const y = resizeAntialiasBytes(ctx, { words, height: H, width: W, channels: 3 }, 12, 16);
    expect(y.shape).toEqual([1, 3, 12, 16]);
    const chw = new Float32Array(3 * H * W);
    for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) chw[c * H * W + p] = Math.fround(bytes[p * 3 + c]! / 255);
    expectClose(await ctx.read(y), await reference(chw, [1, 3, H, W], [12, 16]), f32, 'bytes vs ORT on ToTensor floats', [1, 3, 12, 16]);
  });

  it('errors name the op, the sizes and the input', () => {
    const ctx = gpu();
    const t = ctx.upload(new Float32Array(12), [1, 1, 3, 4]);
    expect(() => resizeAntialias(ctx, t, 0, 4)).toThrow(/resizeAntialias: output size must be positive integers, got 0x4/);
    expect(() => resizeAntialias(ctx, t.reshape([3, 4]), 2, 2)).toThrow(/resizeAntialias: input must be 4-D/);
    const words = ctx.upload(new Uint32Array(3), [3], 'u32');
    expect(() => resizeAntialiasBytes(ctx, { words, height: 2, width: 3, channels: 3 }, 2, 2)).toThrow(/3 words hold 12 bytes, a 2x3x3 image has 18/);
  });
});
