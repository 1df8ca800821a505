/**
 * Full-size SAM ViT-B image encoder (1024 px, random weights with the official names) on the engine,
 * side by side with ONNX Runtime Web's WebGPU provider on the same Dawn adapter running the same
 * model's ONNX export, and onnxruntime-node on the CPU as a second reference.
 *
 *   node --import tsx bench/sam-encoder.ts [--runs 3] [--warmup 1] [--f16] [--dir /tmp/samclip-bench]
 *       [--no-ort-web] [--no-ort-node] [--trace trace.json] [--size 1024]
 *       [--weights W.safetensors] [--onnx M.onnx --io IO.safetensors] [--json rows.json]
 *
 * `--runs 0` times only the first run (pipeline compilation included; bench/device.ts --quick);
 * `--json` writes the rows in bench/harness/record.ts's shape, with dispatches and host ms per run.
 *
 * Files (made once, kept in --dir): `sam_vit_b_random.safetensors` (tools/random-weights.ts, seed 0),
 * `sam_vit_b_encoder_<size>.onnx` and `sam_vit_b_io_<size>.safetensors` (a seeded input and the PyTorch
 * output: tools/export-onnx-sam-encoder.py, which needs /usr/bin/python3 with torch; without it the ORT
 * columns are skipped with a message).
 *
 * What is timed (median of --runs after --warmup untimed runs, each clock stopped only once the queue
 * has drained):
 *  - engine, GPU-resident: input already on the GPU, `encoder.forward` + `ctx.sync()`; the embedding
 *    stays on the GPU (how the predictor uses it);
 *  - engine, end to end: the GPU-resident time plus the measured upload of the input and readback
 *    of the embedding;
 *  - ORT Web WebGPU with GPU io (input bound once, output left on the GPU) and, for validation, one
 *    run read back;
 *  - onnxruntime-node CPU: one run (it takes tens of seconds on two cores), its output is the
 *    second reference.
 * Every output is validated against the PyTorch output before its timing is reported (rel L2 <= 1e-3;
 * f16 weights 1e-2). Then one more engine run under the profiler prints the per-kernel and per-stage
 * tables (timestamp queries; `--trace` writes a Chrome trace).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readTensor } from '../src/kernels/copy.js';
import { ImageEncoderViT } from '../src/model/sam/image-encoder.js';
import { loadSamWeights } from '../src/model/sam/load.js';
import { writeRandomWeights } from '../src/weights/random.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { ourContext } from './harness/dawn.js';
import { createOrtNodeSession } from './harness/ort-node.js';
import { createOrtWebSession, ortWebAdapter } from './harness/ort-web.js';
import { fmtLoad } from './harness/report.js';
import { type Timing, measure } from './harness/timing.js';
import { type Check, checkOutput, fmtCheck } from './harness/validate.js';
import { PYTHON, flag, has, runBench } from './harness/cli.js';
import { type BenchRow, checkFields, hostCost, timingFields, writeRows } from './harness/record.js';

const runs = Number(flag('--runs', '3'));
const warmup = Number(flag('--warmup', '1'));
const size = Number(flag('--size', '1024'));
const dir = flag('--dir', '/tmp/samclip-bench');
const f16 = has('--f16');
const tracePath = has('--trace') ? flag('--trace', 'sam-encoder-trace.json') : null;

const fmt = (t: Timing) => `median ${(t.median / 1000).toFixed(2)} s (min ${(t.min / 1000).toFixed(2)}, p90 ${(t.p90 / 1000).toFixed(2)}, ${t.runs} runs)`;

interface Row {
  name: string;
  timing?: Timing;
  /** CPU seconds the process used per timed run (lavapipe's threads run in this process). */
  cpuS?: number;
  check?: Check;
  note?: string;
}

/**
 * Wrap a timed function to also record the process CPU time of each call. On lavapipe the "GPU" is
 * this process's threads, so CPU seconds per run measure the work done independently of how busy
 * the machine is (wall time on a loaded 2-core host is not); on an idle host, wall >= CPU / cores.
 */
function withCpu(fn: () => Promise<unknown>): { fn: () => Promise<void>; median: (n: number) => number } {
  const cpu: number[] = [];
  return {
    fn: async () => {
      const c0 = process.cpuUsage();
      await fn();
      const d = process.cpuUsage(c0);
      cpu.push((d.user + d.system) / 1e6);
    },
    median: (n) => {
      const s = cpu.slice(-n).sort((a, b) => a - b);
      return s[Math.floor((s.length - 1) / 2)] ?? NaN;
    },
  };
}

async function prepare(): Promise<{ weights: string; onnx: string | null; io: string | null }> {
  mkdirSync(dir, { recursive: true });
  const weights = flag('--weights', join(dir, 'sam_vit_b_random.safetensors'));
  if (!existsSync(weights)) {
    console.error(`writing ${weights} (tools/random-weights.ts --family sam-vit-b, seed 0) ...`);
    await writeRandomWeights(weights, { family: 'sam-vit-b', seed: 0 });
  }
  const onnx = flag('--onnx', join(dir, `sam_vit_b_encoder_${size}.onnx`));
  const io = flag('--io', join(dir, `sam_vit_b_io_${size}.safetensors`));
  if (has('--no-ort-web') && has('--no-ort-node') && !existsSync(io)) return { weights, onnx: null, io: null };
  if (!existsSync(onnx) || !existsSync(io)) {
    try {
      console.error(`exporting ${onnx} with tools/export-onnx-sam-encoder.py (PyTorch) ...`);
      for (const p of [onnx, io]) if (existsSync(p)) throw new Error(`${p} exists without its companion; delete it`);
      execFileSync(PYTHON, ['tools/export-onnx-sam-encoder.py', 'export', weights, onnx, '--size', String(size), '--io', io], { stdio: 'inherit' });
    } catch (e) {
      console.error(`ONNX export unavailable (${(e as Error).message.split('\n')[0]}): ORT columns skipped`);
      return { weights, onnx: null, io: null };
    }
  }
  return { weights, onnx, io };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const files = await prepare();
  // --f16: f16 weights and f16 activations (ContextOptions.activations), f32 accumulation.
  const ctx = await ourContext(f16 ? { preferF16: true, activations: 'f16' } : {});
  console.log(`adapter: ${ctx.description}`);
  console.log(`load average before: ${fmtLoad()}`);

  const { weights, config } = await loadSamWeights(ctx, files.weights, { dtype: f16 ? 'f16' : 'f32' });
  const encoder = new ImageEncoderViT(weights, 'image_encoder', config);
  console.log(`SAM ViT-B encoder: width ${config.embedDim}, depth ${config.depth}, heads ${config.numHeads}, window ${config.windowSize}, ` +
    `global ${config.globalAttnIndexes.join(',')}, ${size} px, weights ${f16 ? 'f16' : 'f32'} on the GPU`);

  let input: Float32Array;
  let reference: Float32Array | null = null;
  if (files.io) {
    const io = await SafetensorsFile.open(files.io);
    input = await io.readF32('input');
    reference = await io.readF32('image_embedding');
    await io.close();
  } else {
    input = new Float32Array(3 * size * size).map((_, i) => Math.sin(i * 0.37) * 2);
  }
  const dims = [1, 3, size, size];
  const gate = f16 ? 1e-2 : 1e-3;
  const rows: Row[] = [];

  // Engine: first call compiles every pipeline.
  const x = ctx.upload(input, dims);
  let t = performance.now();
  const firstHost = hostCost(ctx, () => encoder.forward(ctx, x));
  let out = firstHost.result;
  const first = (await readTensor(ctx, out.embedding)) as Float32Array;
  out.embedding.dispose();
  const firstMs = performance.now() - t;
  console.log(`engine first run (pipeline compilation included): ${(firstMs / 1000).toFixed(2)} s; ` +
    `${firstHost.dispatches} dispatches, pipeline creation ${firstHost.compileMs.toFixed(0)} ms, host ${firstHost.hostMs.toFixed(1)} ms besides`);
  const engineCheck = reference ? checkOutput(first, reference, gate) : undefined;
  if (engineCheck) console.log(`engine vs PyTorch: ${fmtCheck(engineCheck)}`);

  let steadyHost = firstHost;
  const engineRun = withCpu(async () => {
    steadyHost = hostCost(ctx, () => encoder.forward(ctx, x));
    await ctx.sync();
    steadyHost.result.embedding.dispose();
  });
  const gpuResident = runs > 0 ? await measure('engine gpu-resident', engineRun.fn, { runs, warmup }) : undefined;
  const engineCpu = engineRun.median(runs);
  rows.push({ name: 'engine, GPU-resident', timing: gpuResident, check: engineCheck, cpuS: runs > 0 ? engineCpu : undefined });
  if (gpuResident) console.log(`engine GPU-resident: ${fmt(gpuResident)}; CPU ${engineCpu.toFixed(1)} s per run; host ${steadyHost.hostMs.toFixed(1)} ms, ${steadyHost.dispatches} dispatches`);
  const json: BenchRow[] = [{
    model: `SAM ViT-B encoder ${size} px`,
    variant: `ours ${f16 ? 'f16' : 'f32'}, GPU-resident`,
    ...timingFields(gpuResident),
    firstMs,
    compileMs: firstHost.compileMs,
    cpuS: runs > 0 ? engineCpu : undefined,
    ...checkFields(engineCheck, gate, 'PyTorch'),
    dispatches: steadyHost.dispatches,
    hostMs: steadyHost.hostMs,
    note: runs > 0 ? undefined : 'first run only (--runs 0); host ms from the first run, pipeline creation excluded',
  }];
  // End to end = GPU-resident + moving the input in and the embedding out; timed on its own so the
  // encoder is not run again for it.
  const transfer = await measure('engine upload + readback', async () => {
    const xi = ctx.upload(input, dims);
    const o = ctx.empty([1, config.outChans, size / 16, size / 16]);
    await readTensor(ctx, o);
    o.dispose();
    xi.dispose();
  }, { runs: 5, warmup: 1 });
  if (gpuResident) rows.push({ name: 'engine, end to end (+ upload and readback)', timing: { ...gpuResident, median: gpuResident.median + transfer.median, min: gpuResident.min + transfer.min, p90: gpuResident.p90 + transfer.p90 } });
  console.log(`engine upload + readback: ${transfer.median.toFixed(1)} ms`);

  // Profile one more run.
  const profiler = has('--no-profile') ? null : ctx.enableProfiling();
  if (profiler) {
  profiler.clear();
  out = encoder.forward(ctx, x);
  await ctx.sync();
  out.embedding.dispose();
  await ctx.sync();
  console.log(profiler.formatTable());
  console.log(profiler.formatTable(profiler.stageTable(), 'stage'));
  if (tracePath) {
    writeFileSync(tracePath, JSON.stringify(profiler.chromeTrace()));
    console.log(`trace: ${tracePath}`);
  }
  profiler.clear();
  ctx.profiler = null;
  }
  x.dispose();

  if (files.onnx && !has('--no-ort-web')) {
    const model = new Uint8Array(readFileSync(files.onnx));
    try {
      const adapter = await ortWebAdapter();
      console.log(`ORT Web adapter: ${adapter}`);
      const session = await createOrtWebSession(model, { io: 'gpu' });
      const bound = session.bindGpu({ image: { data: input, dims } });
      t = performance.now();
      const o = (await bound.read()).image_embedding!.data;
      const firstWebMs = performance.now() - t;
      console.log(`ORT Web first run (session warm-up included): ${(firstWebMs / 1000).toFixed(2)} s`);
      const check = reference ? checkOutput(o, reference, gate) : undefined;
      if (check) console.log(`ORT Web vs PyTorch: ${fmtCheck(check)}`);
      const errors = session.takeGpuErrors();
      if (errors.length) console.log(`ORT Web GPU errors: ${errors.slice(0, 3).join(' | ')}`);
      const webRun = withCpu(() => bound.run());
      const timing = runs > 0 ? await measure('ort-web', webRun.fn, { runs, warmup: Math.max(0, warmup - 1) }) : undefined;
      const cpuS = runs > 0 ? webRun.median(runs) : undefined;
      if (timing) console.log(`ORT Web WebGPU (GPU io): ${fmt(timing)}; CPU ${cpuS!.toFixed(1)} s per run`);
      rows.push({ name: 'ORT Web WebGPU, GPU io', timing, check, cpuS, note: errors.length ? `${errors.length} GPU errors` : undefined });
      json.push({ model: json[0]!.model, variant: 'ORT Web WebGPU, GPU io', ...timingFields(timing), firstMs: firstWebMs, cpuS, ...checkFields(check, gate, 'PyTorch'), note: errors.length ? `${errors.length} GPU errors` : undefined });
      bound.dispose();
      await session.release();
    } catch (e) {
      console.log(`ORT Web failed: ${(e as Error).message.split('\n')[0]}`);
      rows.push({ name: 'ORT Web WebGPU, GPU io', note: `failed: ${(e as Error).message.split('\n')[0]}` });
      json.push({ model: json[0]!.model, variant: 'ORT Web WebGPU, GPU io', note: `failed: ${(e as Error).message.split('\n')[0]}` });
    }
  }

  if (files.onnx && !has('--no-ort-node')) {
    const session = await createOrtNodeSession(new Uint8Array(readFileSync(files.onnx)));
    t = performance.now();
    const c0 = process.cpuUsage();
    const o = (await session.run({ image: { data: input, dims } })).image_embedding!.data;
    const ms = performance.now() - t;
    const cu = process.cpuUsage(c0);
    const check = reference ? checkOutput(o, reference, 1e-3) : undefined;
    rows.push({ name: `${session.label} (1 run)`, timing: { median: ms, min: ms, p90: ms, mean: ms, runs: 1, samples: [ms] }, check, cpuS: (cu.user + cu.system) / 1e6 });
    json.push({ model: json[0]!.model, variant: `${session.label} (1 run, first)`, firstMs: ms, ...checkFields(check, 1e-3, 'PyTorch') });
    await session.release();
    console.log(`ORT node CPU: ${(ms / 1000).toFixed(2)} s${check ? `; vs PyTorch: ${fmtCheck(check)}` : ''}`);
  }

  writeRows(has('--json') ? flag('--json', 'sam-encoder.json') : null, json, { adapter: ctx.description, size, f16 });
  const base = rows[0]!.timing?.median ?? firstMs;
  const baseCpu = rows[0]!.cpuS ?? NaN;
  console.log(`\n| SAM ViT-B encoder, ${size} px, ${ctx.description} | median wall | vs engine | CPU s / run | vs engine | output vs PyTorch |`);
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const med = r.timing ? `${(r.timing.median / 1000).toFixed(2)} s` : '-';
    const ratio = r.timing ? `${(r.timing.median / base).toFixed(2)}x` : '-';
    const cpu = r.cpuS !== undefined ? `${r.cpuS.toFixed(1)}` : '-';
    const cpuRatio = r.cpuS !== undefined ? `${(r.cpuS / baseCpu).toFixed(2)}x` : '-';
    const v = r.check ? `${r.check.ok ? 'valid' : 'INVALID'}, rel L2 ${r.check.relL2.toExponential(1)}` : (r.note ?? '-');
    console.log(`| ${r.name} | ${med} | ${ratio} | ${cpu} | ${cpuRatio} | ${v}${r.note && r.check ? `; ${r.note}` : ''} |`);
  }
  console.log(`\nload average after: ${fmtLoad()}; wall ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  encoder.dispose();
  weights.dispose();
  await ctx.sync();
}

runBench(main);
