/**
 * SAM 2.1 image predictor at real shapes (1024 px, random weights with the official names and
 * shapes of sam2.1_hiera_{tiny,small,...}.pt) beside SAM ViT-B, on one adapter, in one run:
 *
 *   node --import tsx bench/sam2.ts [--models hiera-t,hiera-s,sam-vit-b] [--runs 3] [--warmup 1]
 *       [--batches 1,16] [--dir /tmp/samclip-bench] [--f16] [--check] [--json out.json]
 *
 * Per model: the image encoder on a preprocessed [1, 3, 1024, 1024] input (GPU-resident: input
 * on the GPU, features left there, clock stopped after the queue drains), and the prompt encoder +
 * mask decoder per call of B prompt sets (one foreground point each, multimask, low-res logits
 * left on the GPU). SAM 2's decode includes its high-resolution skips and object-score head; SAM's
 * is SAM's. Competitors are interleaved round by round (the machine may be shared); the process's
 * CPU seconds per run are reported too (on a CPU adapter, lavapipe's threads are this process's,
 * so CPU time measures the work independently of the load).
 *
 * `--check` is the real-shape check: one encode and one decode per model, with the outputs' shapes
 * and finiteness verified and the largest GPU allocation reported, no timing. It proves the
 * full-size Hiera runs within the adapter's binding limits (128 MiB on lavapipe).
 *
 * ONNX Runtime Web is not a column here: the official sam2 package needs torch >= 2.3 for its
 * export, and the machine this was written on has neither that nor the network to fetch it.
 *
 * `benchSam2(ctx, options)` is the same work as a function (bench/device.ts calls it).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GpuContext } from '../src/gpu/context.js';
import type { Tensor } from '../src/gpu/tensor.js';
import { readTensor } from '../src/kernels/copy.js';
import { Sam } from '../src/model/sam/sam.js';
import { Sam2, type Sam2ImageFeatures } from '../src/model/sam2/sam2.js';
import { type RandomFamily, writeRandomWeights } from '../src/weights/random.js';
import { ourContext } from './harness/dawn.js';
import { fmtLoad } from './harness/report.js';
import { type Timed, type Timing, measureInterleaved } from './harness/timing.js';
import { flag, has, runBench } from './harness/cli.js';

export type Sam2BenchModel = 'hiera-t' | 'hiera-s' | 'hiera-b+' | 'hiera-l' | 'sam-vit-b';

const RANDOM: Record<Sam2BenchModel, RandomFamily> = {
  'hiera-t': 'sam2.1-hiera-t',
  'hiera-s': 'sam2.1-hiera-s',
  'hiera-b+': 'sam2.1-hiera-b-plus',
  'hiera-l': 'sam2.1-hiera-l',
  'sam-vit-b': 'sam-vit-b',
};

export interface Sam2BenchOptions {
  models: Sam2BenchModel[];
  runs: number;
  warmup: number;
  /** Prompt sets per decode call. */
  batches: number[];
  /** Where the random checkpoints are written once and reused. */
  dir: string;
  dtype?: 'f32' | 'f16';
  /** Real-shape check only: one run, outputs verified, no timing. */
  check?: boolean;
  log?: (line: string) => void;
}

export interface Sam2BenchRow {
  model: Sam2BenchModel;
  /** 'encode' or `decode x B`. */
  what: string;
  timing?: Timing;
  /** The first call (shader compiles included), ms. */
  firstMs?: number;
  /** Median process CPU seconds per run. */
  cpuS?: number;
  /** Shapes and finiteness of the outputs (check mode, and after timing). */
  verified: string;
}

interface Loaded {
  name: Sam2BenchModel;
  encode(x: Tensor): { out: Tensor[]; dispose(): void };
  decode(feats: Tensor[], B: number): Promise<Tensor[]>;
  dispose(): void;
}

async function weightsFor(model: Sam2BenchModel, dir: string, log: (s: string) => void): Promise<string> {
  // The same file names as the other benches (tools/random-weights.ts, seed 0): sam_vit_b_random.safetensors, ...
  const path = join(dir, `${RANDOM[model].replace(/-/g, '_')}_random.safetensors`);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    log(`writing random ${RANDOM[model]} weights to ${path}`);
    await writeRandomWeights(path, { family: RANDOM[model], seed: 0 });
  }
  return path;
}

/** One grid point per prompt set, spread over the 1024-px frame (model coordinates). */
function points(B: number): number[] {
  return Array.from({ length: 2 * B }, (_, i) => 64 + ((i * 389) % 896));
}

async function load(ctx: GpuContext, model: Sam2BenchModel, path: string, dtype: 'f32' | 'f16'): Promise<Loaded> {
  if (model === 'sam-vit-b') {
    const sam = await Sam.load(ctx, path, { dtype });
    return {
      name: model,
      encode: (x) => {
        const e = sam.encodeImage(ctx, x);
        return { out: [e], dispose: () => e.dispose() };
      },
      decode: async ([e], B) => {
        const o = sam.predictLowRes(ctx, e!, { batch: B, points: { coords: points(B), labels: new Array<number>(B).fill(1) } }, true);
        return [o.masks, o.iouPred];
      },
      dispose: () => sam.dispose(),
    };
  }
  const sam2 = await Sam2.load(ctx, path, { dtype });
  const toFeatures = (t: Tensor[]): Sam2ImageFeatures => ({ imageEmbed: t[0]!, highRes: { s0: t[1]!, s1: t[2]! }, visionFeatures: t[3]! });
  return {
    name: model,
    encode: (x) => {
      const f = sam2.encodeImage(ctx, x);
      const out = [f.imageEmbed, f.highRes.s0, f.highRes.s1, f.visionFeatures];
      return { out, dispose: () => out.forEach((t) => t.dispose()) };
    },
    decode: async (t, B) => {
      const o = await sam2.decode(ctx, toFeatures(t), { batch: B, points: { coords: points(B), labels: new Array<number>(B).fill(1) } }, true);
      return [o.masks, o.iouPred, o.objectScoreLogits];
    },
    dispose: () => sam2.dispose(),
  };
}

async function verify(ctx: GpuContext, label: string, ts: Tensor[]): Promise<string> {
  const parts: string[] = [];
  for (const t of ts) {
    const v = await readTensor(ctx, t);
    let bad = 0;
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) bad++;
    if (bad) throw new Error(`${label}: ${bad} non-finite values in an output [${t.shape.join(', ')}]`);
    parts.push(`[${t.shape.join(',')}]`);
  }
  return `finite ${parts.join(' ')}`;
}

function withCpu(fn: () => Promise<void>): { fn: () => Promise<void>; cpu: number[] } {
  const cpu: number[] = [];
  return {
    cpu,
    fn: async () => {
      const c0 = process.cpuUsage();
      await fn();
      const d = process.cpuUsage(c0);
      cpu.push((d.user + d.system) / 1e6);
    },
  };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor((a.length - 1) / 2)] ?? NaN;

/** The benchmark (or, with `check`, the real-shape check) on `ctx`; one row per model and stage. */
export async function benchSam2(ctx: GpuContext, o: Sam2BenchOptions): Promise<Sam2BenchRow[]> {
  const log = o.log ?? ((s: string) => console.log(s));
  const dtype = o.dtype ?? 'f32';
  const rows: Sam2BenchRow[] = [];
  const S = 1024;
  const input = ctx.upload(new Float32Array(3 * S * S).map((_, i) => Math.sin(i * 0.0137) * 1.7), [1, 3, S, S]);
  input.persistent = true;
  const models: Loaded[] = [];
  try {
    for (const m of o.models) models.push(await load(ctx, m, await weightsFor(m, o.dir, log), dtype));
    const feats = new Map<Sam2BenchModel, { out: Tensor[]; dispose(): void }>();
    for (const m of models) {
      const t0 = performance.now();
      const f = ctx.scope(() => m.encode(input));
      for (const t of f.out) t.persistent = true;
      feats.set(m.name, f);
      const verified = await verify(ctx, `${m.name} encode`, f.out);
      log(`${m.name}: encode ${((performance.now() - t0) / 1000).toFixed(1)} s (first run, incl. shader compiles), ${verified}; peak GPU pool ${(ctx.poolStats().peakLiveBytes / 2 ** 20).toFixed(0)} MiB`);
      rows.push({ model: m.name, what: 'encode', verified, firstMs: performance.now() - t0 });
      for (const B of o.batches) {
        const t1 = performance.now();
        const out = await ctx.scopeAsync(async () => m.decode(f.out, B));
        const v = await verify(ctx, `${m.name} decode x${B}`, out);
        out.forEach((t) => t.dispose());
        rows.push({ model: m.name, what: `decode x ${B}`, verified: v, firstMs: performance.now() - t1 });
      }
    }
    // runs 0 (bench:device --quick): first calls only.
    if (o.check || o.runs === 0) {
      for (const f of feats.values()) f.dispose();
      return rows;
    }
    // Timed, interleaved: encodes first, then each batch size.
    const stage = async (what: string, make: (m: Loaded) => () => Promise<void>) => {
      const wrapped = new Map(models.map((m) => [m, withCpu(make(m))]));
      const timed = new Map<Loaded, Timed>([...wrapped].map(([m, w]) => [m, { run: w.fn }]));
      log(`timing ${what}: ${o.warmup} warm-up + ${o.runs} runs each, interleaved (load ${fmtLoad()})`);
      const res = await measureInterleaved(timed, { runs: o.runs, warmup: o.warmup }, (m, e) => log(`  ${m.name} ${what} failed: ${String(e)}`));
      wrapped.forEach((w, m) => {
        const t = res.get(m);
        if (!t) return;
        const row = rows.find((r) => r.model === m.name && r.what === what)!;
        row.timing = t;
        row.cpuS = median(w.cpu.slice(-o.runs));
        log(`  ${m.name} ${what}: median ${(row.timing.median / 1000).toFixed(3)} s, CPU ${row.cpuS.toFixed(2)} s/run`);
      });
    };
    await stage('encode', (m) => async () => {
      const f = ctx.scope(() => m.encode(input));
      await ctx.sync();
      f.dispose();
    });
    for (const B of o.batches) {
      await stage(`decode x ${B}`, (m) => async () => {
        const out = await ctx.scopeAsync(async () => m.decode(feats.get(m.name)!.out, B));
        await ctx.sync();
        out.forEach((t) => t.dispose());
      });
    }
    for (const f of feats.values()) f.dispose();
    return rows;
  } finally {
    for (const m of models) m.dispose();
    input.dispose();
  }
}

/** A markdown table of the rows, with per-prompt-set decode times and ratios against SAM ViT-B. */
export function sam2Table(rows: readonly Sam2BenchRow[], adapter: string): string {
  const lines = [`adapter: ${adapter}`, '', '| model | stage | median | CPU s/run | per prompt set | SAM ViT-B CPU time / this (same stage; > 1: faster) |', '| --- | --- | --- | --- | --- | --- |'];
  for (const r of rows) {
    if (!r.timing) continue;
    const B = r.what.startsWith('decode') ? Number(r.what.split('x ')[1]) : 1;
    const base = rows.find((x) => x.model === 'sam-vit-b' && x.what === r.what);
    const ratio = base?.cpuS && r.cpuS && r.model !== 'sam-vit-b' ? `${(base.cpuS / r.cpuS).toFixed(2)}x` : '-';
    const per = r.what.startsWith('decode') ? `${((r.timing.median / B) / 1000).toFixed(3)} s` : '-';
    lines.push(`| ${r.model} | ${r.what} | ${(r.timing.median / 1000).toFixed(3)} s | ${r.cpuS?.toFixed(2) ?? '-'} | ${per} | ${ratio} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const ctx = await ourContext();
  const opts: Sam2BenchOptions = {
    models: flag('--models', 'hiera-t,hiera-s,sam-vit-b').split(',') as Sam2BenchModel[],
    runs: Number(flag('--runs', '3')),
    warmup: Number(flag('--warmup', '1')),
    batches: flag('--batches', '1,16').split(',').map(Number),
    dir: flag('--dir', '/tmp/samclip-bench'),
    dtype: has('--f16') ? 'f16' : 'f32',
    check: has('--check'),
  };
  console.log(`adapter: ${ctx.description}; load ${fmtLoad()}`);
  const rows = await benchSam2(ctx, opts);
  if (opts.check) {
    for (const r of rows) console.log(`ok ${r.model} ${r.what}: ${r.verified}`);
    return;
  }
  console.log(`\n${sam2Table(rows, ctx.description)}`);
  const json = has('--json') ? flag('--json', 'sam2-bench.json') : null;
  if (json) writeFileSync(json, `${JSON.stringify({ adapter: ctx.description, load: fmtLoad(), rows }, null, 2)}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) runBench(main);
