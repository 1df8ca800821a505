/**
 * One result row shape for the model benchmarks (sam-encoder, sam-decoder, clip, samclip) and the
 * device bench that gathers them (bench/device.ts): each script's `--json FILE` writes
 * `{ rows: BenchRow[] }` plus its context, so the device bench reuses the scripts unchanged.
 *
 * Host cost: `hostCost` runs the synchronous encoding part of a model call (JS, command encoding,
 * submit; nothing awaited) and reports its wall time minus the time spent creating pipelines inside
 * it (the first call compiles every shader synchronously), and the number of dispatches it encoded.
 */
import { writeFileSync } from 'node:fs';
import type { GpuContext } from '../../src/gpu/context.js';
import { type Timing, summarize } from './timing.js';
import type { Check } from './validate.js';

export interface BenchRow {
  /** What was run, e.g. `SAM ViT-B encoder 1024 px`. */
  model: string;
  /** Who ran it, e.g. `ours f32, GPU-resident`, `ORT Web WebGPU, GPU io`. */
  variant: string;
  medianMs?: number;
  minMs?: number;
  runs?: number;
  /** First call of the process: pipeline compilation and first allocations included. */
  firstMs?: number;
  /** Time spent creating pipelines (synchronous shader compiles) during the first call. */
  compileMs?: number;
  /** Process CPU seconds per timed run (on CPU adapters the "GPU" is this process's threads). */
  cpuS?: number;
  flops?: number;
  /** Items per call (prompt sets, prompts): per-item figures divide by it. */
  items?: number;
  valid?: boolean;
  relL2?: number;
  gate?: number;
  reference?: string;
  /** Dispatches encoded per call, and host milliseconds (JS + encode + submit) per call. */
  dispatches?: number;
  hostMs?: number;
  note?: string;
}

export function timingFields(t: Timing | undefined): Pick<BenchRow, 'medianMs' | 'minMs' | 'runs'> {
  return t ? { medianMs: t.median, minMs: t.min, runs: t.runs } : {};
}

export function checkFields(c: Check | undefined, gate: number, reference: string): Pick<BenchRow, 'valid' | 'relL2' | 'gate' | 'reference'> {
  return c ? { valid: c.ok, relL2: c.relL2, gate, reference } : {};
}

export interface HostCost<T> {
  result: T;
  dispatches: number;
  /** Wall ms of the synchronous part, pipeline creation excluded. */
  hostMs: number;
  compileMs: number;
}

/** Run the synchronous part of a model call, submit it, and report its host cost (see the header). */
export function hostCost<T>(ctx: GpuContext, fn: () => T): HostCost<T> {
  const d0 = ctx.dispatchCount;
  const c0 = ctx.pipelines.compileMs;
  const t0 = performance.now();
  const result = fn();
  ctx.flush();
  const wall = performance.now() - t0;
  const compileMs = ctx.pipelines.compileMs - c0;
  return { result, dispatches: ctx.dispatchCount - d0, hostMs: wall - compileMs, compileMs };
}

/**
 * Host ms of a warm call: the median over `runs` more calls of `call` (each resolving to its host
 * ms), since one call is noisy and a bench's timed rounds may not get past the calls that record
 * their dispatch plans (docs/profiling.md). Undefined when `runs` is 0.
 */
export async function warmHostMs(runs: number, call: () => Promise<number>): Promise<{ median: number; samples: number[] } | undefined> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await call());
  return samples.length ? { median: summarize(samples).median, samples } : undefined;
}

/** Write `{ ...context, rows }` to `path` (when given). */
export function writeRows(path: string | null | undefined, rows: BenchRow[], context: Record<string, unknown> = {}): void {
  if (!path) return;
  writeFileSync(path, JSON.stringify({ ...context, rows }, null, 1));
  console.log(`wrote ${path}`);
}
