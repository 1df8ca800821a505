/**
 * onnxruntime-node on its CPU provider (MLAS): the second reference of the bench, and the one every
 * variant's output is validated against before anything is timed.
 *
 * Full graph optimisation (ORT's default for real deployments, unlike the parity tests' helper which
 * disables it to check op semantics one by one). Threads: ORT's default intra-op pool, one thread per
 * core; set SAMCLIP_BENCH_ORT_THREADS to pin it.
 */
import * as ort from 'onnxruntime-node';
import type { BenchSession, Feeds, Outputs } from './session.js';

export interface OrtNodeOptions {
  /** Intra-op threads; 0 = ORT's default (one per core). */
  threads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

export function ortNodeVersion(): string {
  return ort.env.versions.node ?? ort.env.versions.common;
}

export async function createOrtNodeSession(modelBytes: Uint8Array, opts: OrtNodeOptions = {}): Promise<BenchSession> {
  const threads = opts.threads ?? Number(process.env.SAMCLIP_BENCH_ORT_THREADS ?? 0);
  const session = await ort.InferenceSession.create(modelBytes, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    intraOpNumThreads: threads,
  });
  return {
    label: `onnxruntime-node ${ortNodeVersion()} CPU (${threads || 'default'} threads)`,
    async run(feeds: Feeds): Promise<Outputs> {
      const inputs: Record<string, ort.Tensor> = {};
      for (const [k, f] of Object.entries(feeds)) inputs[k] = new ort.Tensor('float32', f.data, [...f.dims]);
      const out = await session.run(inputs);
      const result: Outputs = {};
      for (const [k, t] of Object.entries(out)) result[k] = { data: t.data as Float32Array, dims: [...t.dims] };
      return result;
    },
    release: () => session.release(),
  };
}
