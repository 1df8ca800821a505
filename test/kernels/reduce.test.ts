import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import { type DType, fromF16Array, toF16Array } from '../../src/gpu/dtype.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { reduceCpu } from '../../src/kernels/cpu/reduce.js';
import { argmax, reduce, type ReduceOp, type ReduceVariant, reduceMax, reduceMean, reduceSum } from '../../src/kernels/reduce.js';
import { expectClose, type Tolerance } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { type OnnxConst, type OnnxNode, runOnnx } from '../helpers/onnx.js';
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
 * ONNX opset 17 reduction of Transpose?(X) over `dim`: ReduceMax / ReduceMean take `axes` as an
 * attribute there, ReduceSum as an input (since opset 13); ArgMax (select_last_index = 0, i.e.
 * first index on ties) yields int64, cast to float for the comparison.
 */
async function reference(op: ReduceOp, x: Float32Array, stored: number[], dim: number, keepdim: boolean, perm?: number[]) {
  const nodes: OnnxNode[] = [];
  const consts: OnnxConst[] = [];
  let cur = 'X';
  if (perm) nodes.push({ op: 'Transpose', inputs: [cur], outputs: ['xt'], attrs: { perm } }), (cur = 'xt');
  const keepdims = keepdim ? 1 : 0;
  if (op === 'sum') {
    consts.push({ name: 'axes', dims: [1], data: [dim], type: 'int64' });
    nodes.push({ op: 'ReduceSum', inputs: [cur, 'axes'], outputs: ['Y'], attrs: { keepdims } });
  } else if (op === 'argmax') {
    nodes.push({ op: 'ArgMax', inputs: [cur], outputs: ['i'], attrs: { axis: dim, keepdims, select_last_index: 0 } });
    nodes.push({ op: 'Cast', inputs: ['i'], outputs: ['Y'], attrs: { to: 1 } });
  } else {
    nodes.push({ op: op === 'max' ? 'ReduceMax' : 'ReduceMean', inputs: [cur], outputs: ['Y'], attrs: { axes: [dim], keepdims } });
  }
  return runOnnx({ nodes, inputs: [{ name: 'X', dims: stored }], outputs: ['Y'], initializers: consts }, { X: { data: x, dims: stored } });
}

interface Case {
  name: string;
  stored: number[];
  dim: number;
  perm?: number[];
  keepdim?: boolean;
  dtype?: DType;
  scale?: number;
  /** Round values to multiples of 1/ties so that argmax has ties. */
  ties?: number;
  /** Then clamp to [-clampTo, clampTo] (few levels, so each invocation sees repeated maxima). */
  clampTo?: number;
}

const cases: Case[] = [
  { name: 'max over tokens of [B, N, C] along N', stored: [2, 300, 37], dim: 1 },
  { name: 'over classes of [C, H, W] along 0, with ties', stored: [5, 17, 19], dim: 0, ties: 2 },
  { name: 'last dim of [13, 513], keepdim', stored: [13, 513], dim: -1, keepdim: true },
  { name: 'size-1 reduced dim', stored: [4, 1, 6], dim: 1 },
  { name: 'single element', stored: [1], dim: 0 },
  { name: 'permuted input, reduce the middle dim', stored: [6, 7, 8], perm: [2, 0, 1], dim: 1 },
  { name: 'large magnitudes (1e6)', stored: [3, 1000], dim: 1, scale: 1e6 },
  { name: 'f16 storage, ties', stored: [9, 65], dim: 1, dtype: 'f16', ties: 2 },
  // Integers: the maximum repeats within one invocation's share of a long row (workgroup variant).
  { name: 'long rows with many ties', stored: [4, 700], dim: 1, ties: 1, clampTo: 1 },
];

const OPS: ReduceOp[] = ['max', 'mean', 'sum', 'argmax'];

function tolerance(op: ReduceOp, c: Case, len: number): Tolerance {
  if (op === 'max' || op === 'argmax') return { relL2: 0, atol: 0, rtol: 0 }; // selections are exact
  // f32 sums: error grows like sqrt(len) ulps of the partial sums; ORT sums in a different order.
  const rel = 4e-7 * Math.sqrt(len);
  const scale = c.scale ?? 1;
  return { relL2: rel, atol: rel * scale * Math.sqrt(len) * (op === 'sum' ? 1 : 1 / len) * 4, rtol: rel };
}

describe('reductions vs onnxruntime', () => {
  for (const variant of ['thread', 'workgroup'] as ReduceVariant[]) {
    cases.forEach((c, idx) => {
      it(`${variant}: ${c.name}`, async () => {
        const ctx = gpu();
        const rng = new Rng(400 + idx);
        let x = rng.randn(numel(c.stored), c.scale ?? 1);
        if (c.ties) x = x.map((v) => Math.round(v * c.ties!) / c.ties!);
        if (c.clampTo) x = x.map((v) => Math.min(c.clampTo!, Math.max(-c.clampTo!, v)));
        if (c.dtype === 'f16') x = roundF16(x);
        let X = upload(ctx, x, c.stored, c.dtype);
        if (c.perm) X = X.permute(c.perm);
        const d = c.dim < 0 ? X.ndim + c.dim : c.dim;
        for (const op of OPS) {
          const y = reduce(ctx, op, X, c.dim, { keepdim: c.keepdim, variant });
          const want = await reference(op, x, c.stored, d, !!c.keepdim, c.perm);
          const expShape = c.keepdim ? X.shape.map((n, i) => (i === d ? 1 : n)) : X.shape.filter((_, i) => i !== d);
          expect(y.shape).toEqual(expShape);
          expect(y.dtype).toBe(op === 'argmax' ? 'i32' : (c.dtype ?? 'f32'));
          let tol = tolerance(op, c, X.shape[d]!);
          if (c.dtype === 'f16' && op !== 'max' && op !== 'argmax') tol = { relL2: 1e-3, atol: 1e-2, rtol: 1e-3 };
          expectClose(await ctx.read(y), want, tol, `${variant} ${op} ${c.name}`, y.shape);
        }
      });
    });
  }

  it('argmax outputs u32 on request; -Inf slices pick index 0', async () => {
    const ctx = gpu();
    const x = new Float32Array([-Infinity, -Infinity, -Infinity, 3, -Infinity, 3]);
    for (const variant of ['thread', 'workgroup'] as ReduceVariant[]) {
      const y = argmax(ctx, ctx.upload(x, [2, 3]), 1, { outDtype: 'u32', variant });
      expect(y.dtype).toBe('u32');
      expect(Array.from(await ctx.read(y))).toEqual([0, 0]);
      const m = reduceMax(ctx, ctx.upload(x, [2, 3]), 1, { variant });
      expect(Array.from(await ctx.read(m))).toEqual([-Infinity, 3]);
    }
  });

  it('matches the double-precision CPU reference on every op', async () => {
    const ctx = gpu();
    const shape = [7, 33, 5];
    const x = new Rng(500).randn(numel(shape), 3);
    const X = ctx.upload(x, shape);
    const fns = { max: reduceMax, mean: reduceMean, sum: reduceSum, argmax };
    for (const op of OPS) {
      const y = fns[op](ctx, X, 1);
      const tol = op === 'max' || op === 'argmax' ? { relL2: 0, atol: 0, rtol: 0 } : { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 };
      expectClose(await ctx.read(y), reduceCpu(op, x, shape, 1), tol, `${op} cpu`, y.shape);
    }
  });

  it('rejects bad inputs before dispatch', () => {
    const ctx = gpu();
    const x = ctx.empty([3, 4]);
    expect(() => reduceMax(ctx, x, 2)).toThrow(/reduceMax: dim 2 out of range for Tensor\(\[3, 4\], f32\)/);
    expect(() => argmax(ctx, x, 0, { outDtype: 'f32' })).toThrow(/argmax: output must be i32 or u32, got f32/);
    expect(() => reduceSum(ctx, ctx.empty([3, 0]), 1)).toThrow(/reduced dim 1 of Tensor\(\[3, 0\], f32\) is empty/);
    expect(() => reduceMean(ctx, ctx.empty([3], 'i32'), 0)).toThrow(/needs f32\/f16 input/);
  });
});
