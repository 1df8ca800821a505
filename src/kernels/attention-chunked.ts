/**
 * Self-attention on a token grid as matrix products, for CPU adapters (Mesa's lavapipe,
 * SwiftShader), globally or window by window (windowedAttention, at the end): queries are taken in chunks small enough that the chunk's scores for every head,
 * [heads, chunk, N], stay within 48 MiB (well inside one storage binding; at SAM's 4096 tokens
 * that is 1/16 of the [heads, N, N] scores, while a short sequence such as CLIP's 197 tokens fits
 * in one chunk of 1.9 MB), and per chunk
 *
 *   S = scale * Q_chunk K^T          matmul (nn.Linear layout: keys are contiguous along the head dim)
 *   S = softmax(S + rel_h + rel_w)   in place, one workgroup per row
 *   O_chunk = S V                    matmul against V^T, transposed once per call
 *
 * Why: on a CPU adapter each invocation of the fused kernel (attention.ts) keeps a query and an
 * accumulator of head_dim floats, and with 8-wide SIMD lanes that is far more than the register
 * file; the matmul kernels keep 32 accumulators and reach ~2.5x its GFLOP/s there (SAM ViT-B's
 * 4096-token global attention, 12 heads, on lavapipe: 16.3 s fused, 6.9–8.3 s chunked; kernel run 4
 * in bench/README.md). On GPUs the fused kernel stays: it never writes scores to memory.
 */
import type { GpuContext } from '../gpu/context.js';
import { check } from '../gpu/errors.js';
import { defineKernel, grid1d } from '../gpu/kernel.js';
import { type Tensor, contiguousStrides } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import type { AttentionSpec } from './attention.js';
import { copyInto, pad } from './copy.js';
import { type RowReduction, rowEnables, rowGroups, rowKernelHead, rowReduction } from './layernorm.js';
import { matmul } from './matmul.js';

const uniforms = defineUniforms({
  rows: 'u32', // heads * chunk rows of s
  n: 'u32', // scores per row: the keys padded to a multiple of 4
  n_valid: 'u32', // the real keys; the padding gets probability 0
  chunk: 'u32',
  q0: 'u32', // first query of the chunk
  nq: 'u32', // queries (= keys) in the whole grid
  rel_kh: 'u32', // grid rows
  rel_kw: 'u32', // grid columns
  // -Inf cannot be written as a WGSL constant; it arrives here.
  neg_inf: 'f32',
});

interface SoftmaxConfig {
  [k: string]: string | number | boolean;
  rel: boolean;
  vec: boolean;
  wg: number;
  red: RowReduction;
}

// One SIMD group of lavapipe (8 lanes of 256 bits) per row: fewer barrier passes than the 16 of
// the other row kernels (layernorm.ts); one A/B at 1024 tokens: 521 vs 563 ms for the whole call.
const WG = 8;

/**
 * In place over s [heads, chunk, n]: s = softmax(s + rel terms) per row. Three passes over a row
 * that stays in the CPU's cache (16 KiB at 4096 keys): add the rel-pos terms and take the max;
 * exponentiate and sum; scale. One exp per score. With `vec`, every invocation moves 4 adjacent
 * scores at a time (n and the rel grid's width multiples of 4): a quarter of the load, store and
 * loop instructions on a SIMD CPU, where those rather than the arithmetic bound this kernel.
 */
const softmaxKernel = defineKernel({
  name: 'attention_softmax',
  uniforms,
  enables: (c: SoftmaxConfig) => rowEnables(c.red),
  bindings: (c: SoftmaxConfig) => [
    ...(c.rel ? [{ name: 'rel_h', type: 'f32', access: 'read' as const }, { name: 'rel_w', type: 'f32', access: 'read' as const }] : []),
    { name: 's', type: c.vec ? 'vec4<f32>' : 'f32', access: 'read_write' as const },
  ],
  source: (c: SoftmaxConfig) => {
    const T = c.vec ? 'vec4<f32>' : 'f32';
    const W = c.vec ? 4 : 1;
    // The rel terms of the W scores from key j: one grid row (kw % W == 0), W adjacent columns.
    // Both tables are stored with the key index reversed (see relTerms): key row kr sits at
    // Kh - 1 - kr, key column kc at Kw - 1 - kc, so W adjacent columns are W descending entries.
    const relTerm = c.vec
      ? `rel_h[rh_base - j4 / u.rel_kw] + vec4<f32>(rel_w[rw], rel_w[rw - 1u], rel_w[rw - 2u], rel_w[rw - 3u])`
      : `rel_h[rh_base - j4 / u.rel_kw] + rel_w[rw]`;
    const hmax = c.vec ? 'max(max(m4.x, m4.y), max(m4.z, m4.w))' : 'm4';
    const hsum = c.vec ? 'acc.x + acc.y + acc.z + acc.w' : 'acc';
    return /* wgsl */ `
${rowKernelHead(c.wg, '', c.red)}
  let nv = u.n / ${W}u;
  let base = row * nv;
${c.rel ? `  let head = row / u.chunk;
  let n = u.q0 + row % u.chunk;
  let qh = n / u.rel_kw;
  let qw = n % u.rel_kw;
  // Entry of key 0 (row 0, column 0), the last of this query's run in each table.
  let rh_base = (head * u.nq + n) * u.rel_kh + u.rel_kh - 1u;
  let rw_base = ((head * u.rel_kw + qw) * u.rel_kh + qh) * u.rel_kw + u.rel_kw - 1u;` : ''}
  var m4 = ${T}(u.neg_inf);
  for (var j = lid; j < nv; j += STEP) {
    var x = s[base + j];
    let j4 = j * ${W}u;
    ${c.vec ? 'if (j4 + 3u >= u.n_valid) { x = select(x, vec4<f32>(u.neg_inf), vec4<u32>(j4) + vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(u.n_valid)); }' : 'if (j4 >= u.n_valid) { x = u.neg_inf; }'}
${c.rel ? `    else {
      let rw = rw_base - j4 % u.rel_kw;
      x += ${relTerm};
    }` : ''}
    s[base + j] = x;
    m4 = max(m4, x);
  }
  let m = wg_max(${hmax}, lid);
  var acc = ${T}(0.0);
  for (var j = lid; j < nv; j += STEP) {
    let e = exp(s[base + j] - m);
    s[base + j] = e;
    acc += e;
  }
  let inv = 1.0 / wg_sum(${hsum}, lid);
  for (var j = lid; j < nv; j += STEP) { s[base + j] *= inv; }
}
`;
  },
});

/** Whether `chunkedAttention` handles a spec: plain self-attention, globally or window by window. */
export function chunkedEligible(s: AttentionSpec): boolean {
  return (
    !s.causal && !s.bias && s.nq === s.nk && s.headDim % 4 === 0 &&
    [s.q, s.k, s.v, s.out].every((t) => t.tensor.dtype === 'f32' || t.tensor.dtype === 'f16')
  );
}

/**
 * Query rows per chunk: the scores of every head, heads x chunk x nk floats, within the binding
 * limit and `maxBytes`; a multiple of 8 (the matmul's row block) unless the whole set is smaller.
 */
export function queryChunk(ctx: GpuContext, heads: number, nq: number, nk: number, maxBytes = 48 * 2 ** 20): number {
  const cap = Math.min(ctx.limits.maxStorageBufferBindingSize, maxBytes);
  const rows = Math.floor(cap / (heads * nk * 4));
  check(rows >= 1, () => `attention: ${heads} heads x ${nk} keys of scores do not fit one ${cap}-byte binding even one query at a time`);
  if (rows >= nq) return nq;
  return rows >= 8 ? rows - (rows % 8) : rows;
}

/** A [heads, rows, D] view of token rows r0.. of a grid operand (head-major, head dim contiguous). */
function rowsView(t: AttentionSpec['q'], batch: number, r0: number, rows: number, heads: number, D: number): Tensor {
  const [sb, sh, , sc] = t.strides;
  return t.tensor.asStrided([heads, rows, D], [sh, sc, 1], t.offset + batch * sb + r0 * sc);
}

/**
 * SAM's decomposed rel-pos terms of one batch as two batched matmuls of the unscaled queries
 * against sliding windows of the tables, with the key index reversed so that the window is an
 * ordinary forward view (no negative strides):
 *   rel_h[head, qh, qw, e] = q(qh, qw) . Rh[qh + e]   (key row Kh - 1 - e)   [H, Kh, Kw, Kh]
 *   rel_w[head, qw, qh, e] = q(qh, qw) . Rw[qw + e]   (key column Kw - 1 - e) [H, Kw, Kh, Kw]
 * (Rh row qh - kr + Kh - 1 of image_encoder.py's get_rel_pos is row qh + e with e = Kh - 1 - kr.)
 */
function relTerms(ctx: GpuContext, s: AttentionSpec, b: number): { h: Tensor; w: Tensor } {
  const { heads: H, headDim: D } = s;
  const [kh, kw] = [s.nk / s.kCols, s.kCols];
  const [sb, sh, , sc] = s.q.strides;
  const base = s.q.offset + b * sb;
  const qRows = s.q.tensor.asStrided([H, kh, kw, D], [sh, kw * sc, sc, 1], base); // batch (head, qh)
  const qCols = s.q.tensor.asStrided([H, kw, kh, D], [sh, sc, kw * sc, 1], base); // batch (head, qw)
  const rh = s.relPos!.h.asStrided([1, kh, D, kh], [0, D, 1, D], 0);
  const rw = s.relPos!.w.asStrided([1, kw, D, kw], [0, D, 1, D], 0);
  try {
    return { h: matmul(ctx, qRows, rh, { outDtype: 'f32' }), w: matmul(ctx, qCols, rw, { outDtype: 'f32' }) };
  } finally {
    for (const t of [qRows, qCols, rh, rw]) t.dispose();
  }
}

/**
 * The spec's attention (see chunkedEligible) by query chunks. `chunkRows` forces the chunk size
 * (tests: several chunks and a short last one on small grids).
 */
export function chunkedAttention(ctx: GpuContext, s: AttentionSpec, chunkRows?: number): void {
  check(chunkedEligible(s), 'attention: the chunked algorithm takes f32 or f16 self-attention without bias or causal mask');
  const win = s.windows;
  if (win && win.rows * win.cols > 1) {
    windowedAttention(ctx, s, chunkRows);
    return;
  }
  // Tokens of a global grid are evenly spaced: row stride = column stride * columns.
  for (const [name, t] of [['q', s.q], ['k', s.k], ['v', s.v], ['out', s.out]] as const) {
    check(s.nq === s.qCols || t.strides[2] === t.strides[3] * s.qCols, () => `attention: ${name} tokens are not evenly spaced (strides ${t.strides.join(', ')})`);
  }
  const { heads: H, headDim: D, nq: N } = s;
  // Keys padded to a multiple of 4 keep both matmuls in the vec4 nn.Linear layout (matmul-cpu.ts);
  // padded keys are zero and masked out of the softmax.
  const Np = Math.ceil(N / 4) * 4;
  const chunk = chunkRows ?? queryChunk(ctx, H, N, Np);
  const vec = !s.relPos || s.kCols % 4 === 0;
  const red = rowReduction(ctx);
  const grid = { n: Np, n_valid: N, nq: N, rel_kh: s.relPos ? N / s.kCols : 0, rel_kw: s.kCols, neg_inf: -Infinity };
  for (let b = 0; b < s.batch; b++) {
    const rel = s.relPos ? relTerms(ctx, s, b) : null;
    const kView = rowsView(s.k, b, 0, N, H, D);
    const k = Np === N ? kView.ref() : pad(ctx, kView, [0, 0, 0, Np - N]);
    const kt = k.transpose(1, 2); // [H, D, Np]: contiguous along D
    // V^T contiguous [H, D, Np], so that S V is again the nn.Linear layout the fast matmul wants.
    const vtView = rowsView(s.v, b, 0, N, H, D).transpose(1, 2);
    const vt = pad(ctx, vtView, [0, Np - N]);
    const vtB = vt.transpose(1, 2); // [H, Np, D] view, contiguous along keys
    for (const t of [kView, vtView]) t.dispose();
    try {
      for (let q0 = 0; q0 < N; q0 += chunk) {
        const rows = Math.min(chunk, N - q0);
        const q = rowsView(s.q, b, q0, rows, H, D);
        // Scores, softmax and S V in f32 whatever the storage (f16 operands: f32 accumulation, as the fused kernel).
        const scores = matmul(ctx, q, kt, { alpha: s.scale, outDtype: 'f32' }); // [H, rows, Np]
        q.dispose();
        const bind: Record<string, Tensor> = rel ? { s: scores, rel_h: rel.h, rel_w: rel.w } : { s: scores };
        ctx.run(
          softmaxKernel,
          { rel: !!rel, vec, wg: WG, red },
          bind,
          { rows: H * rows, chunk: rows, q0, ...grid },
          grid1d(rowGroups(H * rows, WG, red)),
          { flops: 6 * scores.size, bytes: 2 * scores.byteSize },
        );
        const o = matmul(ctx, scores, vtB); // [H, rows, D] f32; copyInto converts to the output's dtype
        scores.dispose();
        const dst = rowsView(s.out, b, q0, rows, H, D);
        copyInto(ctx, o, dst);
        dst.dispose();
        o.dispose();
      }
    } finally {
      for (const t of [k, kt, vtB, vt, rel?.h, rel?.w]) t?.dispose();
    }
  }
}

/**
 * Windowed self-attention (SAM's image encoder: 14 x 14 windows of a padded grid) as one global
 * attention of heads x batch x windows "heads" of one window each: q, k and v are copied into one
 * tensor [3, heads, batch, window rows, window cols, wh, ww, D] in which every (head, batch,
 * window) block of wh * ww tokens sits at a uniform stride, so one chunked pass covers all windows
 * (the rel-pos tables are shared by heads and windows), and the result is copied back onto the
 * grid. The two copies move 4/3 of the qkv tensor; the matmuls they enable ran the windows of a
 * SAM ViT-B block in about a third of the fused kernel's time on lavapipe.
 */
function windowedAttention(ctx: GpuContext, s: AttentionSpec, chunkRows?: number): void {
  const { rows: nwr, cols: nwc, size: [wh, ww] } = s.windows!;
  const { heads: H, headDim: D, batch: B } = s;
  const blocks = H * B * nwr * nwc;
  const tokens = wh * ww;
  // [heads, batch, window row, window column, row in window, column in window, D] view of a grid operand.
  const windows = (t: AttentionSpec['q']) => {
    const [sb, sh, sr, sc] = t.strides;
    return t.tensor.asStrided([H, B, nwr, nwc, wh, ww, D], [sh, sb, wh * sr, ww * sc, sr, sc, 1], t.offset);
  };
  const packed = ctx.empty([3, blocks, tokens, D], s.q.tensor.dtype);
  const out = ctx.empty([blocks, tokens, D], s.out.tensor.dtype);
  const views: Tensor[] = [];
  try {
    const part = blocks * tokens * D;
    [s.q, s.k, s.v].forEach((t, i) => {
      const src = windows(t);
      const dst = packed.asStrided(src.shape, contiguousStrides(src.shape), i * part);
      views.push(src, dst);
      copyInto(ctx, src, dst);
    });
    const layout = (tensor: Tensor, offset: number): AttentionSpec['q'] => ({ tensor, offset, strides: [0, tokens * D, ww * D, D] });
    chunkedAttention(ctx, {
      ...s,
      q: layout(packed, 0),
      k: layout(packed, part),
      v: layout(packed, 2 * part),
      out: layout(out, 0),
      batch: 1,
      heads: blocks,
      windows: undefined,
    }, chunkRows);
    const dst = windows(s.out);
    const src = out.reshape(dst.shape);
    views.push(dst, src);
    copyInto(ctx, src, dst);
  } finally {
    for (const t of [packed, out, ...views]) t.dispose();
  }
}
