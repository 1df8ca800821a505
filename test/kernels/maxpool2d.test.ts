import { describe, expect, it } from 'vitest';
import { fromF16Array, toF16Array } from '../../src/gpu/dtype.js';
import type { ImageLayout } from '../../src/kernels/conv2d.js';
import { maxPool2dCpu } from '../../src/kernels/cpu/maxpool2d.js';
import { maxPool2d } from '../../src/kernels/maxpool2d.js';
import { expectClose } from '../helpers/compare.js';
import { nchwToNhwc, nhwcToNchw } from '../helpers/layout.js';
import { useGpu } from '../helpers/gpu.js';
import { runOnnx } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

interface Case {
  name: string;
  /** Logical NCHW shape. */
  x: [number, number, number, number];
  kernel: [number, number];
  stride: [number, number];
  layout?: ImageLayout;
  f16?: boolean;
  scale?: number;
}

// Max pooling picks stored values: every engine must return exactly the same numbers.
const exact = { relL2: 0, atol: 0 };

const cases: Case[] = [
  // Hiera's q pooling: 2x2 stride 2 on channels-last tokens.
  { name: 'Hiera q-pool 2x2 NHWC', x: [1, 24, 8, 8], kernel: [2, 2], stride: [2, 2], layout: 'nhwc' },
  { name: 'odd sizes drop the last row/column (floor mode)', x: [2, 3, 7, 9], kernel: [2, 2], stride: [2, 2] },
  { name: 'odd sizes NHWC', x: [1, 5, 11, 5], kernel: [2, 2], stride: [2, 2], layout: 'nhwc' },
  { name: 'overlapping windows 3x3 stride 2', x: [1, 2, 9, 10], kernel: [3, 3], stride: [2, 2] },
  { name: 'rectangular kernel and stride', x: [1, 3, 6, 13], kernel: [2, 3], stride: [1, 2] },
  { name: 'window = input', x: [1, 4, 3, 3], kernel: [3, 3], stride: [3, 3] },
  { name: 'large magnitudes', x: [1, 3, 10, 6], kernel: [2, 2], stride: [2, 2], scale: 1e6 },
  { name: 'f16 storage NHWC', x: [1, 6, 9, 8], kernel: [2, 2], stride: [2, 2], layout: 'nhwc', f16: true },
];

/** ONNX MaxPool (opset 12) on NCHW data. */
function reference(x: Float32Array, c: Case): Promise<Float32Array> {
  return runOnnx(
    {
      nodes: [{ op: 'MaxPool', inputs: ['X'], outputs: ['Y'], attrs: { kernel_shape: c.kernel, strides: c.stride } }],
      inputs: [{ name: 'X', dims: c.x }],
      outputs: ['Y'],
      opset: 12,
    },
    { X: { data: x, dims: c.x } },
  );
}

describe('maxPool2d vs onnxruntime', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const ctx = gpu();
      const n = c.x.reduce((p, d) => p * d, 1);
      let x = new Rng(n + c.kernel[0] * 31).randn(n, c.scale ?? 1);
      if (c.f16) x = fromF16Array(toF16Array(x));
      const [N, C, H, W] = c.x;
      const t = c.layout === 'nhwc' ? ctx.upload(nchwToNhwc(x, c.x), [N, H, W, C], c.f16 ? 'f16' : 'f32') : ctx.upload(x, c.x, c.f16 ? 'f16' : 'f32');
      const y = maxPool2d(ctx, t, { kernel: c.kernel, stride: c.stride, layout: c.layout });
      const want = await reference(x, c);
      const cpu = maxPool2dCpu(x, c.x, c.kernel, c.stride);
      const [, , OH, OW] = cpu.shape;
      expect(y.shape).toEqual(c.layout === 'nhwc' ? [N, OH, OW, C] : cpu.shape);
      const got = await ctx.read(y);
      const gotNchw = c.layout === 'nhwc' ? nhwcToNchw(got, [N, C, OH, OW]) : got;
      expectClose(gotNchw, want, exact, `maxPool2d ${c.name} vs ORT`, cpu.shape);
      expectClose(cpu.data, want, exact, `CPU reference ${c.name} vs ORT`, cpu.shape);
    });
  }

  it('reads a strided view in place: the q channels of a fused qkv grid', async () => {
    const ctx = gpu();
    const [H, W, C] = [6, 10, 8];
    const qkv = new Rng(5).randn(H * W * 3 * C);
    const t = ctx.upload(qkv, [1, H, W, 3 * C]);
    const q = t.slice(3, 0, C); // [1, H, W, C] with pixel stride 3C
    const y = maxPool2d(ctx, q, { layout: 'nhwc' });
    expect(y.shape).toEqual([1, 3, 5, C]);
    const dense = new Float32Array(H * W * C);
    for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) dense[p * C + c] = qkv[p * 3 * C + c]!;
    const want = maxPool2dCpu(nhwcToNchw(dense, [1, C, H, W]), [1, C, H, W], [2, 2], [2, 2]);
    expectClose(nhwcToNchw(await ctx.read(y), [1, C, 3, 5]), want.data, exact, 'strided q view', want.shape);
  });

  it('infinities and NaN: +Inf wins, -Inf loses, NaN propagates', async () => {
    const ctx = gpu();
    const x = Float32Array.from([1, -Infinity, 2, 3, Infinity, 0, NaN, 5, -Infinity, -Infinity, 7, 8, -Infinity, -Infinity, 9, NaN]);
    const y = await ctx.read(maxPool2d(ctx, ctx.upload(x, [1, 1, 4, 4])));
    const want = maxPool2dCpu(x, [1, 1, 4, 4], [2, 2], [2, 2]).data;
    expect(Array.from(want)).toEqual([Infinity, NaN, -Infinity, NaN]);
    expect(Array.from(y)).toEqual(Array.from(want));
  });

  it('errors name the op and the shapes', () => {
    const ctx = gpu();
    const t = ctx.upload(new Float32Array(12), [1, 1, 3, 4]);
    expect(() => maxPool2d(ctx, t, { kernel: 4 })).toThrow(/maxPool2d: a 4x4 window does not fit the 3x4 input \[1, 1, 3, 4\]/);
    expect(() => maxPool2d(ctx, t.reshape([3, 4]))).toThrow(/maxPool2d: input must be 4-D/);
    expect(() => maxPool2d(ctx, t, { kernel: 0 })).toThrow(/kernel 0x0/);
  });
});
