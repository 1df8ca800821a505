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
 * How a row kernel spreads a row over invocations: `tree` (one workgroup per row, shared memory,
 * log2(wg) barriers), `subgroup` (one workgroup per row, subgroupAdd / subgroupMax within each
 * subgroup, then one pass over the per-subgroup partials: two barriers per reduction) or `lane`
 * (one invocation per row, no barrier and no shared memory). `lane` is for CPU adapters: there a
 * barrier suspends and resumes every SIMD group of the workgroup (lavapipe runs a workgroup with
 * barriers as coroutines), which costs more than the row's arithmetic; with one row per lane the
 * rows of a workgroup advance together in the SIMD registers. On a GPU it would serialise each row
 * in one thread: neither the default rule nor the tuner offers it there (an override still can).
 * Read from GpuContext.tuning; part of each config.
 */
export type RowReduction = 'tree' | 'subgroup' | 'lane';

/** The reduction a row kernel should use on this context (subgroup only where the device has them). */
export function rowReduction(ctx: GpuContext): RowReduction {
  const r = ctx.tuning.rowReduce;
  if (r === 'subgroup') return ctx.features.subgroups ? 'subgroup' : 'tree';
  return r;
}

/** WGSL extensions a row kernel with this reduction needs. */
export const rowEnables = (red: RowReduction): string[] => (red === 'subgroup' ? ['subgroups'] : []);

/** Workgroups for `rows` rows (the x of grid1d): one per row, or one per `wg` rows for `lane`. */
export const rowGroups = (rows: number, wg: number, red: RowReduction): number => (red === 'lane' ? Math.ceil(rows / wg) : rows);

/**
 * WGSL: `red` scratch plus `wg_sum` / `wg_max` over a workgroup of `wg` invocations (a power of 2).
 * The subgroup form reads `sg_id` / `sg_count`, which `rowKernelHead` sets from the builtins; the
 * lane form has nothing to combine (the invocation holds the whole row).
 */
export function rowReduceWgsl(wg: number, red: RowReduction = 'tree'): string {
  if (red === 'lane') {
    return /* wgsl */ `
fn wg_sum(v: f32, lid: u32) -> f32 { return v; }
fn wg_max(v: f32, lid: u32) -> f32 { return v; }
`;
  }
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
 * attention softmax): the reductions, optional `helpers`, and an open `main` that sets `row`, `lid`
 * (this invocation's first element of the row) and `STEP` (the stride between its elements), rows
 * past `u.rows` returning early. A body walks `for (var j = lid; j < n; j += STEP)`, reduces with
 * `wg_sum` / `wg_max`, and closes with `}`. Dispatch `rowGroups(rows, wg, red)` workgroups.
 */
export function rowKernelHead(wg: number, helpers = '', red: RowReduction = 'tree'): string {
  const sg = red === 'subgroup';
  const lane = red === 'lane';
  return /* wgsl */ `${FLAT_WG}
${rowReduceWgsl(wg, red)}
${helpers}
const STEP = ${lane ? 1 : wg}u;
@compute @workgroup_size(${wg}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) ${lane ? 'li' : 'lid'}: u32${sg ? ', @builtin(subgroup_id) sgid: u32, @builtin(num_subgroups) nsg: u32' : ''}) {
  ${sg ? 'sg_id = sgid; sg_count = nsg;' : ''}
  ${lane ? `let row = flat_wg(wid, nwg) * ${wg}u + li;
  let lid = 0u;` : 'let row = flat_wg(wid, nwg);'}
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
  /** Rows contiguous and 4-aligned: every access moves a vec4 (a quarter of the loads and stores). */
  vec: boolean;
}

const uniforms = defineUniforms({
  ...stridedFields(['x', 'o', 'r', 's'] as const),
  // Column strides of x, out, residual, sum.
  col: 'vec4u',
  rows: 'u32',
  n: 'u32',
  eps: 'f32',
});

/** WGSL type of one access to an array of `d`: a vec4 of it on the vec path. */
const elem = (c: LayerNormConfig, d: DType): string => (c.vec ? `vec4<${d}>` : d);

const layerNormKernel = defineKernel({
  name: 'layernorm',
  uniforms,
  enables: (c: LayerNormConfig) => rowEnables(c.red),
  bindings: (c: LayerNormConfig) => [
    { name: 'x', type: elem(c, c.x), access: 'read' as const },
    ...(c.weight === 'none' ? [] : [{ name: 'weight', type: elem(c, c.weight), access: 'read' as const }]),
    ...(c.bias === 'none' ? [] : [{ name: 'bias', type: elem(c, c.bias), access: 'read' as const }]),
    ...(c.residual === 'none' ? [] : [{ name: 'residual', type: elem(c, c.residual), access: 'read' as const }]),
    { name: 'out', type: elem(c, c.out), access: 'read_write' as const },
    ...(c.sum === 'none' ? [] : [{ name: 'sum', type: elem(c, c.sum), access: 'read_write' as const }]),
  ],
  source: (c: LayerNormConfig) => {
    const fused = c.residual !== 'none';
    const names = ['x', 'o', ...(fused ? ['r'] : []), ...(c.sum === 'none' ? [] : ['s'])];
    // vec: j counts vec4s, the offsets are in elements (multiples of 4) and the column strides 1.
    const V = c.vec ? 4 : 1;
    const F = elem(c, 'f32');
    const vt = (d: DType) => elem(c, d);
    const ix = (name: string, col: string) => (c.vec ? `${name} / 4u + j` : `${name} + j * u.col.${col}`);
    // With a residual, the normalised value is the sum rounded to the sum's storage dtype, so the
    // returned sum and the normalised output agree (as in an unfused f16 model).
    const sumType = c.sum === 'none' ? 'f32' : c.sum;
    const load = fused
      ? `${F}(${vt(sumType)}(${F}(x[${ix('off_x', 'x')}]) + ${F}(residual[${ix('off_r', 'z')}])))`
      : `${F}(x[${ix('off_x', 'x')}])`;
    const w = c.weight === 'none' ? '' : ` * ${F}(weight[j])`;
    const b = c.bias === 'none' ? '' : ` + ${F}(bias[j])`;
    const hsum = (v: string) => (c.vec ? `${v}.x + ${v}.y + ${v}.z + ${v}.w` : v);
    return /* wgsl */ `
${rowKernelHead(c.wg, `fn load(off_x: u32, off_r: u32, j: u32) -> ${F} { return ${load}; }`, c.red)}
  ${stridedIndexWgsl(c.rank, names, 'row')}
  ${fused ? '' : 'let off_r = 0u;'}
  let nv = u.n / ${V}u;
  // Work relative to the row's first element: x - pivot is exact for values near the pivot, so
  // the mean of a row like 1e4 + N(0, 0.1) is not rounded at the scale of 1e4 (ulp 1e-3).
  let pivot = load(off_x, off_r, 0u)${c.vec ? '.x' : ''};
  var acc = ${F}(0.0);
  for (var j = lid; j < nv; j += STEP) { acc += load(off_x, off_r, j) - pivot; }
  let mean = wg_sum(${hsum('acc')}, lid) / f32(u.n);
  acc = ${F}(0.0);
  for (var j = lid; j < nv; j += STEP) {
    let d = (load(off_x, off_r, j) - pivot) - mean;
    acc += d * d;
  }
  let inv = 1.0 / sqrt(wg_sum(${hsum('acc')}, lid) / f32(u.n) + u.eps);
  for (var j = lid; j < nv; j += STEP) {
    let v = load(off_x, off_r, j);
    out[${ix('off_o', 'y')}] = ${vt(c.out)}(((v - pivot) - mean) * inv${w}${b});
    ${c.sum === 'none' ? '' : `sum[${ix('off_s', 'w')}] = ${vt(c.sum)}(v);`}
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

/** Whether a view's rows can be read as vec4s: contiguous rows whose starts are all 4-aligned. */
function vec4Rows(t: Tensor): boolean {
  return t.strides[t.ndim - 1] === 1 && t.offset % 4 === 0 && t.strides.slice(0, -1).every((s, i) => t.shape[i] === 1 || s % 4 === 0);
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
    vec: n % 4 === 0 && [x, out, residual, sum].every((t) => !t || vec4Rows(t)),
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
  ctx.run(layerNormKernel, config, bindings, values, grid1d(rowGroups(rows, config.wg, config.red)), { flops: 8 * x.size, bytes });
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
