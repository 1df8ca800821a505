import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { acquireDevice } from '../../src/gpu/device.js';
import { GpuUnavailableError, ShapeError, WgslCompileError } from '../../src/gpu/errors.js';
import { defineKernel, pipelineKey, renderWgsl } from '../../src/gpu/kernel.js';
import { defineUniforms } from '../../src/gpu/uniforms.js';
import { matmul } from '../../src/kernels/matmul.js';
import { useGpu } from '../helpers/gpu.js';

const gpu = useGpu({ profile: true });

const fill = defineKernel({
  name: 'test_fill',
  uniforms: defineUniforms({ n: 'u32', value: 'f32' }),
  bindings: () => [{ name: 'out', type: 'f32', access: 'read_write' }],
  source: (c: { broken: boolean }) => `
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < u.n) { out[g.x] = u.value${c.broken ? ' +* 1.0' : ''}; }
}`,
});

describe('uniform blocks and pipeline keys', () => {
  it('lays out vec4 fields on 16-byte boundaries and packs them', () => {
    const layout = defineUniforms({ a: 'u32', b: 'f32', s: 'vec4u', c: 'i32' });
    expect(layout.byteSize).toBe(48);
    expect(layout.wgslStruct).toContain('s: vec4<u32>');
    const dv = new DataView(new ArrayBuffer(48));
    layout.pack({ a: 7, b: 1.5, s: [1, 2, 3, 4], c: -2 }, dv, 0);
    expect([dv.getUint32(0, true), dv.getFloat32(4, true), dv.getUint32(16, true), dv.getUint32(28, true), dv.getInt32(32, true)]).toEqual([7, 1.5, 1, 4, -2]);
    expect(() => layout.pack({ a: -1, b: 0, s: [], c: 0 }, dv, 0)).toThrow(/uniform 'a' must be a u32/);
  });

  it('derives keys from the config, independent of key order', () => {
    expect(pipelineKey('k', { b: 1, a: 'x' })).toBe(pipelineKey('k', { a: 'x', b: 1 }));
    expect(pipelineKey('k', { a: 1 })).not.toBe(pipelineKey('k', { a: 2 }));
    const code = renderWgsl(fill, { broken: false });
    expect(code).toContain('var<storage, read_write> out: array<f32>');
    expect(code).toContain('var<uniform> u: Uniforms');
  });
});

describe('GpuContext', () => {
  it('reuses pooled buffers and reports live and peak bytes', async () => {
    const ctx = gpu();
    await ctx.sync();
    const before = ctx.poolStats();
    const a = ctx.empty([1000]);
    const peak = ctx.poolStats().liveBytes;
    a.dispose();
    const b = ctx.empty([1000]);
    const after = ctx.poolStats();
    expect(after.reuses).toBe(before.reuses + 1);
    expect(after.liveBytes).toBe(peak);
    expect(after.peakLiveBytes).toBeGreaterThanOrEqual(peak);
    b.dispose();
    expect(ctx.poolStats().liveBytes).toBe(before.liveBytes);
  });

  it('scope frees temporaries and keeps returned tensors', async () => {
    const ctx = gpu();
    const live0 = ctx.poolStats().liveBytes;
    const kept = ctx.scope(() => {
      const t1 = ctx.upload([1, 2, 3, 4], [2, 2]);
      const t2 = ctx.upload([1, 0, 0, 1], [2, 2]);
      return { y: matmul(ctx, t1, t2) };
    });
    expect(await ctx.read(kept.y)).toEqual(new Float32Array([1, 2, 3, 4]));
    kept.y.dispose();
    expect(ctx.poolStats().liveBytes).toBe(live0);
  });

  it('views share storage; misuse is reported with shapes', async () => {
    const ctx = gpu();
    const t = ctx.upload([0, 1, 2, 3, 4, 5], [2, 3]);
    const tt = t.transpose(0, 1);
    expect(tt.shape).toEqual([3, 2]);
    expect(tt.isContiguous).toBe(false);
    expect(() => tt.reshape([6])).toThrow(ShapeError);
    expect(() => t.reshape([4, 2])).toThrow(/cannot view \[2, 3\] as \[4, 2\]/);
    expect(() => t.slice(1, 2, 5)).toThrow(/out of range on dim 1/);
    expect(await ctx.read(t.slice(0, 1, 2))).toEqual(new Float32Array([3, 4, 5])); // offset view
    t.dispose();
    expect(() => tt.buffer).not.toThrow(); // the view keeps the storage alive
    tt.dispose();
    expect(() => tt.buffer).toThrow(/disposed/);
  });

  it('refuses a binding larger than maxStorageBufferBindingSize with a clear message', () => {
    const ctx = gpu();
    const limit = ctx.limits.maxStorageBufferBindingSize;
    const rows = Math.ceil(limit / 4 / 1024) + 1;
    const big = ctx.empty([rows, 1024]);
    const w = ctx.empty([1024, 8]);
    expect(() => matmul(ctx, big, w)).toThrow(/binding 'a'.*over the adapter's maxStorageBufferBindingSize/);
    big.dispose();
    w.dispose();
  });

  it('one pipeline per config, whatever order its keys were written in (dispatch-time lookup by JSON)', async () => {
    const ctx = gpu();
    const keyed = defineKernel({
      name: 'test_keyed',
      uniforms: defineUniforms({ n: 'u32' }),
      bindings: () => [{ name: 'out', type: 'f32', access: 'read_write' }],
      source: (c: { value: number; negate: boolean }) => `
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < u.n) { out[g.x] = ${c.negate ? '-' : ''}${c.value.toFixed(1)}; }
}`,
    });
    const before = ctx.pipelines.size;
    const p1 = ctx.pipelines.get(keyed, { value: 2, negate: true });
    const p2 = ctx.pipelines.get(keyed, { negate: true, value: 2 });
    const p3 = ctx.pipelines.get(keyed, { value: 2, negate: false });
    expect(p2).toBe(p1);
    expect(p3).not.toBe(p1);
    expect(ctx.pipelines.size).toBe(before + 2);
    const out = ctx.empty([4]);
    ctx.run(keyed, { negate: true, value: 2 }, { out }, { n: 4 }, [1, 1, 1]);
    expect(Array.from(await ctx.read(out))).toEqual([-2, -2, -2, -2]);
    ctx.run(keyed, { value: 2, negate: false }, { out }, { n: 4 }, [1, 1, 1]);
    expect(Array.from(await ctx.read(out))).toEqual([2, 2, 2, 2]);
    out.dispose();
  });

  it('raises WGSL compile errors with line:col, the key and the source', async () => {
    const ctx = gpu();
    const out = ctx.empty([4]);
    ctx.run(fill, { broken: true }, { out }, { n: 4, value: 1 }, [1, 1, 1]);
    const err = await ctx.sync().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WgslCompileError);
    expect((err as Error).message).toMatch(/test_fill\{"broken":true\}/);
    expect((err as Error).message).toMatch(/\d+:\d+ /);
    await ctx.sync().catch(() => undefined); // drain the batch error of the invalid pipeline
    out.dispose();
  });

  it('surfaces GPU validation errors at the next sync, naming the kernel', async () => {
    const ctx = gpu();
    const out = ctx.empty([4]);
    // A binding offset that is not a multiple of 256 is invalid: WebGPU rejects the bind group.
    ctx.run(fill, { broken: false }, { out: { tensor: out, byteOffset: 4, byteSize: 16 } }, { n: 4, value: 1 }, [1, 1, 1]);
    await expect(ctx.sync()).rejects.toThrow(/GPU error in a batch running \[test_fill\]/);
    await ctx.sync(); // the error was consumed: the context is usable again
    out.dispose();
  });

  it('profiles dispatches: per-kernel table and a Chrome trace', async () => {
    const ctx = gpu();
    expect(ctx.profiler).not.toBeNull();
    ctx.profiler!.clear();
    const a = ctx.upload(new Float32Array(64 * 48).fill(1), [64, 48]);
    const b = ctx.upload(new Float32Array(48 * 32).fill(1), [48, 32]);
    ctx.stage('demo', () => {
      matmul(ctx, a, b).dispose();
      matmul(ctx, a, b).dispose();
    });
    await ctx.sync();
    const rows = ctx.profiler!.kernelTable();
    const mm = rows.find((r) => r.name === 'matmul');
    expect(mm?.count).toBe(2);
    expect(mm!.totalMs).toBeGreaterThan(0);
    expect(mm!.gflops).toBeGreaterThan(0);
    expect(ctx.profiler!.stageTable().map((r) => r.name)).toContain('demo');
    expect(ctx.profiler!.formatTable()).toMatch(/matmul\s+[\d.]+\s+2\s/);
    const trace = ctx.profiler!.chromeTrace();
    const ev = trace.traceEvents.filter((e) => (e as { ph: string }).ph === 'X') as { name: string; dur: number; cat: string }[];
    expect(ev).toHaveLength(2);
    expect(ev[0]!.cat).toBe('demo');
    expect(JSON.parse(JSON.stringify(trace)).traceEvents.length).toBe(4);
  });
});

describe('device acquisition', () => {
  it('explains what to install when there is no adapter', async () => {
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    const err = await acquireDevice({ gpu: noAdapter }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuUnavailableError);
    expect((err as Error).message).toMatch(/lavapipe.*bookworm-backports.*mesa-vulkan-drivers/s);
  });

  it('reports the adapter and the optional features it got', () => {
    const ctx = gpu();
    expect(ctx.description).toMatch(/\S/);
    expect(typeof ctx.features.f16).toBe('boolean');
    expect(ctx.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 << 20);
  });

  it('lets a Node process that used the GPU exit by itself', () => {
    const script = `
      import { GpuContext } from './src/gpu/context.ts';
      import { matmul } from './src/kernels/matmul.ts';
      const ctx = await GpuContext.create();
      const y = matmul(ctx, ctx.upload([1, 2], [1, 2]), ctx.upload([3, 4], [2, 1]));
      console.log((await ctx.read(y))[0]);
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url).pathname,
      timeout: 60_000,
      encoding: 'utf8',
    });
    expect(r.signal).toBeNull();
    expect(r.stdout.trim()).toBe('11');
    expect(r.status).toBe(0);
  });
});
