/** One GPU context per test file (Dawn on lavapipe here; any adapter elsewhere). */
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { GpuContext, type ContextOptions } from '../../src/gpu/context.js';
import { type KernelTuning, type RowReduce, defaultTuning } from '../../src/gpu/tuning.js';

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

/**
 * Run the current test with these kernel choices; restored when it finishes. `cpuAdapter` first
 * resets every choice to that kind of adapter's defaults, then the other fields apply.
 */
export function withTuning(ctx: GpuContext, patch: Partial<KernelTuning>): void {
  const saved = { ...ctx.tuning };
  const base = patch.cpuAdapter === undefined ? {} : defaultTuning(patch.cpuAdapter, ctx.features);
  Object.assign(ctx.tuning, base, patch);
  onTestFinished(() => {
    Object.assign(ctx.tuning, saved);
  });
}

/** Run the current test with the CPU-adapter kernel tuning on or off; restored when it finishes. */
export function withCpuTuning(ctx: GpuContext, cpuAdapter: boolean): void {
  withTuning(ctx, { cpuAdapter });
}

/** Every row reduction; `subgroup` runs where the device offers subgroups (and subgroup_id). */
export const ROW_REDUCTIONS: readonly RowReduce[] = ['tree', 'subgroup', 'lane'];

/** Every tuning a row-kernel test runs: CPU / GPU workgroup sizes x tree / subgroup / lane reductions. */
export const ROW_TUNINGS = [true, false].flatMap((cpuAdapter) => ROW_REDUCTIONS.map((rowReduce) => ({ cpuAdapter, rowReduce })));

export const tuningName = (t: { cpuAdapter: boolean; rowReduce: RowReduce }) => `${t.cpuAdapter ? 'CPU' : 'GPU'} tuning, ${t.rowReduce} reduction`;

/**
 * Skip the running test (visibly) when the device lacks what a forced variant needs; returns
 * whether it may go on.
 */
export function requires(ctx: { skip: (note?: string) => void }, ok: boolean, what: string): boolean {
  if (!ok) ctx.skip(`needs ${what}`);
  return ok;
}
