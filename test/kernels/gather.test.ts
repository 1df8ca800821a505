import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import { type DType, fromF16Array, toF16Array } from '../../src/gpu/dtype.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { gatherRowsCpu } from '../../src/kernels/cpu/gather.js';
import { IndexError, gatherRows } from '../../src/kernels/gather.js';
import { expectClose, type Tolerance } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { runOnnx } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

const roundF16 = (a: Float32Array) => fromF16Array(toF16Array(a));
const exact: Tolerance = { relL2: 0, atol: 0, rtol: 0 };

/** ctx.upload of an odd number of f16 values fails (reported to the lead): pad by one and view. */
function upload(ctx: GpuContext, data: Float32Array, shape: readonly number[], dtype: DType = 'f32'): Tensor {
  if (dtype !== 'f16' || data.length % 2 === 0) return ctx.upload(data, shape, dtype);
  const padded = new Float32Array(data.length + 1);
  padded.set(data);
  return ctx.upload(padded, [padded.length], 'f16').slice(0, 0, data.length).reshape(shape);
}

/** ONNX Gather (axis 0, int32 indices) of the table. */
function reference(table: Float32Array, V: number, D: number, ids: Int32Array, idShape: number[]): Promise<Float32Array> {
  return runOnnx(
    {
      nodes: [{ op: 'Gather', inputs: ['T', 'I'], outputs: ['Y'], attrs: { axis: 0 } }],
      inputs: [{ name: 'T', dims: [V, D] }, { name: 'I', dims: idShape, type: 'int32' }],
      outputs: ['Y'],
    },
    { T: { data: table, dims: [V, D] }, I: { data: ids, dims: idShape } },
  );
}

interface Case {
  name: string;
  V: number;
  D: number;
  ids: number[];
  idShape?: number[];
  /** Pass ids as an i32 tensor (else as a host array). */
  gpuIds?: boolean;
  dtype?: DType;
  outDtype?: DType;
  maxChunkBytes?: number;
  /** Rows of padding before the table inside its buffer (a non-zero element offset). */
  lead?: number;
}

const ids77 = Array.from({ length: 77 }, (_, i) => (i * 37 + 5) % 50);
const cases: Case[] = [
  { name: 'host ids with duplicates', V: 50, D: 33, ids: [0, 49, 7, 7, 12, 0, 33] },
  { name: 'i32 id tensor [2, 5]', V: 50, D: 33, ids: [1, 2, 3, 4, 5, 45, 46, 47, 48, 49], idShape: [2, 5], gpuIds: true },
  { name: 'single row table, D = 1', V: 1, D: 1, ids: [0, 0, 0] },
  { name: 'f16 table', V: 50, D: 33, ids: ids77, dtype: 'f16' },
  { name: 'f16 table to f32 output', V: 50, D: 33, ids: ids77, dtype: 'f16', outDtype: 'f32' },
  // 33 f32 = 132-byte rows, 1 KiB bindings: rows straddle the 256-byte alignment, 7 rows a chunk.
  { name: 'chunked (1 KiB bindings), unaligned rows', V: 50, D: 33, ids: ids77, maxChunkBytes: 1024 },
  { name: 'chunked, table at a non-zero offset', V: 50, D: 33, ids: ids77, maxChunkBytes: 1024, lead: 3 },
  { name: 'chunked f16, GPU ids', V: 50, D: 33, ids: ids77, maxChunkBytes: 512, dtype: 'f16', gpuIds: true },
];

describe('gatherRows vs onnxruntime', () => {
  cases.forEach((c, idx) => {
    it(c.name, async () => {
      const ctx = gpu();
      const rng = new Rng(600 + idx);
      const dt = c.dtype ?? 'f32';
      const lead = c.lead ?? 0;
      let data = rng.randn((c.V + lead) * c.D);
      if (dt === 'f16') data = roundF16(data);
      const whole = upload(ctx, data, [c.V + lead, c.D], dt);
      const table = lead ? whole.slice(0, lead, lead + c.V) : whole;
      const tableData = data.subarray(lead * c.D);
      const idArr = Int32Array.from(c.ids);
      const idShape = c.idShape ?? [c.ids.length];
      const ids = c.gpuIds ? ctx.upload(idArr, idShape, 'i32') : idArr;
      // Record the table bindings: chunked cases must take several, each within maxChunkBytes and
      // starting at an aligned byte offset.
      const ranges: { byteOffset: number; byteSize: number }[] = [];
      const run = ctx.run;
      ctx.run = ((def, config, bindings, values, groups, cost) => {
        const t = bindings.table!;
        ranges.push('byteOffset' in t ? t : { byteOffset: 0, byteSize: t.storage.byteLength });
        return run.call(ctx, def, config, bindings, values, groups, cost);
      }) as typeof ctx.run;
      let y: Tensor;
      try {
        y = gatherRows(ctx, table, ids, { outDtype: c.outDtype, maxChunkBytes: c.maxChunkBytes });
      } finally {
        ctx.run = run;
      }
      if (c.maxChunkBytes) {
        expect(ranges.length).toBeGreaterThan(5);
        for (const r of ranges) {
          expect(r.byteSize).toBeLessThanOrEqual(c.maxChunkBytes);
          expect(r.byteOffset % ctx.limits.minStorageOffsetAlignment).toBe(0);
        }
      } else {
        expect(ranges.length).toBe(1);
      }
      expect(y.shape).toEqual([...idShape, c.D]);
      expect(y.dtype).toBe(c.outDtype ?? dt);
      const want = await reference(tableData, c.V, c.D, idArr, idShape);
      expectClose(await ctx.read(y), want, exact, `gather ${c.name}`, y.shape);
    });
  });

  it('a real CLIP-sized table (49408 x 768 f32 = 145 MiB > one binding) in chunks', async () => {
    const ctx = gpu();
    const [V, D] = [49408, 768];
    expect(V * D * 4).toBeGreaterThan(ctx.limits.maxStorageBufferBindingSize);
    // Each value names its row and column (mod 128) exactly: 128 * row + col % 128 < 2^24.
    const data = new Float32Array(V * D);
    for (let r = 0; r < V; r++) for (let j = 0; j < D; j++) data[r * D + j] = r * 128 + (j % 128);
    const table = ctx.upload(data, [V, D]);
    // Start-of-text, a few tokens from both chunks, end-of-text (49407), then padding zeros.
    const ids = [49406, 320, 1929, 539, 320, 49000, 4558, 25000, 43612, 49407];
    while (ids.length < 77) ids.push(0);
    const before = ctx.dispatchCount;
    const y = gatherRows(ctx, table, ids);
    expect(ctx.dispatchCount - before).toBe(2);
    expectClose(await ctx.read(y), gatherRowsCpu(data, D, ids), exact, 'clip embedding gather', y.shape);
    table.dispose();
  });

  it('matches the CPU reference', async () => {
    const ctx = gpu();
    const [V, D] = [20, 7];
    const data = new Rng(700).randn(V * D);
    const ids = [19, 0, 5, 5, 11];
    const y = gatherRows(ctx, ctx.upload(data, [V, D]), ids, { maxChunkBytes: 284 });
    expectClose(await ctx.read(y), gatherRowsCpu(data, D, ids), exact, 'gather cpu', y.shape);
  });

  it('host ids out of range are an IndexError; GPU ids are clamped', async () => {
    const ctx = gpu();
    const [V, D] = [10, 4];
    const data = new Rng(701).randn(V * D);
    const table = ctx.upload(data, [V, D]);
    expect(() => gatherRows(ctx, table, [0, 10])).toThrow(IndexError);
    expect(() => gatherRows(ctx, table, [0, 3, -1])).toThrow(/gatherRows: id -1 at position 2 is outside \[0, 10\)/);
    expect(() => gatherRows(ctx, table, [1.5])).toThrow(/id 1.5 at position 0/);
    const y = gatherRows(ctx, table, ctx.upload(Int32Array.from([-7, 99, 4]), [3], 'i32'));
    expectClose(await ctx.read(y), gatherRowsCpu(data, D, [0, V - 1, 4]), exact, 'clamped ids', y.shape);
  });

  it('rejects bad inputs before dispatch', () => {
    const ctx = gpu();
    const table = ctx.empty([10, 4]);
    expect(() => gatherRows(ctx, table.transpose(0, 1), [0])).toThrow(/table must be a contiguous \[V, D\] tensor/);
    expect(() => gatherRows(ctx, table, ctx.empty([3]))).toThrow(/ids must be i32 or u32, got Tensor\(\[3\], f32\)/);
    expect(() => gatherRows(ctx, table, [0], { maxChunkBytes: 100 })).toThrow(/maxChunkBytes 100 must be a multiple of 4 and at least 256/);
    expect(() => gatherRows(ctx, ctx.empty([10, 400]), [0], { maxChunkBytes: 1024 })).toThrow(/one row of .* \(1600 bytes\) plus the offset alignment \(256\) does not fit a 1024-byte binding/);
  });
});
