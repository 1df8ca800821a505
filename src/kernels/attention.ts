/**
 * Fused multi-head attention, flash style: scores are produced one key block at a time in
 * registers and folded into an online softmax, so no [Nq, Nk] score matrix ever exists in memory.
 *
 *   out = softmax(scale * q k^T + bias + rel_h + rel_w [+ causal mask]) v
 *
 * Token addressing is a small grid model so that SAM's windowed blocks need no partition copies:
 * token n of an operand sits at row n / cols, column n % cols of a window whose origin is
 * (wy * win_rows, wx * win_cols); the batch index z enumerates (b, wy, wx). Global attention is
 * one window; plain sequences are one row.
 *
 * SAM's decomposed relative position (segment_anything/modeling/image_encoder.py, add_decomposed_rel_pos)
 * is computed inside: for a query at grid (qh, qw), rel_h[kh] = q · Rh[qh - kh + Kh - 1] and
 * rel_w[kw] = q · Rw[qw - kw + Kw - 1] with the UNSCALED q, added to the score of key (kh, kw).
 *
 * One invocation owns one query row (its q, accumulator and softmax state live in registers); a
 * workgroup of BQ queries stages each key/value block in workgroup memory, read by all lanes at the
 * same address (a broadcast on GPUs and on SIMD CPUs alike). A block's scores go to workgroup
 * memory, one column per lane, rather than to a private array: private arrays indexed by a loop
 * variable are lowered to select ladders by some compilers (Mesa's llvmpipe among them), which
 * made this kernel take minutes to compile. For the same reason the rel-pos terms are computed by
 * a small separate kernel (attention-relpos.ts) into a [.., Nq, Kh + Kw] buffer (linear in N, not
 * N x N) that the main kernel reads.
 *
 * On CPU adapters, self-attention of 128 tokens or more (globally or per window) goes to
 * attention-chunked.ts instead (matmuls over query chunks: ~2.3x faster on lavapipe at 4096
 * tokens, ~4x with the subgroup matmul), and head dims above 64 to the flash
 * kernel where subgroups allow (its compile is 8-13x shorter there). On GPUs with subgroups the `flash`
 * kernel below splits each query's head dim over four lanes; `algorithm` forces any of the three.
 */
import type { GpuContext } from '../gpu/context.js';
import type { DType } from '../gpu/dtype.js';
import { check, fmtShape } from '../gpu/errors.js';
import { type BindingDecl, defineKernel } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { chunkedAttention, chunkedEligible } from './attention-chunked.js';
import { TOKEN_ADDR, gridUniforms, relPosTerms, windowsOf } from './attention-relpos.js';

const uniforms = defineUniforms({
  nq: 'u32',
  nk: 'u32',
  q_cols: 'u32',
  k_cols: 'u32',
  win_rows: 'u32',
  win_cols: 'u32',
  nwx: 'u32',
  nw: 'u32',
  scale: 'f32',
  heads: 'u32',
  rel_kh: 'u32',
  rel_row: 'u32', // Kh + Kw: floats per query row in the rel buffer
  q_off: 'u32',
  k_off: 'u32',
  v_off: 'u32',
  o_off: 'u32',
  bias_off: 'u32',
  q_str: 'vec4u', // batch, head, row, col
  k_str: 'vec4u',
  v_str: 'vec4u',
  o_str: 'vec4u',
  bias_str: 'vec4u', // z, head, query, key
});

interface AttentionConfig {
  [k: string]: string | number | boolean;
  q: DType;
  k: DType;
  v: DType;
  out: DType;
  bias: DType | 'none';
  /** Read precomputed decomposed rel-pos terms [z, head, query, Kh + Kw] (see relPosTerms). */
  rel: boolean;
  causal: boolean;
  head_dim: number;
  bq: number;
  bk: number;
  /**
   * q, k and v bound as vec4 arrays (every offset and stride a multiple of 4 elements, as views of
   * a fused qkv projection are): one load per 4 values instead of four. Besides the loads, it cuts
   * the kernel's compile on lavapipe by about a fifth (4.6 s -> 3.6 s at head dim 96).
   */
  vec: boolean;
}

function bindings(c: AttentionConfig): BindingDecl[] {
  const list: BindingDecl[] = [
    { name: 'q', type: c.vec ? `vec4<${c.q}>` : c.q, access: 'read' },
    { name: 'k', type: c.vec ? `vec4<${c.k}>` : c.k, access: 'read' },
    { name: 'v', type: c.vec ? `vec4<${c.v}>` : c.v, access: 'read' },
  ];
  if (c.bias !== 'none') list.push({ name: 'bias', type: c.bias, access: 'read' });
  if (c.rel) list.push({ name: 'rel', type: 'f32', access: 'read' });
  list.push({ name: 'out', type: c.out, access: 'read_write' });
  return list;
}

/** WGSL shared by both kernels: block constants, the k / v / score tiles, token addressing, loads. */
function attentionPrelude(c: AttentionConfig, extra: string): string {
  const D4 = c.head_dim / 4;
  return /* wgsl */ `
const D4: u32 = ${D4}u;
${extra}
const BQ: u32 = ${c.bq}u;
const BK: u32 = ${c.bk}u;
const NEG: f32 = -3.0e38; // below any real score; exp(NEG - m) == 0

var<workgroup> k_tile: array<vec4<f32>, ${c.bk * D4}>;
var<workgroup> v_tile: array<vec4<f32>, ${c.bk * D4}>;
var<workgroup> s_tile: array<f32, ${c.bk * c.bq}>; // [key][query lane]

${TOKEN_ADDR}

${load4Fn(c, 'q')}
${load4Fn(c, 'k')}
${load4Fn(c, 'v')}
`;
}

/** WGSL `load4_<name>(i)`: the 4 values of operand `name` from element index `i` (a multiple of 4 when `vec`). */
function load4Fn(c: AttentionConfig, name: 'q' | 'k' | 'v'): string {
  return c.vec
    ? `fn load4_${name}(i: u32) -> vec4<f32> { return vec4<f32>(${name}[i / 4u]); }`
    : `fn load4_${name}(i: u32) -> vec4<f32> { return vec4<f32>(f32(${name}[i]), f32(${name}[i + 1u]), f32(${name}[i + 2u]), f32(${name}[i + 3u])); }`;
}

/**
 * WGSL: query `n`'s batch / window / head indices, operand bases, validity, and its `n4` vec4s of
 * q (from `offset` in the head dim) scaled, in `qv`.
 */
function queryState(n4: string, offset: string): string {
  return /* wgsl */ `  let head = wid.y;
  let z = wid.z;
  let b = z / u.nw;
  let w = z % u.nw;
  let wy = w / u.nwx;
  let wx = w % u.nwx;
  let q_valid = n < u.nq;
  let k_base = u.k_off + b * u.k_str.x + head * u.k_str.y;
  let v_base = u.v_off + b * u.v_str.x + head * u.v_str.y;
  let rel_base = ((z * u.heads + head) * u.nq + min(n, u.nq - 1u)) * u.rel_row;
  var qv: array<vec4<f32>, ${n4}>;
  if (q_valid) {
    let qa = u.q_off + b * u.q_str.x + head * u.q_str.y + token_addr(n, u.q_cols, wy, wx, u.q_str)${offset};
    for (var d = 0u; d < ${n4}; d++) {
      qv[d] = load4_q(qa + 4u * d) * u.scale;
    }
  }`;
}

/** WGSL: the workgroup stages key block kb's k and v rows, invocation `idx` of `count` (then a barrier). */
function stageKeyBlock(idx: string, count: string): string {
  return /* wgsl */ `
    for (var i = ${idx}; i < BK * D4; i += ${count}) {
      let j = i / D4;
      let d = i % D4;
      let key = kb + j;
      var kvec = vec4<f32>(0.0);
      var vvec = vec4<f32>(0.0);
      if (key < u.nk) {
        kvec = load4_k(k_base + token_addr(key, u.k_cols, wy, wx, u.k_str) + 4u * d);
        vvec = load4_v(v_base + token_addr(key, u.k_cols, wy, wx, u.v_str) + 4u * d);
      }
      k_tile[i] = kvec;
      v_tile[i] = vvec;
    }
    workgroupBarrier();`;
}

/** WGSL: this invocation's `n4` vec4s of the head dim from `acc`, normalised by l, to out at `offset`. */
function storeOutput(c: AttentionConfig, n4: string, offset: string): string {
  return /* wgsl */ `
  if (q_valid) {
    let oa = u.o_off + b * u.o_str.x + head * u.o_str.y + token_addr(n, u.q_cols, wy, wx, u.o_str)${offset};
    let inv = 1.0 / l;
    for (var d = 0u; d < ${n4}; d++) {
      let o = acc[d] * inv;
      out[oa + 4u * d] = ${c.out}(o.x);
      out[oa + 4u * d + 1u] = ${c.out}(o.y);
      out[oa + 4u * d + 2u] = ${c.out}(o.z);
      out[oa + 4u * d + 3u] = ${c.out}(o.w);
    }
  }`;
}

/** WGSL: the bias and rel-pos terms added to score x of (query n, key). */
function scoreTerms(c: AttentionConfig, indent: string): string {
  return [
    c.bias !== 'none' ? `${indent}x += f32(bias[u.bias_off + z * u.bias_str.x + head * u.bias_str.y + n * u.bias_str.z + key * u.bias_str.w]);` : '',
    c.rel ? `${indent}x += rel[rel_base + key / u.k_cols] + rel[rel_base + u.rel_kh + key % u.k_cols];` : '',
  ].join('\n');
}

const kernel = defineKernel({
  name: 'attention',
  uniforms,
  bindings,
  source: (c: AttentionConfig) => {
    return /* wgsl */ `
${attentionPrelude(c, '')}
@compute @workgroup_size(${c.bq}, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let lane = lid.x;
  let n = wid.x * BQ + lane;
${queryState('D4', '')}

  var m = NEG;
  var l = 0.0;
  var acc: array<vec4<f32>, D4>;
  for (var kb = 0u; kb < u.nk; kb += BK) {${stageKeyBlock('lane', 'BQ')}
    if (q_valid) {
      var mb = NEG;
      // A bound known only at run time: with BK constant, LLVM unrolls the key loops fully when
      // the head dim is small (the body is short), and compile time grows with BK (lavapipe, head
      // dim 4: 2.7 s at BK 32, 0.4 s at BK 4).
      let jn = min(BK, u.nk - kb);
      for (var j = 0u; j < jn; j++) {
        let key = kb + j;
        var x = NEG;
        ${c.causal ? 'if (key <= n) ' : ''}{
          var dv = vec4<f32>(0.0);
          for (var d = 0u; d < D4; d++) { dv += qv[d] * k_tile[j * D4 + d]; }
          x = dv.x + dv.y + dv.z + dv.w;
${scoreTerms(c, '          ')}
        }
        s_tile[j * BQ + lane] = x;
        mb = max(mb, x);
      }
      let m_new = max(m, mb);
      if (m_new > NEG) {
        let corr = exp(m - m_new);
        l *= corr;
        for (var d = 0u; d < D4; d++) { acc[d] *= corr; }
        for (var j = 0u; j < jn; j++) {
          let p = exp(s_tile[j * BQ + lane] - m_new);
          l += p;
          for (var d = 0u; d < D4; d++) { acc[d] += p * v_tile[j * D4 + d]; }
        }
        m = m_new;
      }
    }
    workgroupBarrier();
  }
${storeOutput(c, 'D4', '')}
}
`;
  },
});

// ------------------------------------------------------------------ flash (GPUs)

/** Lanes sharing one query in the flash kernel: each holds D / FLASH_G of its q and accumulator. */
const FLASH_G = 4;
const FLASH_WG = 128;

/**
 * The GPU kernel: a workgroup takes a block of FLASH_WG / FLASH_G queries and walks the keys in
 * blocks staged in workgroup memory (k and v tiles shared by all its queries), with the online
 * softmax of the fused kernel. Each query is held by FLASH_G lanes of one subgroup, each owning a
 * quarter of the head dim: a score is four partial dot products summed with subgroupShuffleXor,
 * which keeps q and the accumulator at D / 4 floats per lane (registers, not spills) and gives the
 * GPU four times the invocations of the one-lane-per-query kernel. Lanes are numbered through the
 * subgroup builtins so that a query's lanes always share a subgroup.
 */
const flashKernel = defineKernel({
  name: 'attention',
  uniforms,
  bindings,
  enables: () => ['subgroups'],
  source: (c: AttentionConfig) => {
    const DG = c.head_dim / 4 / FLASH_G;
    return /* wgsl */ `
${attentionPrelude(c, `const DG: u32 = ${DG}u;`)}
@compute @workgroup_size(${FLASH_WG}, 1, 1)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(subgroup_id) sgid: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
        @builtin(subgroup_size) sg_size: u32) {
  let t = sgid * sg_size + sg_lane;
  let qi = t / ${FLASH_G}u;
  let part = t % ${FLASH_G}u;
  let n = wid.x * BQ + qi;
${queryState('DG', ' + 4u * part * DG')}
  var m = NEG;
  var l = 0.0;
  var acc: array<vec4<f32>, DG>;
  for (var kb = 0u; kb < u.nk; kb += BK) {${stageKeyBlock('lid', `${FLASH_WG}u`)}
    var mb = NEG;
    for (var j = 0u; j < BK; j++) {
      var dv = vec4<f32>(0.0);
      for (var d = 0u; d < DG; d++) { dv += qv[d] * k_tile[j * D4 + part * DG + d]; }
      var x = dv.x + dv.y + dv.z + dv.w;
      // The query's ${FLASH_G} lanes are adjacent in their subgroup: two butterfly steps sum them.
      x += subgroupShuffleXor(x, 1u);
      x += subgroupShuffleXor(x, 2u);
      let key = kb + j;
      if (key < u.nk${c.causal ? ' && key <= n' : ''} && q_valid) {
${scoreTerms(c, '        ')}
      } else {
        x = NEG;
      }
      if (part == 0u) { s_tile[j * BQ + qi] = x; }
      mb = max(mb, x);
    }
    workgroupBarrier();
    let m_new = max(m, mb);
    if (m_new > NEG) {
      let corr = exp(m - m_new);
      l *= corr;
      for (var d = 0u; d < DG; d++) { acc[d] *= corr; }
      for (var j = 0u; j < BK; j++) {
        let p = exp(s_tile[j * BQ + qi] - m_new);
        l += p;
        for (var d = 0u; d < DG; d++) { acc[d] += p * v_tile[j * D4 + part * DG + d]; }
      }
      m = m_new;
    }
    workgroupBarrier();
  }
${storeOutput(c, 'DG', ' + 4u * part * DG')}
}
`;
  },
});

/** Whether the flash kernel can run this problem here: subgroups of at least FLASH_G lanes, D a multiple of 16. */
export function flashEligible(ctx: GpuContext, headDim: number): boolean {
  const minSg = ctx.features.subgroupSizes?.[0] ?? 4;
  return ctx.features.subgroups && minSg >= FLASH_G && FLASH_WG % (ctx.features.subgroupSizes?.[1] ?? FLASH_WG) === 0 && headDim % (4 * FLASH_G) === 0;
}

/** How one operand's tokens sit in memory: [batch, head] strides plus a row/column grid. */
export interface TokenLayout {
  tensor: Tensor;
  offset: number;
  /** Strides: batch, head, grid row, grid column (elements). Head dim must be contiguous. */
  strides: readonly [number, number, number, number];
}

export interface AttentionSpec {
  q: TokenLayout;
  k: TokenLayout;
  v: TokenLayout;
  out: TokenLayout;
  batch: number;
  heads: number;
  headDim: number;
  nq: number;
  nk: number;
  /** Tokens per grid row for queries / keys (a plain sequence: nq / nk). */
  qCols: number;
  kCols: number;
  /** Windows: count per grid row and column, and window size; 1 x 1 for global attention. */
  windows?: { rows: number; cols: number; size: [number, number] };
  scale: number;
  causal?: boolean;
  /** Additive bias, strides over (z, head, query, key); broadcast with stride 0. */
  bias?: { tensor: Tensor; offset: number; strides: readonly [number, number, number, number] };
  /** SAM decomposed relative position tables [2*Kh-1, D] and [2*Kw-1, D] (already resized). */
  relPos?: { h: Tensor; w: Tensor };
  /** Force the key block size (tests). */
  blockKeys?: number;
  /**
   * Force the algorithm (tests, benchmarks): `fused` (one query per invocation), `flash` (GPUs:
   * four subgroup lanes per query) or `chunked` (attention-chunked.ts). Default: the tuning's
   * choice (chunked for long global self-attention on CPU adapters, flash on GPUs with subgroups).
   */
  algorithm?: AttentionAlgorithm;
  /** Force the chunked algorithm's query rows per chunk (tests). */
  chunkRows?: number;
}

export type AttentionAlgorithm = 'fused' | 'flash' | 'chunked';

// From this many tokens the chunked algorithm wins on lavapipe (12 heads x 64: 50 tokens fused
// 8 vs chunked 12 ms; 128 tokens 41 vs 25 ms; 197 104 vs 57 ms; 4096 with rel-pos 16.3 vs ~7 s).
const CHUNKED_MIN_TOKENS = 128;

// On CPU adapters the fused kernel's compile grows steeply with the head dim (its q and
// accumulator are D floats per SIMD lane, spilled): lavapipe, shader cache off, 2-core EPYC:
// 2-3 s at 64, 7.6 s at 96, 13.4 s at 128, against 0.6-1.0 s for the flash kernel (a quarter of
// the head dim per lane). At small sizes both run alike (2 heads x 17 tokens x 96: 1.1 / 0.9 ms;
// 4 x 64 x 128: 3.8 / 3.9 ms); at SAM's window size (head dim 64) flash is ~30 % slower, so up to
// 64 the fused kernel stays.
const CPU_FUSED_MAX_HEAD_DIM = 64;

/** The tuning's choice where this problem allows it: chunked needs self-attention of many tokens (per window), flash subgroups. */
function selectAttention(ctx: GpuContext, s: AttentionSpec): AttentionAlgorithm {
  if (s.algorithm) return s.algorithm;
  const choice = ctx.tuning.attention;
  if (choice === 'chunked' && s.nq >= CHUNKED_MIN_TOKENS && chunkedEligible(s)) return 'chunked';
  const wantFlash = choice === 'flash' || (ctx.tuning.cpuAdapter && s.headDim > CPU_FUSED_MAX_HEAD_DIM);
  return wantFlash && flashEligible(ctx, s.headDim) ? 'flash' : 'fused';
}

/** Key block size that fits workgroup memory: k and v tiles (BK x D) plus scores (BK x BQ). */
function keyBlock(ctx: GpuContext, headDim: number, bq: number): number {
  const fit = Math.floor(ctx.limits.maxWorkgroupStorage / (headDim * 4 * 2 + bq * 4));
  return Math.max(4, Math.min(32, 2 ** Math.floor(Math.log2(fit))));
}

export function attentionCore(ctx: GpuContext, s: AttentionSpec): void {
  const D = s.headDim;
  check(D % 4 === 0 && D >= 4 && D <= 256, () => `attention: head dim ${D} must be a multiple of 4 in [4, 256]`);
  check(s.nq > 0 && s.nk > 0, () => `attention: empty query (${s.nq}) or key (${s.nk}) set`);
  check(s.nq % s.qCols === 0 && s.nk % s.kCols === 0, () => `attention: token counts ${s.nq}/${s.nk} are not whole grid rows of ${s.qCols}/${s.kCols}`);
  const win = windowsOf(s);
  if (s.relPos) {
    const kh = s.nk / s.kCols;
    const kw = s.kCols;
    check(s.nq === s.nk && s.qCols === s.kCols, () => `attention: relative position needs self-attention on one grid`);
    check(s.relPos.h.ndim === 2 && s.relPos.h.dim(0) === 2 * kh - 1 && s.relPos.h.dim(1) === D && s.relPos.h.isContiguous && s.relPos.h.offset === 0,
      () => `attention: rel_pos_h must be contiguous [${2 * kh - 1}, ${D}] for a ${kh}-row grid, got ${s.relPos!.h}`);
    check(s.relPos.w.ndim === 2 && s.relPos.w.dim(0) === 2 * kw - 1 && s.relPos.w.dim(1) === D && s.relPos.w.isContiguous && s.relPos.w.offset === 0,
      () => `attention: rel_pos_w must be contiguous [${2 * kw - 1}, ${D}] for a ${kw}-column grid, got ${s.relPos!.w}`);
    check(s.relPos.h.dtype === s.relPos.w.dtype, 'attention: rel_pos_h and rel_pos_w dtypes differ');
  }
  for (const [name, t] of [['q', s.q], ['k', s.k], ['v', s.v], ['out', s.out]] as const) {
    check(t.offset % 1 === 0 && t.offset >= 0, () => `attention: bad ${name} offset ${t.offset}`);
  }
  const algorithm = selectAttention(ctx, s);
  if (algorithm === 'chunked') {
    chunkedAttention(ctx, s, s.chunkRows);
    return;
  }
  const flash = algorithm === 'flash';
  check(!flash || flashEligible(ctx, D), () => `attention: the flash kernel needs subgroups of >= ${FLASH_G} lanes and a head dim that is a multiple of ${4 * FLASH_G}, got D ${D} on ${ctx.description}`);
  const bq = flash ? FLASH_WG / FLASH_G : 64;
  const bk = s.blockKeys ?? keyBlock(ctx, D, bq);
  const config: AttentionConfig = {
    q: s.q.tensor.dtype,
    k: s.k.tensor.dtype,
    v: s.v.tensor.dtype,
    out: s.out.tensor.dtype,
    bias: s.bias?.tensor.dtype ?? 'none',
    rel: !!s.relPos,
    causal: !!s.causal,
    head_dim: D,
    bq,
    bk,
    vec: [s.q, s.k, s.v].every((t) => t.offset % 4 === 0 && t.strides.every((x) => x % 4 === 0)),
  };
  const b: Record<string, Tensor> = { q: s.q.tensor, k: s.k.tensor, v: s.v.tensor, out: s.out.tensor };
  if (s.bias) b.bias = s.bias.tensor;
  const z = s.batch * win.rows * win.cols;
  const relKh = s.relPos ? s.nk / s.kCols : 0;
  const relRow = s.relPos ? relKh + s.kCols : 0;
  const rel = relPosTerms(ctx, s);
  if (rel) b.rel = rel;
  const flops = 4 * s.nq * s.nk * D * s.heads * z;
  ctx.run(
    flash ? flashKernel : kernel,
    config,
    b,
    {
      ...gridUniforms(s),
      nk: s.nk,
      k_cols: s.kCols,
      scale: s.scale,
      rel_kh: relKh,
      rel_row: relRow,
      q_off: s.q.offset,
      k_off: s.k.offset,
      v_off: s.v.offset,
      o_off: s.out.offset,
      bias_off: s.bias?.offset ?? 0,
      q_str: s.q.strides,
      k_str: s.k.strides,
      v_str: s.v.strides,
      o_str: s.out.strides,
      bias_str: s.bias?.strides ?? [0, 0, 0, 0],
    },
    [Math.ceil(s.nq / bq), s.heads, z],
    { flops, bytes: (s.q.tensor.byteSize + s.k.tensor.byteSize + s.v.tensor.byteSize) },
  );
  rel?.dispose();
}

export interface AttentionOptions {
  scale?: number;
  causal?: boolean;
  /** Additive bias broadcastable to [B, H, Nq, Nk] (any strided view). */
  bias?: Tensor;
  /** SAM decomposed relative position: tables plus the query/key grid (rows, cols). */
  relPos?: { h: Tensor; w: Tensor; grid: [number, number] };
  blockKeys?: number;
  algorithm?: AttentionAlgorithm;
  chunkRows?: number;
}

function layout4(t: Tensor, name: string, B: number, H: number, N: number, D: number): TokenLayout {
  check(t.ndim === 4, () => `attention: ${name} must be [B, H, N, D], got ${fmtShape(t.shape)}`);
  check(t.dim(0) === B && t.dim(1) === H && t.dim(2) === N && t.dim(3) === D,
    () => `attention: ${name} ${fmtShape(t.shape)} does not match [${B}, ${H}, ${N}, ${D}]`);
  check(t.strides[3] === 1 || D === 1, () => `attention: ${name} head dim must be contiguous (stride 1), got strides ${fmtShape(t.strides)}`);
  const st = t.strides;
  return { tensor: t, offset: t.offset, strides: [B === 1 ? 0 : st[0]!, st[1]!, 0, st[2]!] };
}

/**
 * Attention over [B, H, N, D] views (any strides with a contiguous head dim), e.g. q/k/v sliced
 * out of a fused qkv projection without copies. Returns [B, Nq, H, D] contiguous, which is the
 * heads-merged [B, Nq, H*D] layout the output projection wants.
 */
export function attention(ctx: GpuContext, q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  check(q.ndim === 4, () => `attention: q must be [B, H, N, D], got ${fmtShape(q.shape)}`);
  const [B, H, Nq, D] = q.shape as [number, number, number, number];
  const Nk = k.dim(2);
  const ql = layout4(q, 'q', B, H, Nq, D);
  const kl = layout4(k, 'k', B, H, Nk, D);
  const vl = layout4(v, 'v', B, H, Nk, D);
  const out = ctx.empty([B, Nq, H, D], q.dtype);
  const ol: TokenLayout = { tensor: out, offset: 0, strides: [Nq * H * D, D, 0, H * D] };
  let bias: AttentionSpec['bias'];
  if (opts.bias) {
    const t = opts.bias;
    check(t.ndim <= 4 && t.dim(-1) === Nk && (t.ndim < 2 || t.dim(-2) === Nq || t.dim(-2) === 1),
      () => `attention: bias ${fmtShape(t.shape)} does not broadcast to [${B}, ${H}, ${Nq}, ${Nk}]`);
    const shape4 = [...Array(4 - t.ndim).fill(1), ...t.shape];
    const str4 = [...Array(4 - t.ndim).fill(0), ...t.strides];
    const dims = [B, H, Nq, Nk];
    shape4.forEach((d, i) => check(d === dims[i] || d === 1, () => `attention: bias ${fmtShape(t.shape)} does not broadcast to ${fmtShape(dims)}`));
    const st = str4.map((s, i) => (shape4[i] === 1 ? 0 : s)) as [number, number, number, number];
    bias = { tensor: t, offset: t.offset, strides: st };
  }
  let qCols = Nq;
  let kCols = Nk;
  if (opts.relPos) {
    const [rows, cols] = opts.relPos.grid;
    check(rows * cols === Nq && Nq === Nk, () => `attention: rel-pos grid ${rows}x${cols} does not cover ${Nq} query / ${Nk} key tokens`);
    qCols = kCols = cols;
    // A token grid over a sequence layout: row stride = cols * token stride.
    ql.strides = [ql.strides[0], ql.strides[1], cols * ql.strides[3], ql.strides[3]];
    kl.strides = [kl.strides[0], kl.strides[1], cols * kl.strides[3], kl.strides[3]];
    vl.strides = [vl.strides[0], vl.strides[1], cols * vl.strides[3], vl.strides[3]];
    ol.strides = [ol.strides[0], ol.strides[1], cols * ol.strides[3], ol.strides[3]];
  }
  attentionCore(ctx, {
    q: ql,
    k: kl,
    v: vl,
    out: ol,
    batch: B,
    heads: H,
    headDim: D,
    nq: Nq,
    nk: Nk,
    qCols,
    kCols,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    causal: opts.causal,
    bias,
    relPos: opts.relPos ? { h: opts.relPos.h, w: opts.relPos.w } : undefined,
    blockKeys: opts.blockKeys,
    algorithm: opts.algorithm,
    chunkRows: opts.chunkRows,
  });
  return out;
}

/**
 * Self-attention on a token grid straight from a fused qkv projection, as SAM's image encoder
 * needs: qkv [B, Hg, Wg, 3 * heads * D] contiguous (q; k; v each heads-major). With `window`, the
 * grid (already padded to multiples of the window) is attended window by window; otherwise
 * globally. Returns [B, Hg, Wg, heads * D].
 */
export function gridSelfAttention(
  ctx: GpuContext,
  qkv: Tensor,
  heads: number,
  opts: Pick<AttentionOptions, 'scale' | 'blockKeys' | 'algorithm' | 'chunkRows'> & { window?: number; relPos?: { h: Tensor; w: Tensor } } = {},
): Tensor {
  check(qkv.ndim === 4 && qkv.isContiguous, () => `gridSelfAttention: qkv must be contiguous [B, H, W, 3C], got ${qkv}`);
  const [B, Hg, Wg, C3] = qkv.shape as [number, number, number, number];
  check(C3 % (3 * heads) === 0, () => `gridSelfAttention: ${C3} channels do not split into q, k, v of ${heads} heads`);
  const C = C3 / 3;
  const D = C / heads;
  const win = opts.window ?? 0;
  if (win) check(Hg % win === 0 && Wg % win === 0, () => `gridSelfAttention: grid ${Hg}x${Wg} is not padded to multiples of the window ${win}`);
  const [wh, ww] = win ? [win, win] : [Hg, Wg];
  const out = ctx.empty([B, Hg, Wg, C], qkv.dtype);
  const grid = (t: Tensor, off: number, ch: number): TokenLayout => ({
    tensor: t,
    offset: off,
    strides: [Hg * Wg * ch, D, Wg * ch, ch],
  });
  attentionCore(ctx, {
    q: grid(qkv, qkv.offset, C3),
    k: grid(qkv, qkv.offset + C, C3),
    v: grid(qkv, qkv.offset + 2 * C, C3),
    out: grid(out, 0, C),
    batch: B,
    heads,
    headDim: D,
    nq: wh * ww,
    nk: wh * ww,
    qCols: ww,
    kCols: ww,
    windows: { rows: Hg / wh, cols: Wg / ww, size: [wh, ww] },
    scale: opts.scale ?? 1 / Math.sqrt(D),
    relPos: opts.relPos,
    blockKeys: opts.blockKeys,
    algorithm: opts.algorithm,
    chunkRows: opts.chunkRows,
  });
  return out;
}
