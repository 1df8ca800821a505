/** One GPU context per test file (Dawn on lavapipe here; any adapter elsewhere). */
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { GpuContext, type ContextOptions } from '../../src/gpu/context.js';

export function useGpu(opts: ContextOptions = {}): () => GpuContext {
  let ctx: GpuContext | null = null;
  beforeAll(async () => {
    ctx = await GpuContext.create(opts);
  });
  afterAll(async () => {
    if (ctx) {
      await ctx.sync();
      ctx.destroy();
    }
  });
  return () => {
    if (!ctx) throw new Error('GPU context not ready');
    return ctx;
  };
}

/** Run the current test with the CPU-adapter kernel tuning on or off; restored when it finishes. */
export function withCpuTuning(ctx: GpuContext, cpuAdapter: boolean): void {
  const saved = ctx.tuning.cpuAdapter;
  ctx.tuning.cpuAdapter = cpuAdapter;
  onTestFinished(() => {
    ctx.tuning.cpuAdapter = saved;
  });
}
