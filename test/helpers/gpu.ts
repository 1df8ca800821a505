/** One GPU context per test file (Dawn on lavapipe here; any adapter elsewhere). */
import { afterAll, beforeAll } from 'vitest';
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
