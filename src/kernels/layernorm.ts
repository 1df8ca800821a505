/**
 * LayerNorm over the last dim, and SAM's LayerNorm2d (over C of NCHW) as a view of the same kernel.
 *
 * One workgroup per row; the row is read three times (mean, centred variance, write) rather than
 * accumulating sum and sum of squares in one pass: E[x^2] - E[x]^2 cancels catastrophically when
 * the mean is large against the spread (rows with mean 1e4 and std 1e-1 lose every digit in f32),
 * and ONNX Runtime's CPU LayerNormalization does exactly that. Both passes also work on x - x[0]
 * (the row's first element as a pivot): summing 768 values of 1e4 in f32 rounds the mean by ~1e-3,
 * 1% of such a row's spread, while the shifted values are exact and their sum is not. Inputs, residual and outputs are strided views: LayerNorm2d simply runs
 * on `x.permute(0, 2, 3, 1)` and writes through the same permutation of an NCHW output.
 *
 * This module also exports the workgroup-per-row layout and the workgroup reductions used by
 * softmax and l2Normalize.
 */
import type { GpuContext } from '../gpu/context.js';
import { type DType, isFloat } from '../gpu/dtype.js';
import { check, fmtShape } from '../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { MAX_RANK, checkNoAlias, checkWritable, collapseLayout, stridedFields, stridedIndexWgsl, stridedValues } from './elementwise.js';

// ------------------------------------------------------------------ shared row machinery

/**
 * Workgroup size for rows of length n. GPUs: enough invocations to cover the row in a few steps
 * (small rows do not need 256 mostly idle ones). CPU adapters: 16 for any row: there the workgroup
 * is a loop over SIMD lanes and each of the log2(wg) barriers of a tree reduction is a pass over all
 * of them, so fewer invocations doing more elements each win (layernorm 4096x768 on lavapipe:
 * about 5x less CPU time than 256; softmax over 196-long rows: about 10x).
 */
export function rowWorkgroupSize(n: number, cpuAdapter = false): number {
  if (cpuAdapter) return 16;
  return n <= 64 ? 64 : n <= 512 ? 128 : 256;
}

/**
 * How a row kernel reduces across its workgroup: `tree` (shared memory, log2(wg) barriers) or
 * `subgroup` (subgroupAdd / subgroupMax within each subgroup, then one pass over the per-subgroup
 * partials: two barriers per reduction). Read from GpuContext.tuning; part of each kernel's config.
 */
export type RowReduction = 'tree' | 'subgroup';

/** The reduction a row kernel should use on this context (subgroup only where the device has them). */
export function rowReduction(ctx: GpuContext): RowReduction {
  return ctx.tuning.rowReduce === 'subgroup' && ctx.features.subgroups ? 'subgroup' : 'tree';
}

/** WGSL extensions a row kernel with this reduction needs. */
export const rowEnables = (red: RowReduction): string[] => (red === 'subgroup' ? ['subgroups'] : []);

/**
 * WGSL: `red` scratch plus `wg_sum` / `wg_max` over a workgroup of `wg` invocations (a power of 2).
 * The subgroup form reads `sg_id` / `sg_count`, which `rowKernelHead` sets from the builtins.
 */
export function rowReduceWgsl(wg: number, red: RowReduction = 'tree'): string {
  if (red === 'subgroup') {
    const fn = (name: string, op: string, combine: (a: string, b: string) => string, init: string) => /* wgsl */ `
fn ${name}(v: f32, lid: u32) -> f32 {
  let part = ${op}(v);
  if (subgroupElect()) { red[sg_id] = part; }
  workgroupBarrier();
  var r = ${init};
  for (var i = 0u; i < sg_count; i++) { r = ${combine('r', 'red[i]')}; }
  workgroupBarrier();
  return r;
}`;
    return /* wgsl */ `
// One partial per subgroup (at most wg of them); every invocation folds them in the same order,
// so the result is the same in every invocation.
var<workgroup> red: array<f32, ${wg}>;
var<private> sg_id: u32;
var<private> sg_count: u32;
${fn('wg_sum', 'subgroupAdd', (a, b) => `${a} + ${b}`, '0.0')}
${fn('wg_max', 'subgroupMax', (a, b) => `max(${a}, ${b})`, 'red[0]')}
`;
  }
  return /* wgsl */ `
var<workgroup> red: array<f32, ${wg}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wg_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;
}

/**
 * WGSL of a row kernel up to its body, shared by the row kernels (layernorm, softmax, l2 normalize,
 * attention softmax): the reductions, optional `helpers`, and an open `main` with one workgroup per
 * row (`row`, `lid`), rows past `u.rows` returning early. The caller writes the body and the `}`.
 */
export function rowKernelHead(wg: number, helpers = '', red: RowReduction = 'tree'): string {
  const sg = red === 'subgroup';
  return /* wgsl */ `${FLAT_WG}
${rowReduceWgsl(wg, red)}
${helpers}
@compute @workgroup_size(${wg}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32${sg ? ', @builtin(subgroup_id) sgid: u32, @builtin(num_subgroups) nsg: u32' : ''}) {
  ${sg ? 'sg_id = sgid; sg_count = nsg;' : ''}
  let row = flat_wg(wid, nwg);
  if (row >= u.rows) { return; }`;
}

/**
 * Row layout of several same-shaped views: leading dims (collapsed jointly) index rows, the last
 * dim is the row with its own stride per operand. Offsets returned in the strided uniform form.
 */
export function rowLayout(op: string, views: readonly Tensor[]) {
  const x = views[0]!;
  check(x.ndim >= 1, () => `${op}: needs at least 1 dim, got ${x}`);
  for (const v of views) check(fmtShape(v.shape) === fmtShape(x.shape), () => `${op}: ${v} does not match ${x}`);
  const n = x.dim(-1);
  const lead = x.shape.slice(0, -1);
  const layout = collapseLayout(lead, views.map((v) => v.strides.slice(0, -1)));
  check(layout.shape.length <= MAX_RANK, () => `${op}: ${x} has too many strided leading dims`);
  const rows = lead.reduce((p, d) => p * d, 1);
  const colStrides = views.map((v) => (n === 1 ? 0 : v.strides[v.ndim - 1]!));
  return { n, rows, layout, colStrides, offsets: views.map((v) => v.offset) };
}

// ------------------------------------------------------------------ layernorm kernel

interface LayerNormConfig {
  [k: string]: string | number | boolean;
  x: DType;
  out: DType;
  weight: DType | 'none';
  bias: DType | 'none';
  residual: DType | 'none';
  sum: DType | 'none';
  rank: number;
  wg: number;
  red: RowReduction;
}

const uniforms = defineUniforms({
  ...stridedFields(['x', 'o', 'r', 's'] as const),
  // Column strides of x, out, residual, sum.
  col: 'vec4u',
  rows: 'u32',
  n: 'u32',
  eps: 'f32',
});

const layerNormKernel = defineKernel({
  name: 'layernorm',
  uniforms,
  enables: (c: LayerNormConfig) => rowEnables(c.red),
  bindings: (c: LayerNormConfig) => [
    { name: 'x', type: c.x, access: 'read' as const },
    ...(c.weight === 'none' ? [] : [{ name: 'weight', type: c.weight, access: 'read' as const }]),
    ...(c.bias === 'none' ? [] : [{ name: 'bias', type: c.bias, access: 'read' as const }]),
    ...(c.residual === 'none' ? [] : [{ name: 'residual', type: c.residual, access: 'read' as const }]),
    { name: 'out', type: c.out, access: 'read_write' as const },
    ...(c.sum === 'none' ? [] : [{ name: 'sum', type: c.sum, access: 'read_write' as const }]),
  ],
  source: (c: LayerNormConfig) => {
    const fused = c.residual !== 'none';
    const names = ['x', 'o', ...(fused ? ['r'] : []), ...(c.sum === 'none' ? [] : ['s'])];
    // With a residual, the normalised value is the sum rounded to the sum's storage dtype, so the
    // returned sum and the normalised output agree (as in an unfused f16 model).
    const sumType = c.sum === 'none' ? 'f32' : c.sum;
    const load = fused
      ? `f32(${sumType}(f32(x[off_x + j * u.col.x]) + f32(residual[off_r + j * u.col.z])))`
      : 'f32(x[off_x + j * u.col.x])';
    const w = c.weight === 'none' ? '' : ' * f32(weight[j])';
    const b = c.bias === 'none' ? '' : ' + f32(bias[j])';
    return /* wgsl */ `
${rowKernelHead(c.wg, `fn load(off_x: u32, off_r: u32, j: u32) -> f32 { return ${load}; }`, c.red)}
  ${stridedIndexWgsl(c.rank, names, 'row')}
  ${fused ? '' : 'let off_r = 0u;'}
  // Work relative to the row's first element: x - pivot is exact for values near the pivot, so
  // the mean of a row like 1e4 + N(0, 0.1) is not rounded at the scale of 1e4 (ulp 1e-3).
  let pivot = load(off_x, off_r, 0u);
  var acc = 0.0;
  for (var j = lid; j < u.n; j += ${c.wg}u) { acc += load(off_x, off_r, j) - pivot; }
  let mean = wg_sum(acc, lid) / f32(u.n);
  acc = 0.0;
  for (var j = lid; j < u.n; j += ${c.wg}u) {
    let d = (load(off_x, off_r, j) - pivot) - mean;
    acc += d * d;
  }
  let inv = 1.0 / sqrt(wg_sum(acc, lid) / f32(u.n) + u.eps);
  for (var j = lid; j < u.n; j += ${c.wg}u) {
    let v = load(off_x, off_r, j);
    out[off_o + j * u.col.y] = ${c.out}(((v - pivot) - mean) * inv${w}${b});
    ${c.sum === 'none' ? '' : `sum[off_s + j * u.col.w] = ${c.sum}(v);`}
  }
}
`;
  },
});

export interface LayerNormOptions {
  /** Normalise x + residual instead of x (same shape as x, any strided view). */
  residual?: Tensor;
  /** With `residual`: also return x + residual (e.g. the next block's skip input). */
  returnSum?: boolean;
  outDtype?: DType;
}

function checkAffine(op: string, t: Tensor | null, n: number, what: string): void {
  if (!t) return;
  check(t.ndim === 1 && t.dim(0) === n && t.isContiguous && t.offset === 0,
    () => `${op}: ${what} must be a contiguous [${n}] tensor, got ${t}`);
}

/** Run the kernel on already-shaped views (out/sum are views to write into). */
function runLayerNorm(
  ctx: GpuContext,
  op: string,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  out: Tensor,
  residual?: Tensor,
  sum?: Tensor,
): void {
  check(Number.isFinite(eps) && eps >= 0, () => `${op}: eps must be a finite number >= 0, got ${eps}`);
  for (const t of [x, out, residual, sum]) if (t) check(isFloat(t.dtype), () => `${op}: needs f32/f16 tensors, got ${t}`);
  const views = [x, out, residual ?? x, sum ?? out];
  const { n, rows, layout, colStrides, offsets } = rowLayout(op, views);
  check(n >= 1, () => `${op}: normalised dim of ${x} is empty`);
  checkAffine(op, weight, n, 'weight');
  checkAffine(op, bias, n, 'bias');
  checkWritable(op, out);
  checkNoAlias(op, out, x, weight ?? undefined, bias ?? undefined, residual);
  if (sum) {
    checkWritable(op, sum);
    checkNoAlias(op, sum, x, weight ?? undefined, bias ?? undefined, residual);
  }
  if (rows === 0) return;
  const config: LayerNormConfig = {
    x: x.dtype,
    out: out.dtype,
    weight: weight?.dtype ?? 'none',
    bias: bias?.dtype ?? 'none',
    residual: residual?.dtype ?? 'none',
    sum: sum?.dtype ?? 'none',
    rank: layout.shape.length,
    wg: rowWorkgroupSize(n, ctx.tuning.cpuAdapter),
    red: rowReduction(ctx),
  };
  const values = {
    ...stridedValues(['x', 'o', 'r', 's'] as const, layout, offsets),
    col: colStrides,
    rows,
    n,
    eps,
  };
  const bindings: Record<string, Tensor> = { x, out };
  if (weight) bindings.weight = weight;
  if (bias) bindings.bias = bias;
  if (residual) bindings.residual = residual;
  if (sum) bindings.sum = sum;
  const bytes = x.byteSize * (residual ? 6 : 3) + out.byteSize + (sum?.byteSize ?? 0);
  ctx.run(layerNormKernel, config, bindings, values, grid1d(rows), { flops: 8 * x.size, bytes });
}

export function layerNorm(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  opts?: LayerNormOptions & { returnSum?: false },
): Tensor;
export function layerNorm(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  opts: LayerNormOptions & { residual: Tensor; returnSum: true },
): { out: Tensor; sum: Tensor };
/**
 * (x - mean) / sqrt(var + eps) * weight + bias over the last dim (biased variance, like
 * torch.nn.LayerNorm and ONNX LayerNormalization with axis = -1). `weight` / `bias` may be null.
 * x may be any strided view; the output is contiguous.
 */
export function layerNorm(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  opts: LayerNormOptions = {},
): Tensor | { out: Tensor; sum: Tensor } {
  const op = 'layerNorm';
  check(!opts.returnSum || opts.residual, () => `${op}: returnSum needs a residual`);
  const out = ctx.empty(x.shape, opts.outDtype ?? x.dtype);
  const sum = opts.returnSum ? ctx.empty(x.shape, x.dtype) : undefined;
  try {
    runLayerNorm(ctx, op, x, weight, bias, eps, out, opts.residual, sum);
  } catch (e) {
    out.dispose();
    sum?.dispose();
    throw e;
  }
  return sum ? { out, sum } : out;
}

/**
 * SAM's LayerNorm2d: for each (n, h, w) of an NCHW tensor, normalise over C, then per-channel
 * weight and bias. Output is NCHW, contiguous.
 */
export function layerNorm2d(ctx: GpuContext, x: Tensor, weight: Tensor, bias: Tensor, eps: number, opts: { outDtype?: DType } = {}): Tensor {
  check(x.ndim === 4, () => `layerNorm2d: expects NCHW, got ${x}`);
  const out = ctx.empty(x.shape, opts.outDtype ?? x.dtype);
  const xv = x.permute([0, 2, 3, 1]);
  const ov = out.permute([0, 2, 3, 1]);
  try {
    runLayerNorm(ctx, 'layerNorm2d', xv, weight, bias, eps, ov);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    xv.dispose();
    ov.dispose();
  }
  return out;
}
