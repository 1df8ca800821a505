/**
 * Elementwise ops through ONE generic strided kernel: out = act(alpha * (a OP b) + beta).
 *
 * Every operand is an arbitrary strided view (permuted, sliced, broadcast with stride 0); the
 * output is any non-overlapping view (contiguous for the public ops, a window of a bigger tensor
 * for `copyInto`). Before dispatch the index space is collapsed: size-1 dims are dropped and
 * adjacent dims that are jointly contiguous in every operand are merged, so a contiguous add runs
 * as a 1-D loop and only genuinely strided layouts pay for the div/mod index walk.
 *
 * The op (`copy`, `fill`, `add`, `sub`, `mul`, `div`), the dtypes, the activation, whether the
 * affine step is applied and the collapsed rank are the pipeline key; shapes, strides, offsets,
 * alpha and beta are uniforms.
 *
 * This module also exports the strided-layout machinery (collapse, uniform fields, WGSL index
 * walk) that copy, reduce and the row-wise kernels build on.
 */
import type { GpuContext } from '../gpu/context.js';
import { type DType, isFloat } from '../gpu/dtype.js';
import { ShapeError, check, fmtShape } from '../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { type UniformValues, defineUniforms } from '../gpu/uniforms.js';
import { ACTIVATION_WGSL, type Activation, applyActivation } from './activation.js';

// ------------------------------------------------------------------ strided layouts

/** Most dims a collapsed index space may keep (two vec4 per operand). */
export const MAX_RANK = 8;

export interface CollapsedLayout {
  shape: number[];
  /** One stride list per operand, same order as given. */
  strides: number[][];
}

/**
 * Drop size-1 dims and merge neighbours that are contiguous with each other in every operand
 * (stride[i] == stride[i+1] * shape[i+1]). Broadcast dims (stride 0 everywhere) merge too.
 * An empty result becomes a single dim of size 1.
 */
export function collapseLayout(shape: readonly number[], strides: readonly (readonly number[])[]): CollapsedLayout {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    const n = shape[i]!;
    if (n === 1) continue;
    const last = outShape.length - 1;
    if (last >= 0 && strides.every((s, k) => outStrides[k]![last] === s[i]! * n)) {
      outShape[last] = outShape[last]! * n;
      strides.forEach((s, k) => (outStrides[k]![last] = s[i]!));
    } else {
      outShape.push(n);
      strides.forEach((s, k) => outStrides[k]!.push(s[i]!));
    }
  }
  if (outShape.length === 0) return { shape: [1], strides: strides.map(() => [0]) };
  return { shape: outShape, strides: outStrides };
}

/** Strides of `t` viewed with NumPy broadcasting as `shape` (stride 0 on broadcast dims). */
export function broadcastStrides(t: Tensor, shape: readonly number[], op: string): number[] {
  const lead = shape.length - t.ndim;
  check(lead >= 0, () => `${op}: ${t} does not broadcast to ${fmtShape(shape)}`);
  return shape.map((n, i) => {
    if (i < lead) return 0;
    const d = t.shape[i - lead]!;
    if (d === n) return d === 1 ? 0 : t.strides[i - lead]!;
    if (d === 1) return 0;
    throw new ShapeError(`${op}: ${t} does not broadcast to ${fmtShape(shape)}`);
  });
}

/** NumPy broadcast of several shapes. */
export function broadcastShapes(op: string, ...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let n = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i] ?? 1;
      if (d === 1 || d === n) continue;
      if (n !== 1) throw new ShapeError(`${op}: shapes ${shapes.map(fmtShape).join(', ')} do not broadcast`);
      n = d;
    }
    out.push(n);
  }
  return out;
}

type StridedDecl<N extends string> = { shape_lo: 'vec4u'; shape_hi: 'vec4u' } & {
  [K in `${N}_lo` | `${N}_hi`]: 'vec4u';
} & { [K in `${N}_off`]: 'u32' };

/** Uniform fields for an index space of up to MAX_RANK dims and one stride set per operand. */
export function stridedFields<N extends string>(names: readonly N[]): StridedDecl<N> {
  const f: Record<string, 'vec4u' | 'u32'> = { shape_lo: 'vec4u', shape_hi: 'vec4u' };
  for (const n of names) {
    f[`${n}_lo`] = 'vec4u';
    f[`${n}_hi`] = 'vec4u';
    f[`${n}_off`] = 'u32';
  }
  return f as StridedDecl<N>;
}

/** Uniform values for `stridedFields`: shape padded with 1, strides with 0. */
export function stridedValues<N extends string>(
  names: readonly N[],
  layout: CollapsedLayout,
  offsets: readonly number[],
): UniformValues<StridedDecl<N>> {
  check(layout.shape.length <= MAX_RANK, () => `strided layout ${fmtShape(layout.shape)} has more than ${MAX_RANK} dims after collapsing`);
  const pad = (a: readonly number[], fill: number) => [...a, ...new Array<number>(MAX_RANK - a.length).fill(fill)];
  const shape = pad(layout.shape, 1);
  const v: Record<string, number | number[]> = { shape_lo: shape.slice(0, 4), shape_hi: shape.slice(4) };
  names.forEach((n, k) => {
    const s = pad(layout.strides[k]!, 0);
    v[`${n}_lo`] = s.slice(0, 4);
    v[`${n}_hi`] = s.slice(4);
    v[`${n}_off`] = offsets[k]!;
  });
  return v as UniformValues<StridedDecl<N>>;
}

const LANE = ['x', 'y', 'z', 'w'];
const comp = (base: string, k: number) => `u.${base}_${k < 4 ? 'lo' : 'hi'}.${LANE[k % 4]}`;

/**
 * WGSL statements turning the row-major flat index `index` over the collapsed shape (rank dims)
 * into element offsets `off_<name>` for each operand (declared here as `var`).
 */
export function stridedIndexWgsl(rank: number, names: readonly string[], index: string): string {
  const lines = names.map((n) => `var off_${n} = u.${n}_off;`);
  lines.push(`var rem = ${index};`);
  for (let k = rank - 1; k >= 0; k--) {
    // The outermost dim needs no modulo: what remains is its coordinate.
    const c = k === 0 ? 'rem' : `rem % ${comp('shape', k)}`;
    lines.push(`{ let c = ${c};${k === 0 ? '' : ` rem = rem / ${comp('shape', k)};`}`);
    for (const n of names) lines.push(`  off_${n} += c * ${comp(n, k)};`);
    lines.push('}');
  }
  return lines.join('\n  ');
}

/** Reject output views where two indices would write the same element (stride 0). */
export function checkWritable(op: string, out: Tensor): void {
  out.shape.forEach((n, i) => {
    check(n === 1 || out.strides[i] !== 0, () => `${op}: output ${out} has a broadcast (stride 0) dim ${i}; writes would collide`);
  });
}

/** WebGPU forbids binding one buffer as read-only and writable storage in the same dispatch. */
export function checkNoAlias(op: string, out: Tensor, ...inputs: (Tensor | undefined)[]): void {
  for (const t of inputs) {
    if (t && t.storage === out.storage) {
      throw new ShapeError(`${op}: input ${t} and output ${out} share storage; in-place updates are not supported (copy the input first)`);
    }
  }
}

// ------------------------------------------------------------------ the kernel

export type ElementwiseOp = 'copy' | 'fill' | 'add' | 'sub' | 'mul' | 'div';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

interface ElementwiseConfig {
  [k: string]: string | number | boolean;
  op: ElementwiseOp;
  rank: number;
  a: DType | 'none';
  b: DType | 'none';
  out: DType;
  act: Activation;
  affine: boolean;
  /** Elements per invocation, consecutive along the innermost dim (1, or 4 on CPU adapters). */
  per: number;
}

const WG = 256;

const uniforms = defineUniforms({
  ...stridedFields(['a', 'b', 'o'] as const),
  count: 'u32',
  alpha: 'f32',
  beta: 'f32',
});

const BIN: Record<BinaryOp, string> = { add: '+', sub: '-', mul: '*', div: '/' };

function valueExpr(c: ElementwiseConfig): string {
  if (c.op === 'fill') return 'u.beta';
  const a = 'f32(a[off_a])';
  let v = c.op === 'copy' ? a : `(${a} ${BIN[c.op]} f32(b[off_b]))`;
  if (c.affine) v = `u.alpha * ${v} + u.beta`;
  return applyActivation(c.act, v);
}

const elementwiseKernel = defineKernel({
  name: 'elementwise',
  uniforms,
  bindings: (c: ElementwiseConfig) => [
    ...(c.a === 'none' ? [] : [{ name: 'a', type: c.a, access: 'read' as const }]),
    ...(c.b === 'none' ? [] : [{ name: 'b', type: c.b, access: 'read' as const }]),
    { name: 'out', type: c.out, access: 'read_write' as const },
  ],
  source: (c: ElementwiseConfig) => {
    const names = ['o', ...(c.a === 'none' ? [] : ['a']), ...(c.b === 'none' ? [] : ['b'])];
    // A same-dtype copy moves the stored value untouched (bit-exact, and exact for i32/u32 beyond 2^24).
    const raw = c.op === 'copy' && c.a === c.out && !c.affine && c.act === 'none';
    const store = raw ? 'a[off_a]' : `${c.out}(${valueExpr(c)})`;
    return /* wgsl */ `
${c.act === 'none' ? '' : ACTIVATION_WGSL}
${FLAT_WG}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lidx: u32) {
  let i = (flat_wg(wid, nwg) * ${WG}u + lidx)${c.per > 1 ? ` * ${c.per}u` : ''};
  if (i >= u.count) { return; }
  ${stridedIndexWgsl(c.rank, names, 'i')}
${c.per > 1 ? `  // The next elements of the same innermost row (its length is a multiple of ${c.per}).
  for (var k = 0u; k < ${c.per}u; k++) {
    out[off_o] = ${store};
    ${names.map((n) => `off_${n} += ${comp(n, c.rank - 1)};`).join(' ')}
  }` : `  out[off_o] = ${store};`}
}
`;
  },
});

export interface ElementwiseSpec {
  op: ElementwiseOp;
  a?: Tensor;
  b?: Tensor;
  /** Where to write: any view with no stride-0 dims; a and b broadcast to its shape. */
  out: Tensor;
  act?: Activation;
  alpha?: number;
  /** Added after alpha; for `fill`, the value written. */
  beta?: number;
}

/** Low-level entry: one dispatch of the generic kernel writing into `spec.out` (a view). */
export function runElementwise(ctx: GpuContext, spec: ElementwiseSpec): void {
  const { op, a, b, out } = spec;
  const act = spec.act ?? 'none';
  const name = `elementwise ${op}`;
  check(op === 'fill' ? !a && !b : !!a && (op === 'copy') === !b, () => `${name}: wrong operands for the op`);
  checkWritable(name, out);
  checkNoAlias(name, out, a, b);
  const affine = op !== 'fill' && (spec.alpha !== undefined || spec.beta !== undefined);
  const numeric = op !== 'copy' && op !== 'fill';
  // Arithmetic happens in f32: integers would silently lose precision beyond 2^24. Plain copies
  // and conversions are checked by their callers (copy.ts).
  if (numeric || affine || act !== 'none') {
    for (const t of [a, b]) if (t) check(isFloat(t.dtype), () => `${name}: arithmetic needs f32/f16 inputs, got ${t}`);
    check(isFloat(out.dtype), () => `${name}: arithmetic needs an f32/f16 output, got ${out}`);
  }
  const count = out.size;
  if (count === 0) return;
  check(count <= 0xffffffff, () => `${name}: ${out} has more than 2^32 elements`);
  const operands = [out, ...(a ? [a] : []), ...(b ? [b] : [])];
  const strides = [out.strides as number[], ...operands.slice(1).map((t) => broadcastStrides(t, out.shape, name))];
  const layout = collapseLayout(out.shape, strides);
  check(layout.shape.length <= MAX_RANK, () => `${name}: ${out} needs ${layout.shape.length} strided dims; at most ${MAX_RANK} are supported`);
  const config: ElementwiseConfig = {
    op,
    rank: layout.shape.length,
    a: a?.dtype ?? 'none',
    b: b?.dtype ?? 'none',
    out: out.dtype,
    act,
    affine,
    // CPU adapters: a few elements per invocation amortise the index walk and the per-invocation
    // overhead of a workgroup that is a loop over SIMD lanes.
    per: ctx.tuning.cpuAdapter && layout.shape[layout.shape.length - 1]! % 4 === 0 ? 4 : 1,
  };
  // Operands missing from this op get dummy (zero) uniforms; the struct layout stays fixed.
  const full: CollapsedLayout = {
    shape: layout.shape,
    strides: [layout.strides[0]!, a ? layout.strides[1]! : [], b ? layout.strides[2]! : []],
  };
  const values = {
    ...stridedValues(['o', 'a', 'b'] as const, full, [out.offset, a?.offset ?? 0, b?.offset ?? 0]),
    count,
    alpha: spec.alpha ?? 1,
    beta: spec.beta ?? 0,
  };
  const bindings: Record<string, Tensor> = { out };
  if (a) bindings.a = a;
  if (b) bindings.b = b;
  const bytes = operands.reduce((s, t) => s + t.byteSize, 0);
  ctx.run(elementwiseKernel, config, bindings, values, grid1d(Math.ceil(count / config.per / WG)), { flops: numeric ? count : 0, bytes });
}

// ------------------------------------------------------------------ public ops

export interface ElementwiseOptions {
  /** Applied last: out = act(alpha * (a op b) + beta). */
  act?: Activation;
  alpha?: number;
  beta?: number;
  /** Output dtype; defaults to the first input's. */
  outDtype?: DType;
}

/** a OP b with NumPy broadcasting; inputs may be strided views; the output is contiguous. */
export function binary(ctx: GpuContext, op: BinaryOp, a: Tensor, b: Tensor, opts: ElementwiseOptions = {}): Tensor {
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = ctx.empty(shape, opts.outDtype ?? a.dtype);
  try {
    runElementwise(ctx, { op, a, b, out, act: opts.act, alpha: opts.alpha, beta: opts.beta });
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

export const add = (ctx: GpuContext, a: Tensor, b: Tensor, opts?: ElementwiseOptions) => binary(ctx, 'add', a, b, opts);
export const sub = (ctx: GpuContext, a: Tensor, b: Tensor, opts?: ElementwiseOptions) => binary(ctx, 'sub', a, b, opts);
export const mul = (ctx: GpuContext, a: Tensor, b: Tensor, opts?: ElementwiseOptions) => binary(ctx, 'mul', a, b, opts);
export const div = (ctx: GpuContext, a: Tensor, b: Tensor, opts?: ElementwiseOptions) => binary(ctx, 'div', a, b, opts);

/** act(a + b): the residual-plus-activation pattern in one pass. */
export function addAct(ctx: GpuContext, a: Tensor, b: Tensor, act: Activation, opts: Omit<ElementwiseOptions, 'act'> = {}): Tensor {
  return binary(ctx, 'add', a, b, { ...opts, act });
}

/** alpha * x + beta (then `opts.act` if given). */
export function scale(ctx: GpuContext, x: Tensor, alpha: number, beta = 0, opts: Omit<ElementwiseOptions, 'alpha' | 'beta'> = {}): Tensor {
  return unary(ctx, x, { ...opts, alpha, beta });
}

/** act(x). */
export function activate(ctx: GpuContext, x: Tensor, act: Activation, opts: Omit<ElementwiseOptions, 'act'> = {}): Tensor {
  return unary(ctx, x, { ...opts, act });
}

function unary(ctx: GpuContext, x: Tensor, opts: ElementwiseOptions): Tensor {
  const out = ctx.empty(x.shape, opts.outDtype ?? x.dtype);
  try {
    runElementwise(ctx, { op: 'copy', a: x, out, act: opts.act, alpha: opts.alpha, beta: opts.beta });
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
