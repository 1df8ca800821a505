import { describe, expect, it } from 'vitest';
import { fromF16Array, toF16Array } from '../../src/gpu/dtype.js';
import type { Activation } from '../../src/kernels/activation.js';
import type { ImageLayout } from '../../src/kernels/conv2d.js';
import { convTranspose2d, type ConvTranspose2dVariant } from '../../src/kernels/conv-transpose2d.js';
import { convTranspose2dCpu } from '../../src/kernels/cpu/conv-transpose2d.js';
import { expectClose, type Tolerance } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { type OnnxConst, type OnnxNode, runOnnx } from '../helpers/onnx.js';
import { onnxActivation } from '../helpers/onnx-ops.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

interface Case {
  name: string;
  /** Logical NCHW input shape. */
  x: [number, number, number, number];
  /** [C_in, C_out, kh, kw]. */
  w: [number, number, number, number];
  stride: [number, number];
  padding?: [number, number];
  outputPadding?: [number, number];
  bias?: boolean;
  act?: Activation;
  inLayout?: ImageLayout;
  outLayout?: ImageLayout;
  cropView?: boolean;
  f16?: boolean;
  scale?: number;
  tol: Tolerance;
}

const f32: Tolerance = { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 };
const f16: Tolerance = { relL2: 1e-3, atol: 2e-3, rtol: 2e-3 };

const cases: Case[] = [
  // SAM mask decoder output upscaling, first ConvTranspose (256->64 at 64x64 in the real model).
  { name: 'k2 s2, bias (SAM upscaling 1)', x: [1, 40, 9, 7], w: [40, 36, 2, 2], stride: [2, 2], bias: true, tol: f32 },
  { name: 'k2 s2, bias, gelu (SAM upscaling 2)', x: [2, 12, 8, 11], w: [12, 8, 2, 2], stride: [2, 2], bias: true, act: 'gelu', tol: f32 },
  { name: 'k2 s2 NHWC tokens in, NHWC out', x: [1, 33, 5, 6], w: [33, 40, 2, 2], stride: [2, 2], bias: true, inLayout: 'nhwc', outLayout: 'nhwc', tol: f32 },
  { name: 'k3 s2 overlapping taps', x: [1, 5, 6, 7], w: [5, 33, 3, 3], stride: [2, 2], bias: true, tol: f32 },
  { name: 'k3 s2 p1 output padding 1', x: [2, 6, 5, 4], w: [6, 34, 3, 3], stride: [2, 2], padding: [1, 1], outputPadding: [1, 1], bias: true, tol: f32 },
  { name: 'k4x3 s3x2 p2x1 output padding 1x0', x: [1, 7, 5, 6], w: [7, 37, 4, 3], stride: [3, 2], padding: [2, 1], outputPadding: [1, 0], tol: f32 },
  // Kernel smaller than the stride: whole output rows/columns receive no tap and hold the bias.
  { name: 'kernel 1x2 stride 3: tap-less phases', x: [1, 4, 3, 5], w: [4, 35, 1, 2], stride: [3, 3], bias: true, act: 'relu', tol: f32 },
  { name: 'stride 1 (plain full convolution)', x: [1, 3, 4, 5], w: [3, 32, 3, 2], stride: [1, 1], tol: f32 },
  { name: 'size-1 everything', x: [1, 1, 1, 1], w: [1, 1, 1, 1], stride: [1, 1], bias: true, tol: f32 },
  { name: 'cropped strided view input', x: [2, 9, 5, 6], w: [9, 40, 2, 2], stride: [2, 2], cropView: true, tol: f32 },
  { name: 'large magnitudes', x: [1, 30, 6, 5], w: [30, 34, 3, 3], stride: [2, 2], bias: true, scale: 1e3, tol: { relL2: 1e-6, atol: 5, rtol: 0 } }, // outputs ~1e6
  { name: 'f16 storage k2 s2', x: [1, 24, 7, 9], w: [24, 36, 2, 2], stride: [2, 2], bias: true, f16: true, tol: f16 },
  // Even channel counts: ctx.upload cannot yet write an odd number of f16 values (2-byte tail).
  { name: 'f16 storage k3 s2 NHWC in, gelu', x: [1, 10, 5, 6], w: [10, 34, 3, 3], stride: [2, 2], bias: true, act: 'gelu', f16: true, inLayout: 'nhwc', tol: f16 },
];

const roundF16 = (a: Float32Array) => fromF16Array(toF16Array(a));

async function reference(c: Case, x: Float32Array, w: Float32Array, bias: Float32Array): Promise<Float32Array> {
  const [ph, pw] = c.padding ?? [0, 0];
  const attrs = {
    kernel_shape: [c.w[2], c.w[3]],
    strides: c.stride,
    pads: [ph, pw, ph, pw],
    output_padding: c.outputPadding ?? [0, 0],
  };
  const nodes: OnnxNode[] = [{ op: 'ConvTranspose', inputs: c.bias ? ['X', 'W', 'B'] : ['X', 'W'], outputs: ['conv'], attrs }];
  const consts: OnnxConst[] = [];
  const act = onnxActivation(c.act ?? 'none', 'conv', 'act_out');
  nodes.push(...act.nodes);
  consts.push(...act.consts);
  if (c.outLayout === 'nhwc') nodes.push({ op: 'Transpose', inputs: ['act_out'], outputs: ['Y'], attrs: { perm: [0, 2, 3, 1] } });
  else nodes.push({ op: 'Identity', inputs: ['act_out'], outputs: ['Y'] });
  const inputs = [{ name: 'X', dims: c.x }, { name: 'W', dims: c.w }, ...(c.bias ? [{ name: 'B', dims: [c.w[1]] }] : [])];
  const feeds: Record<string, { data: Float32Array; dims: number[] }> = { X: { data: x, dims: c.x }, W: { data: w, dims: c.w } };
  if (c.bias) feeds.B = { data: bias, dims: [c.w[1]] };
  return runOnnx({ nodes, inputs, outputs: ['Y'], initializers: consts }, feeds);
}

function toNhwc(a: Float32Array, [N, C, H, W]: readonly number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let n = 0; n < N!; n++)
    for (let c = 0; c < C!; c++)
      for (let y = 0; y < H!; y++) for (let x = 0; x < W!; x++) out[((n * H! + y) * W! + x) * C! + c] = a[((n * C! + c) * H! + y) * W! + x]!;
  return out;
}

describe('convTranspose2d vs onnxruntime', () => {
  for (const c of cases) {
    for (const variant of ['tiled', 'direct'] as ConvTranspose2dVariant[]) {
      it(`${variant}: ${c.name}`, async () => {
        const ctx = gpu();
        const rng = new Rng(c.x.reduce((p, d) => p * 37 + d, 3) + c.w[1]);
        const scale = c.scale ?? 1;
        const dt = c.f16 ? 'f16' : 'f32';
        let x = rng.randn(c.x.reduce((p, d) => p * d, 1), scale);
        let w = rng.randn(c.w.reduce((p, d) => p * d, 1), scale / Math.sqrt(c.w[0]));
        let bias = rng.randn(c.w[1], scale);
        if (c.f16) [x, w, bias] = [roundF16(x), roundF16(w), roundF16(bias)];
        const [N, C, H, W] = c.x;
        let tx;
        if (c.cropView) {
          // x seen through slices of a larger NHWC tensor: non-zero offset, foreign strides.
          const big = new Float32Array(N * (H + 2) * (W + 3) * C).fill(1e6);
          for (let n = 0; n < N; n++)
            for (let ch = 0; ch < C; ch++)
              for (let y = 0; y < H; y++)
                for (let xx = 0; xx < W; xx++) big[((n * (H + 2) + y + 2) * (W + 3) + xx + 1) * C + ch] = x[((n * C + ch) * H + y) * W + xx]!;
          tx = ctx.upload(big, [N, H + 2, W + 3, C], dt).slice(1, 2, 2 + H).slice(2, 1, 1 + W).permute([0, 3, 1, 2]);
        } else if (c.inLayout === 'nhwc') {
          tx = ctx.upload(toNhwc(x, c.x), [N, H, W, C], dt);
        } else {
          tx = ctx.upload(x, c.x, dt);
        }
        const out = convTranspose2d(ctx, tx, ctx.upload(w, c.w, dt), c.bias ? ctx.upload(bias, [c.w[1]], dt) : undefined, {
          stride: c.stride,
          padding: c.padding,
          outputPadding: c.outputPadding,
          act: c.act,
          inLayout: c.inLayout,
          outLayout: c.outLayout,
          variant,
        });
        const want = await reference(c, x, w, bias);
        expect(out.dtype).toBe(dt);
        expectClose(await ctx.read(out), want, c.tol, `convTranspose2d ${variant} ${c.name}`, out.shape);
      });
    }
  }

  it('matches the CPU reference (double precision)', async () => {
    const ctx = gpu();
    const rng = new Rng(9);
    const xs = [2, 7, 5, 6] as const;
    const ws = [7, 33, 3, 4] as const;
    const x = rng.randn(2 * 7 * 5 * 6);
    const w = rng.randn(7 * 33 * 3 * 4);
    const bias = rng.randn(33);
    const opts = { stride: [2, 3] as [number, number], padding: [1, 1] as [number, number], outputPadding: [1, 2] as [number, number] };
    const want = convTranspose2dCpu(x, xs, w, ws, bias, { ...opts, act: 'gelu' });
    for (const variant of ['tiled', 'direct'] as const) {
      const y = convTranspose2d(ctx, ctx.upload(x, xs), ctx.upload(w, ws), ctx.upload(bias, [33]), { ...opts, act: 'gelu', variant });
      expect(y.shape).toEqual(want.shape);
      expectClose(await ctx.read(y), want.data, f32, `convTranspose2d ${variant} vs CPU`, y.shape);
    }
  });

  it('rejects bad shapes before dispatch', () => {
    const ctx = gpu();
    const x = ctx.empty([1, 4, 8, 8]);
    expect(() => convTranspose2d(ctx, x, ctx.empty([3, 2, 2, 2]), undefined, { stride: 2 })).toThrow(/input \[1, 4, 8, 8\] \(nchw\) has 4 channels, weight \[3, 2, 2, 2\] expects 3/);
    expect(() => convTranspose2d(ctx, x, ctx.empty([4, 2, 2, 2]), undefined, { stride: 2, outputPadding: 2 })).toThrow(/outputPadding 2 must be smaller than the stride 2/);
    expect(() => convTranspose2d(ctx, x, ctx.empty([4, 2, 2, 2]), ctx.empty([4]), { stride: 2 })).toThrow(/bias must be \[2\]/);
    expect(() => convTranspose2d(ctx, ctx.empty([1, 4, 1, 1]), ctx.empty([4, 2, 1, 1]), undefined, { padding: 1 })).toThrow(/leaves no output/);
    expect(() => convTranspose2d(ctx, x, ctx.empty([4, 2, 2]), undefined)).toThrow(/weight must be \[C_in, C_out, kh, kw\], got \[4, 2, 2\]/);
  });
});
