import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import { type DType, fromF16Array, toF16Array } from '../../src/gpu/dtype.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { l2NormalizeCpu } from '../../src/kernels/cpu/l2-normalize.js';
import { l2Normalize } from '../../src/kernels/l2-normalize.js';
import { rowReduction } from '../../src/kernels/layernorm.js';
import { expectClose, type Tolerance } from '../helpers/compare.js';
import { ROW_TUNINGS, requires, tuningName, useGpu, withTuning } from '../helpers/gpu.js';
import { type OnnxNode, runOnnx } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

const numel = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
const roundF16 = (a: Float32Array) => fromF16Array(toF16Array(a));

/** ctx.upload of an odd number of f16 values fails (reported to the lead): pad by one and view. */
function upload(ctx: GpuContext, data: Float32Array, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (dtype !== 'f16' || data.length % 2 === 0) return ctx.upload(data, shape, dtype);
  const padded = new Float32Array(data.length + 1);
  padded.set(data);
  return ctx.upload(padded, [padded.length], 'f16').slice(0, 0, data.length).reshape(shape);
}

/**
 * ONNX reference over the last axis of Transpose?(X): LpNormalization (p = 2) without eps;
 * with eps the torch.nn.functional.normalize composition X / Max(ReduceL2(X), eps).
 */
function reference(x: Float32Array, stored: number[], perm?: number[], eps?: number, form: 'lp' | 'reduce' = 'lp') {
  const nodes: OnnxNode[] = [];
  let cur = 'X';
  if (perm) nodes.push({ op: 'Transpose', inputs: [cur], outputs: ['xt'], attrs: { perm } }), (cur = 'xt');
  if (eps === undefined && form === 'lp') {
    nodes.push({ op: 'LpNormalization', inputs: [cur], outputs: ['Y'], attrs: { axis: -1, p: 2 } });
  } else {
    nodes.push({ op: 'ReduceL2', inputs: [cur], outputs: ['n'], attrs: { axes: [-1], keepdims: 1 } });
    if (eps !== undefined) nodes.push({ op: 'Max', inputs: ['n', 'eps'], outputs: ['ne'] });
    nodes.push({ op: 'Div', inputs: [cur, eps !== undefined ? 'ne' : 'n'], outputs: ['Y'] });
  }
  return runOnnx(
    { nodes, inputs: [{ name: 'X', dims: stored }], outputs: ['Y'], initializers: eps === undefined ? [] : [{ name: 'eps', dims: [], data: [eps] }] },
    { X: { data: x, dims: stored } },
  );
}

interface Case {
  name: string;
  stored: number[];
  perm?: number[];
  eps?: number;
  dtype?: DType;
  xScale?: number;
  /** Rows set to zero (with eps these become zero; without, NaN). */
  zeroRows?: number[];
  tol: Tolerance;
}

const f32: Tolerance = { relL2: 1e-6, atol: 1e-7, rtol: 2e-6 };
const f16: Tolerance = { relL2: 1e-3, atol: 1e-4, rtol: 2e-3 };
const cases: Case[] = [
  { name: 'rows of 65', stored: [7, 65], tol: f32 },
  { name: '[1, 1]', stored: [1, 1], tol: f32 },
  { name: 'CLIP text embeddings [77, 512]', stored: [77, 512], tol: f32 },
  { name: 'dense tokens [2, 3, 768]', stored: [2, 3, 768], tol: f32 },
  { name: 'permuted input', stored: [40, 6], perm: [1, 0], tol: f32 },
  { name: 'eps = 1e-12 with a zero row (torch normalize)', stored: [5, 33], eps: 1e-12, zeroRows: [3], tol: f32 },
  { name: 'eps larger than some norms', stored: [6, 9], eps: 2.5, xScale: 0.5, tol: f32 },
  { name: 'f16 storage', stored: [9, 512], dtype: 'f16', tol: f16 },
  { name: 'f16 storage, permuted', stored: [17, 3], perm: [1, 0], dtype: 'f16', tol: f16 },
];

// Both workgroup tunings (CPU adapters: 16 invocations per row; GPUs: 64-256) and both workgroup
// reductions (shared-memory tree; subgroup operations where the device has them) on every case.
for (const tuning of ROW_TUNINGS) describe(`l2Normalize vs onnxruntime (${tuningName(tuning)})`, () => {
  cases.forEach((c, idx) => {
    it(c.name, async (t) => {
      const ctx = gpu();
      if (!requires(t, tuning.rowReduce !== 'subgroup' || ctx.features.subgroups, 'subgroups')) return;
      withTuning(ctx, tuning);
      expect(rowReduction(ctx)).toBe(tuning.rowReduce);
      const rng = new Rng(800 + idx);
      const shape = c.perm ? c.perm.map((p) => c.stored[p]!) : c.stored;
      let x = rng.randn(numel(c.stored), c.xScale ?? 1);
      const n = c.stored[c.stored.length - 1]!;
      for (const r of c.zeroRows ?? []) x.fill(0, r * n, (r + 1) * n);
      if (c.dtype === 'f16') x = roundF16(x);
      let X = upload(ctx, x, c.stored, c.dtype);
      if (c.perm) X = X.permute(c.perm);
      const y = l2Normalize(ctx, X, { eps: c.eps });
      expect(y.shape).toEqual(shape);
      const want = await reference(x, c.stored, c.perm, c.eps);
      expectClose(await ctx.read(y), want, c.tol, `l2Normalize ${c.name}`, shape);
    });
  });

  it('a zero row without eps gives NaN, as x / ReduceL2(x) does in ONNX (and x / x.norm() in torch)', async () => {
    const ctx = gpu();
    const x = new Rng(850).randn(3 * 10);
    x.fill(0, 10, 20);
    const y = await ctx.read(l2Normalize(ctx, ctx.upload(x, [3, 10])));
    const want = await reference(x, [3, 10], undefined, undefined, 'reduce');
    expect(Number.isNaN(want[10])).toBe(true);
    expectClose(y, want, f32, 'zero row', [3, 10]);
  });

  it('is safe at extreme magnitudes (1e20 and 1e-25) where a plain sum of squares over/underflows', async () => {
    const ctx = gpu();
    const rng = new Rng(851);
    for (const s of [1e20, 1e-25]) {
      const x = rng.randn(4 * 100, s);
      const y = await ctx.read(l2Normalize(ctx, ctx.upload(x, [4, 100])));
      expectClose(y, l2NormalizeCpu(x, 4, 100), { relL2: 1e-6, atol: 1e-7, rtol: 2e-6 }, `scale ${s}`, [4, 100]);
    }
  });

  it('matches the double-precision CPU reference', async () => {
    const ctx = gpu();
    const x = new Rng(852).randn(13 * 257, 3);
    const tol = { relL2: 1e-6, atol: 1e-7, rtol: 2e-6 };
    expectClose(await ctx.read(l2Normalize(ctx, ctx.upload(x, [13, 257]))), l2NormalizeCpu(x, 13, 257), tol, 'l2 cpu', [13, 257]);
    expectClose(await ctx.read(l2Normalize(ctx, ctx.upload(x, [13, 257]), { eps: 60 })), l2NormalizeCpu(x, 13, 257, 60), tol, 'l2 cpu eps', [13, 257]);
  });

  it('rejects bad inputs before dispatch', () => {
    const ctx = gpu();
    expect(() => l2Normalize(ctx, ctx.empty([3], 'u32'))).toThrow(/l2Normalize: needs f32\/f16, got Tensor\(\[3\], u32\)/);
    expect(() => l2Normalize(ctx, ctx.empty([3]), { eps: -1 })).toThrow(/eps must be finite and >= 0, got -1/);
  });
});
