/**
 * Row gather: out[i, :] = table[ids[i], :] (token-embedding lookup).
 *
 * A table may be larger than one storage binding allows (CLIP's 49408 x 768 f32 embedding is
 * 145 MiB; lavapipe binds at most 128 MiB). The table is then bound in chunks of whole rows, each
 * a byte range of the same buffer starting at a multiple of minStorageBufferOffsetAlignment, and
 * the kernel is dispatched once per chunk: every invocation looks up its id and writes only when
 * the row falls inside the chunk, so each output element is written by exactly one dispatch.
 *
 * Ids given as an array are checked on the CPU (an out-of-range id is an IndexError naming its
 * position). Ids already on the GPU cannot be checked without a readback: they are clamped to
 * [0, V - 1] in the kernel, so a bad id yields the first or last row, never garbage memory.
 */
import type { BindingRange, GpuContext } from '../gpu/context.js';
import { BYTES, type DType, isFloat } from '../gpu/dtype.js';
import { SamclipError, check } from '../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';

/** An index outside the valid range of a lookup table. */
export class IndexError extends SamclipError {
  override name = 'IndexError';
}

interface GatherConfig {
  [k: string]: string | number | boolean;
  table: DType;
  ids: DType;
  out: DType;
}

const WG = 256;

const uniforms = defineUniforms({
  total: 'u32',
  d: 'u32',
  v: 'u32',
  ids_off: 'u32',
  row0: 'u32',
  row1: 'u32',
  // Element index, inside the bound range, of element 0 of row `row0`.
  base: 'u32',
});

const gatherKernel = defineKernel({
  name: 'gather',
  uniforms,
  bindings: (c: GatherConfig) => [
    { name: 'table', type: c.table, access: 'read' as const },
    { name: 'ids', type: c.ids, access: 'read' as const },
    { name: 'out', type: c.out, access: 'read_write' as const },
  ],
  source: (c: GatherConfig) => {
    const clamp = c.ids === 'i32' ? 'u32(clamp(ids[u.ids_off + r], 0, i32(u.v) - 1))' : 'min(ids[u.ids_off + r], u.v - 1u)';
    const value = 'table[u.base + (row - u.row0) * u.d + j]';
    return /* wgsl */ `
${FLAT_WG}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flat_wg(wid, nwg) * ${WG}u + lid;
  if (i >= u.total) { return; }
  let r = i / u.d;
  let j = i % u.d;
  let row = ${clamp};
  if (row < u.row0 || row >= u.row1) { return; }
  out[i] = ${c.table === c.out ? value : `${c.out}(f32(${value}))`};
}
`;
  },
});

export interface GatherOptions {
  /** Output dtype (f32 or f16); defaults to the table's. */
  outDtype?: DType;
  /** Largest byte range bound at once; defaults to the adapter's maxStorageBufferBindingSize. */
  maxChunkBytes?: number;
}

/** One bound byte range of the table covering rows [row0, row1). */
interface Chunk {
  row0: number;
  row1: number;
  binding: Tensor | BindingRange;
  base: number;
}

function planChunks(ctx: GpuContext, table: Tensor, limit: number): Chunk[] {
  const [V, D] = [table.dim(0), table.dim(1)];
  const eb = BYTES[table.dtype];
  const whole = Math.ceil(table.storage.byteLength / 16) * 16;
  if (whole <= limit) return [{ row0: 0, row1: V, binding: table, base: table.offset }];
  const align = ctx.limits.minStorageOffsetAlignment;
  const rowBytes = D * eb;
  // A chunk starts at the aligned address at or below its first row: up to align - eb bytes early.
  check(rowBytes + align - eb <= limit,
    () => `gatherRows: one row of ${table} (${rowBytes} bytes) plus the offset alignment (${align}) does not fit a ${limit}-byte binding`);
  const chunks: Chunk[] = [];
  for (let r = 0; r < V; ) {
    const start = (table.offset + r * D) * eb;
    const byteOffset = Math.floor(start / align) * align;
    const rows = Math.min(V - r, Math.floor((byteOffset + limit - start) / rowBytes));
    const end = start + rows * rowBytes;
    const byteSize = Math.ceil((end - byteOffset) / 4) * 4;
    chunks.push({ row0: r, row1: r + rows, binding: { tensor: table, byteOffset, byteSize }, base: (start - byteOffset) / eb });
    r += rows;
  }
  return chunks;
}

/**
 * Host row ids for `gatherRows` on `table`, checked (an IndexError names the first bad id and its
 * position) and uploaded as an i32 tensor. Callers that upload ids ahead of a replayed call use it.
 */
export function uploadRowIds(ctx: GpuContext, ids: Int32Array | readonly number[], table: Tensor): Tensor {
  const V = table.dim(0);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new IndexError(`gatherRows: id ${id} at position ${i} is outside [0, ${V}) for table ${table}`);
    }
  }
  return ctx.upload(ids instanceof Int32Array ? ids : Int32Array.from(ids), [ids.length], 'i32');
}

/**
 * Gather rows of `table` [V, D] (contiguous, f32 or f16) at `ids`: an i32/u32 tensor of any shape
 * (contiguous; the output is [...ids.shape, D]) or a host array (output [n, D]).
 */
export function gatherRows(
  ctx: GpuContext,
  table: Tensor,
  ids: Tensor | Int32Array | readonly number[],
  opts: GatherOptions = {},
): Tensor {
  const op = 'gatherRows';
  check(table.ndim === 2 && table.isContiguous, () => `${op}: table must be a contiguous [V, D] tensor, got ${table}`);
  check(isFloat(table.dtype), () => `${op}: table must be f32 or f16, got ${table}`);
  const [V, D] = [table.dim(0), table.dim(1)];
  check(V >= 1, () => `${op}: table ${table} has no rows`);
  const outDtype = opts.outDtype ?? table.dtype;
  check(isFloat(outDtype), () => `${op}: output must be f32 or f16, got ${outDtype}`);
  const maxBinding = ctx.limits.maxStorageBufferBindingSize;
  const limit = Math.min(opts.maxChunkBytes ?? maxBinding, maxBinding);
  check(Number.isInteger(limit) && limit % 4 === 0 && limit >= ctx.limits.minStorageOffsetAlignment,
    () => `${op}: maxChunkBytes ${limit} must be a multiple of 4 and at least ${ctx.limits.minStorageOffsetAlignment}`);

  let idT: Tensor;
  let ownIds = false;
  if (ids instanceof Int32Array || Array.isArray(ids)) {
    idT = uploadRowIds(ctx, ids as Int32Array | readonly number[], table);
    ownIds = true;
  } else {
    idT = ids as Tensor;
    check(idT.dtype === 'i32' || idT.dtype === 'u32', () => `${op}: ids must be i32 or u32, got ${idT}`);
    check(idT.isContiguous, () => `${op}: ids ${idT} must be contiguous`);
  }
  try {
    const out = ctx.empty([...idT.shape, D], outDtype);
    const total = idT.size * D;
    if (total === 0) return out;
    check(total <= 0xffffffff, () => `${op}: output ${out} has more than 2^32 elements`);
    const config: GatherConfig = { table: table.dtype, ids: idT.dtype, out: outDtype };
    for (const c of planChunks(ctx, table, limit)) {
      const values = { total, d: D, v: V, ids_off: idT.offset, row0: c.row0, row1: c.row1, base: c.base };
      ctx.run(gatherKernel, config, { table: c.binding, ids: idT, out }, values, grid1d(Math.ceil(total / WG)), {
        bytes: 2 * out.byteSize + idT.byteSize,
      });
    }
    return out;
  } finally {
    if (ownIds) idT.dispose();
  }
}
