/**
 * Reductions over one dim of a strided tensor: max, sum, mean, argmax (ties -> the first index).
 *
 * The kept dims form the output (contiguous, the reduced dim removed or kept as size 1) and are
 * collapsed like any strided layout; the reduced dim is walked with its own stride, so "max over
 * tokens of [B, N, C] along N" and "argmax over classes of [C, H, W] along 0" need no transpose.
 *
 * Variants (`select` picks, tests force each):
 *  - `thread`: one invocation per output walks the whole reduced dim. Right when there are many
 *    outputs (per-pixel argmax over a few classes).
 *  - `workgroup`: 64 invocations per output share the reduced dim, then a tree reduction. Right
 *    for few outputs with long reductions (max over 4096 tokens).
 * NaN inputs: max/argmax skip NaN (an all-NaN slice gives -Inf at index 0); sum/mean propagate it.
 */
import type { GpuContext } from '../gpu/context.js';
import { type DType, isFloat } from '../gpu/dtype.js';
import { check } from '../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import { type Tensor, contiguousStrides } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { MAX_RANK, collapseLayout, stridedFields, stridedIndexWgsl, stridedValues } from './elementwise.js';

export type ReduceOp = 'max' | 'sum' | 'mean' | 'argmax';
export type ReduceVariant = 'thread' | 'workgroup';

interface ReduceConfig {
  [k: string]: string | number | boolean;
  op: ReduceOp;
  variant: ReduceVariant;
  x: DType;
  out: DType;
  rank: number;
}

const WG_THREAD = 256;
const WG_GROUP = 64;

const uniforms = defineUniforms({
  ...stridedFields(['x', 'o'] as const),
  outputs: 'u32',
  len: 'u32',
  stride: 'u32',
  // -Inf cannot be written as a WGSL constant (const-evaluation rejects it); it arrives here.
  neg_inf: 'f32',
});

/** WGSL for the per-op accumulator: init, fold of value v at index k, merge with (ov, ok). */
function accumulator(op: ReduceOp) {
  if (op === 'max' || op === 'argmax') {
    // Start from -Inf at index 0 and replace only on strictly greater: the first index wins ties,
    // an all -Inf slice gives (-Inf, 0), and NaN (every comparison false) is skipped.
    return { init: 'var best = u.neg_inf; var bi = 0u;', fold: 'if (v > best) { best = v; bi = k; }' };
  }
  return { init: 'var best = 0.0; var bi = 0u;', fold: 'best += v;' };
}

function finish(c: ReduceConfig, value: string, index: string): string {
  if (c.op === 'argmax') return `${c.out}(${index})`;
  if (c.op === 'mean') return `${c.out}(${value} / f32(u.len))`;
  return `${c.out}(${value})`;
}

const reduceKernel = defineKernel({
  name: 'reduce',
  uniforms,
  bindings: (c: ReduceConfig) => [
    { name: 'x', type: c.x, access: 'read' as const },
    { name: 'out', type: c.out, access: 'read_write' as const },
  ],
  source: (c: ReduceConfig) => {
    const acc = accumulator(c.op);
    const isMax = c.op === 'max' || c.op === 'argmax';
    if (c.variant === 'thread') {
      return /* wgsl */ `
${FLAT_WG}
@compute @workgroup_size(${WG_THREAD}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let o = flat_wg(wid, nwg) * ${WG_THREAD}u + lid;
  if (o >= u.outputs) { return; }
  ${stridedIndexWgsl(c.rank, ['x', 'o'], 'o')}
  ${acc.init}
  for (var k = 0u; k < u.len; k++) {
    let v = f32(x[off_x + k * u.stride]);
    ${acc.fold}
  }
  out[off_o] = ${finish(c, 'best', 'bi')};
}
`;
    }
    const merge = isMax
      ? `let ov = red_v[lid + s];
      let ok = red_i[lid + s];
      if (ov > red_v[lid] || (ov == red_v[lid] && ok < red_i[lid])) { red_v[lid] = ov; red_i[lid] = ok; }`
      : 'red_v[lid] += red_v[lid + s];';
    return /* wgsl */ `
${FLAT_WG}
var<workgroup> red_v: array<f32, ${WG_GROUP}>;
var<workgroup> red_i: array<u32, ${WG_GROUP}>;
@compute @workgroup_size(${WG_GROUP}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let o = flat_wg(wid, nwg);
  if (o >= u.outputs) { return; }
  ${stridedIndexWgsl(c.rank, ['x', 'o'], 'o')}
  ${acc.init}
  for (var k = lid; k < u.len; k += ${WG_GROUP}u) {
    let v = f32(x[off_x + k * u.stride]);
    ${acc.fold}
  }
  red_v[lid] = best;
  red_i[lid] = bi;
  workgroupBarrier();
  for (var s = ${WG_GROUP / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) {
      ${merge}
    }
    workgroupBarrier();
  }
  if (lid == 0u) { out[off_o] = ${finish(c, 'red_v[0]', 'red_i[0]')}; }
}
`;
  },
});

/** Which algorithm suits a reduction of `len` elements into `outputs` results. */
export function selectReduce(outputs: number, len: number): ReduceVariant {
  return len >= 256 && outputs < 8192 ? 'workgroup' : 'thread';
}

export interface ReduceOptions {
  keepdim?: boolean;
  /** Force an algorithm (tests, benchmarks). */
  variant?: ReduceVariant;
  /** Output dtype: float ops default to the input's; argmax to i32 (or u32). */
  outDtype?: DType;
}

export function reduce(ctx: GpuContext, op: ReduceOp, x: Tensor, dim: number, opts: ReduceOptions = {}): Tensor {
  const name = op === 'argmax' ? 'argmax' : `reduce${op[0]!.toUpperCase()}${op.slice(1)}`;
  const d = dim < 0 ? x.ndim + dim : dim;
  check(Number.isInteger(d) && d >= 0 && d < x.ndim, () => `${name}: dim ${dim} out of range for ${x}`);
  const len = x.shape[d]!;
  check(len >= 1, () => `${name}: reduced dim ${dim} of ${x} is empty`);
  check(isFloat(x.dtype), () => `${name}: needs f32/f16 input, got ${x}`);
  const outDtype = opts.outDtype ?? (op === 'argmax' ? 'i32' : x.dtype);
  if (op === 'argmax') check(outDtype === 'i32' || outDtype === 'u32', () => `${name}: output must be i32 or u32, got ${outDtype}`);
  else check(isFloat(outDtype), () => `${name}: output must be f32 or f16, got ${outDtype}`);
  const kept = x.shape.filter((_, i) => i !== d);
  const outShape = opts.keepdim ? x.shape.map((n, i) => (i === d ? 1 : n)) : kept;
  const layout = collapseLayout(kept, [x.strides.filter((_, i) => i !== d), contiguousStrides(kept)]);
  check(layout.shape.length <= MAX_RANK, () => `${name}: ${x} has more than ${MAX_RANK} strided dims besides dim ${dim}`);
  const out = ctx.empty(outShape, outDtype);
  const outputs = out.size;
  if (outputs === 0) return out;
  const variant = opts.variant ?? selectReduce(outputs, len);
  const config: ReduceConfig = { op, variant, x: x.dtype, out: outDtype, rank: layout.shape.length };
  const values = {
    ...stridedValues(['x', 'o'] as const, layout, [x.offset, 0]),
    outputs,
    len,
    stride: len === 1 ? 0 : x.strides[d]!,
    neg_inf: -Infinity,
  };
  const groups = variant === 'thread' ? Math.ceil(outputs / WG_THREAD) : outputs;
  ctx.run(reduceKernel, config, { x, out }, values, grid1d(groups), { flops: x.size, bytes: x.byteSize + out.byteSize });
  return out;
}

export const reduceMax = (ctx: GpuContext, x: Tensor, dim: number, opts?: ReduceOptions) => reduce(ctx, 'max', x, dim, opts);
export const reduceSum = (ctx: GpuContext, x: Tensor, dim: number, opts?: ReduceOptions) => reduce(ctx, 'sum', x, dim, opts);
export const reduceMean = (ctx: GpuContext, x: Tensor, dim: number, opts?: ReduceOptions) => reduce(ctx, 'mean', x, dim, opts);
/** Index of the largest value along `dim` (the first one on ties); i32 by default. */
export const argmax = (ctx: GpuContext, x: Tensor, dim: number, opts?: ReduceOptions) => reduce(ctx, 'argmax', x, dim, opts);

