/**
 * Matmul variants for GPUs (src/kernels/matmul.ts picks among them through GpuContext.tuning; tests
 * force each one on every adapter, lavapipe included):
 *
 *  - `tiled8_nt`: 128x128 output tile per workgroup of 16x16 invocations, each owning an 8x8
 *    register block (rows and columns interleaved by 16 so neighbouring invocations read
 *    neighbouring tile entries), both operands loaded as vec4 along K, the K tiles double-buffered
 *    in workgroup memory: the next tile is fetched into registers while the current one is
 *    multiplied, so each K step costs one barrier. 16 KiB of workgroup memory.
 *  - `rows_sg`: few output rows (decoder tokens, pooled vectors): one workgroup per 4 rows x 4
 *    columns, its invocations split K (lanes walk consecutive vec4s: coalesced reads of the
 *    nn.Linear weight), partial sums reduced with subgroupAdd, then across subgroups through
 *    workgroup memory; the epilogue runs once per output. Needs `subgroups` (+ subgroup_id).
 *  - `splitk`: the same geometry without subgroups, K additionally split over workgroups: each
 *    writes a partial [split, M, N] block (tree reduction in workgroup memory), a second pass sums
 *    the splits and applies the epilogue. For small M with long K on adapters without subgroups.
 *  - `subgroup_matrix`: tensor cores through `chromium-experimental-subgroup-matrix` (f16 x f16 ->
 *    f32), for f16 operands in the nn.Linear layout. UNTESTED: no adapter available to this
 *    project has offered the feature so far (lavapipe does not); it is selected only where the
 *    device has it and the parity test runs wherever it does. Tiles are staged through workgroup
 *    memory with zero padding, so edges need no special case; one subgroup's result is used.
 */
import type { GpuContext } from '../gpu/context.js';
import { defineKernel } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import type { KernelCost } from '../gpu/profiler.js';
import { BATCH_BASE, EPILOGUE_WGSL, type MatmulConfig, type MatmulValues, commonBindings, epilogue, epilogueBindings, matmulKernel, seq, span, storeBlock, uniforms } from './matmul-common.js';

// ------------------------------------------------------------------ tiled8_nt

const T8 = 128; // output tile (rows and columns)
const KV8 = 2; // vec4s of K per tile row and step (8 values)

const tiled8Kernel = matmulKernel((c: MatmulConfig) => /* wgsl */ `
// Two buffers of [row][kv] (A) and [kv][column] (W), ${T8} x ${KV8} vec4 each.
var<workgroup> tile_a: array<vec4<f32>, ${2 * T8 * KV8}>;
var<workgroup> tile_w: array<vec4<f32>, ${2 * T8 * KV8}>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let bases = batch_bases(wid.z);
  let row0 = wid.y * ${T8}u;
  let col0 = wid.x * ${T8}u;
  let flat = lid.y * 16u + lid.x;
  // The vec4 this invocation stages each K step: tile row / column lr, K slot lk.
  let lr = flat / ${KV8}u;
  let lk = flat % ${KV8}u;
  let a_ok = row0 + lr < u.M;
  let w_ok = col0 + lr < u.N;
  let a_base = (bases.x + min(row0 + lr, u.M - 1u) * u.a_strides.z) / 4u;
  let w_base = (bases.y + min(col0 + lr, u.N - 1u) * u.b_strides.w) / 4u;
  let kv_n = u.K / 4u;
  var na = vec4<f32>(0.0);
  var nw = vec4<f32>(0.0);
  if (lk < kv_n) {
    if (a_ok) { na = vec4<f32>(a[a_base + lk]); }
    if (w_ok) { nw = vec4<f32>(b[w_base + lk]); }
  }
  tile_a[lr * ${KV8}u + lk] = na;
  tile_w[lk * ${T8}u + lr] = nw;
  workgroupBarrier();
${seq(16, (i) => `  var acc${i} = vec4<f32>(0.0);`)}
  var cur = 0u;
  for (var kv0 = 0u; kv0 < kv_n; kv0 += ${KV8}u) {
    // Fetch the next K step into registers; it goes to the other buffer after this step's math.
    let nxt = kv0 + ${KV8}u + lk;
    na = vec4<f32>(0.0);
    nw = vec4<f32>(0.0);
    if (nxt < kv_n) {
      if (a_ok) { na = vec4<f32>(a[a_base + nxt]); }
      if (w_ok) { nw = vec4<f32>(b[w_base + nxt]); }
    }
    let o = cur * ${T8 * KV8}u;
    for (var kv = 0u; kv < ${KV8}u; kv++) {
${seq(8, (j) => `      let w${j} = tile_w[o + kv * ${T8}u + lid.x + ${16 * j}u];`)}
${seq(8, (i) => `      { let av = tile_a[o + (lid.y + ${16 * i}u) * ${KV8}u + kv];
        acc${2 * i} += vec4<f32>(dot(av, w0), dot(av, w1), dot(av, w2), dot(av, w3));
        acc${2 * i + 1} += vec4<f32>(dot(av, w4), dot(av, w5), dot(av, w6), dot(av, w7)); }`)}
    }
    let p = (1u - cur) * ${T8 * KV8}u;
    tile_a[p + lr * ${KV8}u + lk] = na;
    tile_w[p + lk * ${T8}u + lr] = nw;
    workgroupBarrier();
    cur = 1u - cur;
  }
${storeBlock(c, { rows: 8, cols: 8, row: 'row0 + lid.y + 16u * i', col: 'col0 + lid.x + 16u * j', accs: span(16, (i) => `acc${i}`), at: 'accs[2u * i + (j >> 2u)][j & 3u]' })}
}
`);

// ------------------------------------------------------------------ rows_sg / splitk

const RB = 4; // output rows per workgroup
const CB = 4; // output columns per workgroup
const WG_ROWS = 64; // invocations sharing K

interface SplitConfig extends MatmulConfig {
  red: 'subgroup' | 'tree';
  /** Write f32 partials [split, batch, M, N] instead of running the epilogue. */
  partial: boolean;
}

/** WGSL: reduce the invocation's RB vec4 accumulators over the workgroup into r0..r3 (valid in lid 0). */
function reduceAccs(red: 'subgroup' | 'tree'): string {
  if (red === 'subgroup') {
    return /* wgsl */ `
${seq(RB, (i) => `  let s${i} = subgroupAdd(acc${i});`)}
  if (subgroupElect()) {
${seq(RB, (i) => `    part[sgid * ${RB}u + ${i}u] = s${i};`)}
  }
  workgroupBarrier();
${seq(RB, (i) => `  var r${i} = vec4<f32>(0.0);`)}
  for (var g = 0u; g < nsg; g++) {
${seq(RB, (i) => `    r${i} += part[g * ${RB}u + ${i}u];`)}
  }`;
  }
  return /* wgsl */ `
${seq(RB, (i) => `  part[lid * ${RB}u + ${i}u] = acc${i};`)}
  workgroupBarrier();
  for (var s = ${WG_ROWS / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) {
${seq(RB, (i) => `      part[lid * ${RB}u + ${i}u] += part[(lid + s) * ${RB}u + ${i}u];`)}
    }
    workgroupBarrier();
  }
${seq(RB, (i) => `  let r${i} = part[${i}u];`)}`;
}

const splitKernel = defineKernel({
  name: 'matmul',
  uniforms,
  enables: (c: SplitConfig) => (c.red === 'subgroup' ? ['subgroups'] : []),
  bindings: (c: SplitConfig) =>
    c.partial
      ? [...commonBindings(c).slice(0, 2), { name: 'out', type: 'f32', access: 'read_write' as const }]
      : commonBindings(c),
  source: (c: SplitConfig) => {
    const sg = c.red === 'subgroup';
    const store = c.partial
      ? // partial[split][z][row][col]
        (i: number, j: number) => `{ let row = row0 + ${i}u; let col = col0 + ${j}u; if (row < u.M && col < u.N) { out[(wid.y * nz + wid.z) * u.M * u.N + row * u.N + col] = r${i}[${j}]; } }`
      : (i: number, j: number) => `{ let row = row0 + ${i}u; let col = col0 + ${j}u; if (row < u.M && col < u.N) { let o = bases.z + row * u.N + col; ${epilogue(c, 'col', `r${i}[${j}]`, 'o')} } }`;
    return /* wgsl */ `
${c.partial ? '' : EPILOGUE_WGSL}
${BATCH_BASE}
var<workgroup> part: array<vec4<f32>, ${WG_ROWS * RB}>;
@compute @workgroup_size(${WG_ROWS}, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>${sg ? ', @builtin(subgroup_id) sgid: u32, @builtin(num_subgroups) nsg: u32' : ''}) {
  // x: column block, y: K split (splitk) or 0, z: batch; rows in blocks of ${RB} along x's high part.
  let nz = nwg.z;
  let col_blocks = (u.N + ${CB - 1}u) / ${CB}u;
  let col0 = (wid.x % col_blocks) * ${CB}u;
  let row0 = (wid.x / col_blocks) * ${RB}u;
  let bases = batch_bases(wid.z);
  let kv_n = u.K / 4u;
  let kv_begin = wid.y * u.k_split / 4u;
  let kv_end = min(kv_n, kv_begin + u.k_split / 4u);
${seq(RB, (i) => `  let ar${i} = (bases.x + min(row0 + ${i}u, u.M - 1u) * u.a_strides.z) / 4u;`)}
${seq(CB, (j) => `  let bc${j} = (bases.y + min(col0 + ${j}u, u.N - 1u) * u.b_strides.w) / 4u;`)}
${seq(RB, (i) => `  var acc${i} = vec4<f32>(0.0);`)}
  for (var kv = kv_begin + lid; kv < kv_end; kv += ${WG_ROWS}u) {
${seq(CB, (j) => `    let w${j} = vec4<f32>(b[bc${j} + kv]);`)}
${seq(RB, (i) => `    { let av = vec4<f32>(a[ar${i} + kv]); acc${i} += vec4<f32>(${seq(CB, (j) => `dot(av, w${j})`, ', ')}); }`)}
  }
${reduceAccs(c.red)}
  if (lid == 0u) {
${span(RB, (i) => span(CB, (j) => `    ${store(i, j)}`).join('\n')).join('\n')}
  }
}
`;
  },
});

/** Second splitk pass: sum the splits of each output and apply the epilogue. */
const splitReduceKernel = defineKernel({
  name: 'matmul_splitk_reduce',
  uniforms,
  bindings: (c: MatmulConfig) => [{ name: 'partial', type: 'f32', access: 'read' as const }, ...epilogueBindings(c)],
  source: (c: MatmulConfig) => /* wgsl */ `
${EPILOGUE_WGSL}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let total = u.M * u.N * u.batch_inner;
  let o = gid.x + gid.y * nwg.x * 256u;
  if (o >= total) { return; }
  let splits = (u.K + u.k_split - 1u) / u.k_split;
  var acc = 0.0;
  for (var s = 0u; s < splits; s++) { acc += partial[s * total + o]; }
  let col = o % u.N;
  ${epilogue(c, 'col', 'acc', 'o')}
}
`,
});

// ------------------------------------------------------------------ subgroup_matrix (untested)

interface SgMatConfig extends MatmulConfig {
  /** Matrix shape of the adapter's f16 -> f32 configuration. */
  mm: number;
  mn: number;
  mk: number;
  /** Invocations per workgroup: the adapter's largest subgroup. */
  wg: number;
  /** Result regions: the most subgroups a workgroup can hold (wg / smallest subgroup). */
  regions: number;
}

const sgMatrixKernel = defineKernel({
  name: 'matmul',
  uniforms,
  enables: () => ['chromium_experimental_subgroup_matrix', 'subgroups'],
  bindings: commonBindings,
  source: (c: SgMatConfig) => {
    const BM = 2 * c.mm; // block rows: 2 x 2 result matrices per workgroup
    const BN = 2 * c.mn;
    const K = c.mk;
    const L = `subgroup_matrix_left<f16, ${K}, ${c.mm}>`;
    const R = `subgroup_matrix_right<f16, ${c.mn}, ${K}>`;
    const S = `subgroup_matrix_result<f32, ${c.mn}, ${c.mm}>`;
    return /* wgsl */ `
${EPILOGUE_WGSL}
${BATCH_BASE}
// A block [${BM}][${K}] row-major; W block [${BN}][${K}] (column-major ${K} x ${BN} for the right
// operand, which is how an nn.Linear weight lies); zero beyond the matrix edges.
var<workgroup> sa: array<f16, ${BM * K}>;
var<workgroup> sb: array<f16, ${BN * K}>;
// Each subgroup stores its ${BM} x ${BN} result in its own region (all compute the same block
// when the workgroup holds several subgroups; region 0 is read).
var<workgroup> sc: array<f32, ${BM * BN * c.regions}>;

@compute @workgroup_size(${c.wg}, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(subgroup_id) sgid: u32) {
  let bases = batch_bases(wid.z);
  let row0 = wid.y * ${BM}u;
  let col0 = wid.x * ${BN}u;
${seq(4, (t) => `  var acc${t} = ${S}();`)}
  for (var k0 = 0u; k0 < u.K; k0 += ${K}u) {
    for (var e = lid; e < ${BM * K}u; e += ${c.wg}u) {
      let r = row0 + e / ${K}u;
      let k = k0 + e % ${K}u;
      var v = f16(0.0);
      if (r < u.M && k < u.K) { v = f16(a[bases.x + r * u.a_strides.z + k]); }
      sa[e] = v;
    }
    for (var e = lid; e < ${BN * K}u; e += ${c.wg}u) {
      let n = col0 + e / ${K}u;
      let k = k0 + e % ${K}u;
      var v = f16(0.0);
      if (n < u.N && k < u.K) { v = f16(b[bases.y + n * u.b_strides.w + k]); }
      sb[e] = v;
    }
    workgroupBarrier();
    let l0 = subgroupMatrixLoad<${L}>(&sa, 0u, false, ${K}u);
    let l1 = subgroupMatrixLoad<${L}>(&sa, ${c.mm * K}u, false, ${K}u);
    let r0 = subgroupMatrixLoad<${R}>(&sb, 0u, true, ${K}u);
    let r1 = subgroupMatrixLoad<${R}>(&sb, ${c.mn * K}u, true, ${K}u);
    acc0 = subgroupMatrixMultiplyAccumulate(l0, r0, acc0);
    acc1 = subgroupMatrixMultiplyAccumulate(l0, r1, acc1);
    acc2 = subgroupMatrixMultiplyAccumulate(l1, r0, acc2);
    acc3 = subgroupMatrixMultiplyAccumulate(l1, r1, acc3);
    workgroupBarrier();
  }
  let region = sgid * ${BM * BN}u;
  subgroupMatrixStore(&sc, region, acc0, false, ${BN}u);
  subgroupMatrixStore(&sc, region + ${c.mn}u, acc1, false, ${BN}u);
  subgroupMatrixStore(&sc, region + ${c.mm * BN}u, acc2, false, ${BN}u);
  subgroupMatrixStore(&sc, region + ${c.mm * BN + c.mn}u, acc3, false, ${BN}u);
  workgroupBarrier();
  for (var e = lid; e < ${BM * BN}u; e += ${c.wg}u) {
    let row = row0 + e / ${BN}u;
    let col = col0 + e % ${BN}u;
    if (row < u.M && col < u.N) {
      let o = bases.z + row * u.N + col;
      ${epilogue(c, 'col', 'sc[e]', 'o')}
    }
  }
}
`;
  },
});

/** Whether the tensor-core variant can run these operands on this device. */
export function subgroupMatrixEligible(ctx: GpuContext, a: Tensor, b: Tensor, nt: boolean): boolean {
  return nt && !!ctx.features.subgroupMatrix && ctx.features.subgroups && a.dtype === 'f16' && b.dtype === 'f16';
}

/** Splits of K for `splitk`: enough workgroups to fill a GPU, each at least 256 long (multiple of 4). */
function kSplit(M: number, N: number, K: number, batch: number): number {
  const blocks = Math.ceil(M / RB) * Math.ceil(N / CB) * batch;
  const splits = Math.max(1, Math.min(Math.floor(K / 256), Math.ceil(1024 / blocks)));
  return Math.ceil(K / splits / 4) * 4;
}

/** Dispatch one of this module's variants (matmul.ts has validated shapes and layouts). */
export function runGpuMatmul(
  ctx: GpuContext,
  config: MatmulConfig,
  bindings: Record<string, Tensor>,
  values: MatmulValues,
  dims: { M: number; N: number; K: number; batch: number },
  cost: KernelCost,
): void {
  const { M, N, K, batch } = dims;
  if (config.variant === 'tiled8_nt') {
    ctx.run(tiled8Kernel, config, bindings, values, [Math.ceil(N / T8), Math.ceil(M / T8), batch], cost);
  } else if (config.variant === 'rows_sg') {
    const c: SplitConfig = { ...config, red: 'subgroup', partial: false };
    ctx.run(splitKernel, c, bindings, { ...values, k_split: Math.ceil(K / 4) * 4 }, [Math.ceil(N / CB) * Math.ceil(M / RB), 1, batch], cost);
  } else if (config.variant === 'splitk') {
    const kSplitLen = kSplit(M, N, K, batch);
    const splits = Math.ceil(K / kSplitLen);
    const partial = ctx.empty([splits, batch, M, N], 'f32');
    try {
      const c: SplitConfig = { ...config, red: 'tree', partial: true };
      const v = { ...values, k_split: kSplitLen };
      ctx.run(splitKernel, c, { a: bindings.a!, b: bindings.b!, out: partial }, v, [Math.ceil(N / CB) * Math.ceil(M / RB), splits, batch], cost);
      const { a: _a, b: _b, ...rest } = bindings;
      const total = M * N * batch;
      const groups = Math.ceil(total / 256);
      const gy = Math.ceil(groups / 65535);
      // batch_inner carries the flattened batch count to the reduce pass (its outputs are contiguous).
      ctx.run(splitReduceKernel, config, { partial, ...rest }, { ...v, batch_inner: batch }, [Math.ceil(groups / gy), gy, 1], { flops: total * splits, bytes: partial.byteSize });
    } finally {
      partial.dispose();
    }
  } else if (config.variant === 'subgroup_matrix') {
    const sm = ctx.features.subgroupMatrix!;
    const [sgMin, sgMax] = ctx.features.subgroupSizes ?? [32, 32];
    const c: SgMatConfig = { ...config, mm: sm.M, mn: sm.N, mk: sm.K, wg: sgMax, regions: Math.max(1, sgMax / sgMin) };
    ctx.run(sgMatrixKernel, c, bindings, values, [Math.ceil(N / (2 * sm.N)), Math.ceil(M / (2 * sm.M)), batch], cost);
  } else {
    throw new Error(`runGpuMatmul: ${config.variant} is not a GPU variant`);
  }
}
