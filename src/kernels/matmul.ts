/**
 * Batched matrix multiply with a fused epilogue: out = act(alpha * A @ B + bias) + residual.
 *
 * A is [..., M, K] and B is [..., K, N], both arbitrary strided views (a transposed weight is just
 * a view with swapped strides), with up to two batch dims that broadcast (stride 0). The output is
 * contiguous [..., M, N]. `linear` is the nn.Linear form: x @ W^T + b with W stored [N, K].
 *
 * Variants (`select` picks; tests force each):
 *  - `tiled`: 64x64 output tile per workgroup, 16x16 invocations each owning a 4x4 block, K staged
 *    through workgroup memory. The default for anything with M >= 16.
 *  - `tiled_nt`: the same tiling when both operands are contiguous along K (activations x nn.Linear
 *    weights, the common case): tiles are filled with vec4 loads along K and the inner loop is
 *    vec4 dot products. Needs K % 4 == 0 and 16-byte aligned rows.
 *  - CPU-adapter variants in matmul-cpu.ts (lavapipe, SwiftShader: workgroup memory is ordinary
 *    memory, each barrier a pass over every invocation): `direct_nt` and `direct_sg_nt`, the same
 *    layout with no workgroup memory and no barrier (the latter fetching A through subgroup shuffles).
 *  - `rows`: one invocation per output element group along N, no workgroup memory; small M
 *    (decoder tokens, pooled vectors) where a 64-row tile would mostly idle.
 *  - GPU variants in matmul-gpu.ts: `tiled8_nt` (8x8 register blocks, double-buffered K tiles),
 *    `rows_sg` (small M, K split over a workgroup and reduced with subgroup operations), `splitk`
 *    (small M, K split over workgroups), `subgroup_matrix` (tensor cores; untested, see there).
 * Which one runs is GpuContext.tuning's choice per problem class (`selectMatmul`); `variant` forces one.
 */
import type { GpuContext } from '../gpu/context.js';
import { type DType } from '../gpu/dtype.js';
import { ShapeError, check, fmtShape } from '../gpu/errors.js';
import type { Tensor } from '../gpu/tensor.js';
import type { KernelTuning } from '../gpu/tuning.js';
import { type Activation, activationCode } from './activation.js';
import { type MatmulConfig, type MatmulVariant, NT_VARIANTS, epilogue, matmulKernel, storeBlock } from './matmul-common.js';
import { runCpuMatmul } from './matmul-cpu.js';
import { runGpuMatmul, subgroupMatrixEligible } from './matmul-gpu.js';

export type { MatmulVariant } from './matmul-common.js';

const TILE = 64;
const TK = 16;

export interface MatmulOptions {
  /** [N], or [batch, N] with one row per (flattened) batch entry, e.g. stacked Linear layers. */
  bias?: Tensor;
  act?: Activation;
  /** Added after the activation; same shape as the output, contiguous. */
  residual?: Tensor;
  /** Scales A @ B before the bias. */
  alpha?: number;
  outDtype?: DType;
  /** Force an algorithm (tests, benchmarks). */
  variant?: MatmulVariant;
}

const tiledKernel = matmulKernel((c: MatmulConfig) => /* wgsl */ `
const TILE: u32 = ${TILE}u;
const TK: u32 = ${TK}u;
var<workgroup> tile_a: array<f32, ${TILE * TK}>; // [k][m]
var<workgroup> tile_b: array<f32, ${TILE * TK}>; // [k][n]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let bases = batch_bases(wid.z);
  let row0 = wid.y * TILE;
  let col0 = wid.x * TILE;
  let flat = lid.y * 16u + lid.x;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < u.K; k0 += TK) {
    for (var i = 0u; i < 4u; i++) {
      let idx = flat + i * 256u;
      // A: consecutive invocations walk k, B: consecutive invocations walk n (the usual
      // contiguous directions of activations and transposed weights).
      let am = idx / TK;
      let ak = idx % TK;
      let gm = row0 + am;
      let gk = k0 + ak;
      var av = 0.0;
      if (gm < u.M && gk < u.K) { av = f32(a[bases.x + gm * u.a_strides.z + gk * u.a_strides.w]); }
      tile_a[ak * TILE + am] = av;
      let bk = idx / TILE;
      let bn = idx % TILE;
      let gk2 = k0 + bk;
      let gn = col0 + bn;
      var bv = 0.0;
      if (gk2 < u.K && gn < u.N) { bv = f32(b[bases.y + gk2 * u.b_strides.z + gn * u.b_strides.w]); }
      tile_b[bk * TILE + bn] = bv;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let av = vec4<f32>(tile_a[k * TILE + lid.y * 4u], tile_a[k * TILE + lid.y * 4u + 1u],
                         tile_a[k * TILE + lid.y * 4u + 2u], tile_a[k * TILE + lid.y * 4u + 3u]);
      let bv = vec4<f32>(tile_b[k * TILE + lid.x * 4u], tile_b[k * TILE + lid.x * 4u + 1u],
                         tile_b[k * TILE + lid.x * 4u + 2u], tile_b[k * TILE + lid.x * 4u + 3u]);
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y * 4u + i;
    if (row >= u.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x * 4u + j;
      if (col >= u.N) { continue; }
      let o = bases.z + row * u.N + col;
      ${epilogue(c, 'col', 'acc[i][j]', 'o')}
    }
  }
}
`);

const TK_NT = 32;

const tiledNtKernel = matmulKernel((c: MatmulConfig) => /* wgsl */ `
const TILE: u32 = ${TILE}u;
const TK: u32 = ${TK_NT}u;
const KV: u32 = ${TK_NT / 4}u; // vec4s per tile row
// tile_a is [row][k / 4], tile_w is [k / 4][column]. Invocation (x, y) owns rows y + 16 i and
// columns x + 16 j (interleaved, not blocked): the 8 or so invocations a CPU adapter runs as one
// SIMD group then read one tile_a entry (a broadcast) and consecutive tile_w entries (two cache
// lines) instead of eight scattered ones.
var<workgroup> tile_a: array<vec4<f32>, ${TILE * (TK_NT / 4)}>;
var<workgroup> tile_w: array<vec4<f32>, ${TILE * (TK_NT / 4)}>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let bases = batch_bases(wid.z);
  let row0 = wid.y * TILE;
  let col0 = wid.x * TILE;
  let flat = lid.y * 16u + lid.x;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < u.K; k0 += TK) {
    for (var i = 0u; i < ${(TILE * TK_NT) / 4 / 256}u; i++) {
      let idx = flat + i * 256u;
      let r = idx / KV;
      let kv = idx % KV;
      let gk = k0 + kv * 4u;
      var av = vec4<f32>(0.0);
      let gm = row0 + r;
      if (gm < u.M && gk < u.K) { av = vec4<f32>(a[(bases.x + gm * u.a_strides.z + gk) / 4u]); }
      tile_a[idx] = av;
      var wv = vec4<f32>(0.0);
      let gn = col0 + r;
      if (gn < u.N && gk < u.K) { wv = vec4<f32>(b[(bases.y + gn * u.b_strides.w + gk) / 4u]); }
      tile_w[kv * TILE + r] = wv;
    }
    workgroupBarrier();
    for (var kv = 0u; kv < KV; kv++) {
      let a0 = tile_a[lid.y * KV + kv];
      let a1 = tile_a[(lid.y + 16u) * KV + kv];
      let a2 = tile_a[(lid.y + 32u) * KV + kv];
      let a3 = tile_a[(lid.y + 48u) * KV + kv];
      let w0 = tile_w[kv * TILE + lid.x];
      let w1 = tile_w[kv * TILE + lid.x + 16u];
      let w2 = tile_w[kv * TILE + lid.x + 32u];
      let w3 = tile_w[kv * TILE + lid.x + 48u];
      acc0 += vec4<f32>(dot(a0, w0), dot(a0, w1), dot(a0, w2), dot(a0, w3));
      acc1 += vec4<f32>(dot(a1, w0), dot(a1, w1), dot(a1, w2), dot(a1, w3));
      acc2 += vec4<f32>(dot(a2, w0), dot(a2, w1), dot(a2, w2), dot(a2, w3));
      acc3 += vec4<f32>(dot(a3, w0), dot(a3, w1), dot(a3, w2), dot(a3, w3));
    }
    workgroupBarrier();
  }
${storeBlock(c, { rows: 4, cols: 4, row: 'row0 + lid.y + 16u * i', col: 'col0 + lid.x + 16u * j', accs: ['acc0', 'acc1', 'acc2', 'acc3'] })}
}
`);

const rowsKernel = matmulKernel((c: MatmulConfig) => /* wgsl */ `
// One invocation per 4 adjacent output columns of one row: reads of B along n are shared by the
// SIMD lanes, reads of A are broadcast.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let bases = batch_bases(wid.z);
  let row = wid.y;
  let col0 = gid.x * 4u;
  if (col0 >= u.N) { return; }
  var acc = vec4<f32>(0.0);
  let arow = bases.x + row * u.a_strides.z;
  for (var k = 0u; k < u.K; k++) {
    let av = f32(a[arow + k * u.a_strides.w]);
    let bk = bases.y + k * u.b_strides.z;
    var bv = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
      if (col0 + j < u.N) { bv[j] = f32(b[bk + (col0 + j) * u.b_strides.w]); }
    }
    acc += av * bv;
  }
  for (var j = 0u; j < 4u; j++) {
    let col = col0 + j;
    if (col >= u.N) { return; }
    let o = bases.z + row * u.N + col;
    ${epilogue(c, 'col', 'acc[j]', 'o')}
  }
}
`);

/** Whether both operands are contiguous along K in 16-byte units (the `tiled_nt` layout). */
export function ntEligible(a: Tensor, b: Tensor, aBatch: number[], bBatch: number[]): boolean {
  const K = a.dim(-1);
  const q = (x: number) => x % 4 === 0;
  return (
    K % 4 === 0 &&
    a.strides[a.ndim - 1] === 1 && q(a.strides[a.ndim - 2]!) && q(a.offset) &&
    b.strides[b.ndim - 2] === 1 && q(b.strides[b.ndim - 1]!) && q(b.offset) &&
    aBatch.every(q) && bBatch.every(q)
  );
}

/** Largest workgroup count along x of the small-M variants (rows_sg, splitk). */
const SMALL_M_BLOCKS = (M: number, N: number) => Math.ceil(M / 4) * Math.ceil(N / 4);

/**
 * Which algorithm suits a problem on this device: `tuning` (GpuContext.tuning) names the choice
 * per problem class, and a choice the operands or device cannot take falls back to one that can.
 */
export function selectMatmul(
  M: number,
  N: number,
  nt: boolean,
  tuning: Pick<KernelTuning, 'matmulNt' | 'matmulSmall'>,
  can: { subgroups: boolean; subgroupMatrix: boolean },
): MatmulVariant {
  if (!nt) return M < 16 ? 'rows' : 'tiled';
  if (M < 16) {
    const s = tuning.matmulSmall;
    if ((s === 'rows_sg' || s === 'splitk') && SMALL_M_BLOCKS(M, N) > 65535) return 'rows';
    if (s === 'rows_sg' && !can.subgroups) return 'rows';
    if (s === 'direct_sg_nt' && !can.subgroups) return 'direct_nt';
    return s;
  }
  const c = tuning.matmulNt;
  if (c === 'subgroup_matrix') return can.subgroupMatrix ? c : 'tiled8_nt';
  // 128-row tiles idle for short problems: the 64-row tile does better there.
  if (c === 'tiled8_nt' && M < 64) return 'tiled_nt';
  if (c === 'direct_sg_nt' && !can.subgroups) return 'direct_nt';
  return c;
}

/** Flattened batch dims (at most two, broadcasting) with their strides for A and B. */
function batchLayout(a: Tensor, b: Tensor) {
  const ab = a.shape.slice(0, -2);
  const bb = b.shape.slice(0, -2);
  const n = Math.max(ab.length, bb.length);
  if (n > 2) throw new ShapeError(`matmul: at most 2 batch dims, got A ${fmtShape(a.shape)}, B ${fmtShape(b.shape)}`);
  const dims: number[] = [];
  const as: number[] = [];
  const bs: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = ab[ab.length - n + i] ?? 1;
    const db = bb[bb.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`matmul: batch dims of A ${fmtShape(a.shape)} and B ${fmtShape(b.shape)} do not broadcast`);
    }
    dims.push(Math.max(da, db));
    as.push(da === 1 ? 0 : a.strides[ab.length - n + i]!);
    bs.push(db === 1 ? 0 : b.strides[bb.length - n + i]!);
  }
  while (dims.length < 2) {
    dims.unshift(1);
    as.unshift(0);
    bs.unshift(0);
  }
  return { dims, as, bs, batchShape: n === 0 ? [] : dims.slice(2 - n) };
}

export function matmul(ctx: GpuContext, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  check(a.ndim >= 2 && b.ndim >= 2, () => `matmul: need 2-D or more, got A ${fmtShape(a.shape)}, B ${fmtShape(b.shape)}`);
  const M = a.dim(-2);
  const K = a.dim(-1);
  const N = b.dim(-1);
  check(b.dim(-2) === K, () => `matmul: inner dims differ, A ${fmtShape(a.shape)} @ B ${fmtShape(b.shape)}`);
  const { dims, as, bs, batchShape } = batchLayout(a, b);
  const outShape = [...batchShape, M, N];
  const batchCount = dims[0]! * dims[1]!;
  const perBatchBias = opts.bias?.ndim === 2;
  if (opts.bias) {
    const ok = perBatchBias ? opts.bias.dim(0) === batchCount && opts.bias.dim(1) === N : opts.bias.ndim === 1 && opts.bias.dim(0) === N;
    check(ok && opts.bias.isContiguous && opts.bias.offset === 0,
      () => `matmul: bias must be contiguous [${N}] or [${batchCount}, ${N}] (one row per batch), got ${opts.bias}`);
  }
  if (opts.residual) {
    const r = opts.residual;
    check(r.isContiguous && r.size === M * N * dims[0]! * dims[1]!,
      () => `matmul: residual must be contiguous ${fmtShape(outShape)}, got ${r}`);
  }
  const nt = ntEligible(a, b, as, bs);
  const sgMatrix = subgroupMatrixEligible(ctx, a, b, nt);
  const variant = opts.variant ?? selectMatmul(M, N, nt, ctx.tuning, { subgroups: ctx.features.subgroups, subgroupMatrix: sgMatrix });
  check(!(NT_VARIANTS.includes(variant) || variant === 'subgroup_matrix') || nt, () => `matmul: ${variant} needs both operands contiguous along K (K % 4 == 0, aligned), got A ${a} strides ${fmtShape(a.strides)}, B ${b} strides ${fmtShape(b.strides)}`);
  check(variant !== 'direct_sg_nt' || ctx.features.subgroups, () => `matmul: direct_sg_nt needs the 'subgroups' feature, which ${ctx.description} does not offer`);
  check(variant !== 'rows_sg' || ctx.features.subgroups, () => `matmul: rows_sg needs the 'subgroups' feature (and the subgroup_id builtin), which ${ctx.description} does not offer`);
  check(variant !== 'subgroup_matrix' || sgMatrix, () => `matmul: subgroup_matrix needs f16 operands and the '${'chromium-experimental-subgroup-matrix'}' feature, got A ${a}, B ${b} on ${ctx.description}`);
  check(!(variant === 'rows_sg' || variant === 'splitk') || SMALL_M_BLOCKS(M, N) <= 65535, () => `matmul: ${variant} covers at most 65535 blocks of 4x4 outputs, got ${M}x${N}`);
  const config: MatmulConfig = {
    variant,
    a: a.dtype,
    b: b.dtype,
    out: opts.outDtype ?? a.dtype,
    // A missing bias or residual is bound to A, read-only and never read (EPILOGUE_WGSL).
    bias: opts.bias?.dtype ?? a.dtype,
    residual: opts.residual?.dtype ?? a.dtype,
    store_loop: ctx.tuning.cpuAdapter,
  };
  const out = ctx.empty(outShape, config.out);
  const bindings: Record<string, Tensor> = { a, b, bias: opts.bias ?? a, residual: opts.residual ?? a, out };
  const values = {
    M,
    N,
    K,
    batch_inner: dims[1]!,
    alpha: opts.alpha ?? 1,
    a_offset: a.offset,
    b_offset: b.offset,
    r_offset: opts.residual?.offset ?? 0,
    a_strides: [as[0]!, as[1]!, a.strides[a.ndim - 2]!, a.strides[a.ndim - 1]!],
    b_strides: [bs[0]!, bs[1]!, b.strides[b.ndim - 2]!, b.strides[b.ndim - 1]!],
    k_split: 0,
    act: activationCode(opts.act ?? 'none'),
    has_bias: opts.bias ? (perBatchBias ? 2 : 1) : 0,
    has_res: opts.residual ? 1 : 0,
  };
  const batch = batchCount;
  const cost = { flops: 2 * M * N * K * batch, bytes: (a.byteSize + b.byteSize + out.byteSize) };
  if (variant === 'direct_nt' || variant === 'direct_sg_nt') {
    runCpuMatmul(ctx, config, bindings, values, { M, N, batch }, cost);
  } else if (variant === 'tiled8_nt' || variant === 'rows_sg' || variant === 'splitk' || variant === 'subgroup_matrix') {
    runGpuMatmul(ctx, config, bindings, values, { M, N, K, batch }, cost);
  } else if (variant === 'tiled' || variant === 'tiled_nt') {
    const kernel = variant === 'tiled' ? tiledKernel : tiledNtKernel;
    ctx.run(kernel, config, bindings, values, [Math.ceil(N / TILE), Math.ceil(M / TILE), batch], cost);
  } else {
    ctx.run(rowsKernel, config, bindings, values, [Math.ceil(N / 256), M, batch], cost);
  }
  return out;
}

/**
 * nn.Linear: x [..., K] @ W^T + b, W stored [N, K]. Leading dims of a contiguous x are flattened; a
 * strided x with at most two dims before [rows, K] (e.g. the real tokens [B, H, W, C] of a padded
 * [B, Hp, Wp, C] grid) runs with those dims as matmul batch dims instead of being copied first.
 */
export function linear(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor,
  bias?: Tensor,
  opts: Omit<MatmulOptions, 'bias'> = {},
): Tensor {
  check(weight.ndim === 2, () => `linear: weight must be [out, in], got ${fmtShape(weight.shape)}`);
  const K = x.dim(-1);
  check(weight.dim(1) === K, () => `linear: input ${fmtShape(x.shape)} has ${K} features, weight ${fmtShape(weight.shape)} expects ${weight.dim(1)}`);
  const strided = !x.isContiguous;
  check(!strided || (x.ndim >= 2 && x.ndim <= 4), () => `linear: a strided input needs 2 to 4 dims ([batch, batch,] rows, features), got ${x}; copy it first`);
  const lead = x.shape.slice(0, -1);
  const x2 = strided ? x : x.reshape([lead.reduce((p, d) => p * d, 1), K]);
  const wt = weight.transpose(0, 1);
  let y: Tensor;
  try {
    y = matmul(ctx, x2, wt, { ...opts, bias });
  } finally {
    if (!strided) x2.dispose();
    wt.dispose();
  }
  if (strided) return y;
  const out = y.reshape([...lead, weight.dim(0)]);
  y.dispose();
  return out;
}
