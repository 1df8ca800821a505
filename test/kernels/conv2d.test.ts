import { describe, expect, it } from 'vitest';
import { fromF16Array, toF16Array } from '../../src/gpu/dtype.js';
import type { Activation } from '../../src/kernels/activation.js';
import { conv2d, type Conv2dVariant, type ImageLayout } from '../../src/kernels/conv2d.js';
import { conv2dCpu } from '../../src/kernels/cpu/conv2d.js';
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
  /** [O, C/groups, kh, kw]. */
  w: [number, number, number, number];
  stride?: [number, number];
  pads?: [number, number, number, number];
  dilation?: [number, number];
  groups?: number;
  bias?: boolean;
  act?: Activation;
  inLayout?: ImageLayout;
  outLayout?: ImageLayout;
  /** Read x through a cropped view of a larger tensor (non-zero offset, foreign strides). */
  cropView?: boolean;
  f16?: boolean;
  scale?: number;
  variants?: Conv2dVariant[];
  tol: Tolerance;
}

const f32: Tolerance = { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 };
// Reductions over hundreds of terms: both sides round in f32 but in a different order.
const f32Long: Tolerance = { relL2: 2e-6, atol: 1e-4, rtol: 1e-4 };
// f16 storage of the output (inputs are f16-rounded on both sides): half an f16 ulp per element.
const f16: Tolerance = { relL2: 1e-3, atol: 2e-3, rtol: 2e-3 };

const cases: Case[] = [
  { name: 'patch embed 16x16/16, bias, NHWC out', x: [2, 3, 48, 80], w: [96, 3, 16, 16], stride: [16, 16], bias: true, outLayout: 'nhwc', tol: f32Long },
  // CLIP ViT-B/16 conv1 at 224 px (no bias): the real shape, 0.23 GFLOP.
  { name: 'CLIP ViT-B/16 patch embed 224px', x: [1, 3, 224, 224], w: [768, 3, 16, 16], stride: [16, 16], outLayout: 'nhwc', variants: ['tiled', 'gemm'], tol: f32Long },
  { name: '1x1 NHWC in, no bias (SAM neck 0)', x: [1, 33, 7, 9], w: [45, 33, 1, 1], inLayout: 'nhwc', tol: f32 },
  { name: '3x3 pad 1 NHWC in and out (SAM neck 2)', x: [1, 40, 13, 11], w: [36, 40, 3, 3], pads: [1, 1, 1, 1], inLayout: 'nhwc', outLayout: 'nhwc', tol: f32Long },
  { name: '2x2/2 1->4 (mask downscaling)', x: [1, 1, 30, 26], w: [4, 1, 2, 2], stride: [2, 2], bias: true, tol: f32 },
  { name: '2x2/2 4->16 gelu', x: [2, 4, 15, 14], w: [16, 4, 2, 2], stride: [2, 2], bias: true, act: 'gelu', tol: f32 },
  { name: 'k3 s2 p1 odd sizes, relu', x: [2, 5, 17, 15], w: [37, 5, 3, 3], stride: [2, 2], pads: [1, 1, 1, 1], bias: true, act: 'relu', tol: f32 },
  { name: 'dilation, asymmetric pads and strides', x: [1, 6, 19, 14], w: [10, 6, 3, 4], stride: [2, 1], dilation: [2, 3], pads: [1, 0, 2, 1], bias: true, tol: f32 },
  { name: 'groups 3', x: [1, 6, 11, 9], w: [33, 2, 3, 3], pads: [1, 1, 1, 1], groups: 3, bias: true, tol: f32 },
  { name: 'depthwise', x: [1, 8, 10, 7], w: [8, 1, 3, 3], pads: [1, 1, 1, 1], groups: 8, tol: f32 },
  { name: 'size-1 everything', x: [1, 1, 1, 1], w: [1, 1, 1, 1], bias: true, tol: f32 },
  { name: '1x1 input, 3x3 kernel pad 1', x: [1, 3, 1, 1], w: [5, 3, 3, 3], pads: [1, 1, 1, 1], tol: f32 },
  { name: 'cropped strided view input', x: [2, 7, 9, 12], w: [40, 7, 3, 3], stride: [1, 2], cropView: true, bias: true, tol: f32 },
  { name: 'large magnitudes', x: [1, 9, 12, 10], w: [50, 9, 3, 3], pads: [1, 1, 1, 1], bias: true, scale: 1e3, tol: { relL2: 2e-6, atol: 10, rtol: 0 } }, // outputs ~1e6: max abs err seen ~1.3
  { name: 'f16 storage, patch embed', x: [1, 3, 32, 48], w: [64, 3, 16, 16], stride: [16, 16], bias: true, f16: true, outLayout: 'nhwc', tol: f16 },
  { name: 'f16 storage, 3x3 NHWC in', x: [1, 20, 9, 7], w: [34, 20, 3, 3], pads: [1, 1, 1, 1], inLayout: 'nhwc', f16: true, act: 'gelu', tol: f16 },
];

const roundF16 = (a: Float32Array) => fromF16Array(toF16Array(a));

/** ONNX Conv on NCHW data (x is given NCHW here), optional activation, optional NHWC transpose. */
async function reference(c: Case, x: Float32Array, w: Float32Array, bias: Float32Array): Promise<Float32Array> {
  const nodes: OnnxNode[] = [];
  const consts: OnnxConst[] = [];
  const attrs = {
    kernel_shape: [c.w[2], c.w[3]],
    strides: c.stride ?? [1, 1],
    pads: c.pads ?? [0, 0, 0, 0],
    dilations: c.dilation ?? [1, 1],
    group: c.groups ?? 1,
  };
  nodes.push({ op: 'Conv', inputs: c.bias ? ['X', 'W', 'B'] : ['X', 'W'], outputs: ['conv'], attrs });
  const act = onnxActivation(c.act ?? 'none', 'conv', 'act_out');
  nodes.push(...act.nodes);
  consts.push(...act.consts);
  if (c.outLayout === 'nhwc') nodes.push({ op: 'Transpose', inputs: ['act_out'], outputs: ['Y'], attrs: { perm: [0, 2, 3, 1] } });
  else nodes.push({ op: 'Identity', inputs: ['act_out'], outputs: ['Y'] });
  const inputs = [{ name: 'X', dims: c.x }, { name: 'W', dims: c.w }, ...(c.bias ? [{ name: 'B', dims: [c.w[0]] }] : [])];
  const feeds: Record<string, { data: Float32Array; dims: number[] }> = { X: { data: x, dims: c.x }, W: { data: w, dims: c.w } };
  if (c.bias) feeds.B = { data: bias, dims: [c.w[0]] };
  return runOnnx({ nodes, inputs, outputs: ['Y'], initializers: consts }, feeds);
}

/** NCHW -> NHWC copy on the host. */
function toNhwc(a: Float32Array, [N, C, H, W]: readonly number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let n = 0; n < N!; n++)
    for (let c = 0; c < C!; c++)
      for (let y = 0; y < H!; y++) for (let x = 0; x < W!; x++) out[((n * H! + y) * W! + x) * C! + c] = a[((n * C! + c) * H! + y) * W! + x]!;
  return out;
}

describe('conv2d vs onnxruntime', () => {
  for (const c of cases) {
    // gemm (im2col + matmul) takes groups 1 only.
    for (const variant of c.variants ?? (['tiled', 'direct', ...((c.groups ?? 1) === 1 ? ['gemm'] : [])] as Conv2dVariant[])) {
      it(`${variant}: ${c.name}`, async () => {
        const ctx = gpu();
        const rng = new Rng(c.x.reduce((p, d) => p * 31 + d, 7) + c.w[0]);
        const scale = c.scale ?? 1;
        const dt = c.f16 ? 'f16' : 'f32';
        let x = rng.randn(c.x.reduce((p, d) => p * d, 1), scale);
        let w = rng.randn(c.w.reduce((p, d) => p * d, 1), scale / Math.sqrt(c.w[1] * c.w[2] * c.w[3]));
        let bias = rng.randn(c.w[0], scale);
        if (c.f16) [x, w, bias] = [roundF16(x), roundF16(w), roundF16(bias)];
        const [N, C, H, W] = c.x;
        let tx;
        if (c.cropView) {
          // Embed x in a larger NCHW tensor and read it back through slices: offset != 0 and
          // strides that are not x's own.
          const big = new Float32Array(N * C * (H + 3) * (W + 5)).fill(1e6);
          for (let n = 0; n < N; n++)
            for (let ch = 0; ch < C; ch++)
              for (let y = 0; y < H; y++)
                for (let xx = 0; xx < W; xx++) big[((n * C + ch) * (H + 3) + y + 1) * (W + 5) + xx + 2] = x[((n * C + ch) * H + y) * W + xx]!;
          tx = ctx.upload(big, [N, C, H + 3, W + 5], dt).slice(2, 1, 1 + H).slice(3, 2, 2 + W);
        } else if (c.inLayout === 'nhwc') {
          tx = ctx.upload(toNhwc(x, c.x), [N, H, W, C], dt);
        } else {
          tx = ctx.upload(x, c.x, dt);
        }
        const out = conv2d(ctx, tx, ctx.upload(w, c.w, dt), c.bias ? ctx.upload(bias, [c.w[0]], dt) : undefined, {
          stride: c.stride,
          padding: c.pads,
          dilation: c.dilation,
          groups: c.groups,
          act: c.act,
          inLayout: c.inLayout,
          outLayout: c.outLayout,
          variant,
        });
        const want = await reference(c, x, w, bias);
        expect(out.dtype).toBe(dt);
        expectClose(await ctx.read(out), want, c.tol, `conv2d ${variant} ${c.name}`, out.shape);
      });
    }
  }

  it('f32 input with f16 weights and bias', async () => {
    const ctx = gpu();
    const rng = new Rng(11);
    const xs: [number, number, number, number] = [1, 12, 9, 8];
    const ws: [number, number, number, number] = [40, 12, 3, 3];
    const x = rng.randn(12 * 9 * 8);
    const w = roundF16(rng.randn(40 * 12 * 9, 0.1));
    const bias = roundF16(rng.randn(40));
    const out = conv2d(ctx, ctx.upload(x, xs), ctx.upload(w, ws, 'f16'), ctx.upload(bias, [40], 'f16'), { padding: 1 });
    expect(out.dtype).toBe('f32');
    const want = await reference({ name: '', x: xs, w: ws, pads: [1, 1, 1, 1], bias: true, tol: f32 }, x, w, bias);
    expectClose(await ctx.read(out), want, f32, 'conv2d f32 x f16 w', out.shape);
  });

  it('matches the CPU reference (double precision)', async () => {
    const ctx = gpu();
    const rng = new Rng(5);
    const xs = [2, 6, 11, 13] as const;
    const ws = [36, 3, 3, 2] as const;
    const x = rng.randn(2 * 6 * 11 * 13);
    const w = rng.randn(36 * 3 * 3 * 2);
    const bias = rng.randn(36);
    const opts = { stride: [2, 1] as [number, number], padding: [1, 0, 2, 1] as [number, number, number, number], dilation: [1, 2] as [number, number], groups: 2 };
    const want = conv2dCpu(x, xs, w, ws, bias, { ...opts, act: 'quick_gelu' });
    for (const variant of ['tiled', 'direct'] as const) {
      const y = conv2d(ctx, ctx.upload(x, xs), ctx.upload(w, ws), ctx.upload(bias, [36]), { ...opts, act: 'quick_gelu', variant });
      expect(y.shape).toEqual(want.shape);
      expectClose(await ctx.read(y), want.data, { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 }, `conv2d ${variant} vs CPU`, y.shape);
    }
  });

  it('rejects bad shapes before dispatch', () => {
    const ctx = gpu();
    const x = ctx.empty([1, 3, 8, 8]);
    expect(() => conv2d(ctx, x, ctx.empty([4, 2, 3, 3]), undefined)).toThrow(/input \[1, 3, 8, 8\] \(nchw\) has 3 channels, weight \[4, 2, 3, 3\] with groups 1 expects 2/);
    expect(() => conv2d(ctx, x, ctx.empty([4, 3, 9, 9]), undefined)).toThrow(/smaller than the dilated kernel 9x9/);
    expect(() => conv2d(ctx, x, ctx.empty([4, 1, 3, 3]), undefined, { groups: 2 })).toThrow(/groups 2 must divide input channels 3/);
    expect(() => conv2d(ctx, x, ctx.empty([4, 3, 3, 3]), ctx.empty([5]))).toThrow(/bias must be \[4\]/);
    expect(() => conv2d(ctx, x, ctx.empty([4, 3, 3, 3]), undefined, { stride: 0 })).toThrow(/stride and dilation must be >= 1/);
    expect(() => conv2d(ctx, ctx.empty([1, 4, 8, 8]), ctx.empty([4, 2, 3, 3]), undefined, { groups: 2, variant: 'gemm' })).toThrow(/gemm variant takes groups 1, got 2/);
    expect(() => conv2d(ctx, x, ctx.empty([4, 3, 3, 3]), undefined, { padding: [1, 2, 3] as never })).toThrow(/padding must be a number/);
    expect(() => conv2d(ctx, ctx.empty([3, 8, 8]), ctx.empty([4, 3, 3, 3]), undefined)).toThrow(/input must be 4-D \(NCHW\), got \[3, 8, 8\]/);
  });
});
