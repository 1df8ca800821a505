/**
 * Latency statistics of async functions: a fixed number of warm-up runs, then N timed runs, each
 * sample one call; median, min, p90.
 *
 * Two drivers:
 *  - `measure`: one function, through tinybench with its time budgets turned off (our samples take
 *    from milliseconds to tens of seconds on lavapipe; a fixed count keeps a run's length known).
 *  - `measureInterleaved`: several competitors timed in rounds, one call of each per round, the
 *    starting competitor rotating. On a machine shared with other people's jobs the load drifts over
 *    minutes; interleaving spreads that drift over every competitor instead of whichever ran last,
 *    which is what keeps the ratios meaningful. The kernel bench uses this one.
 *
 * The function under test owns its completion: GPU work must be awaited inside it (our engine:
 * `await ctx.sync()` or a readback; ORT Web with GPU IO: `queue.onSubmittedWorkDone()`), so the
 * clock stops only once the queue has drained.
 */
import { Bench } from 'tinybench';

export interface Timing {
  /** Milliseconds. */
  median: number;
  min: number;
  p90: number;
  mean: number;
  runs: number;
  samples: number[];
}

export interface MeasureOptions {
  runs: number;
  warmup: number;
  /** Untimed, after every call (warm-up included): free what the call produced. */
  afterEach?: () => void | Promise<void>;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summarize(samples: readonly number[]): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    min: sorted[0] ?? NaN,
    p90: quantile(sorted, 0.9),
    mean: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    runs: sorted.length,
    samples: [...samples],
  };
}

export async function measure(name: string, fn: () => Promise<unknown>, opts: MeasureOptions): Promise<Timing> {
  const bench = new Bench({
    iterations: opts.runs,
    time: 0,
    warmup: opts.warmup > 0,
    warmupIterations: opts.warmup,
    warmupTime: 0,
    retainSamples: true,
    throws: true,
  });
  bench.add(name, fn, { async: true, ...(opts.afterEach ? { afterEach: opts.afterEach } : {}) });
  await bench.run();
  const task = bench.tasks[0]!;
  const result = task.result as { state: string; latency?: { samples?: number[] }; error?: unknown };
  if (result.state !== 'completed' || !result.latency?.samples) {
    throw result.error instanceof Error ? result.error : new Error(`${name}: benchmark ${result.state}`);
  }
  return summarize(result.latency.samples);
}

export const gflops = (flops: number, ms: number): number => flops / (ms * 1e6);
export const gbps = (bytes: number, ms: number): number => bytes / (ms * 1e6);

export interface Timed {
  run(): Promise<void>;
  /** Untimed, after every call. */
  after?(): void;
}

/**
 * Warm each competitor up (`warmup` calls), then `runs` rounds of one call each, in rotating order.
 * A competitor that throws is reported through `onError` and dropped; the others go on.
 */
export async function measureInterleaved<K>(
  competitors: ReadonlyMap<K, Timed>,
  plan: { runs: number; warmup: number },
  onError: (key: K, e: unknown) => void | Promise<void>,
): Promise<Map<K, Timing>> {
  const live = new Map(competitors);
  const samples = new Map<K, number[]>([...live.keys()].map((k) => [k, []]));
  const call = async (k: K, t: Timed, timed: boolean): Promise<void> => {
    try {
      const t0 = performance.now();
      await t.run();
      const dt = performance.now() - t0;
      t.after?.();
      if (timed) samples.get(k)!.push(dt);
    } catch (e) {
      live.delete(k);
      await onError(k, e);
    }
  };
  for (const [k, t] of [...live]) for (let i = 0; i < plan.warmup && live.has(k); i++) await call(k, t, false);
  for (let round = 0; round < plan.runs; round++) {
    const order = [...live];
    for (let j = 0; j < order.length; j++) {
      const [k, t] = order[(round + j) % order.length]!;
      if (live.has(k)) await call(k, t, true);
    }
  }
  const out = new Map<K, Timing>();
  for (const [k, s] of samples) if (live.has(k) && s.length) out.set(k, summarize(s));
  return out;
}
