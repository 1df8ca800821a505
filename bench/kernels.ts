/**
 * Kernel benchmark: our WGSL kernels at real SAM ViT-B / CLIP ViT-B/16 shapes, side by side with
 * ONNX Runtime Web's WebGPU EP on the same Dawn adapter and onnxruntime-node on the CPU.
 *
 *   node --import tsx bench/kernels.ts [--only sam.qkv,clip] [--runs N] [--warmup N] [--no-ort-web]
 *        [--ort-web-io cpu|gpu|both] [--f16] [--no-e2e] [--light-runs N] [--json out.json] [--list]
 *
 * `--f16` adds our f16 path (inputs and weights stored as f16, f32 arithmetic; gate rel L2 <= 1e-2);
 * `--no-e2e` drops our end-to-end column (bench/device.ts --quick). Cases whose ONNX graph binds a
 * tensor over the adapter's maxStorageBufferBindingSize skip ORT Web (it returns garbage there).
 *
 * (ORT Web's 40 s first-run stall is avoided with V8's --liftoff-only, which bench/harness/ort-web.ts
 * sets itself; `node --liftoff-only --import tsx bench/kernels.ts` is equivalent. NODE_OPTIONS
 * refuses that flag.)
 *
 * Per case: one seeded input set; onnxruntime-node's output is the reference; each variant runs
 * once and is validated (relative L2 <= 1e-4 unless the case says otherwise); then `warmup` untimed
 * runs each (default 1; 0 for cases over 5 GFLOP, whose validation run is their warm-up) and `runs`
 * interleaved rounds, one timed call of every variant per round (default 5; 3 over 5 GFLOP):
 * median / min / p90. `--light-runs N` sets the rounds of the cases under 5 GFLOP apart from
 * `--runs` (bench:device --quick: 1 round of the heavy cases, 5 of the light ones, whose single
 * samples of tens of ms were too noisy to rank). A variant that runs but fails validation is still timed and marked invalid.
 *
 * Columns:
 *   ours GPU-resident  inputs and weights already on the GPU; encode + submit + wait for the queue.
 *   ours end-to-end    upload the inputs, run, read the output back (what ORT with CPU io does).
 *   ORT Web, GPU io    inputs bound as GPU buffers, outputs left on the GPU, wait for the queue.
 *   ORT Web, CPU io    host tensors in and out (includes upload and readback).
 *   ORT node CPU       MLAS, default threads, full graph optimisation.
 */
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import type { GpuContext } from '../src/gpu/context.js';
import { buildModel } from './harness/onnx-graphs.js';
import { ourContext } from './harness/dawn.js';
import { KERNEL_CASES, type KernelCase, seededRng } from './harness/kernel-cases.js';
import { createOrtNodeSession, ortNodeVersion } from './harness/ort-node.js';
import { ORT_WEB_TIERUP, ortWebAdapter } from './harness/ort-web.js';
import { type CaseResult, VARIANTS, type VariantKey, type VariantResult, fmtLoad, load1, markdownTable, variantLine } from './harness/report.js';
import { type Runner, disposeAll, ortNodeRunner, ortWebRunner, oursEndToEnd, oursGpuResident, uploadAll } from './harness/runners.js';
import { measureInterleaved } from './harness/timing.js';
import { checkOutput, fmtCheck } from './harness/validate.js';

interface Args {
  only: string[];
  runs?: number;
  warmup?: number;
  /** Timed rounds for the cases that are not heavy (under 5 GFLOP), where --runs is meant for the heavy ones. */
  lightRuns?: number;
  ortWeb: boolean;
  webIo: ('cpu' | 'gpu')[];
  json?: string;
  list: boolean;
  f16: boolean;
  e2e: boolean;
}

/** Timed runs and untimed warm-up runs of every variant of a case. */
interface Plan {
  runs: number;
  warmup: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { only: [], ortWeb: true, webIo: ['gpu', 'cpu'], list: false, f16: false, e2e: true };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${f} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new Error(`${f} needs an integer >= ${min}, got '${v}'`);
      return n;
    };
    if (f === '--only') a.only.push(...value().split(',').filter(Boolean));
    else if (f === '--runs') a.runs = int(1);
    else if (f === '--warmup') a.warmup = int(0);
    else if (f === '--light-runs') a.lightRuns = int(1);
    else if (f === '--no-ort-web') a.ortWeb = false;
    else if (f === '--ort-web-io') {
      const v = value();
      if (v !== 'cpu' && v !== 'gpu' && v !== 'both') throw new Error(`--ort-web-io takes cpu, gpu or both, got '${v}'`);
      a.webIo = v === 'both' ? ['gpu', 'cpu'] : [v];
    } else if (f === '--json') a.json = value();
    else if (f === '--list') a.list = true;
    else if (f === '--f16') a.f16 = true;
    else if (f === '--no-e2e') a.e2e = false;
    else throw new Error(`unknown argument '${f}' (see the header of bench/kernels.ts)`);
  }
  return a;
}

const errMsg = (e: unknown): string =>
  (e instanceof Error ? `${e.name}: ${e.message}` : String(e))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, 3)
    .join(' / ')
    .slice(0, 400);

/**
 * Wait for the queue and swallow the GPU errors a failed variant left queued (each sync raises
 * one), so the next case starts clean. Returns their messages.
 */
async function drainGpuErrors(ctx: GpuContext): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 16; i++) {
    try {
      await ctx.sync();
      return seen;
    } catch (e) {
      seen.push(errMsg(e));
    }
  }
  return seen;
}

type RunnerFactory = () => Runner | Promise<Runner>;

async function runCase(c: KernelCase, ctx: GpuContext, args: Args): Promise<CaseResult> {
  const t0 = performance.now();
  const r: CaseResult = {
    name: c.name, shape: c.shape, origin: c.origin, flops: c.flops, bytes: c.bytes,
    memoryBound: !!c.memoryBound, note: c.note, variants: {},
  };
  console.log(`\n== ${c.name}  ${c.shape}  (${(c.flops / 1e9).toFixed(2)} GFLOP, ${(c.bytes / 2 ** 20).toFixed(1)} MiB)\n   ${c.origin}`);
  if (c.note) console.log(`   note: ${c.note}`);
  const factory = await c.load();
  if (typeof factory === 'string') {
    r.skipped = factory;
    console.log(`   ${factory}`);
    return r;
  }
  const prep = factory(seededRng(c.name));
  const model = buildModel(prep.graph);
  const runs = (c.heavy ? undefined : args.lightRuns) ?? args.runs ?? (c.heavy ? 3 : 5);
  // Every variant's validation run already compiles its pipelines and touches its buffers; heavy
  // cases (seconds per run here) take that as their only warm-up.
  const plan: Plan = { runs, warmup: args.warmup ?? (c.heavy ? 0 : 1) };
  const relL2 = c.relL2 ?? 1e-4;

  const node = await createOrtNodeSession(model);
  const reference = (await node.run(prep.feeds)).y!.data;
  const weights = uploadAll(ctx, prep.weights);
  const weights16 = args.f16 && ctx.features.f16 ? uploadAll(ctx, prep.weights, 'f16') : null;

  const factories: [VariantKey, RunnerFactory][] = [['oursGpu', () => oursGpuResident(ctx, prep, weights)]];
  if (args.e2e) factories.push(['oursE2e', () => oursEndToEnd(ctx, prep, weights)]);
  if (weights16) factories.push(['oursF16', () => oursGpuResident(ctx, prep, weights16, 'f16')]);
  const bindLimit = ctx.limits.maxStorageBufferBindingSize;
  if (args.ortWeb && c.ortWebBinding && c.ortWebBinding > bindLimit) {
    r.variants.webGpu = { error: `skipped: ORT's graph binds ${(c.ortWebBinding / 2 ** 20).toFixed(0)} MiB, the adapter allows ${(bindLimit / 2 ** 20).toFixed(0)} MiB` };
    console.log(`   ORT Web ${r.variants.webGpu.error}`);
  } else if (args.ortWeb) {
    for (const io of args.webIo) factories.push([io === 'gpu' ? 'webGpu' : 'webCpu', () => ortWebRunner(io, model, prep.feeds)]);
  }
  factories.push(['node', () => ortNodeRunner(node, prep.feeds)]);

  // Validate each variant (one run, read back); a variant that fails to run is left out of the
  // timing, one that runs but disagrees with the reference is timed and marked invalid.
  const runners = new Map<VariantKey, Runner>();
  const fail = async (key: VariantKey, e: unknown) => {
    const v = (r.variants[key] ??= {});
    v.error = errMsg(e);
    if (key === 'oursGpu' || key === 'oursE2e') {
      const queued = await drainGpuErrors(ctx);
      if (queued.length) v.gpuErrors = queued;
    }
  };
  for (const [key, make] of factories) {
    const v: VariantResult = (r.variants[key] = {});
    let runner: Runner | null = null;
    try {
      runner = await make();
      const out = await runner.validate();
      if (key !== 'node') v.check = checkOutput(out, reference, key === 'oursF16' ? Math.max(relL2, 1e-2) : relL2);
      runners.set(key, runner);
      console.log(`   validated ${VARIANTS[key]}${v.check ? `: ${fmtCheck(v.check)}` : ''}`);
    } catch (e) {
      await fail(key, e);
      await runner?.close().catch(() => undefined);
      console.log(variantLine(r, key));
    }
    const errs = runner?.takeGpuErrors?.() ?? [];
    if (errs.length) v.gpuErrors = errs;
  }

  console.log(`   timing: ${plan.warmup} warm-up + ${plan.runs} interleaved rounds of ${runners.size} variants`);
  const timings = await measureInterleaved(runners, plan, fail);
  for (const [key, runner] of runners) {
    const v = r.variants[key]!;
    const t = timings.get(key);
    if (t) v.timing = t;
    const errs = runner.takeGpuErrors?.() ?? [];
    if (errs.length) v.gpuErrors = [...(v.gpuErrors ?? []), ...errs];
    await runner.close().catch((e: unknown) => (v.error ??= `close: ${errMsg(e)}`));
    console.log(variantLine(r, key));
  }
  await node.release();
  disposeAll(weights);
  if (weights16) disposeAll(weights16);
  await drainGpuErrors(ctx);
  ctx.pool.trim();
  r.load1 = load1();
  r.wallS = (performance.now() - t0) / 1000;
  console.log(`   load ${fmtLoad()}, ${r.wallS.toFixed(0)} s`);
  return r;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cases = KERNEL_CASES.filter((c) => args.only.length === 0 || args.only.some((s) => c.name.includes(s)));
  if (args.list || cases.length === 0) {
    if (cases.length === 0) console.log(`no case matches ${args.only.join(', ')}`);
    for (const c of KERNEL_CASES) console.log(`${c.name.padEnd(26)} ${c.shape.padEnd(44)} ${c.origin}`);
    return;
  }
  const started = new Date();
  const loadStart = fmtLoad();
  const ctx = await ourContext();
  console.log(`samclip kernel bench, ${started.toISOString()}`);
  console.log(`ours:     ${ctx.description}; f16 ${ctx.features.f16}, subgroups ${ctx.features.subgroups}`);
  if (args.ortWeb) console.log(`ORT Web:  ${await ortWebAdapter()} (${ORT_WEB_TIERUP ? 'TurboFan' : 'Liftoff-only'} wasm)`);
  console.log(`ORT node: onnxruntime-node ${ortNodeVersion()}, CPU: ${cpus().length} x ${cpus()[0]?.model ?? '?'}`);
  console.log(`load average at start: ${loadStart}`);

  const results: CaseResult[] = [];
  for (const c of cases) results.push(await runCase(c, ctx, args));

  console.log(`\nload average at end: ${fmtLoad()}\n`);
  console.log(markdownTable(results));
  if (args.json) {
    const report = {
      date: started.toISOString(),
      command: process.argv.slice(1).join(' '),
      node: process.version,
      ours: ctx.description,
      ortWeb: args.ortWeb ? await ortWebAdapter() : null,
      ortWebWasm: ORT_WEB_TIERUP ? 'turbofan' : 'liftoff-only',
      ortNode: ortNodeVersion(),
      loadStart,
      loadEnd: fmtLoad(),
      cases: results,
    };
    await writeFile(args.json, JSON.stringify(report, null, 1));
    console.log(`\nwrote ${args.json}`);
  }
  await ctx.sync();
}

main().then(
  // ORT Web keeps wasm/GPU handles alive; end the process explicitly once everything is written.
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
