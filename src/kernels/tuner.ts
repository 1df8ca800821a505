/**
 * Per-adapter kernel tuning: at first use, a short micro-benchmark times each candidate of every
 * tunable choice (src/gpu/tuning.ts: row reductions, nn.Linear matmuls, few-row matmuls, long
 * self-attention) on this adapter at shapes of the real models, keeps the fastest, and caches the
 * result per adapter and host in a `TuningStore` (browsers: localStorage; Node: a JSON file in the
 * samclip cache directory, src/node/tuning-store.ts; anything else through the interface). A later
 * context on the same adapter and host reads the cache instead of measuring.
 *
 * Deterministic where timing is not: `mode: 'default'` (or a measurement that fails or gives no
 * finite time) keeps `defaultTuning`'s rule; `override` pins any choice whatever was measured or
 * cached. Every candidate is checked before it is timed, against a float64 reference computed on
 * the host (the double-precision kernels of src/kernels/cpu) for output rows spread over tiles and
 * edges: one that misses it (rel L2 > 1e-4, 1e-2 for f16 operands) or fails to run is not chosen,
 * and the report says why. The reference is independent of every kernel, so a broken variant, the
 * deterministic default included, cannot become the yardstick (kernels that only run on GPUs, e.g.
 * tensor cores, are tested nowhere else before their first use). Where no candidate passes, the
 * rule's choice stays and every rejection is reported. Timing is wall clock around a drained queue (median
 * of 3 after a warm-up), so on a busy machine it picks what is fastest now.
 *
 * Browser-safe: no `node:` import; the Node store is injected by the caller.
 */
import type { GpuContext } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { ALL_CHOICES, type KernelTuning, type TunableKey, defaultTuning, tuningCandidates } from '../gpu/tuning.js';
import { attention } from './attention.js';
import { attentionCpu } from './cpu/attention.js';
import { layerNormCpu } from './cpu/layernorm.js';
import { matmulCpu } from './cpu/matmul.js';
import { layerNorm } from './layernorm.js';
import { linear } from './matmul.js';

/** Where tuning results persist, keyed by adapter, host and engine version. */
export interface TuningStore {
  get(key: string): string | null | Promise<string | null>;
  set(key: string, value: string): void | Promise<void>;
}

export type TunedChoices = Pick<KernelTuning, TunableKey>;

export interface TuneOptions {
  /** `measure` (default): use the cache, else measure and cache. `default`: the fixed rule, no timing. */
  mode?: 'measure' | 'default';
  store?: TuningStore | null;
  /** Pinned choices (win over the cache and the measurement). */
  override?: Partial<TunedChoices>;
  /** Identifies the host in the cache key (e.g. the CPU model for CPU adapters); '' in browsers. */
  host?: string;
  /** Re-measure even when the cache has an entry. */
  refresh?: boolean;
}

export interface TuneReport {
  key: string;
  choices: TunedChoices;
  source: KernelTuning['source'];
  /** Median ms per candidate, where measured. */
  timings: Partial<Record<TunableKey, Record<string, number>>>;
  /** Candidates that missed the host reference or failed, and why, where measured. */
  rejected?: Partial<Record<TunableKey, Record<string, string>>>;
}

/** Rows of an output checked against the host reference: the first, the last and tile edges between. */
function sampleRows(rows: number): number[] {
  const pick = [0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 64, 65, 127, 128, 129, 255, 256, 300, 383, 447, rows - 2, rows - 1];
  return [...new Set(pick.filter((r) => r >= 0 && r < rows))];
}

/** The host reference of one micro-benchmark: `cols` values for each of `rows` (row-major output). */
interface Expected {
  rows: number[];
  cols: number;
  values: Float64Array;
  tol: number;
}

/** rel L2 of `out`'s sampled rows against the reference (`values`: the sampled rows, packed). */
function missBy(out: ArrayLike<number>, e: Expected): number {
  let num = 0;
  let den = 0;
  e.rows.forEach((r, i) => {
    for (let c = 0; c < e.cols; c++) {
      const want = e.values[i * e.cols + c]!;
      const d = out[r * e.cols + c]! - want;
      num += d * d;
      den += want * want;
    }
  });
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** The sampled rows of a row-major [rows, cols] array, packed. */
function rowsOf(x: Float32Array, rows: readonly number[], cols: number): Float32Array {
  const out = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => out.set(x.subarray(r * cols, (r + 1) * cols), i * cols));
  return out;
}

/** y = x . W^T (x [rows, K], W [N, K]) for the sampled rows, by the double-precision reference matmul. */
function linearReference(x: Float32Array, w: Float32Array, rows: number, K: number, N: number, tol: number): Expected {
  const picked = sampleRows(rows);
  const wt = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k]!;
  return { rows: picked, cols: N, values: matmulCpu(rowsOf(x, picked, K), wt, 1, picked.length, K, N), tol };
}

/** LayerNorm over C with weight = bias = g, for the sampled rows. */
function layerNormReference(x: Float32Array, g: Float32Array, rows: number, C: number, eps: number): Expected {
  const picked = sampleRows(rows);
  return { rows: picked, cols: C, values: layerNormCpu(rowsOf(x, picked, C), picked.length, C, g, g, eps), tol: 1e-4 };
}

/** softmax(q k^T / sqrt(D)) v with q = k = v [1, H, N, D], for the sampled queries: rows of [N, H * D]. */
function selfAttentionReference(q: Float32Array, H: number, N: number, D: number): Expected {
  const picked = sampleRows(N);
  const qs = new Float32Array(H * picked.length * D);
  for (let h = 0; h < H; h++) qs.set(rowsOf(q.subarray(h * N * D, (h + 1) * N * D), picked, D), h * picked.length * D);
  const values = attentionCpu({ q: qs, k: q, v: q, B: 1, H, Nq: picked.length, Nk: N, D, scale: 1 / Math.sqrt(D) });
  return { rows: picked, cols: H * D, values, tol: 1e-4 };
}

/**
 * Bump when kernels change enough that cached choices should be re-measured. 4: candidates are
 * checked against a host reference (entries cached before could name a kernel checked only against
 * the default's output).
 */
const TUNING_VERSION = 4;
const KEYS: TunableKey[] = ['rowReduce', 'matmulNt', 'matmulSmall', 'attention'];

/** Cache key: the adapter as it describes itself (not how it was reached), the host, the version. */
export function tuningKey(ctx: GpuContext, host = ''): string {
  const i = ctx.adapterInfo;
  const adapter = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ');
  return `samclip-tuning/v${TUNING_VERSION}/${adapter}/${host}`;
}

/** localStorage as a TuningStore, where the page has it (null elsewhere). */
export function localStorageTuningStore(): TuningStore | null {
  const ls = (globalThis as { localStorage?: { getItem(k: string): string | null; setItem(k: string, v: string): void } }).localStorage;
  if (!ls) return null;
  return { get: (k) => ls.getItem(k), set: (k, v) => ls.setItem(k, v) };
}

function pick(t: KernelTuning): TunedChoices {
  return { rowReduce: t.rowReduce, matmulNt: t.matmulNt, matmulSmall: t.matmulSmall, attention: t.attention };
}

/** Parse a cached entry; anything malformed or naming a choice this device cannot run is ignored. */
function parseCached(ctx: GpuContext, text: string | null): TunedChoices | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as Partial<TunedChoices>;
    const cand = tuningCandidates(ctx.tuning.cpuAdapter, ctx.features);
    for (const k of KEYS) if (!(cand[k] as string[]).includes(v[k] as string)) return null;
    return v as TunedChoices;
  } catch {
    return null;
  }
}

async function timeIt(ctx: GpuContext, run: () => Tensor): Promise<number> {
  ctx.scope(run).dispose(); // warm-up: pipelines compiled, buffers pooled
  await ctx.sync();
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const y = ctx.scope(run);
    await ctx.sync();
    samples.push(performance.now() - t0);
    y.dispose();
  }
  samples.sort((a, b) => a - b);
  return samples[1]!;
}

/** Deterministic pseudo-random data (no Math.random: the same inputs every time). */
function data(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return out;
}

/**
 * One choice: run each candidate with the tuning field set to it, check its output against the
 * host reference, time it; returns the fastest valid candidate, every timing and every rejection.
 */
async function measureChoice<K extends TunableKey>(
  ctx: GpuContext,
  key: K,
  candidates: readonly KernelTuning[K][],
  run: () => Tensor,
  expected: Expected,
): Promise<{ best: KernelTuning[K] | null; timings: Record<string, number>; rejected: Record<string, string> }> {
  const saved = ctx.tuning[key];
  const timings: Record<string, number> = {};
  const rejected: Record<string, string> = {};
  let best: KernelTuning[K] | null = null;
  try {
    const order = [saved, ...candidates.filter((c) => c !== saved)];
    for (const c of order) {
      ctx.tuning[key] = c;
      try {
        const y = ctx.scope(run);
        const out = await ctx.read(y);
        y.dispose();
        const miss = missBy(out, expected);
        if (!(miss <= expected.tol)) {
          rejected[c] = `rel L2 ${miss.toExponential(1)} against the host reference (tolerance ${expected.tol})`;
          continue;
        }
        const ms = await timeIt(ctx, run);
        if (!Number.isFinite(ms)) continue;
        timings[c] = ms;
        if (best === null || ms < timings[best]!) best = c;
      } catch (e) {
        rejected[c] = `failed: ${(e as Error).message.split('\n')[0]}`;
        await ctx.sync().catch(() => undefined);
      }
    }
  } finally {
    ctx.tuning[key] = saved;
  }
  return { best, timings, rejected };
}

/** Micro-benchmarks at shapes the models run (small enough for a second or two on a CPU adapter). */
async function measureAll(ctx: GpuContext): Promise<{ choices: TunedChoices; timings: TuneReport['timings']; rejected: NonNullable<TuneReport['rejected']> }> {
  const cand = tuningCandidates(ctx.tuning.cpuAdapter, ctx.features);
  const choices = pick(ctx.tuning);
  const timings: TuneReport['timings'] = {};
  const rejected: NonNullable<TuneReport['rejected']> = {};
  const tensors: Tensor[] = [];
  const up = (values: Float32Array, shape: number[], dtype: 'f32' | 'f16' = 'f32') => {
    const t = ctx.upload(values, shape, dtype);
    tensors.push(t);
    return t;
  };
  try {
    // ViT-B token rows: layernorm over 768 channels.
    const [xv, gv] = [data(512 * 768, 1), data(768, 2)];
    const x = up(xv, [512, 768]);
    const g = up(gv, [768]);
    const r = await measureChoice(ctx, 'rowReduce', cand.rowReduce, () => layerNorm(ctx, x, g, g, 1e-6), layerNormReference(xv, gv, 512, 768, 1e-6));
    // nn.Linear 768 -> 768 on 512 tokens; and on 8 tokens (decoder, pooled vectors) to 2048. Where
    // tensor cores are a candidate they take f16 operands only, so every candidate runs f16 there.
    const half = cand.matmulNt.includes('subgroup_matrix');
    const wv = data(768 * 768, 3);
    const w = up(wv, [768, 768], half ? 'f16' : 'f32');
    const xh = half ? up(xv, [512, 768], 'f16') : x;
    const mNt = await measureChoice(ctx, 'matmulNt', cand.matmulNt, () => linear(ctx, xh, w), linearReference(xv, wv, 512, 768, 768, half ? 1e-2 : 1e-4));
    const [xsv, wsv] = [data(8 * 768, 4), data(2048 * 768, 5)];
    const xs = up(xsv, [8, 768]);
    const ws = up(wsv, [2048, 768]);
    const mSmall = await measureChoice(ctx, 'matmulSmall', cand.matmulSmall, () => linear(ctx, xs, ws), linearReference(xsv, wsv, 8, 768, 2048, 1e-4));
    // Global self-attention, 1024 tokens x 64 (SAM at 512 px; CLIP-sized problems are smaller).
    const qv = data(2 * 1024 * 64, 6);
    const q = up(qv, [1, 2, 1024, 64]);
    const at = await measureChoice(ctx, 'attention', cand.attention, () => attention(ctx, q, q, q), selfAttentionReference(qv, 2, 1024, 64));
    for (const [k, m] of [['rowReduce', r], ['matmulNt', mNt], ['matmulSmall', mSmall], ['attention', at]] as const) {
      timings[k] = m.timings;
      if (Object.keys(m.rejected).length) rejected[k] = m.rejected;
      if (m.best !== null) (choices as Record<string, string>)[k] = m.best;
    }
  } finally {
    for (const t of tensors) t.dispose();
    await ctx.sync().catch(() => undefined);
  }
  return { choices, timings, rejected };
}

/**
 * Set `ctx.tuning` for this adapter (see the header) and report what was chosen and why. Safe to
 * call more than once; the first call on a new adapter/host measures (a few seconds on a CPU
 * adapter, well under one on a GPU), later ones read the cache.
 */
export async function tuneKernels(ctx: GpuContext, opts: TuneOptions = {}): Promise<TuneReport> {
  const key = tuningKey(ctx, opts.host);
  const base = defaultTuning(ctx.tuning.cpuAdapter, ctx.features);
  let choices: TunedChoices = pick(base);
  let source: KernelTuning['source'] = 'default';
  let timings: TuneReport['timings'] = {};
  let rejected: TuneReport['rejected'];
  if (opts.mode !== 'default') {
    const cached = opts.refresh ? null : parseCached(ctx, (await opts.store?.get(key)) ?? null);
    if (cached) {
      choices = cached;
      source = 'cached';
    } else {
      Object.assign(ctx.tuning, choices);
      const m = await measureAll(ctx);
      choices = m.choices;
      timings = m.timings;
      rejected = m.rejected;
      source = Object.values(timings).some((t) => t && Object.keys(t).length > 0) ? 'measured' : 'default';
      if (source === 'measured') await opts.store?.set(key, JSON.stringify(choices));
    }
  }
  if (opts.override && Object.keys(opts.override).length) {
    choices = { ...choices, ...opts.override };
    source = 'override';
  }
  Object.assign(ctx.tuning, choices, { source });
  return { key, choices, source, timings, ...(rejected && Object.keys(rejected).length ? { rejected } : {}) };
}

/**
 * Read `SAMCLIP_TUNING`-style text: `default`, `measure`, `refresh`, or a JSON object of pinned
 * choices (e.g. `{"matmulNt":"tiled_nt"}`). Unknown values are an error naming the value.
 */
export function parseTuningSetting(text: string | undefined): Pick<TuneOptions, 'mode' | 'override' | 'refresh'> {
  if (!text || text === 'measure') return { mode: 'measure' };
  if (text === 'default') return { mode: 'default' };
  if (text === 'refresh') return { mode: 'measure', refresh: true };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(`SAMCLIP_TUNING: expected default, measure, refresh or a JSON object of choices, got '${text}'`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`SAMCLIP_TUNING: expected a JSON object of choices, got '${text}'`);
  for (const [k, val] of Object.entries(v)) {
    if (!(KEYS as string[]).includes(k)) throw new Error(`SAMCLIP_TUNING: unknown choice '${k}' (choices: ${KEYS.join(', ')})`);
    const allowed = ALL_CHOICES[k as TunableKey] as readonly string[];
    if (!allowed.includes(val as string)) throw new Error(`SAMCLIP_TUNING: ${k} must be one of ${allowed.join(', ')}, got ${JSON.stringify(val)}`);
  }
  return { mode: 'measure', override: v as Partial<TunedChoices> };
}
