import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import { type DType, fromF16Array, toF16Array } from '../../src/gpu/dtype.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { cast, concat, contiguous, copyInto, pad, readTensor } from '../../src/kernels/copy.js';
import { concatCpu, padCpu, permuteCpu, stridedReadCpu } from '../../src/kernels/cpu/copy.js';
import { expectClose, type Tolerance } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { type OnnxConst, type OnnxNode, runOnnx } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

const numel = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
const roundF16 = (a: Float32Array) => fromF16Array(toF16Array(a));
/** Copies move values: they must be bit-exact (NaN/Inf included, checked by expectClose). */
const exact: Tolerance = { relL2: 0, atol: 0, rtol: 0 };

/** ctx.upload of an odd number of f16 values fails (reported to the lead): pad by one and view. */
function upload(ctx: GpuContext, data: Float32Array, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (dtype !== 'f16' || data.length % 2 === 0) return ctx.upload(data, shape, dtype);
  const padded = new Float32Array(data.length + 1);
  padded.set(data);
  return ctx.upload(padded, [padded.length], 'f16').slice(0, 0, data.length).reshape(shape);
}

const i64 = (name: string, data: number[]): OnnxConst => ({ name, dims: [data.length], data, type: 'int64' });

function sliceNode(input: string, output: string, dim: number, start: number, end: number): { node: OnnxNode; consts: OnnxConst[] } {
  return {
    node: { op: 'Slice', inputs: [input, `${output}_s`, `${output}_e`, `${output}_a`], outputs: [output] },
    consts: [i64(`${output}_s`, [start]), i64(`${output}_e`, [end]), i64(`${output}_a`, [dim])],
  };
}

describe('contiguous vs onnxruntime', () => {
  it("SAM window partition: 6-D permute of [B, Hp/w, w, Wp/w, w, C]", async () => {
    const ctx = gpu();
    // Hp = Wp = 28, window 14, C = 5 (odd), B = 2.
    const [B, Hp, Wp, w, C] = [2, 28, 28, 14, 5];
    const x = new Rng(1).randn(B * Hp * Wp * C);
    const six = [B, Hp / w, w, Wp / w, w, C];
    const perm = [0, 1, 3, 2, 4, 5];
    const X = ctx.upload(x, [B, Hp, Wp, C]);
    const v = X.reshape(six).permute(perm);
    const y = contiguous(ctx, v);
    expect(y.isContiguous).toBe(true);
    expect(y.shape).toEqual([B, 2, 2, w, w, C]);
    const want = await runOnnx(
      {
        nodes: [
          { op: 'Reshape', inputs: ['X', 'six'], outputs: ['r'] },
          { op: 'Transpose', inputs: ['r'], outputs: ['Y'], attrs: { perm } },
        ],
        inputs: [{ name: 'X', dims: [B, Hp, Wp, C] }],
        outputs: ['Y'],
        initializers: [i64('six', six)],
      },
      { X: { data: x, dims: [B, Hp, Wp, C] } },
    );
    expectClose(await ctx.read(y), want, exact, 'window partition', y.shape);
    // Window reverse: the inverse permutation brings the original grid back.
    const back = contiguous(ctx, y.permute([0, 1, 3, 2, 4, 5]));
    expectClose(await ctx.read(back.reshape([B, Hp, Wp, C])), x, exact, 'window reverse');
  });

  it('sliced + permuted f16 view, and a contiguous input is not copied', async () => {
    const ctx = gpu();
    const stored = [7, 9, 5];
    const x = roundF16(new Rng(2).randn(numel(stored)));
    const X = upload(ctx, x, stored, 'f16');
    const v = X.slice(1, 2, 8).permute([2, 0, 1]);
    const y = contiguous(ctx, v);
    expect(y.dtype).toBe('f16');
    const s = sliceNode('X', 's', 1, 2, 8);
    const want = await runOnnx(
      {
        nodes: [s.node, { op: 'Transpose', inputs: ['s'], outputs: ['Y'], attrs: { perm: [2, 0, 1] } }],
        inputs: [{ name: 'X', dims: stored }],
        outputs: ['Y'],
        initializers: s.consts,
      },
      { X: { data: x, dims: stored } },
    );
    expectClose(await ctx.read(y), want, exact, 'f16 view', y.shape);
    const same = contiguous(ctx, X);
    expect(same.storage).toBe(X.storage);
  });
});

describe('copyInto / pad / concat vs onnxruntime', () => {
  it('copyInto places tokens into a window of a prefilled padded grid', async () => {
    const ctx = gpu();
    const [H, W, C] = [9, 11, 4];
    const x = new Rng(3).randn(H * W * C);
    const grid = ctx.upload(new Float32Array(14 * 14 * C).fill(7), [1, 14, 14, C]);
    const window = grid.slice(1, 2, 2 + H).slice(2, 1, 1 + W);
    copyInto(ctx, ctx.upload(x, [1, H, W, C]), window);
    const want = await runOnnx(
      {
        nodes: [{ op: 'Pad', inputs: ['X', 'pads', 'value'], outputs: ['Y'] }],
        inputs: [{ name: 'X', dims: [1, H, W, C] }],
        outputs: ['Y'],
        initializers: [i64('pads', [0, 2, 1, 0, 0, 3, 2, 0]), { name: 'value', dims: [], data: [7] }],
      },
      { X: { data: x, dims: [1, H, W, C] } },
    );
    expectClose(await ctx.read(grid), want, exact, 'copyInto', grid.shape);
  });

  it('copyInto broadcasts a row into every row of an f16 view and converts f32 -> f16', async () => {
    const ctx = gpu();
    const row = new Rng(4).randn(13);
    const dst = ctx.upload(new Float32Array(6 * 14), [6, 14], 'f16');
    copyInto(ctx, ctx.upload(row, [13]), dst.slice(1, 1, 14));
    const got = await ctx.read(dst);
    const want = new Float32Array(6 * 14);
    const rowH = roundF16(row);
    for (let r = 0; r < 6; r++) want.set(rowH, r * 14 + 1);
    expectClose(got, want, exact, 'broadcast copyInto', [6, 14]);
  });

  it('pad: SAM window padding of [B, H, W, C] to multiples of 7 (zeros at the end)', async () => {
    const ctx = gpu();
    const shape = [2, 9, 10, 3];
    const x = new Rng(5).randn(numel(shape));
    const y = pad(ctx, ctx.upload(x, shape), [0, 0, 0, 4, 0, 5]);
    expect(y.shape).toEqual([2, 14, 14, 3]);
    const want = await runOnnx(
      {
        nodes: [{ op: 'Pad', inputs: ['X', 'pads'], outputs: ['Y'] }],
        inputs: [{ name: 'X', dims: shape }],
        outputs: ['Y'],
        initializers: [i64('pads', [0, 0, 0, 0, 0, 5, 4, 0])],
      },
      { X: { data: x, dims: shape } },
    );
    expectClose(await ctx.read(y), want, exact, 'pad', y.shape);
  });

  it('pad: permuted f16 input, pads before and after, value -1.5', async () => {
    const ctx = gpu();
    const stored = [5, 3, 7];
    const x = roundF16(new Rng(6).randn(numel(stored)));
    const X = upload(ctx, x, stored, 'f16').permute([1, 2, 0]); // [3, 7, 5]
    const y = pad(ctx, X, [1, 2, 3, 0, 0, 1], -1.5);
    expect(y.shape).toEqual([4, 10, 8]);
    const want = await runOnnx(
      {
        nodes: [
          { op: 'Transpose', inputs: ['X'], outputs: ['t'], attrs: { perm: [1, 2, 0] } },
          { op: 'Pad', inputs: ['t', 'pads', 'value'], outputs: ['Y'] },
        ],
        inputs: [{ name: 'X', dims: stored }],
        outputs: ['Y'],
        initializers: [i64('pads', [0, 3, 1, 1, 0, 2]), { name: 'value', dims: [], data: [-1.5] }],
      },
      { X: { data: x, dims: stored } },
    );
    expectClose(await ctx.read(y), want, exact, 'pad f16', y.shape);
  });

  it('concat along a middle dim with a permuted and a size-1 part', async () => {
    const ctx = gpu();
    const rng = new Rng(7);
    const a = rng.randn(2 * 3 * 5);
    const b = rng.randn(2 * 1 * 5);
    const c = rng.randn(5 * 4 * 2); // stored [5, 4, 2], used as permute [2, 1, 0] -> [2, 4, 5]
    const y = concat(ctx, [ctx.upload(a, [2, 3, 5]), ctx.upload(b, [2, 1, 5]), ctx.upload(c, [5, 4, 2]).permute([2, 1, 0])], 1);
    expect(y.shape).toEqual([2, 8, 5]);
    const want = await runOnnx(
      {
        nodes: [
          { op: 'Transpose', inputs: ['C'], outputs: ['ct'], attrs: { perm: [2, 1, 0] } },
          { op: 'Concat', inputs: ['A', 'B', 'ct'], outputs: ['Y'], attrs: { axis: 1 } },
        ],
        inputs: [{ name: 'A', dims: [2, 3, 5] }, { name: 'B', dims: [2, 1, 5] }, { name: 'C', dims: [5, 4, 2] }],
        outputs: ['Y'],
      },
      { A: { data: a, dims: [2, 3, 5] }, B: { data: b, dims: [2, 1, 5] }, C: { data: c, dims: [5, 4, 2] } },
    );
    expectClose(await ctx.read(y), want, exact, 'concat', y.shape);
  });

  it('concat along the last dim in f16 (class token + patches style)', async () => {
    const ctx = gpu();
    const rng = new Rng(8);
    const a = roundF16(rng.randn(3 * 1));
    const b = roundF16(rng.randn(3 * 7));
    const y = concat(ctx, [upload(ctx, a, [3, 1], 'f16'), upload(ctx, b, [3, 7], 'f16')], -1);
    const want = await runOnnx(
      {
        nodes: [{ op: 'Concat', inputs: ['A', 'B'], outputs: ['Y'], attrs: { axis: -1 } }],
        inputs: [{ name: 'A', dims: [3, 1] }, { name: 'B', dims: [3, 7] }],
        outputs: ['Y'],
      },
      { A: { data: a, dims: [3, 1] }, B: { data: b, dims: [3, 7] } },
    );
    expectClose(await ctx.read(y), want, exact, 'concat f16', y.shape);
  });
});

describe('cast vs onnxruntime', () => {
  it('f32 -> f16 rounds like ONNX Cast (nearest even), specials included', async () => {
    const ctx = gpu();
    const rng = new Rng(9);
    const base = rng.randn(997, 100);
    // Ties between two f16 values, subnormal halves, the largest finite, overflow (65520 is the tie
    // that rounds up to Inf), zero signs, infinities, NaN.
    const specials = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2049, 2051, 6e-8, 3e-5, -1e-6, 65504, -65504, 65519, 65520, -1e5, 0, -0, Infinity, -Infinity, NaN];
    const x = new Float32Array([...base, ...specials]);
    const y = cast(ctx, ctx.upload(x, [x.length]), 'f16');
    expect(y.dtype).toBe('f16');
    const want = await runOnnx(
      {
        nodes: [
          { op: 'Cast', inputs: ['X'], outputs: ['h'], attrs: { to: 10 } },
          { op: 'Cast', inputs: ['h'], outputs: ['Y'], attrs: { to: 1 } },
        ],
        inputs: [{ name: 'X', dims: [x.length] }],
        outputs: ['Y'],
      },
      { X: { data: x, dims: [x.length] } },
    );
    expectClose(await ctx.read(y), want, exact, 'cast f32->f16', [x.length]);
    // And back: f16 -> f32 is exact.
    const back = cast(ctx, y, 'f32');
    expectClose(await ctx.read(back), want, exact, 'cast f16->f32', [x.length]);
  });

  it('i32 -> f32 of a strided view', async () => {
    const ctx = gpu();
    const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 7919) % 49408 - 100);
    const t = ctx.upload(ids, [4, 6], 'i32').transpose(0, 1);
    const y = cast(ctx, t, 'f32');
    expectClose(await ctx.read(y), permuteCpu(ids, [4, 6], [1, 0]), exact, 'cast i32', y.shape);
  });
});

describe('copy ops', () => {
  it('match the CPU references (strided read, pad, concat) and readTensor reads any view', async () => {
    const ctx = gpu();
    const rng = new Rng(10);
    const stored = [4, 6, 5, 3];
    const x = rng.randn(numel(stored));
    const X = ctx.upload(x, stored);
    const v = X.slice(1, 1, 5).permute([3, 0, 2, 1]).slice(2, 1, 4);
    const want = stridedReadCpu(x, v.shape, v.strides, v.offset);
    expectClose(await readTensor(ctx, v), want, exact, 'readTensor strided', v.shape);
    expectClose(await ctx.read(contiguous(ctx, v)), want, exact, 'contiguous cpu', v.shape);

    const p = pad(ctx, X, [2, 1, 0, 0, 1, 0], 3.25);
    const pc = padCpu(x, stored, [[0, 0], [1, 0], [0, 0], [2, 1]], 3.25);
    expect(p.shape).toEqual(pc.shape);
    expectClose(await ctx.read(p), pc.data, exact, 'pad cpu', p.shape);

    const y = rng.randn(4 * 2 * 5 * 3);
    const c = concat(ctx, [X, ctx.upload(y, [4, 2, 5, 3])], 1);
    const cc = concatCpu([{ data: x, shape: stored }, { data: y, shape: [4, 2, 5, 3] }], 1);
    expectClose(await ctx.read(c), cc.data, exact, 'concat cpu', c.shape);

    const ints = ctx.upload(Int32Array.from([1 << 30, -5, 123456789, 7, 8, 9]), [2, 3], 'i32');
    const iv = await readTensor(ctx, ints.transpose(0, 1));
    expect(Array.from(iv)).toEqual([1 << 30, 7, -5, 8, 123456789, 9]); // beyond 2^24: moved untouched
  });

  it('rejects bad inputs before dispatch', () => {
    const ctx = gpu();
    const a = ctx.empty([3, 4]);
    const big = ctx.empty([5, 6]);
    expect(() => copyInto(ctx, a, big.slice(0, 0, 2))).toThrow(/copyInto: .*do not broadcast|does not fit/);
    expect(() => copyInto(ctx, big.slice(0, 0, 3).slice(1, 0, 4), big.slice(0, 2, 5).slice(1, 2, 6))).toThrow(/share storage/);
    expect(() => pad(ctx, a, [1, -1])).toThrow(/pad: pads \[1, -1\] must be non-negative integers/);
    expect(() => pad(ctx, a, [1, 1, 1, 1, 1, 1])).toThrow(/at most 2 dims/);
    expect(() => concat(ctx, [a, ctx.empty([3, 5])], 0)).toThrow(/concat: shapes \[3, 4\], \[3, 5\] differ outside dim 0/);
    expect(() => concat(ctx, [a, ctx.empty([3, 4], 'f16')], 0)).toThrow(/concat: dtypes differ/);
    expect(() => cast(ctx, a, 'i32')).toThrow(/cannot convert f32 to i32/);
  });
});
