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
 * cached. Candidates are validated against each other before they are timed: one whose output
 * differs from the default's (rel L2 > 1e-3) is never chosen. Timing is wall clock around a drained
 * queue (median of 3 after a warm-up), so on a busy machine it picks what is fastest now.
 *
 * Browser-safe: no `node:` import; the Node store is injected by the caller.
 */
import type { GpuContext } from '../gpu/context.js';
import type { Tensor } from '../gpu/tensor.js';
import { ALL_CHOICES, type KernelTuning, type TunableKey, defaultTuning, tuningCandidates } from '../gpu/tuning.js';
import { attention } from './attention.js';
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
}

/** Bump when kernels change enough that cached choices should be re-measured. */
const TUNING_VERSION = 3;
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

function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
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
 * default candidate's, time it; returns the fastest valid candidate and every timing.
 */
async function measureChoice<K extends TunableKey>(
  ctx: GpuContext,
  key: K,
  candidates: readonly KernelTuning[K][],
  run: () => Tensor,
): Promise<{ best: KernelTuning[K] | null; timings: Record<string, number> }> {
  const saved = ctx.tuning[key];
  const timings: Record<string, number> = {};
  let reference: Float32Array | null = null;
  let best: KernelTuning[K] | null = null;
  try {
    const order = [saved, ...candidates.filter((c) => c !== saved)];
    for (const c of order) {
      ctx.tuning[key] = c;
      try {
        const y = ctx.scope(run);
        const out = (await ctx.read(y)) as Float32Array;
        y.dispose();
        if (reference === null) reference = out;
        else if (!(relL2(out, reference) <= 1e-3)) continue;
        const ms = await timeIt(ctx, run);
        if (!Number.isFinite(ms)) continue;
        timings[c] = ms;
        if (best === null || ms < timings[best]!) best = c;
      } catch {
        await ctx.sync().catch(() => undefined);
      }
    }
  } finally {
    ctx.tuning[key] = saved;
  }
  return { best, timings };
}

/** Micro-benchmarks at shapes the models run (small enough for a second or two on a CPU adapter). */
async function measureAll(ctx: GpuContext): Promise<{ choices: TunedChoices; timings: TuneReport['timings'] }> {
  const cand = tuningCandidates(ctx.tuning.cpuAdapter, ctx.features);
  const choices = pick(ctx.tuning);
  const timings: TuneReport['timings'] = {};
  const tensors: Tensor[] = [];
  const up = (n: number, shape: number[], seed: number) => {
    const t = ctx.upload(data(n, seed), shape);
    tensors.push(t);
    return t;
  };
  try {
    // ViT-B token rows: layernorm over 768 channels.
    const x = up(512 * 768, [512, 768], 1);
    const g = up(768, [768], 2);
    const r = await measureChoice(ctx, 'rowReduce', cand.rowReduce, () => layerNorm(ctx, x, g, g, 1e-6));
    // nn.Linear 768 -> 768 on 512 tokens; and on 8 tokens (decoder, pooled vectors) to 2048. Where
    // tensor cores are a candidate they take f16 operands only, so every candidate runs f16 there.
    const half = cand.matmulNt.includes('subgroup_matrix');
    const w = half ? ctx.upload(data(768 * 768, 3), [768, 768], 'f16') : up(768 * 768, [768, 768], 3);
    const xh = half ? ctx.upload(data(512 * 768, 1), [512, 768], 'f16') : x;
    if (half) tensors.push(w, xh);
    const mNt = await measureChoice(ctx, 'matmulNt', cand.matmulNt, () => linear(ctx, xh, w));
    const xs = up(8 * 768, [8, 768], 4);
    const ws = up(2048 * 768, [2048, 768], 5);
    const mSmall = await measureChoice(ctx, 'matmulSmall', cand.matmulSmall, () => linear(ctx, xs, ws));
    // Global self-attention, 1024 tokens x 64 (SAM at 512 px; CLIP-sized problems are smaller).
    const q = up(2 * 1024 * 64, [1, 2, 1024, 64], 6);
    const at = await measureChoice(ctx, 'attention', cand.attention, () => attention(ctx, q, q, q));
    for (const [k, m] of [['rowReduce', r], ['matmulNt', mNt], ['matmulSmall', mSmall], ['attention', at]] as const) {
      timings[k] = m.timings;
      if (m.best !== null) (choices as Record<string, string>)[k] = m.best;
    }
  } finally {
    for (const t of tensors) t.dispose();
    await ctx.sync().catch(() => undefined);
  }
  return { choices, timings };
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
      source = Object.values(timings).some((t) => t && Object.keys(t).length > 0) ? 'measured' : 'default';
      if (source === 'measured') await opts.store?.set(key, JSON.stringify(choices));
    }
  }
  if (opts.override && Object.keys(opts.override).length) {
    choices = { ...choices, ...opts.override };
    source = 'override';
  }
  Object.assign(ctx.tuning, choices, { source });
  return { key, choices, source, timings };
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
