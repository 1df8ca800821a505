/**
 * SAM's decomposed relative-position terms (segment_anything/modeling/image_encoder.py,
 * add_decomposed_rel_pos), computed once per attention call into a [z, head, query, Kh + Kw]
 * buffer: linear in the token count, never N x N. Both attention algorithms (the fused kernel in
 * attention.ts and the chunked one in attention-chunked.ts) add rel[.., key row] and
 * rel[.., Kh + key column] to the score of a key.
 */
import type { GpuContext } from '../gpu/context.js';
import type { DType } from '../gpu/dtype.js';
import { type BindingDecl, FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import type { AttentionSpec } from './attention.js';

/** Element offset of token n of an operand in window (wy, wx), shared by both kernels. */
export const TOKEN_ADDR = /* wgsl */ `
fn token_addr(n: u32, cols: u32, wy: u32, wx: u32, s: vec4<u32>) -> u32 {
  return (wy * u.win_rows + n / cols) * s.z + (wx * u.win_cols + n % cols) * s.w;
}`;

interface RelConfig {
  [k: string]: string | number | boolean;
  q: DType;
  table: DType;
}

/**
 * rel[z, head, n, e] = q_n . Rh[qh - e + Kh - 1] for e < Kh, and q_n . Rw[qw - (e - Kh) + Kw - 1]
 * beyond: SAM's decomposed relative-position terms from the unscaled query, one output per thread.
 */
const relUniforms = defineUniforms({
  total: 'u32',
  nq: 'u32',
  q_cols: 'u32',
  win_rows: 'u32',
  win_cols: 'u32',
  nwx: 'u32',
  nw: 'u32',
  heads: 'u32',
  head_dim: 'u32',
  rel_kh: 'u32',
  rel_kw: 'u32',
  q_off: 'u32',
  q_str: 'vec4u',
});

const relKernel = defineKernel({
  name: 'attention_relpos',
  uniforms: relUniforms,
  bindings: (c: RelConfig): BindingDecl[] => [
    { name: 'q', type: c.q, access: 'read' },
    { name: 'rel_pos_h', type: c.table, access: 'read' },
    { name: 'rel_pos_w', type: c.table, access: 'read' },
    { name: 'rel', type: 'f32', access: 'read_write' },
  ],
  source: () => /* wgsl */ `
${TOKEN_ADDR}
${FLAT_WG}
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_wg(wid, nwg) * 64u + lid.x;
  if (i >= u.total) { return; }
  let row_len = u.rel_kh + u.rel_kw;
  let e = i % row_len;
  let n = (i / row_len) % u.nq;
  let head = (i / (row_len * u.nq)) % u.heads;
  let z = i / (row_len * u.nq * u.heads);
  let b = z / u.nw;
  let w = z % u.nw;
  let qa = u.q_off + b * u.q_str.x + head * u.q_str.y + token_addr(n, u.q_cols, w / u.nwx, w % u.nwx, u.q_str);
  var s = 0.0;
  if (e < u.rel_kh) {
    let row = (n / u.q_cols + u.rel_kh - 1u - e) * u.head_dim;
    for (var d = 0u; d < u.head_dim; d++) { s += f32(q[qa + d]) * f32(rel_pos_h[row + d]); }
  } else {
    let row = (n % u.q_cols + u.rel_kw - 1u - (e - u.rel_kh)) * u.head_dim;
    for (var d = 0u; d < u.head_dim; d++) { s += f32(q[qa + d]) * f32(rel_pos_w[row + d]); }
  }
  rel[i] = s;
}
`,
});

/** The window grid of a spec (one 1 x 1 "window" for global attention). */
export function windowsOf(s: AttentionSpec): { rows: number; cols: number; size: [number, number] } {
  return s.windows ?? { rows: 1, cols: 1, size: [0, 0] };
}

/** The uniform fields that place queries on the window grid, common to both attention kernels. */
export function gridUniforms(s: AttentionSpec) {
  const win = windowsOf(s);
  return {
    nq: s.nq,
    q_cols: s.qCols,
    win_rows: win.size[0],
    win_cols: win.size[1],
    nwx: win.cols,
    nw: win.rows * win.cols,
    heads: s.heads,
  };
}

/** The rel-pos terms of a spec with `relPos`, else null. The caller disposes the result. */
export function relPosTerms(ctx: GpuContext, s: AttentionSpec): Tensor | null {
  if (!s.relPos) return null;
  const win = windowsOf(s);
  const z = s.batch * win.rows * win.cols;
  const relKh = s.nk / s.kCols;
  const rel = ctx.empty([z, s.heads, s.nq, relKh + s.kCols], 'f32');
  const total = rel.size;
  ctx.run(
    relKernel,
    { q: s.q.tensor.dtype, table: s.relPos.h.dtype },
    { q: s.q.tensor, rel_pos_h: s.relPos.h, rel_pos_w: s.relPos.w, rel },
    {
      total,
      ...gridUniforms(s),
      head_dim: s.headDim,
      rel_kh: relKh,
      rel_kw: s.kCols,
      q_off: s.q.offset,
      q_str: s.q.strides,
    },
    grid1d(Math.ceil(total / 64)),
    { flops: 2 * total * s.headDim },
  );
  return rel;
}
