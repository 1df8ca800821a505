import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import { fromF16Array, toF16Array, type DType } from '../../src/gpu/dtype.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { ACTIVATIONS, type Activation } from '../../src/kernels/activation.js';
import { binaryCpu, unaryCpu } from '../../src/kernels/cpu/elementwise.js';
import { activate, add, addAct, type BinaryOp, binary, collapseLayout, div, scale, sub } from '../../src/kernels/elementwise.js';
import { expectClose, type Tolerance } from '../helpers/compare.js';
import { useGpu, withCpuTuning } from '../helpers/gpu.js';
import { type OnnxConst, type OnnxNode, runOnnx } from '../helpers/onnx.js';
import { onnxActivation } from '../helpers/onnx-ops.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

/** A view applied identically to the GPU tensor (zero-copy) and in the ONNX graph (Transpose / Slice). */
type ViewOp = { permute: number[] } | { slice: [dim: number, start: number, end: number] };

interface Operand {
  stored: number[];
  view?: ViewOp[];
  dtype?: DType;
  /** Values: normal * scale + shift; `positive` makes them |.| + 0.5 (denominators). */
  scale?: number;
  shift?: number;
  positive?: boolean;
}

/**
 * ctx.upload of an odd number of f16 values fails (writeBuffer needs 4-byte multiples; reported to
 * the lead): upload one padding element and view the first n.
 */
function upload(ctx: GpuContext, data: Float32Array, shape: number[], dtype: DType = 'f32'): Tensor {
  if (dtype !== 'f16' || data.length % 2 === 0) return ctx.upload(data, shape, dtype);
  const padded = new Float32Array(data.length + 1);
  padded.set(data);
  return ctx.upload(padded, [padded.length], 'f16').slice(0, 0, data.length).reshape(shape);
}

function applyView(t: Tensor, ops: ViewOp[] = []): Tensor {
  let v = t;
  for (const op of ops) v = 'permute' in op ? v.permute(op.permute) : v.slice(...op.slice);
  return v;
}

function viewNodes(input: string, ops: ViewOp[] = [], prefix: string): { nodes: OnnxNode[]; consts: OnnxConst[]; out: string } {
  const nodes: OnnxNode[] = [];
  const consts: OnnxConst[] = [];
  let cur = input;
  ops.forEach((op, i) => {
    const next = `${prefix}_v${i}`;
    if ('permute' in op) {
      nodes.push({ op: 'Transpose', inputs: [cur], outputs: [next], attrs: { perm: op.permute } });
    } else {
      const [d, s, e] = op.slice;
      for (const [k, v] of [['s', s], ['e', e], ['a', d]] as const) consts.push({ name: `${next}_${k}`, dims: [1], data: [v], type: 'int64' });
      nodes.push({ op: 'Slice', inputs: [cur, `${next}_s`, `${next}_e`, `${next}_a`], outputs: [next] });
    }
    cur = next;
  });
  return { nodes, consts, out: cur };
}

const numel = (s: number[]) => s.reduce((p, d) => p * d, 1);
const roundF16 = (a: Float32Array) => fromF16Array(toF16Array(a));

function makeData(rng: Rng, o: Operand): Float32Array {
  const d = rng.randn(numel(o.stored), o.scale ?? 1, o.shift ?? 0);
  if (o.positive) for (let i = 0; i < d.length; i++) d[i] = Math.abs(d[i]!) + 0.5 * (o.scale ?? 1);
  return o.dtype === 'f16' ? roundF16(d) : d;
}

interface BinCase {
  name: string;
  op: BinaryOp;
  a: Operand;
  b: Operand;
  act?: Activation;
  alpha?: number;
  beta?: number;
  outDtype?: DType;
  tol: Tolerance;
}

// add/sub/mul round once in f32 exactly like ORT; div may use a reciprocal (WGSL allows 2.5 ulp).
const exact: Tolerance = { relL2: 1e-7, atol: 0, rtol: 1.2e-7 };
const divTol: Tolerance = { relL2: 1e-7, atol: 0, rtol: 4e-7 };
const actTol: Tolerance = { relL2: 1e-6, atol: 1e-6, rtol: 1e-5 };
// f16 output: one f16 rounding (2^-11 relative) on top of the f32 result.
const f16Tol: Tolerance = { relL2: 1e-3, atol: 1e-3, rtol: 1e-3 };

const binCases: BinCase[] = [
  { name: 'add [3,5,7] + [7]', op: 'add', a: { stored: [3, 5, 7] }, b: { stored: [7] }, tol: exact },
  { name: 'sub [2,1,4,9] - [3,1,9]', op: 'sub', a: { stored: [2, 1, 4, 9] }, b: { stored: [3, 1, 9] }, tol: exact },
  { name: 'mul size-1 dims [1] * [5,1]', op: 'mul', a: { stored: [1] }, b: { stored: [5, 1] }, tol: exact },
  { name: 'mul 4-D two-sided broadcast', op: 'mul', a: { stored: [4, 1, 6, 1] }, b: { stored: [1, 5, 1, 3] }, tol: exact },
  {
    name: 'div permuted / sliced views',
    op: 'div',
    a: { stored: [5, 3, 6], view: [{ permute: [2, 0, 1] }] },
    b: { stored: [6, 8, 3], view: [{ slice: [1, 2, 7] }], positive: true },
    tol: divTol,
  },
  {
    name: 'add permuted + sliced-then-permuted, broadcast row',
    op: 'add',
    a: { stored: [7, 2, 9, 5], view: [{ permute: [1, 3, 2, 0] }] },
    b: { stored: [11, 9], view: [{ slice: [0, 3, 10] }, { permute: [1, 0] }] },
    tol: exact,
  },
  { name: 'sub large magnitudes', op: 'sub', a: { stored: [33, 17], scale: 1e30 }, b: { stored: [17], scale: 1e29, shift: 3e29 }, tol: exact },
  { name: 'mul large magnitudes', op: 'mul', a: { stored: [9, 13], scale: 1e18 }, b: { stored: [9, 13], scale: 1e17 }, tol: exact },
  { name: 'odd length 1-D (not a multiple of 256)', op: 'add', a: { stored: [1027] }, b: { stored: [1027] }, tol: exact },
  { name: 'add gelu fused', op: 'add', a: { stored: [37, 19] }, b: { stored: [19] }, act: 'gelu', tol: actTol },
  { name: 'mul alpha beta quick_gelu', op: 'mul', a: { stored: [5, 21] }, b: { stored: [5, 1] }, alpha: 0.75, beta: -0.25, act: 'quick_gelu', tol: actTol },
  { name: 'f16 add', op: 'add', a: { stored: [6, 35], dtype: 'f16' }, b: { stored: [35], dtype: 'f16' }, tol: f16Tol },
  {
    name: 'f16 div permuted, f16 denominators',
    op: 'div',
    a: { stored: [8, 11], dtype: 'f16', view: [{ permute: [1, 0] }] },
    b: { stored: [11, 8], dtype: 'f16', positive: true },
    tol: f16Tol,
  },
  { name: 'mixed f16 * f32 -> f32', op: 'mul', a: { stored: [4, 9], dtype: 'f16' }, b: { stored: [9] }, outDtype: 'f32', tol: exact },
  // Innermost dims that are multiples of 4 (several elements per invocation on CPU adapters): contiguous,
  // 1-D off the workgroup size, broadcast along and across the innermost dim, strided innermost, f16.
  { name: 'add rows of 64 + [64]', op: 'add', a: { stored: [6, 64] }, b: { stored: [64] }, tol: exact },
  { name: '1-D of 1028 (a multiple of 4, not of 1024)', op: 'sub', a: { stored: [1028] }, b: { stored: [1028] }, tol: exact },
  { name: 'mul [5, 8] * [5, 1] (broadcast along the innermost dim)', op: 'mul', a: { stored: [5, 8] }, b: { stored: [5, 1] }, tol: exact },
  {
    name: 'add permuted [12, 8] viewed as [8, 12] + sliced rows of 12',
    op: 'add',
    a: { stored: [12, 8], view: [{ permute: [1, 0] }] },
    b: { stored: [8, 16], view: [{ slice: [1, 2, 14] }] },
    tol: exact,
  },
  { name: 'f16 add gelu, rows of 36', op: 'add', a: { stored: [7, 36], dtype: 'f16' }, b: { stored: [36], dtype: 'f16' }, act: 'gelu', tol: f16Tol },
];

const ONNX_OP: Record<BinaryOp, string> = { add: 'Add', sub: 'Sub', mul: 'Mul', div: 'Div' };

async function binaryReference(c: BinCase, a: Float32Array, b: Float32Array): Promise<Float32Array> {
  const va = viewNodes('A', c.a.view, 'a');
  const vb = viewNodes('B', c.b.view, 'b');
  const nodes: OnnxNode[] = [...va.nodes, ...vb.nodes, { op: ONNX_OP[c.op], inputs: [va.out, vb.out], outputs: ['r'] }];
  const consts: OnnxConst[] = [...va.consts, ...vb.consts];
  let cur = 'r';
  if (c.alpha !== undefined || c.beta !== undefined) {
    consts.push({ name: 'alpha', dims: [], data: [c.alpha ?? 1] }, { name: 'beta', dims: [], data: [c.beta ?? 0] });
    nodes.push({ op: 'Mul', inputs: [cur, 'alpha'], outputs: ['ra'] }, { op: 'Add', inputs: ['ra', 'beta'], outputs: ['rb'] });
    cur = 'rb';
  }
  const act = onnxActivation(c.act ?? 'none', cur, 'Y');
  nodes.push(...act.nodes);
  consts.push(...act.consts);
  return runOnnx(
    { nodes, inputs: [{ name: 'A', dims: c.a.stored }, { name: 'B', dims: c.b.stored }], outputs: ['Y'], initializers: consts },
    { A: { data: a, dims: c.a.stored }, B: { data: b, dims: c.b.stored } },
  );
}

// Both forms of the kernel on every case: one element per invocation (GPUs), and four consecutive
// ones along the innermost dim where its length allows (CPU adapters).
for (const cpuAdapter of [true, false]) describe(`elementwise binary vs onnxruntime (${cpuAdapter ? 'CPU' : 'GPU'} tuning)`, () => {
  binCases.forEach((c, idx) => {
    it(c.name, async () => {
      const ctx = gpu();
      withCpuTuning(ctx, cpuAdapter);
      const rng = new Rng(100 + idx);
      const a = makeData(rng, c.a);
      const b = makeData(rng, c.b);
      const A = applyView(upload(ctx, a, c.a.stored, c.a.dtype), c.a.view);
      const B = applyView(upload(ctx, b, c.b.stored, c.b.dtype), c.b.view);
      const out = binary(ctx, c.op, A, B, { act: c.act, alpha: c.alpha, beta: c.beta, outDtype: c.outDtype });
      expect(out.dtype).toBe(c.outDtype ?? c.a.dtype ?? 'f32');
      const want = await binaryReference(c, a, b);
      expectClose(await ctx.read(out), want, c.tol, `${c.op} ${c.name}`, out.shape);
    });
  });
});

describe('elementwise unary vs onnxruntime', () => {
  it('scale(x, alpha, beta) on a permuted 4-D view', async () => {
    const ctx = gpu();
    const stored = [3, 4, 5, 6];
    const x = new Rng(1).randn(numel(stored), 10);
    const X = ctx.upload(x, stored).permute([3, 1, 0, 2]);
    const y = scale(ctx, X, -0.37, 2.5);
    const v = viewNodes('X', [{ permute: [3, 1, 0, 2] }], 'x');
    const want = await runOnnx(
      {
        nodes: [...v.nodes, { op: 'Mul', inputs: [v.out, 'al'], outputs: ['m'] }, { op: 'Add', inputs: ['m', 'be'], outputs: ['Y'] }],
        inputs: [{ name: 'X', dims: stored }],
        outputs: ['Y'],
        initializers: [...v.consts, { name: 'al', dims: [], data: [-0.37] }, { name: 'be', dims: [], data: [2.5] }],
      },
      { X: { data: x, dims: stored } },
    );
    expectClose(await ctx.read(y), want, { relL2: 1e-7, atol: 1e-6, rtol: 2.5e-7 }, 'scale', y.shape);
  });

  for (const act of ACTIVATIONS) {
    it(`activate ${act} (f32 and f16 storage)`, async () => {
      const ctx = gpu();
      const shape = [13, 29];
      const x = new Rng(2).randn(numel(shape), 3);
      const g = onnxActivation(act, 'X', 'Y');
      const ref = (data: Float32Array) =>
        runOnnx({ nodes: g.nodes, inputs: [{ name: 'X', dims: shape }], outputs: ['Y'], initializers: g.consts }, { X: { data, dims: shape } });
      const y = activate(ctx, ctx.upload(x, shape), act);
      expectClose(await ctx.read(y), await ref(x), actTol, `activate ${act}`, shape);
      const xh = roundF16(x);
      const yh = activate(ctx, upload(ctx, xh, shape, 'f16'), act);
      expect(yh.dtype).toBe('f16');
      expectClose(await ctx.read(yh), await ref(xh), f16Tol, `activate ${act} f16`, shape);
    });
  }
});

describe('elementwise', () => {
  it('matches the double-precision CPU reference (broadcast, fused act)', async () => {
    const ctx = gpu();
    const rng = new Rng(3);
    const [sa, sb] = [[2, 7, 1, 5], [3, 1]];
    const a = rng.randn(numel(sa));
    const b = rng.randn(numel(sb));
    const y = addAct(ctx, ctx.upload(a, sa), ctx.upload(b, sb), 'gelu', { alpha: 1.5 });
    const want = binaryCpu('add', { data: a, shape: sa }, { data: b, shape: sb }, { act: 'gelu', alpha: 1.5 });
    expect(y.shape).toEqual(want.shape);
    expectClose(await ctx.read(y), want.data, { relL2: 1e-6, atol: 1e-6, rtol: 1e-5 }, 'addAct cpu', y.shape);
    const s = scale(ctx, ctx.upload(a, sa), 3, -1, { act: 'relu' });
    expectClose(await ctx.read(s), unaryCpu(a, { alpha: 3, beta: -1, act: 'relu' }), { relL2: 1e-7, atol: 1e-6, rtol: 1e-7 }, 'scale relu cpu');
  });

  it('collapses jointly contiguous dims and keeps strided ones', () => {
    expect(collapseLayout([2, 3, 4], [[12, 4, 1]])).toEqual({ shape: [24], strides: [[1]] });
    expect(collapseLayout([2, 1, 3, 4], [[12, 99, 4, 1], [0, 0, 1, 3]])).toEqual({ shape: [2, 3, 4], strides: [[12, 4, 1], [0, 1, 3]] });
    expect(collapseLayout([1, 1], [[5, 1]])).toEqual({ shape: [1], strides: [[0]] });
  });

  it('handles empty tensors without dispatching', async () => {
    const ctx = gpu();
    const y = add(ctx, ctx.empty([0, 3]), ctx.empty([3]));
    expect(y.shape).toEqual([0, 3]);
  });

  it('rejects bad inputs before dispatch', () => {
    const ctx = gpu();
    const a = ctx.empty([3, 4]);
    expect(() => add(ctx, a, ctx.empty([5]))).toThrow(/add: shapes \[3, 4\], \[5\] do not broadcast/);
    expect(() => sub(ctx, ctx.empty([2], 'i32'), ctx.empty([2], 'i32'))).toThrow(/arithmetic needs f32\/f16 inputs, got Tensor\(\[2\], i32\)/);
    expect(() => div(ctx, a, a, { outDtype: 'i32' })).toThrow(/needs an f32\/f16 output/);
  });
});
