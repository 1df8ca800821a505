/**
 * The timed variants of a kernel case, behind one interface so the bench can validate each and then
 * time them in interleaved rounds (see timing.ts `measureInterleaved`).
 *
 * Every `run` owns its completion: the promise resolves only once the GPU queue has drained (ours:
 * `ctx.sync()` or a readback; ORT Web GPU io: `queue.onSubmittedWorkDone()`; ORT with host io
 * returns host data, which implies it).
 */
import type { GpuContext } from '../../src/gpu/context.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import type { PreparedCase } from './kernel-cases.js';
import { createOrtWebSession } from './ort-web.js';
import type { BenchSession, Feeds } from './session.js';

export interface Runner {
  /** One call whose output is read back: validation (and the first pipeline compiles). */
  validate(): Promise<Float32Array>;
  /** One timed call. */
  run(): Promise<void>;
  /** Untimed, after every call: free what it produced. */
  after?(): void;
  /** GPU errors raised since the last call (ORT Web's device). */
  takeGpuErrors?(): string[];
  close(): Promise<void>;
}

/** Upload named host arrays as f32 (or f16) tensors. */
export function uploadAll(ctx: GpuContext, arrays: Feeds | PreparedCase['weights'], dtype: 'f32' | 'f16' = 'f32'): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, f] of Object.entries(arrays)) out[k] = ctx.upload(f.data, [...f.dims], dtype);
  return out;
}

export function disposeAll(ts: Record<string, Tensor>): void {
  for (const t of Object.values(ts)) t.dispose();
}

/** Intermediates an op creates are freed by the scope; the output is the caller's. */
const callOurs = (ctx: GpuContext, prep: PreparedCase, inputs: Record<string, Tensor>, weights: Record<string, Tensor>) =>
  ctx.scope(() => prep.ours(ctx, inputs, weights));

/**
 * Inputs and weights already on the GPU; a run encodes, submits and waits for the queue. With
 * `dtype` f16, inputs (and the weights the caller uploaded as f16) are halves: the f16 path.
 */
export function oursGpuResident(ctx: GpuContext, prep: PreparedCase, weights: Record<string, Tensor>, dtype: 'f32' | 'f16' = 'f32'): Runner {
  const inputs = uploadAll(ctx, prep.feeds, dtype);
  let last: Tensor | null = null;
  return {
    async validate() {
      const y = callOurs(ctx, prep, inputs, weights);
      try {
        return (await ctx.read(y)) as Float32Array;
      } finally {
        y.dispose();
      }
    },
    async run() {
      last = callOurs(ctx, prep, inputs, weights);
      await ctx.sync();
    },
    after() {
      last?.dispose();
      last = null;
    },
    async close() {
      disposeAll(inputs);
    },
  };
}

/** Host inputs in, host output out: upload, run, read back (weights stay resident, as in a model). */
export function oursEndToEnd(ctx: GpuContext, prep: PreparedCase, weights: Record<string, Tensor>): Runner {
  const once = async (): Promise<Float32Array> => {
    const inputs = uploadAll(ctx, prep.feeds);
    const y = callOurs(ctx, prep, inputs, weights);
    try {
      return (await ctx.read(y)) as Float32Array;
    } finally {
      y.dispose();
      disposeAll(inputs);
    }
  };
  return {
    validate: once,
    async run() {
      await once();
    },
    async close() {},
  };
}

export async function ortWebRunner(io: 'cpu' | 'gpu', model: Uint8Array, feeds: Feeds): Promise<Runner> {
  const session = await createOrtWebSession(model, { io });
  session.takeGpuErrors();
  const common = {
    takeGpuErrors: () => session.takeGpuErrors(),
  };
  if (io === 'gpu') {
    const bound = session.bindGpu(feeds);
    return {
      ...common,
      validate: async () => (await bound.read()).y!.data,
      run: () => bound.run(),
      async close() {
        bound.dispose();
        await session.release();
      },
    };
  }
  return {
    ...common,
    validate: async () => (await session.run(feeds)).y!.data,
    async run() {
      await session.run(feeds);
    },
    close: () => session.release(),
  };
}

export function ortNodeRunner(session: BenchSession, feeds: Feeds): Runner {
  return {
    validate: async () => (await session.run(feeds)).y!.data,
    async run() {
      await session.run(feeds);
    },
    // The session is the case's reference and is released by the case.
    async close() {},
  };
}
