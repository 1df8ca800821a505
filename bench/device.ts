/**
 * The device benchmark: everything the engine is judged by on one adapter, in one command.
 *
 *   npm run bench:device [-- --quick] [--only kernels,sam-encoder,sam-decoder,clip,samclip,sam2]
 *       [--out bench/results] [--dir /tmp/samclip-bench] [--kernels case,case]
 *
 * 1. Doctor line: adapter, features, limits, the engine's kernel choices, host CPU (model, vector
 *    width, AVX-512) and for CPU adapters the SIMD width the driver reports.
 * 2. Kernel roofline at the real shapes (bench/kernels.ts, f32 and f16, ORT Web WebGPU on the same
 *    adapter, onnxruntime-node as the reference every output is checked against).
 * 3. Models (each script below validates its outputs before their times count; first run and
 *    pipeline creation reported apart from steady state; dispatches and host ms per call):
 *    SAM ViT-B encoder 1024 f32 and f16 (bench/sam-encoder.ts, vs PyTorch), prompt encoder + mask
 *    decoder B = 1 and 16 (bench/sam-decoder.ts, vs PyTorch), CLIP ViT-B/16 image and 80-prompt text
 *    (bench/clip.ts, vs onnxruntime-node), SAM-CLIP refined 1024 with 5 classes (bench/samclip.ts),
 *    and SAM 2.1 when `bench/sam2.ts` exists (it exports `sam2DeviceRows`, see below).
 *    Each script runs as a child process, so every model's first run compiles its own pipelines.
 * 4. Writes bench/results/<adapter-slug>.json and .md; `npx tsx tools/bench-tables.ts` puts the
 *    per-adapter tables at the top of bench/README.md.
 *
 * `--quick` (CPU adapters; under 10 minutes on a quiet 2-core lavapipe host with the artefacts
 * cached): one timed run per kernel variant, no end-to-end or ORT Web CPU-io columns; the SAM
 * encoder at 512 px only, one timed run f16 and one f32 against ORT Web; ORT Web skipped on
 * the decoder's B = 16 (80 s there); the text tower on the first 8 prompts (ORT Web takes ~100 s a
 * run on all 80); SAM-CLIP first run only. Every model with an ONNX peer is thus timed against ORT
 * Web in the same run. Full mode: 3 runs and every competitor (<= 8 minutes on a GPU).
 *
 * SAM 2.1 hook: when `bench/sam2.ts` exists it is called in this process: its
 *   `sam2DeviceRows(opts: { quick: boolean; dir: string }): Promise<BenchRow[]>`
 * (bench/harness/record.ts's row shape) if it exports one, else its `benchSam2(ctx, options)`
 * (Hiera-T only and first calls only in --quick; T, S, B+, L otherwise), whose rows are mapped here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPORTED_LIMITS } from '../src/gpu/device.js';
import { hostCpu } from '../src/node/host-cpu.js';
import { GpuContext } from '../src/gpu/context.js';
import { ourContext, sharedDawn } from './harness/dawn.js';
import { flag, has } from './harness/cli.js';
import type { BenchRow } from './harness/record.js';
import { fmtLoad } from './harness/report.js';
import { deviceMarkdown, type DeviceReport, type KernelRow, adapterSlug } from './harness/device-report.js';

const quick = has('--quick');
const only = flag('--only', 'kernels,sam-encoder,sam-decoder,clip,samclip,sam2').split(',');
const outDir = flag('--out', join(import.meta.dirname, 'results'));
const dir = flag('--dir', '/tmp/samclip-bench');
const tmp = join(dir, 'device-json');

/** Kernel cases of the roofline (bench/harness/kernel-cases.ts names, substring match). */
const KERNEL_CASES_ALL = 'sam.qkv,sam.mlp.lin1,sam.mlp.lin2,clip.qkv,clip.mlp.c_fc,sam.layernorm,sam.softmax.window,sam.attn.global,clip.attn';
const KERNEL_CASES = flag('--kernels', KERNEL_CASES_ALL);

interface Step {
  name: string;
  script: string;
  args: string[];
}

function steps(): Step[] {
  const r = quick ? ['--runs', '1', '--warmup', '0'] : ['--runs', '3', '--warmup', '1'];
  const list: Step[] = [];
  if (only.includes('kernels')) {
    list.push({ name: 'kernels', script: 'kernels.ts', args: ['--only', KERNEL_CASES, '--f16', ...r, ...(quick ? ['--light-runs', '5', '--no-e2e', '--ort-web-io', 'gpu'] : ['--ort-web-io', 'gpu'])] });
  }
  if (only.includes('sam-encoder')) {
    // --quick times the encoder at 512 px only (a 1024 px first run alone takes 45-65 s on a 2-core
    // lavapipe host): f16 steady state, validated against PyTorch, and below f32 against ORT Web.
    const enc = ['--no-ort-node', '--no-profile', '--dir', dir];
    if (!quick) list.push({ name: 'sam-encoder-f32', script: 'sam-encoder.ts', args: [...r, ...enc] });
    list.push({ name: 'sam-encoder-f16', script: 'sam-encoder.ts', args: [...(quick ? ['--size', '512'] : []), ...r, ...enc, '--f16', '--no-ort-web'] });
    // At 512 px ORT Web's global attention (12 x 1024 x 1024 f32, 48 MiB) fits a 128 MiB binding, so
    // its output is valid even on CPU adapters, where the 1024 px graph binds 768 MiB and returns
    // garbage. The encoder's only comparison with ORT Web on a CPU adapter: 145 s in --quick on
    // lavapipe (ORT Web's first output 58 s, a run 52 s; ours 13 s).
    list.push({ name: 'sam-encoder-512', script: 'sam-encoder.ts', args: ['--size', '512', ...r, '--no-ort-node', '--no-profile', '--dir', dir] });
  }
  if (only.includes('sam-decoder')) {
    list.push({ name: 'sam-decoder', script: 'sam-decoder.ts', args: [...(quick ? ['--runs', '1', '--warmup', '0', '--ort-web-batches', '1', '--host-runs', '3'] : ['--runs', '5', '--warmup', '1']), '--batches', '1,16', '--no-ort-node', '--no-profile', '--dir', dir] });
  }
  if (only.includes('clip')) {
    list.push({ name: 'clip', script: 'clip.ts', args: [...(quick ? ['--runs', '1', '--prompts', '8'] : ['--runs', '3', '--warmup', '1']), '--ort-web-io', 'gpu'] });
  }
  if (only.includes('samclip')) {
    list.push({ name: 'samclip', script: 'samclip.ts', args: ['--refined-only', '--runs', quick ? '0' : '2', '--dir', dir] });
  }
  return list;
}

/** Run one bench script as a child (same Node flags), streaming its output; resolves with its exit code. */
function runStep(s: Step, json: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--liftoff-only', '--import', 'tsx', join(import.meta.dirname, s.script), ...s.args, '--json', json], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    child.on('exit', (code) => resolve(code ?? 1));
    child.on('error', () => resolve(1));
  });
}

/** The kernel bench's cases as flat rows (ours f32, ours f16, ORT Web, ORT node). */
function kernelRows(file: string): KernelRow[] {
  const rep = JSON.parse(readFileSync(file, 'utf8')) as { cases: { name: string; shape: string; flops: number; bytes: number; memoryBound: boolean; skipped?: string; variants: Record<string, { timing?: { median: number }; check?: { relL2: number; ok: boolean }; error?: string }> }[] };
  const rows: KernelRow[] = [];
  for (const c of rep.cases) {
    for (const [key, v] of Object.entries(c.variants)) {
      rows.push({
        name: c.name, shape: c.shape, variant: key, flops: c.flops, bytes: c.bytes, memoryBound: c.memoryBound,
        medianMs: v.timing?.median, valid: v.check?.ok, relL2: v.check?.relL2, note: v.error ?? c.skipped,
      });
    }
  }
  return rows;
}

async function doctor(): Promise<DeviceReport['doctor']> {
  const ctx = await ourContext();
  const limits: Record<string, number> = {};
  for (const k of REPORTED_LIMITS) {
    const v = (ctx.device.limits as unknown as Record<string, number | undefined>)[k];
    if (typeof v === 'number') limits[k] = v;
  }
  const features = [...ctx.device.features].map(String).sort();
  const host = hostCpu();
  const simd = /(\d+)-bits/.exec(ctx.adapterInfo.device + ctx.adapterInfo.description)?.[1];
  const d = {
    adapter: ctx.description,
    cpuAdapter: ctx.tuning.cpuAdapter,
    features,
    limits,
    host,
    driverSimdBits: simd ? Number(simd) : null,
    // ourContext() measured (or read from the cache) the per-adapter choices the children reuse.
    tuning: { ...ctx.tuning },
  };
  console.log(`doctor: ${d.adapter}; ${d.cpuAdapter ? 'CPU adapter' : 'GPU'}; features ${features.join(', ')}`);
  console.log(`        limits ${Object.entries(limits).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  console.log(`        host ${host.summary} (vector ${host.vectorBits} bits, AVX-512 ${host.avx512 ? 'yes' : 'no'})${simd ? `; driver SIMD ${simd} bits` : ''}; tuning ${JSON.stringify(d.tuning)}`);
  ctx.destroy();
  return d;
}

type Sam2Module = {
  sam2DeviceRows?: (o: { quick: boolean; dir: string }) => Promise<BenchRow[]>;
  benchSam2?: (ctx: GpuContext, o: { models: string[]; runs: number; warmup: number; batches: number[]; dir: string }) => Promise<
    { model: string; what: string; timing?: { median: number; min: number; runs: number }; firstMs?: number; cpuS?: number; verified: string }[]
  >;
};

/** SAM 2.1 rows from bench/sam2.ts (see the header). */
async function sam2Rows(file: string): Promise<BenchRow[]> {
  const mod = (await import(pathToFileURL(file).href)) as Sam2Module;
  if (mod.sam2DeviceRows) return mod.sam2DeviceRows({ quick, dir });
  if (!mod.benchSam2) throw new Error('bench/sam2.ts exports neither sam2DeviceRows nor benchSam2');
  const ctx = await GpuContext.create({ gpu: await sharedDawn() });
  try {
    const models = quick ? ['hiera-t'] : ['hiera-t', 'hiera-s', 'hiera-b+', 'hiera-l'];
    // --quick: first calls only (shader compiles included), as the SAM encoder rows.
    const rows = await mod.benchSam2(ctx, { models, runs: quick ? 0 : 3, warmup: quick ? 0 : 1, batches: quick ? [1] : [1, 16], dir });
    return rows.map((r) => ({
      model: `SAM 2.1 ${r.model} ${r.what}`,
      variant: 'ours f32, GPU-resident',
      ...(r.timing ? { medianMs: r.timing.median, minMs: r.timing.min, runs: r.timing.runs } : {}),
      firstMs: r.firstMs,
      cpuS: r.cpuS,
      note: `no reference at full size; outputs checked for shape and finiteness: ${r.verified}`,
    }));
  } finally {
    ctx.destroy();
  }
}

/** The checkout's commit (with -dirty for local changes), so a results file names the code it measured. */
function gitCommit(): string | undefined {
  const r = spawnSync('git', ['describe', '--always', '--dirty'], { cwd: import.meta.dirname, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  mkdirSync(tmp, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const started = new Date().toISOString();
  const loadStart = fmtLoad();
  const doc = await doctor();
  const report: DeviceReport = {
    date: started,
    mode: quick ? 'quick' : 'full',
    command: `npm run bench:device --${process.argv.slice(2).map((a) => ` ${a}`).join('')}`,
    commit: gitCommit(),
    node: process.version,
    doctor: doc,
    loadStart,
    loadEnd: '',
    wallS: 0,
    kernels: [],
    models: [],
    steps: [],
  };
  const slug = adapterSlug(doc.adapter, doc.cpuAdapter ? doc.host.summary : null);
  const base = join(outDir, `${slug}${quick ? '.quick' : ''}`);
  const all = steps();
  const withSam2 = only.includes('sam2') && existsSync(join(import.meta.dirname, 'sam2.ts'));
  // Written after every step (with what is still pending), so a run stopped half-way keeps its rows.
  const save = (): string => {
    const done = new Set(report.steps.map((s) => s.name));
    const pending = [...all.map((s) => s.name), ...(withSam2 ? ['sam2'] : [])].filter((n) => !done.has(n));
    report.loadEnd = fmtLoad();
    report.wallS = (performance.now() - t0) / 1000;
    if (pending.length) report.pending = pending;
    else delete report.pending;
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 1));
    const md = deviceMarkdown(report);
    writeFileSync(`${base}.md`, md);
    return md;
  };
  for (const s of all) {
    const json = join(tmp, `${s.name}.json`);
    if (existsSync(json)) writeFileSync(json, '');
    const ts = performance.now();
    console.log(`\n===== ${s.name}: bench/${s.script} ${s.args.join(' ')}  (load ${fmtLoad()})`);
    const code = await runStep(s, json);
    const wallS = (performance.now() - ts) / 1000;
    report.steps.push({ name: s.name, code, wallS });
    const text = existsSync(json) ? readFileSync(json, 'utf8') : '';
    if (!text) console.log(`${s.name}: no results (exit code ${code})`);
    else if (s.name === 'kernels') report.kernels = kernelRows(json);
    else report.models.push(...(JSON.parse(text) as { rows: BenchRow[] }).rows);
    save();
  }
  const sam2 = join(import.meta.dirname, 'sam2.ts');
  if (withSam2) {
    const ts = performance.now();
    try {
      report.models.push(...(await sam2Rows(sam2)));
      report.steps.push({ name: 'sam2', code: 0, wallS: (performance.now() - ts) / 1000 });
    } catch (e) {
      console.log(`sam2: ${(e as Error).message}`);
      report.steps.push({ name: 'sam2', code: 1, wallS: (performance.now() - ts) / 1000, error: (e as Error).message });
    }
  }
  const md = save();
  console.log(`\n${md}\nwrote ${base}.json and ${base}.md in ${report.wallS.toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
