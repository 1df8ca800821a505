import { describe, expect, it } from 'vitest';
import { fromF16Array, toF16Array } from '../../src/gpu/dtype.js';
import type { ImageLayout } from '../../src/kernels/conv2d.js';
import { resizeCpu } from '../../src/kernels/cpu/resize.js';
import { type ResizeCrop, type ResizeMode, resizeBicubic, resizeBilinear, resizeLinear1d } from '../../src/kernels/resize.js';
import { expectClose, type Tolerance } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { type OnnxConst, type OnnxNode, runOnnx } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

interface Case {
  name: string;
  mode: ResizeMode;
  /** Logical NCHW input shape (before the crop). */
  x: [number, number, number, number];
  out: [number, number];
  alignCorners?: boolean;
  crop?: ResizeCrop;
  layout?: ImageLayout;
  f16?: boolean;
  scale?: number;
  tol: Tolerance;
}

// Each output is a convex (bilinear) or short signed (bicubic) combination of inputs, but the
// source coordinates are f32 on both sides and computed differently (ORT divides by out/in, PyTorch
// and we multiply by in/out): near coordinate 40 one f32 ulp is 4e-6 pixels, which moves a weight by
// that much and the output by that times the step between neighbours. Measured: relL2 <= 4.6e-6,
// max abs 1.6e-5 at unit scale, 4.3e-2 at scale 1e4. (Against the double-precision CPU reference
// the GPU stays below relL2 1e-6, see below.)
const f32: Tolerance = { relL2: 1e-5, atol: 4e-5, rtol: 1e-5 };
const f32Large: Tolerance = { relL2: 1e-5, atol: 4e-5 * 1e4, rtol: 1e-5 };
const exact: Tolerance = { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 };
const f16: Tolerance = { relL2: 1e-3, atol: 4e-3, rtol: 2e-3 };

const cases: Case[] = [
  { name: 'upsample odd sizes', mode: 'bilinear', x: [1, 2, 7, 9], out: [29, 37], tol: f32 },
  { name: 'downsample non-integer ratio', mode: 'bilinear', x: [2, 3, 23, 17], out: [10, 7], tol: f32 },
  { name: 'same size (identity)', mode: 'bilinear', x: [1, 2, 5, 7], out: [5, 7], tol: { relL2: 0, atol: 0 } },
  // PyTorch maps a size-1 output to source in/2 - 0.5: ONNX half_pixel (see the dedicated test).
  { name: 'output size 1', mode: 'bilinear', x: [1, 2, 6, 5], out: [1, 1], tol: f32 },
  { name: 'output 1 x n', mode: 'bilinear', x: [1, 2, 4, 6], out: [1, 13], tol: f32 },
  { name: 'input size 1', mode: 'bilinear', x: [1, 2, 1, 1], out: [3, 4], tol: f32 },
  { name: 'align corners', mode: 'bilinear', x: [1, 2, 5, 6], out: [9, 4], alignCorners: true, tol: f32 },
  { name: 'align corners to size 1', mode: 'bilinear', x: [1, 1, 5, 6], out: [1, 1], alignCorners: true, tol: f32 },
  // SAM post-processing shape in miniature: upsample, crop the padding, resize to the original.
  { name: 'crop then resize (Slice + Resize)', mode: 'bilinear', x: [1, 3, 64, 64], crop: { top: 0, left: 0, height: 45, width: 60 }, out: [31, 41], tol: f32 },
  { name: 'crop at an offset', mode: 'bilinear', x: [2, 2, 20, 18], crop: { top: 3, left: 5, height: 11, width: 9 }, out: [17, 4], tol: f32 },
  { name: 'NHWC', mode: 'bilinear', x: [1, 8, 5, 6], out: [11, 3], layout: 'nhwc', tol: f32 },
  { name: 'NHWC crop', mode: 'bilinear', x: [1, 5, 9, 8], crop: { top: 2, left: 1, height: 6, width: 7 }, out: [13, 3], layout: 'nhwc', tol: f32 },
  { name: 'large magnitudes', mode: 'bilinear', x: [1, 3, 9, 11], out: [20, 5], scale: 1e4, tol: f32Large },
  { name: 'f16 storage', mode: 'bilinear', x: [1, 2, 11, 7], out: [24, 13], f16: true, tol: f16 },
  // Absolute position table 64x64 -> 28x28 in miniature (stored [1, H, W, C]).
  { name: 'position table downsample NHWC', mode: 'bicubic', x: [1, 24, 16, 16], out: [7, 7], layout: 'nhwc', tol: f32 },
  { name: 'upsample odd sizes', mode: 'bicubic', x: [1, 2, 5, 6], out: [13, 11], tol: f32 },
  { name: 'downsample non-integer ratio', mode: 'bicubic', x: [2, 2, 19, 23], out: [8, 9], tol: f32 },
  { name: 'output size 1', mode: 'bicubic', x: [1, 2, 6, 5], out: [1, 1], tol: f32 },
  { name: 'input size 1 and 2', mode: 'bicubic', x: [1, 2, 1, 2], out: [3, 5], tol: f32 },
  { name: 'align corners', mode: 'bicubic', x: [1, 2, 5, 6], out: [9, 4], alignCorners: true, tol: f32 },
  { name: 'crop', mode: 'bicubic', x: [1, 2, 12, 10], crop: { top: 1, left: 2, height: 9, width: 7 }, out: [5, 11], tol: f32 },
  { name: 'large magnitudes', mode: 'bicubic', x: [1, 3, 9, 11], out: [20, 5], scale: 1e4, tol: f32Large },
  { name: 'f16 storage NHWC', mode: 'bicubic', x: [1, 6, 9, 7], out: [5, 13], layout: 'nhwc', f16: true, tol: f16 },
];

const roundF16 = (a: Float32Array) => fromF16Array(toF16Array(a));

function toNhwc(a: Float32Array, [N, C, H, W]: readonly number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let n = 0; n < N!; n++)
    for (let c = 0; c < C!; c++)
      for (let y = 0; y < H!; y++) for (let x = 0; x < W!; x++) out[((n * H! + y) * W! + x) * C! + c] = a[((n * C! + c) * H! + y) * W! + x]!;
  return out;
}

const i64 = (name: string, data: number[]): OnnxConst => ({ name, dims: [data.length], data, type: 'int64' });

/**
 * ONNX Resize (opset 18) as PyTorch exports interpolate, on NCHW data; crop as a Slice in front,
 * NHWC as Transposes around it.
 */
async function reference(c: Case, x: Float32Array, transform?: string): Promise<Float32Array> {
  const nodes: OnnxNode[] = [];
  const consts: OnnxConst[] = [];
  const [N, C, H, W] = c.x;
  let cur = 'X';
  if (c.layout === 'nhwc') nodes.push({ op: 'Transpose', inputs: [cur], outputs: ['Xn'], attrs: { perm: [0, 3, 1, 2] } }), (cur = 'Xn');
  if (c.crop) {
    const { top, left, height, width } = c.crop;
    consts.push(i64('starts', [top, left]), i64('ends', [top + height, left + width]), i64('axes', [2, 3]));
    nodes.push({ op: 'Slice', inputs: [cur, 'starts', 'ends', 'axes'], outputs: ['cropped'] });
    cur = 'cropped';
  }
  consts.push(i64('sizes', [N, C, c.out[0], c.out[1]]));
  const attrs: Record<string, number | string> = {
    mode: c.mode === 'bilinear' ? 'linear' : 'cubic',
    coordinate_transformation_mode: transform ?? (c.alignCorners ? 'align_corners' : 'half_pixel'),
    antialias: 0,
  };
  if (c.mode === 'bicubic') Object.assign(attrs, { cubic_coeff_a: -0.75, exclude_outside: 0 });
  nodes.push({ op: 'Resize', inputs: [cur, '', '', 'sizes'], outputs: ['resized'], attrs });
  if (c.layout === 'nhwc') nodes.push({ op: 'Transpose', inputs: ['resized'], outputs: ['Y'], attrs: { perm: [0, 2, 3, 1] } });
  else nodes.push({ op: 'Identity', inputs: ['resized'], outputs: ['Y'] });
  const dims = c.layout === 'nhwc' ? [N, H, W, C] : [N, C, H, W];
  return runOnnx({ nodes, inputs: [{ name: 'X', dims }], outputs: ['Y'], initializers: consts, opset: 18 }, { X: { data: x, dims } });
}

function run(c: Case, x: Float32Array) {
  const ctx = gpu();
  const [N, C, H, W] = c.x;
  const t = c.layout === 'nhwc' ? ctx.upload(toNhwc(x, c.x), [N, H, W, C], c.f16 ? 'f16' : 'f32') : ctx.upload(x, c.x, c.f16 ? 'f16' : 'f32');
  const fn = c.mode === 'bilinear' ? resizeBilinear : resizeBicubic;
  return fn(ctx, t, c.out[0], c.out[1], { alignCorners: c.alignCorners, crop: c.crop, layout: c.layout });
}

describe('resize vs onnxruntime', () => {
  for (const c of cases) {
    it(`${c.mode}: ${c.name}`, async () => {
      const ctx = gpu();
      const n = c.x.reduce((p, d) => p * d, 1);
      let x = new Rng(n + c.out[0] * 7 + c.out[1]).randn(n, c.scale ?? 1);
      if (c.f16) x = roundF16(x);
      const y = run(c, x);
      const [N, C] = c.x;
      expect(y.shape).toEqual(c.layout === 'nhwc' ? [N, c.out[0], c.out[1], C] : [N, C, ...c.out]);
      const input = c.layout === 'nhwc' ? toNhwc(x, c.x) : x;
      expectClose(await ctx.read(y), await reference(c, input), c.tol, `${c.mode} ${c.name}`, y.shape);
    });
  }

  it('output size 1 follows PyTorch (ONNX half_pixel), which pytorch_half_pixel does not', async () => {
    const c: Case = { name: '', mode: 'bilinear', x: [1, 1, 4, 6], out: [1, 1], tol: f32 };
    const x = new Rng(3).randn(24);
    const got = await gpu().read(run(c, x));
    // Source (1.5, 2.5): the mean of x[1..2, 2..3].
    expect(got[0]).toBeCloseTo((x[8]! + x[9]! + x[14]! + x[15]!) / 4, 6);
    const pytorchHalfPixel = await reference(c, x, 'pytorch_half_pixel');
    expect(pytorchHalfPixel[0]).toBeCloseTo(x[0]!, 6);
    expect(Math.abs(got[0]! - pytorchHalfPixel[0]!)).toBeGreaterThan(1e-3);
  });

  it('linear 1-D: SAM rel_pos table [2S-1, C] resized along its first axis', async () => {
    const ctx = gpu();
    const [L, C, outL] = [27, 12, 63];
    const table = new Rng(17).randn(L * C);
    // layout 'nlc': no permute needed for a [L, C] table.
    const y = resizeLinear1d(ctx, ctx.upload(table, [L, C]), outL, { layout: 'nlc' });
    expect(y.shape).toEqual([outL, C]);
    const want = await runOnnx(
      {
        nodes: [
          { op: 'Transpose', inputs: ['T'], outputs: ['Tt'], attrs: { perm: [0, 2, 1] } },
          { op: 'Resize', inputs: ['Tt', '', '', 'sizes'], outputs: ['R'], attrs: { mode: 'linear', coordinate_transformation_mode: 'half_pixel' } },
          { op: 'Transpose', inputs: ['R'], outputs: ['Y'], attrs: { perm: [0, 2, 1] } },
        ],
        inputs: [{ name: 'T', dims: [1, L, C] }],
        outputs: ['Y'],
        initializers: [i64('sizes', [1, C, outL])],
        opset: 18,
      },
      { T: { data: table, dims: [1, L, C] } },
    );
    expectClose(await ctx.read(y), want, f32, 'resizeLinear1d nlc', y.shape);
    // The default [N, C, L] layout, downsampling.
    const ncl = resizeLinear1d(ctx, ctx.upload(table, [2, 6, L]), 10);
    expect(ncl.shape).toEqual([2, 6, 10]);
    const want2 = await runOnnx(
      {
        nodes: [{ op: 'Resize', inputs: ['T', '', '', 'sizes'], outputs: ['Y'], attrs: { mode: 'linear', coordinate_transformation_mode: 'half_pixel' } }],
        inputs: [{ name: 'T', dims: [2, 6, L] }],
        outputs: ['Y'],
        initializers: [i64('sizes', [2, 6, 10])],
        opset: 18,
      },
      { T: { data: table, dims: [2, 6, L] } },
    );
    expectClose(await ctx.read(ncl), want2, f32, 'resizeLinear1d ncl', ncl.shape);
  });

  it('matches values printed by PyTorch 1.13 F.interpolate', async () => {
    const ctx = gpu();
    const x = Float32Array.from([1, -2, 3.5, 0.25, 4, 0, -1, 2, -3, 5, 1.5, -0.5]);
    const t = ctx.upload(x, [1, 1, 3, 4]);
    // torch.nn.functional.interpolate(x.view(1, 1, 3, 4), size, mode, align_corners), torch 1.13.0.
    const torchValues: [ResizeMode, boolean, [number, number], number[]][] = [
      ['bilinear', false, [1, 1], [-0.5]],
      ['bilinear', false, [2, 7], [1.75, 0.5892856, -1.2678573, 0.4375005, 2.2544641, 1.2901783, 0.6875, -1.25, 0.5357145, 3.3928573, 2.3124998, 0.8214285, 0.392857, 0.125]],
      ['bilinear', true, [5, 3], [1.0, 0.75, 0.25, 2.5, 0.125, 1.125, 4.0, -0.5, 2.0, 0.5, 1.375, 0.75, -3.0, 3.25, -0.5]],
      ['bicubic', false, [1, 1], [-1.15625]],
      ['bicubic', false, [5, 3], [0.1889028, 0.9586882, 0.7408642, 2.0029328, -0.3600302, 1.2305614, 3.4432878, -1.1562499, 1.5520837, 0.453641, 1.9751877, 0.4879806, -2.2935889, 4.7005005, -0.4490027]],
      ['bicubic', true, [2, 7], [1.0, -1.015625, -2.0, 0.7734375, 3.5, 2.390625, 0.25, -3.0, 1.328125, 5.0, 4.1875, 1.5, 0.171875, -0.5]],
    ];
    const tol = { atol: 2e-6, rtol: 0 }; // torch's own f32 rounding, printed to 7 decimals
    for (const [mode, alignCorners, [h, w], values] of torchValues) {
      const fn = mode === 'bilinear' ? resizeBilinear : resizeBicubic;
      const name = `${mode} align=${alignCorners} ${h}x${w}`;
      expectClose(await ctx.read(fn(ctx, t, h, w, { alignCorners })), values, tol, `GPU ${name} vs torch`, [h, w]);
      expectClose(resizeCpu(x, [1, 1, 3, 4], h, w, { mode, alignCorners }), values, tol, `CPU ${name} vs torch`, [h, w]);
    }
    // F.interpolate(x.view(1, 1, 5), size=L, mode='linear')
    const line = ctx.upload([1, -2, 3.5, 0.25, 4], [1, 1, 5]);
    expectClose(await ctx.read(resizeLinear1d(ctx, line, 1)), [3.5], tol, 'linear 5->1 vs torch');
    expectClose(await ctx.read(resizeLinear1d(ctx, line, 8)), [1.0, -0.3125, -1.65625, 1.78125, 2.484375, 0.453125, 2.359375, 4.0], tol, 'linear 5->8 vs torch');
  });

  it('matches the CPU reference (double precision)', async () => {
    const ctx = gpu();
    const shape = [2, 3, 13, 10] as const;
    const x = new Rng(23).randn(2 * 3 * 13 * 10);
    for (const mode of ['bilinear', 'bicubic'] as const) {
      for (const alignCorners of [false, true]) {
        for (const [h, w] of [[29, 7], [4, 21], [1, 1]] as const) {
          const fn = mode === 'bilinear' ? resizeBilinear : resizeBicubic;
          const y = fn(ctx, ctx.upload(x, shape), h, w, { alignCorners });
          expectClose(await ctx.read(y), resizeCpu(x, shape, h, w, { mode, alignCorners }), exact, `${mode} align=${alignCorners} ${h}x${w} vs CPU`, y.shape);
        }
      }
    }
  });

  it('rejects bad input before dispatch', () => {
    const ctx = gpu();
    const x = ctx.empty([1, 2, 8, 6]);
    expect(() => resizeBilinear(ctx, x, 0, 4)).toThrow(/resizeBilinear: output size must be positive integers, got 0x4/);
    expect(() => resizeBicubic(ctx, x, 4, 2.5)).toThrow(/resizeBicubic: output size must be positive integers, got 4x2.5/);
    expect(() => resizeBilinear(ctx, x, 4, 4, { crop: { top: 2, left: 0, height: 7, width: 6 } })).toThrow(/crop .* is not inside the 8x6 input \[1, 2, 8, 6\]/);
    expect(() => resizeBilinear(ctx, ctx.empty([2, 8, 6]), 4, 4)).toThrow(/input must be 4-D \(NCHW\), got \[2, 8, 6\]/);
    expect(() => resizeBilinear(ctx, x, 4, 4, { antialias: true as false })).toThrow(/antialias is not implemented/);
    expect(() => resizeLinear1d(ctx, ctx.empty([5]), 4)).toThrow(/resizeLinear1d: input must be \[N, C, L\]/);
  });
});
