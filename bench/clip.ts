/**
 * CLIP ViT-B/16 benchmark: full-size model with seeded random weights under the official OpenAI
 * names (src/weights/random.ts), image encode at 224 px and text encode of the 80 ImageNet prompts
 * of one class, on our engine side by side with ONNX Runtime Web's WebGPU EP on the same Dawn
 * adapter, and onnxruntime-node on the CPU (the validation reference and a second timing).
 *
 *   node --import tsx bench/clip.ts [--only image|text] [--runs N] [--warmup N] [--host-runs N] [--no-ort-web]
 *        [--no-ort-node] [--no-ort-web-text] [--no-full-text] [--prompts N] [--ort-web-io cpu|gpu|both] [--cache DIR]
 *        [--json out.json]
 *
 * `--json` also writes the rows in bench/harness/record.ts's shape (first run, dispatches and host ms
 * per call for ours: the median of `--host-runs` (default 3) more calls after the timed rounds). `--no-ort-web-text` skips ORT Web on the text tower only (its 80-prompt run
 * takes minutes on CPU adapters; bench/device.ts --quick); `--no-full-text` drops our full-77-position
 * text variant (the pipeline runs trimmed). `--prompts N` encodes the first N of the 80 templates
 * (default 80; the ONNX text graph has a fixed batch, so each N gets its own export): with 8,
 * bench/device.ts --quick times ORT Web on the text tower in ~10 s a run instead of ~100 s.
 *
 * First run: writes the random checkpoint (600 MB, ~30 s) and exports both towers to ONNX with
 * tools/export-onnx-clip.py (`--bench` mode: the same PyTorch re-implementation of openai/CLIP the
 * parity fixtures come from; needs /usr/bin/python3 with torch), into --cache (default
 * $TMPDIR/samclip-bench-clip). Later runs reuse them.
 *
 * ORT Web notes (bench/harness/ort-web.ts): V8 runs ORT's wasm Liftoff-only (set by the harness;
 * without it the first session.run stalls ~40 s); creating a ViT-B/16 session takes 40-50 s on
 * lavapipe. Its text graph takes the ids as float32 (the harness feeds float32 tensors) and casts
 * them to int64 inside.
 *
 * Variants, timed in interleaved rounds (bench/harness/timing.ts):
 *   image  ours GPU-resident   pixels already on the GPU; encode, read the 512 features back
 *          ours end-to-end     upload pixels, encode, read back (what ORT with CPU io does)
 *   text   ours (trimmed)      the pipeline's default: the batch runs on its first max(eot)+1
 *                              positions (causal mask: the pooled features are the same)
 *          ours (full 77)      all 77 positions, as upstream and the ONNX graph do
 *   both   ORT Web WebGPU (cpu io / gpu io), ORT node CPU
 * Every variant is validated against ORT node (rel L2 <= 1e-4) before it is timed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GpuContext } from '../src/gpu/context.js';
import type { Tensor } from '../src/gpu/tensor.js';
import type { ClipModel } from '../src/model/clip/clip.js';
import { loadClip } from '../src/model/clip/load.js';
import { IMAGENET_TEMPLATES } from '../src/text/imagenet-templates.js';
import { loadClipTokenizer } from '../src/text/clip-vocabulary.js';
import { writeRandomWeights } from '../src/weights/random.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { Rng } from '../test/helpers/random.js';
import { ourContext } from './harness/dawn.js';
import { createOrtNodeSession, ortNodeVersion } from './harness/ort-node.js';
import { ORT_WEB_TIERUP, createOrtWebSession, ortWebAdapter } from './harness/ort-web.js';
import { PYTHON } from './harness/cli.js';
import { type BenchRow, type HostCost, checkFields, hostCost, timingFields, warmHostMs } from './harness/record.js';
import { fmtLoad } from './harness/report.js';
import type { Runner } from './harness/runners.js';
import type { Feeds } from './harness/session.js';
import { type Timing, gflops, measureInterleaved } from './harness/timing.js';
import { type Check, checkOutput, fmtCheck } from './harness/validate.js';

interface Args {
  only: ('image' | 'text')[];
  runs?: number;
  warmup: number;
  /** Extra calls of each of our variants after the timed rounds, for host ms once warm. */
  hostRuns: number;
  ortWeb: boolean;
  ortNode: boolean;
  ortWebText: boolean;
  fullText: boolean;
  /** How many of the 80 ImageNet templates the text task encodes. */
  prompts: number;
  webIo: ('cpu' | 'gpu')[];
  cache: string;
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { only: ['image', 'text'], warmup: 0, hostRuns: 3, ortWeb: true, ortNode: true, ortWebText: true, fullText: true, prompts: IMAGENET_TEMPLATES.length, webIo: ['cpu'], cache: join(tmpdir(), 'samclip-bench-clip') };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${f} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < min) throw new Error(`${f} needs an integer >= ${min}`);
      return n;
    };
    if (f === '--only') {
      const v = value();
      if (v !== 'image' && v !== 'text') throw new Error(`--only takes image or text, got '${v}'`);
      a.only = [v];
    } else if (f === '--runs') a.runs = int(1);
    else if (f === '--warmup') a.warmup = int(0);
    else if (f === '--host-runs') a.hostRuns = int(0);
    else if (f === '--no-ort-web') a.ortWeb = false;
    else if (f === '--no-ort-node') a.ortNode = false;
    else if (f === '--no-ort-web-text') a.ortWebText = false;
    else if (f === '--no-full-text') a.fullText = false;
    else if (f === '--prompts') {
      a.prompts = int(1);
      if (a.prompts > IMAGENET_TEMPLATES.length) throw new Error(`--prompts takes 1 to ${IMAGENET_TEMPLATES.length}, got ${a.prompts}`);
    }
    else if (f === '--ort-web-io') {
      const v = value();
      if (v !== 'cpu' && v !== 'gpu' && v !== 'both') throw new Error(`--ort-web-io takes cpu, gpu or both, got '${v}'`);
      a.webIo = v === 'both' ? ['cpu', 'gpu'] : [v];
    } else if (f === '--cache') a.cache = value();
    else if (f === '--json') a.json = value();
    else throw new Error(`unknown argument '${f}' (see the header of bench/clip.ts)`);
  }
  return a;
}

// ------------------------------------------------------------------ inputs and artefacts

const FAMILY = 'clip-vit-b-16';
const SEED = 0;
const CLASS_NAME = 'golden retriever';

/** Weights and ONNX exports (the text graph's batch is fixed: one export folder per prompt count). */
async function ensureArtefacts(dir: string, prompts: number): Promise<{ weights: string; vision: string; text: string }> {
  await mkdir(dir, { recursive: true });
  const weights = join(dir, `${FAMILY}.seed${SEED}.f32.safetensors`);
  if (!existsSync(weights)) {
    console.log(`writing random ${FAMILY} weights (seed ${SEED}) to ${weights} ...`);
    await writeRandomWeights(weights, { family: FAMILY, seed: SEED, dtype: 'F32' });
  }
  const onnxDir = join(dir, prompts === IMAGENET_TEMPLATES.length ? 'onnx' : `onnx-${prompts}-prompts`);
  const vision = join(onnxDir, 'vision.onnx');
  const text = join(onnxDir, 'text.onnx');
  const stamp = join(onnxDir, 'export.json');
  const stamped = existsSync(stamp) ? (JSON.parse(readFileSync(stamp, 'utf8')) as { weights?: string; prompts?: number }) : {};
  const fresh = existsSync(vision) && existsSync(text) && stamped.weights === weights && stamped.prompts === prompts;
  if (!fresh) {
    console.log('exporting both towers to ONNX with tools/export-onnx-clip.py --bench ...');
    const r = spawnSync(PYTHON, [join(import.meta.dirname, '..', 'tools', 'export-onnx-clip.py'), '--bench', weights, onnxDir, '--prompts', String(prompts)], {
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error(`tools/export-onnx-clip.py --bench failed (status ${r.status}); it needs ${PYTHON} (SAMCLIP_PYTHON) with torch`);
  }
  return { weights, vision, text };
}

/** FLOPs of one pre-LN transformer block stack on N tokens of width W (MLP width 4W). */
function towerFlops(layers: number, N: number, W: number, batch: number, causal: boolean): number {
  const linear = 2 * N * (3 * W * W + W * W + 8 * W * W);
  const attn = 2 * 2 * N * N * W * (causal ? 0.5 : 1);
  return batch * layers * (linear + attn);
}

// ------------------------------------------------------------------ runners

/** Host cost of the last call of each of our runners (bench/harness/record.ts). */
const lastHost = new Map<Runner, HostCost<Tensor>>();

function oursRunner(ctx: GpuContext, run: () => Tensor, prepare?: () => void, cleanup?: () => void): Runner {
  const once = async (): Promise<Float32Array> => {
    prepare?.();
    const host = hostCost(ctx, run);
    lastHost.set(runner, host);
    const y = host.result;
    try {
      return (await ctx.read(y)) as Float32Array;
    } finally {
      y.dispose();
      cleanup?.();
    }
  };
  const runner: Runner = {
    validate: once,
    async run() {
      await once();
    },
    async close() {},
  };
  return runner;
}

async function ortWebRunner(model: Uint8Array, feeds: Feeds, io: 'cpu' | 'gpu', output: string): Promise<Runner> {
  const session = await createOrtWebSession(model, { io });
  if (io === 'gpu') {
    const bound = session.bindGpu(feeds);
    return {
      validate: async () => (await bound.read())[output]!.data,
      run: () => bound.run(),
      takeGpuErrors: () => session.takeGpuErrors(),
      async close() {
        bound.dispose();
        await session.release();
      },
    };
  }
  return {
    validate: async () => (await session.run(feeds))[output]!.data,
    async run() {
      await session.run(feeds);
    },
    takeGpuErrors: () => session.takeGpuErrors(),
    close: () => session.release(),
  };
}

interface VariantReport {
  label: string;
  timing?: Timing;
  check?: Check;
  error?: string;
  createMs?: number;
  /** The validation call: the first run (pipeline compilation or session warm-up included). */
  firstMs?: number;
  compileMs?: number;
  dispatches?: number;
  hostMs?: number;
  flops: number;
  items: number;
}

interface TaskReport {
  task: string;
  flops: number;
  variants: VariantReport[];
}

const errMsg = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).split('\n').slice(0, 3).join(' / ').slice(0, 400);

async function runTask(
  task: string,
  variants: { label: string; flops: number; items?: number; make: () => Promise<Runner> | Runner; reference?: boolean }[],
  plan: { runs: number; warmup: number; hostRuns: number },
): Promise<TaskReport> {
  console.log(`\n== ${task}`);
  const reports: VariantReport[] = [];
  const runners = new Map<number, Runner>();
  let reference: Float32Array | null = null;
  // The reference (ORT node) goes first so every other variant is checked against it.
  const order = [...variants.keys()].sort((a, b) => Number(!!variants[b]!.reference) - Number(!!variants[a]!.reference));
  for (const i of order) {
    const v = variants[i]!;
    const rep: VariantReport = { label: v.label, flops: v.flops, items: v.items ?? 1 };
    reports[i] = rep;
    try {
      const t0 = performance.now();
      const runner = await v.make();
      rep.createMs = performance.now() - t0;
      const tv = performance.now();
      const out = await runner.validate();
      rep.firstMs = performance.now() - tv;
      rep.compileMs = lastHost.get(runner)?.compileMs;
      if (v.reference) reference = out;
      else if (reference) rep.check = checkOutput(out, reference, 1e-4);
      const errs = runner.takeGpuErrors?.() ?? [];
      if (errs.length) throw new Error(`GPU errors: ${errs.join(' | ')}`);
      runners.set(i, runner);
      console.log(`   ready ${v.label} (setup ${(rep.createMs / 1000).toFixed(1)} s)${rep.check ? `: ${fmtCheck(rep.check)}` : v.reference ? ' [reference]' : ''}`);
    } catch (e) {
      rep.error = errMsg(e);
      console.log(`   FAILED ${v.label}: ${rep.error}`);
    }
  }
  console.log(`   timing: ${plan.warmup} warm-up + ${plan.runs} interleaved rounds of ${runners.size} variants (load ${fmtLoad()})`);
  const timings = await measureInterleaved(runners, plan, (k, e) => {
    reports[k]!.error = errMsg(e);
  });
  for (const [i, r] of runners) {
    const t = timings.get(i);
    if (t) reports[i]!.timing = t;
    const host = lastHost.get(r);
    if (host) {
      const warm = reports[i]!.error ? undefined : await warmHostMs(plan.hostRuns, async () => {
        await r.run();
        return lastHost.get(r)!.hostMs;
      });
      Object.assign(reports[i]!, { dispatches: host.dispatches, hostMs: warm?.median ?? host.hostMs });
    }
    await r.close().catch(() => undefined);
  }
  for (const r of reports) {
    const t = r.timing;
    console.log(
      `   ${r.label.padEnd(34)} ${t ? `median ${(t.median / 1000).toFixed(2)} s  min ${(t.min / 1000).toFixed(2)} s  ${gflops(r.flops, t.median).toFixed(2)} GFLOP/s` : r.error ?? 'not timed'}` +
        (r.check && !r.check.ok ? '  ** INVALID **' : ''),
    );
  }
  return { task, flops: Math.max(...variants.map((v) => v.flops)), variants: reports };
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const loadStart = fmtLoad();
  const art = await ensureArtefacts(args.cache, args.prompts);
  const ctx = await ourContext();
  console.log(`samclip CLIP ViT-B/16 bench, ${started.toISOString()}`);
  console.log(`ours:     ${ctx.description}; f16 ${ctx.features.f16}`);
  if (args.ortWeb) console.log(`ORT Web:  ${await ortWebAdapter()} (${ORT_WEB_TIERUP ? 'TurboFan' : 'Liftoff-only'} wasm)`);
  console.log(`ORT node: onnxruntime-node ${ortNodeVersion()}, CPU: ${cpus().length} x ${cpus()[0]?.model ?? '?'}`);
  console.log(`load average at start: ${loadStart}`);

  const t0 = performance.now();
  const file = await SafetensorsFile.open(art.weights);
  const model: ClipModel = await loadClip(ctx, file, { dtype: 'f32' });
  await file.close();
  console.log(`loaded ${art.weights} in ${((performance.now() - t0) / 1000).toFixed(1)} s: vision ${JSON.stringify(model.config.vision)}, text ${JSON.stringify(model.config.text)}`);
  const V = model.config.vision!;
  const T = model.config.text!;
  const tasks: TaskReport[] = [];

  if (args.only.includes('image')) {
    const R = V.imageSize;
    const pixels = new Rng(1).randn(3 * R * R);
    const feeds: Feeds = { pixels: { data: pixels, dims: [1, 3, R, R] } };
    const N = V.grid * V.grid + 1;
    const flops = towerFlops(V.layers, N, V.width, 1, false) + 2 * (N - 1) * V.width * 3 * V.patch * V.patch;
    const bytes = readFileSync(art.vision);
    const resident = ctx.upload(pixels, [1, 3, R, R]);
    resident.persistent = true;
    let x: Tensor | null = null;
    const variants: Parameters<typeof runTask>[1] = [
      { label: 'ours GPU-resident', flops, make: () => oursRunner(ctx, () => model.encodeImage(ctx, resident)) },
      {
        label: 'ours end-to-end',
        flops,
        make: () =>
          oursRunner(
            ctx,
            () => model.encodeImage(ctx, x!),
            () => (x = ctx.upload(pixels, [1, 3, R, R])),
            () => x?.dispose(),
          ),
      },
    ];
    if (args.ortWeb) for (const io of args.webIo) variants.push({ label: `ORT Web WebGPU (${io} io)`, flops, make: () => ortWebRunner(bytes, feeds, io, 'image_features') });
    if (args.ortNode) {
      variants.push({
        label: 'ORT node CPU',
        flops,
        reference: true,
        make: async () => {
          const s = await createOrtNodeSession(bytes);
          return { validate: async () => (await s.run(feeds)).image_features!.data, run: async () => void (await s.run(feeds)), close: () => s.release() };
        },
      });
    }
    tasks.push(await runTask(`image encode, 1 x 3 x ${R} x ${R} (${(flops / 1e9).toFixed(1)} GFLOP)`, variants, { runs: args.runs ?? 3, warmup: args.warmup, hostRuns: args.hostRuns }));
    resident.dispose();
  }

  if (args.only.includes('text')) {
    const tok = await loadClipTokenizer();
    const prompts = IMAGENET_TEMPLATES.slice(0, args.prompts).map((t) => t.replace('{}', CLASS_NAME));
    const ids = tok.tokenize(prompts, { contextLength: T.contextLength });
    const B = prompts.length;
    let maxEot = 0;
    for (let b = 0; b < B; b++) for (let i = 0; i < T.contextLength; i++) if (ids.ids[b * T.contextLength + i] === tok.eotToken) maxEot = Math.max(maxEot, i);
    const Lt = maxEot + 1;
    const full = towerFlops(T.layers, T.contextLength, T.width, B, true);
    const trimmed = towerFlops(T.layers, Lt, T.width, B, true);
    const feeds: Feeds = { token_ids: { data: Float32Array.from(ids.ids), dims: [B, T.contextLength] } };
    const bytes = readFileSync(art.text);
    const variants: Parameters<typeof runTask>[1] = [
      { label: `ours (trimmed to ${Lt} positions)`, flops: trimmed, items: B, make: () => oursRunner(ctx, () => model.encodeText(ctx, ids, { trim: true })) },
    ];
    if (args.fullText) variants.push({ label: `ours (full ${T.contextLength})`, flops: full, items: B, make: () => oursRunner(ctx, () => model.encodeText(ctx, ids, { trim: false })) });
    if (args.ortWeb && args.ortWebText) for (const io of args.webIo) variants.push({ label: `ORT Web WebGPU (${io} io)`, flops: full, items: B, make: () => ortWebRunner(bytes, feeds, io, 'text_features') });
    if (args.ortNode) {
      variants.push({
        label: 'ORT node CPU',
        flops: full,
        items: B,
        reference: true,
        make: async () => {
          const s = await createOrtNodeSession(bytes);
          return { validate: async () => (await s.run(feeds)).text_features!.data, run: async () => void (await s.run(feeds)), close: () => s.release() };
        },
      });
    }
    tasks.push(
      await runTask(
        `text encode, ${B} prompts ("${IMAGENET_TEMPLATES[0]!.replace('{}', CLASS_NAME)}", ...; full ${(full / 1e9).toFixed(0)} GFLOP, trimmed ${(trimmed / 1e9).toFixed(0)} GFLOP)`,
        variants,
        { runs: args.runs ?? 2, warmup: args.warmup, hostRuns: args.hostRuns },
      ),
    );
  }

  console.log(`\nload average at end: ${fmtLoad()}`);
  console.log('\n| task | variant | median | min | GFLOP/s | vs ORT Web | check |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const t of tasks) {
    const web = t.variants.find((v) => v.label.startsWith('ORT Web') && v.timing)?.timing?.median;
    for (const v of t.variants) {
      const m = v.timing?.median;
      console.log(
        `| ${t.task.split(' (')[0]} | ${v.label} | ${m ? `${(m / 1000).toFixed(2)} s` : v.error ? `failed: ${v.error.slice(0, 60)}` : '-'} | ${v.timing ? `${(v.timing.min / 1000).toFixed(2)} s` : '-'} | ${m ? gflops(v.flops, m).toFixed(2) : '-'} | ${m && web ? `${(web / m).toFixed(2)}x` : '-'} | ${v.check ? `rel L2 ${v.check.relL2.toExponential(1)}${v.check.ok ? '' : ' INVALID'}` : '-'} |`,
      );
    }
  }
  if (args.json) {
    const rows: BenchRow[] = tasks.flatMap((t) => t.variants.map((v) => ({
      model: `CLIP ViT-B/16 ${t.task.split(' (')[0]!.split(',')[0]}`,
      variant: v.label,
      ...timingFields(v.timing),
      firstMs: v.firstMs,
      compileMs: v.compileMs,
      flops: v.flops,
      items: v.items,
      ...checkFields(v.check, 1e-4, 'ORT node CPU'),
      dispatches: v.dispatches,
      hostMs: v.hostMs,
      note: v.error,
    })));
    await writeFile(args.json, JSON.stringify({ date: started.toISOString(), command: process.argv.slice(1).join(' '), ours: ctx.description, ortNode: ortNodeVersion(), loadStart, loadEnd: fmtLoad(), tasks, rows }, null, 1));
    console.log(`\nwrote ${args.json}`);
  }
  model.dispose();
  await ctx.sync();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
