/**
 * Host overhead: bind groups are cached per pipeline and exact resources (the uniform block's arena
 * offset is dynamic), so repeating a computation on the same pooled buffers creates none, and the
 * results stay right when the uniform values differ between calls.
 */
import { describe, expect, it } from 'vitest';
import { layerNorm } from '../../src/kernels/layernorm.js';
import { linear } from '../../src/kernels/matmul.js';
import { useGpu } from '../helpers/gpu.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

describe('bind-group reuse', () => {
  it('a repeated model-like chain creates no new bind groups and gives the same numbers', async () => {
    const ctx = gpu();
    const rng = new Rng(5);
    const x = ctx.upload(rng.randn(33 * 64), [33, 64]);
    const w = ctx.upload(rng.randn(48 * 64), [48, 64]);
    const g = ctx.upload(rng.randn(48, 0.1, 1), [48]);
    const chain = () => ctx.scope(() => layerNorm(ctx, linear(ctx, x, w), g, null, 1e-5));
    // The pool hands buffers out in a different order on the first repeat; from then on a run
    // meets the same buffers as the one before it.
    let a: Float32Array | Int32Array | Uint32Array = new Float32Array(0);
    for (let i = 0; i < 2; i++) {
      const first = chain();
      a = await ctx.read(first);
      first.dispose();
    }
    const created = ctx.bindGroupStats.created;
    const reused = ctx.bindGroupStats.reused;
    const second = chain();
    const b = await ctx.read(second);
    second.dispose();
    expect(ctx.bindGroupStats.created).toBe(created);
    expect(ctx.bindGroupStats.reused).toBe(reused + 2);
    expect(b).toEqual(a);
  });

  it('different uniforms on the same buffers reuse the bind group and still apply', async () => {
    const ctx = gpu();
    const x = ctx.upload(Float32Array.from({ length: 16 }, (_, i) => i + 1), [4, 4]);
    const ln = async (eps: number) => {
      const y = layerNorm(ctx, x, null, null, eps);
      const v = await ctx.read(y);
      y.dispose();
      return v;
    };
    const small = await ln(1e-5);
    const huge = await ln(1e6); // eps dominates the variance: outputs shrink towards 0
    expect(Math.abs(huge[0]!)).toBeLessThan(Math.abs(small[0]!) / 100);
    expect(ctx.bindGroupStats.reused).toBeGreaterThan(0);
  });

  it('buffers are handed out oldest first, whatever order they were released in', () => {
    const ctx = gpu();
    const take = () => [0, 1, 2].map(() => ctx.empty([64]));
    const first = take();
    const buffers = first.map((t) => t.buffer);
    for (const t of first) t.dispose();
    const again = take();
    expect(again.map((t) => t.buffer)).toEqual(buffers);
    for (const t of [...again].reverse()) t.dispose(); // the other release order
    const third = take();
    expect(third.map((t) => t.buffer)).toEqual(buffers);
    for (const t of [third[1]!, third[0]!, third[2]!]) t.dispose();
    const fourth = take();
    expect(fourth.map((t) => t.buffer)).toEqual(buffers);
    for (const t of fourth) t.dispose();
  });

  it('a decoder-like call whose scope releases tensors in a varying order creates no bind groups once warm', async () => {
    const ctx = gpu();
    const rng = new Rng(9);
    const w = ctx.upload(rng.randn(32 * 32), [32, 32]);
    let call = 0;
    // Each call makes the same tensors but releases them in a different order (as scopes that
    // close over branches do); the next call must still meet the same buffers in the same roles.
    const step = () => {
      const a = ctx.upload(rng.randn(7 * 32), [7, 32]);
      const b = linear(ctx, a, w);
      const c = linear(ctx, b, w);
      const d = linear(ctx, c, w);
      const orders = [[a, b, c], [c, a, b], [b, c, a], [c, b, a]];
      for (const t of orders[call % orders.length]!) t.dispose();
      call++;
      return d;
    };
    for (let i = 0; i < 3; i++) step().dispose();
    await ctx.sync();
    const created = ctx.bindGroupStats.created;
    for (let i = 0; i < 5; i++) step().dispose();
    await ctx.sync();
    expect(ctx.bindGroupStats.created).toBe(created);
  });
});
