/**
 * Dispatch plans (src/gpu/dispatch-plan.ts): the second call with a key records, later calls
 * replay without running the function, and a replay gives exactly what running it gives: for new
 * inputs of the same layout, with earlier results kept, and never when a rule is broken (a host
 * write, an external tensor freed, another layout, other kernel choices, over budget).
 */
import { describe, expect, it, vi } from 'vitest';
import { GpuContext } from '../../src/gpu/context.js';
import { DispatchPlans } from '../../src/gpu/dispatch-plan.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { add } from '../../src/kernels/elementwise.js';
import { layerNorm } from '../../src/kernels/layernorm.js';
import { linear } from '../../src/kernels/matmul.js';
import { useGpu, withTuning } from '../helpers/gpu.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();
const [M, K, N] = [24, 32, 40];

/** A small model-like chain: linear -> layernorm, plus a residual, over one input and two weights. */
function chain(ctx: GpuContext, seed: number) {
  const rng = new Rng(seed);
  const w = ctx.upload(rng.randn(N * K), [N, K]);
  const g = ctx.upload(rng.randn(N, 0.1, 1), [N]);
  let calls = 0;
  const fn = (x: Tensor, r: Tensor) => () => {
    calls++;
    return ctx.scope(() => {
      const h = layerNorm(ctx, linear(ctx, x, w), g, null, 1e-5);
      return { h, sum: add(ctx, h, r) };
    });
  };
  return { w, g, fn, calls: () => calls };
}

async function readAll(ctx: GpuContext, out: { h: Tensor; sum: Tensor }): Promise<[Float32Array, Float32Array]> {
  return [(await ctx.read(out.h)) as Float32Array, (await ctx.read(out.sum)) as Float32Array];
}

describe('dispatch plans', () => {
  it('records on the second call, then replays without the code, matching fresh runs for new inputs', async () => {
    const ctx = gpu();
    const { fn, calls } = chain(ctx, 1);
    const plans = new DispatchPlans();
    const rng = new Rng(2);
    const kept: { h: Tensor; sum: Tensor }[] = [];
    const inputs: Tensor[] = [];
    for (let i = 0; i < 5; i++) {
      const x = ctx.upload(rng.randn(M * K), [M, K]);
      const r = ctx.upload(rng.randn(M * N), [M, N]);
      const d0 = ctx.dispatchCount;
      const out = plans.run(ctx, 'chain', [x, r], fn(x, r));
      const dispatched = ctx.dispatchCount - d0;
      const fresh = fn(x, r)();
      expect(dispatched, `call ${i + 1}: dispatches`).toBe(3);
      expect(await readAll(ctx, out), `call ${i + 1}`).toEqual(await readAll(ctx, fresh));
      fresh.h.dispose();
      fresh.sum.dispose();
      kept.push(out);
      inputs.push(x, r); // kept alive, so each call's inputs live in other buffers (rebound)
    }
    // Calls 1 and 2 ran the code (plus one fresh run per call); 3-5 were replays.
    expect(calls()).toBe(2 + 5);
    expect(plans.stats().plans).toBe(1);
    // Results of earlier calls are copies: later replays did not overwrite them.
    const values = await Promise.all(kept.map((o) => readAll(ctx, o)));
    for (let i = 1; i < values.length; i++) expect(values[i]![0]).not.toEqual(values[i - 1]![0]);
    for (const t of [...kept.flatMap((o) => Object.values(o)), ...inputs]) t.dispose();
    plans.dispose();
  });

  it('replays take and give back pool buffers as the code does, and reuse their bind groups', async () => {
    const ctx = gpu();
    const { fn, calls } = chain(ctx, 3);
    const x = ctx.upload(new Rng(4).randn(M * K), [M, K]);
    const r = ctx.upload(new Rng(5).randn(M * N), [M, N]);
    await ctx.sync();
    const before = ctx.poolStats();
    const plans = new DispatchPlans();
    for (let i = 0; i < 3; i++) ctx.scope(() => void plans.run(ctx, 'chain', [x, r], fn(x, r)));
    const created = ctx.bindGroupStats.created;
    const reserved = ctx.poolStats().reservedBytes;
    for (let i = 0; i < 3; i++) ctx.scope(() => void plans.run(ctx, 'chain', [x, r], fn(x, r)));
    await ctx.sync();
    expect(calls()).toBe(2);
    expect(ctx.poolStats().liveBytes, 'every result freed by its scope').toBe(before.liveBytes);
    expect(ctx.poolStats().reservedBytes, 'steady replays allocate nothing new').toBe(reserved);
    expect(ctx.bindGroupStats.created, 'steady replays meet the same buffers: no new bind groups').toBe(created);
    plans.dispose();
  });

  it('a host write inside the call refuses the recording; every call runs the code', async () => {
    const ctx = gpu();
    const plans = new DispatchPlans();
    let calls = 0;
    const results: number[] = [];
    for (let i = 0; i < 4; i++) {
      const out = plans.run(ctx, 'upload', [], () => {
        calls++;
        const t = ctx.upload([i, i], [2]);
        return { y: add(ctx, t, t) };
      });
      results.push(((await ctx.read(out.y)) as Float32Array)[0]!);
      out.y.dispose();
    }
    expect(calls).toBe(4);
    expect(results).toEqual([0, 2, 4, 6]);
    expect(plans.stats()).toMatchObject({ plans: 0, refused: [expect.stringMatching(/writes .* from the host/)] });
    plans.dispose();
  });

  it('a freed tensor the call reads besides its inputs drops the plan', async () => {
    const ctx = gpu();
    const plans = new DispatchPlans();
    const x = ctx.upload([1, 2, 3, 4], [4]);
    let bias = ctx.upload([10, 10, 10, 10], [4]);
    let calls = 0;
    const run = () => plans.run(ctx, 'bias', [x], () => (calls++, { y: add(ctx, x, bias) }));
    for (let i = 0; i < 3; i++) run().y.dispose();
    expect(calls).toBe(2);
    bias.dispose();
    bias = ctx.upload([100, 100, 100, 100], [4]);
    const out = run();
    expect(calls, 'the plan read a freed buffer: the code ran again').toBe(3);
    expect(Array.from((await ctx.read(out.y)) as Float32Array)).toEqual([101, 102, 103, 104]);
    out.y.dispose();
    plans.dispose();
  });

  it('another input layout or other kernel choices use another plan', async () => {
    const ctx = gpu();
    const { fn, calls } = chain(ctx, 6);
    const plans = new DispatchPlans();
    const rng = new Rng(7);
    const x = ctx.upload(rng.randn(M * K), [M, K]);
    const r = ctx.upload(rng.randn(M * N), [M, N]);
    for (let i = 0; i < 3; i++) plans.run(ctx, 'chain', [x, r], fn(x, r));
    expect(calls()).toBe(2);
    // Same data seen through a view at another offset: a new key, so the code runs.
    const x2 = ctx.upload(rng.randn((M + 1) * K), [M + 1, K]).slice(0, 1, M + 1);
    const viaView = plans.run(ctx, 'chain', [x2, r], fn(x2, r));
    expect(calls()).toBe(3);
    const fresh = fn(x2, r)();
    expect(await readAll(ctx, viaView)).toEqual(await readAll(ctx, fresh));
    withTuning(ctx, { rowReduce: ctx.tuning.rowReduce === 'tree' ? 'lane' : 'tree' });
    plans.run(ctx, 'chain', [x, r], fn(x, r));
    expect(calls(), 'other kernel choices: a new key').toBe(5);
    plans.dispose();
  });

  it('a call that keeps a tensor of its own, or frees one it did not make, is never replayed', async () => {
    const ctx = gpu();
    const x = ctx.upload([1, 2, 3, 4], [4]);
    const plans = new DispatchPlans();
    let cache: Tensor | null = null;
    let calls = 0;
    const keeps = () => {
      calls++;
      cache?.dispose(); // a cache refilled on every call: frees what an earlier call made
      cache = add(ctx, x, x);
      cache.persistent = true;
      return { y: add(ctx, cache, x) };
    };
    const results: number[][] = [];
    for (let i = 0; i < 4; i++) {
      const out = plans.run(ctx, 'keeps', [x], keeps);
      results.push(Array.from((await ctx.read(out.y)) as Float32Array));
      out.y.dispose();
    }
    expect(calls).toBe(4);
    expect(results.every((v) => v.join() === '3,6,9,12')).toBe(true);
    expect(plans.stats().refused[0]).toMatch(/frees a tensor it did not make|outlives it/);
    (cache as Tensor | null)?.dispose();
    plans.dispose();
  });

  for (const [what, opts] of [['ContextOptions.dispatchPlans = false', { dispatchPlans: false }], ['profiling', { profile: true }]] as const) {
    it(`off with ${what}`, async (t) => {
      const ctx = await GpuContext.create(opts);
      try {
        if ('profile' in opts && !ctx.profiler) return t.skip('needs timestamp-query');
        const { fn, calls } = chain(ctx, 11);
        const x = ctx.upload(new Rng(12).randn(M * K), [M, K]);
        const r = ctx.upload(new Rng(13).randn(M * N), [M, N]);
        const plans = new DispatchPlans();
        for (let i = 0; i < 4; i++) plans.run(ctx, 'chain', [x, r], fn(x, r));
        expect(calls()).toBe(4);
        expect(plans.stats().plans).toBe(0);
        await ctx.sync();
      } finally {
        ctx.destroy();
      }
    });
  }
});

describe('dispatch plans under faults', () => {
  it('a call that throws while recorded leaves nothing behind; the next call records again', async () => {
    const ctx = gpu();
    const plans = new DispatchPlans();
    const x = ctx.upload([1, 2, 3, 4], [4]);
    await ctx.sync();
    const before = ctx.poolStats().liveBytes;
    let fail = false;
    let calls = 0;
    const fn = () => {
      calls++;
      const y = add(ctx, x, x);
      if (fail) throw new Error('model code failed');
      return { y: add(ctx, y, x) };
    };
    ctx.scope(() => void plans.run(ctx, 'f', [x], fn));
    fail = true;
    expect(() => plans.run(ctx, 'f', [x], fn)).toThrow('model code failed');
    await ctx.sync();
    expect(ctx.poolStats().liveBytes, 'the failed recording freed its tensors').toBe(before);
    fail = false;
    for (let i = 0; i < 3; i++) {
      const out = plans.run(ctx, 'f', [x], fn);
      expect(Array.from((await ctx.read(out.y)) as Float32Array)).toEqual([3, 6, 9, 12]);
      out.y.dispose();
    }
    expect(calls, 'call 3 recorded, calls 4-5 replayed').toBe(3);
    plans.dispose();
  });

  it('a replay that fails half-way gives back the buffers it took', async () => {
    const ctx = gpu();
    const plans = new DispatchPlans();
    const x = ctx.upload([1, 2, 3, 4], [4]);
    const fn = () => ({ y: add(ctx, add(ctx, x, x), x) });
    for (let i = 0; i < 2; i++) plans.run(ctx, 'f', [x], fn).y.dispose();
    await ctx.sync();
    const before = ctx.poolStats().liveBytes;
    const encodeStep = vi.spyOn(ctx, 'encodeStep').mockImplementationOnce(() => {
      throw new Error('injected encoder failure');
    });
    expect(() => plans.run(ctx, 'f', [x], fn)).toThrow('injected encoder failure');
    encodeStep.mockRestore();
    await ctx.sync();
    expect(ctx.poolStats().liveBytes).toBe(before);
    const out = plans.run(ctx, 'f', [x], fn);
    expect(Array.from((await ctx.read(out.y)) as Float32Array)).toEqual([3, 6, 9, 12]);
    out.y.dispose();
    plans.dispose();
  });
});
