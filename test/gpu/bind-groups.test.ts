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
});
