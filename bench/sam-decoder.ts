/**
 * Full-size SAM ViT-B prompt encoder + mask decoder (random weights with the official names) on
 * the engine, per prompt set, side by side with ONNX Runtime Web's WebGPU provider on the same Dawn
 * adapter running the same graph's ONNX export, and onnxruntime-node (CPU) as a second reference.
 *
 *   node --import tsx bench/sam-decoder.ts [--runs 5] [--warmup 1] [--batches 1,16] [--host-runs 5]
 *       [--dir /tmp/samclip-bench] [--f16] [--no-ort-web] [--ort-web-batches 1] [--no-ort-node] [--trace trace.json]
 *       [--no-profile] [--json rows.json]
 *
 * Files (made once, kept in --dir): `sam_vit_b_random.safetensors` (tools/random-weights.ts
 * --family sam-vit-b, seed 0; the encoder bench uses the same file), `sam_vit_b_decoder_points.onnx`
 * and `sam_vit_b_decoder_io.safetensors` (tools/export-onnx-sam-decoder.py export: points -> low-res
 * masks, a seeded embedding and point, the PyTorch outputs; without python3 + torch the ORT columns
 * are skipped with a message).
 *
 * The work compared, per prompt set: one foreground point + the padding point through the prompt
 * encoder, the two-way transformer, upscaling, hypernetworks and IoU head on a 64x64x256 image
 * embedding (no mask input), to the low-res logits [B, 4, 256, 256] and IoU [B, 4] (the engine
 * additionally slices the 3 multimask outputs, as SamPredictor does). Batches of B prompt sets run
 * in one call (AMG decodes 64 at a time); the table reports median latency per call and per set.
 *
 * Timing: median of --runs after --warmup untimed runs, the competitors interleaved round by round
 * (the machine is shared; interleaving spreads load drift over all of them); the clock stops once
 * the queue has drained.
 *  - engine, GPU-resident: embedding already on the GPU, prompt encoding (CPU) + decoder, outputs
 *    left on the GPU (`ctx.sync()`);
 *  - engine, with readback: plus reading the low-res logits and IoU back;
 *  - ORT Web WebGPU, GPU io: inputs bound once, outputs left on the GPU;
 *  - onnxruntime-node CPU: one run per batch size.
 * Every output is validated against the PyTorch output of the export (every prompt set holds the
 * same point, so larger batches repeat it; rel L2 <= 1e-3, f16 weights 1e-2) before its timing is
 * reported; without the export, against ORT node. One more engine run per batch size under the
 * profiler prints the per-kernel and per-stage tables.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GpuContext } from '../src/gpu/context.js';
import type { Tensor } from '../src/gpu/tensor.js';
import { readTensor } from '../src/kernels/copy.js';
import { samConfigFromWeights } from '../src/model/sam/config.js';
import { plannedShapes } from '../src/model/sam/load.js';
import { MaskDecoder } from '../src/model/sam/mask-decoder.js';
import { PromptEncoder } from '../src/model/sam/prompt-encoder.js';
import { writeRandomWeights } from '../src/weights/random.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { Weights } from '../src/weights/weights.js';
import { ourContext } from './harness/dawn.js';
import { createOrtNodeSession } from './harness/ort-node.js';
import { createOrtWebSession, ortWebAdapter } from './harness/ort-web.js';
import { fmtLoad } from './harness/report.js';
import type { Feeds } from './harness/session.js';
import { type Timed, type Timing, measureInterleaved } from './harness/timing.js';
import { type Check, checkOutput, fmtCheck } from './harness/validate.js';
import { PYTHON, flag, has, runBench } from './harness/cli.js';
import { type BenchRow, checkFields, hostCost, timingFields, warmHostMs, writeRows } from './harness/record.js';

const runs = Number(flag('--runs', '5'));
const warmup = Number(flag('--warmup', '1'));
const batches = flag('--batches', '1,16').split(',').map(Number);
const hostRuns = Number(flag('--host-runs', '5'));
// The batch sizes ORT Web also runs (bench:device --quick: 1 only; its B = 16 run takes 80 s on lavapipe).
const ortWebBatches = flag('--ort-web-batches', batches.join(',')).split(',').map(Number);
const dir = flag('--dir', '/tmp/samclip-bench');
const f16 = has('--f16');
const tracePath = has('--trace') ? flag('--trace', 'sam-decoder-trace.json') : null;
const GATE = f16 ? 1e-2 : 1e-3;

interface Row {
  name: string;
  batch: number;
  timing?: Timing;
  check?: Check;
  note?: string;
}

async function prepare(): Promise<{ weights: string; onnx: string | null; io: string | null }> {
  mkdirSync(dir, { recursive: true });
  const weights = join(dir, 'sam_vit_b_random.safetensors');
  if (!existsSync(weights)) {
    console.error(`writing ${weights} (tools/random-weights.ts --family sam-vit-b, seed 0) ...`);
    await writeRandomWeights(weights, { family: 'sam-vit-b', seed: 0 });
  }
  const onnx = join(dir, 'sam_vit_b_decoder_points.onnx');
  const io = join(dir, 'sam_vit_b_decoder_io.safetensors');
  if (!existsSync(onnx) || !existsSync(io)) {
    try {
      console.error(`exporting ${onnx} with tools/export-onnx-sam-decoder.py (PyTorch) ...`);
      for (const p of [onnx, io]) if (existsSync(p)) throw new Error(`${p} exists without its companion; delete it`);
      execFileSync(PYTHON, ['tools/export-onnx-sam-decoder.py', 'export', weights, onnx, '--io', io], { stdio: 'inherit' });
    } catch (e) {
      console.error(`ONNX export unavailable (${(e as Error).message.split('\n')[0]}): ORT columns skipped`);
      return { weights, onnx: null, io: null };
    }
  }
  return { weights, onnx, io };
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const fmt = (t: Timing) => `median ${fmtMs(t.median)} (min ${fmtMs(t.min)}, p90 ${fmtMs(t.p90)}, ${t.runs} runs)`;

/** The engine's half: prompt encoder + decoder on an embedding already on the GPU. */
function decode(ctx: GpuContext, pe: PromptEncoder, dec: MaskDecoder, emb: Tensor, coords: Float32Array, labels: Float32Array, B: number) {
  return ctx.scope(() => {
    const { sparse, dense } = pe.forward(ctx, { batch: B, points: { coords, labels } });
    return dec.forward(ctx, { imageEmbeddings: emb, imagePeTokens: pe.densePeTokenMajor(), sparse, dense, batch: B }, true);
  });
}

/** Engine output [B, 3, L, L] vs the 4-token reference [B, 4, L, L] (tokens 1..3). */
function multimaskOf(all: Float32Array, B: number, L: number): Float32Array {
  const out = new Float32Array(B * 3 * L * L);
  for (let b = 0; b < B; b++) out.set(all.subarray((b * 4 + 1) * L * L, (b * 4 + 4) * L * L), b * 3 * L * L);
  return out;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const files = await prepare();
  const ctx = await ourContext();
  console.log(`adapter: ${ctx.description}`);
  console.log(`load average before: ${fmtLoad()}`);

  const file = await SafetensorsFile.open(files.weights);
  const include = (k: string) => k.startsWith('prompt_encoder.') || k.startsWith('mask_decoder.');
  const config = samConfigFromWeights(plannedShapes(file, 'sam', null));
  const weights = await Weights.load(ctx, file, null, { dtype: f16 ? 'f16' : 'f32', include });
  await file.close();
  const pe = await PromptEncoder.create(ctx, weights, 'prompt_encoder', config);
  const dec = new MaskDecoder(weights, 'mask_decoder', config);
  weights.assertAllUsed('prompt encoder + mask decoder');
  const C = config.promptEmbedDim;
  const g = config.imageEmbeddingSize;
  const L = 4 * g;
  console.log(`SAM ViT-B decoder: width ${C}, depth ${config.decoderDepth}, heads ${config.decoderHeads}, MLP ${config.decoderMlpDim}, ` +
    `grid ${g}x${g}, low-res ${L}x${L}, weights ${f16 ? 'f16' : 'f32'}`);

  let embData: Float32Array;
  let point: [number, number] = [412.3, 587.9];
  let refMasks: Float32Array | null = null;
  let refIou: Float32Array | null = null;
  if (files.io) {
    const io = await SafetensorsFile.open(files.io);
    embData = await io.readF32('image_embeddings');
    const pc = await io.readF32('point_coords');
    point = [pc[0]!, pc[1]!];
    refMasks = await io.readF32('low_res_masks');
    refIou = await io.readF32('iou_predictions');
    await io.close();
  } else {
    embData = new Float32Array(C * g * g).map((_, i) => Math.sin(i * 0.37));
  }
  const emb = ctx.upload(embData, [1, C, g, g]);
  const rows: Row[] = [];
  const json: BenchRow[] = [];
  const model = files.onnx ? new Uint8Array(readFileSync(files.onnx)) : null;

  for (const B of batches) {
    // Every set gets the same point plus the padding point (label -1), as the ONNX graph takes it.
    const coords = new Float32Array(B * 4);
    const labels = new Float32Array(B * 2);
    for (let b = 0; b < B; b++) {
      coords.set([point[0], point[1], 0, 0], 4 * b);
      labels.set([1, -1], 2 * b);
    }
    // The engine appends the padding point itself: give it the real point only.
    const engCoords = coords.filter((_, i) => i % 4 < 2);
    const engLabels = labels.filter((_, i) => i % 2 === 0);
    const feeds: Feeds = {
      image_embeddings: { data: embData, dims: [1, C, g, g] },
      point_coords: { data: coords, dims: [B, 2, 2] },
      point_labels: { data: labels, dims: [B, 2] },
    };

    let t = performance.now();
    const firstHost = hostCost(ctx, () => decode(ctx, pe, dec, emb, engCoords, engLabels, B));
    let out = firstHost.result;
    const masks = (await readTensor(ctx, out.masks)) as Float32Array;
    const iou = (await readTensor(ctx, out.iouPred)) as Float32Array;
    out.masks.dispose();
    out.iouPred.dispose();
    const firstMs = performance.now() - t;
    console.log(`\nB = ${B}: engine first run (pipeline compilation included): ${fmtMs(firstMs)}; pipeline creation ${fmtMs(firstHost.compileMs)}`);
    let steadyHost = firstHost;
    let firstWebMs: number | undefined;

    let reference: { masks: Float32Array; iou: Float32Array; what: string } | null = null;
    if (refMasks && refIou) {
      // Every prompt set holds the same point: the PyTorch output of the exported point, repeated.
      const rep = (a: Float32Array) => {
        const out = new Float32Array(a.length * B);
        for (let b = 0; b < B; b++) out.set(a, b * a.length);
        return out;
      };
      reference = { masks: rep(refMasks), iou: rep(refIou), what: B === 1 ? 'PyTorch' : `PyTorch (x${B})` };
    }
    if (!reference && model && !has('--no-ort-node')) {
      const session = await createOrtNodeSession(model);
      t = performance.now();
      const o = await session.run(feeds);
      const ms = performance.now() - t;
      await session.release();
      reference = { masks: o.low_res_masks!.data, iou: o.iou_predictions!.data, what: 'ORT node' };
      rows.push({ name: `${session.label} (1 run)`, batch: B, timing: { median: ms, min: ms, p90: ms, mean: ms, runs: 1, samples: [ms] } });
    }
    let engineCheck: Check | undefined;
    if (reference) {
      engineCheck = checkOutput(masks, multimaskOf(reference.masks, B, L), GATE);
      const iouCheck = checkOutput(iou, multimaskOf(reference.iou, B, 1), GATE);
      console.log(`engine vs ${reference.what}: masks ${fmtCheck(engineCheck)}; iou ${fmtCheck(iouCheck)}`);
      if (!iouCheck.ok) engineCheck = { ...engineCheck, ok: false };
    }

    // ORT Web session (validated once) before the timed rounds.
    let ortWeb: { bound: ReturnType<Awaited<ReturnType<typeof createOrtWebSession>>['bindGpu']>; session: Awaited<ReturnType<typeof createOrtWebSession>>; check?: Check; note?: string } | null = null;
    if (model && !has('--no-ort-web') && ortWebBatches.includes(B)) {
      try {
        console.log(`ORT Web adapter: ${await ortWebAdapter()}`);
        const session = await createOrtWebSession(model, { io: 'gpu' });
        const bound = session.bindGpu(feeds);
        t = performance.now();
        const o = await bound.read();
        firstWebMs = performance.now() - t;
        console.log(`ORT Web first run (session warm-up included): ${fmtMs(firstWebMs)}`);
        const check = reference ? checkOutput(o.low_res_masks!.data, reference.masks, GATE) : undefined;
        if (check) console.log(`ORT Web vs ${reference!.what}: ${fmtCheck(check)}`);
        const errors = session.takeGpuErrors();
        if (errors.length) console.log(`ORT Web GPU errors: ${errors.slice(0, 3).join(' | ')}`);
        ortWeb = { bound, session, check, note: errors.length ? `${errors.length} GPU errors` : undefined };
      } catch (e) {
        console.log(`ORT Web failed: ${(e as Error).message.split('\n')[0]}`);
        rows.push({ name: 'ORT Web WebGPU, GPU io', batch: B, note: `failed: ${(e as Error).message.split('\n')[0]}` });
      }
    }

    // Timed rounds, interleaved: on a machine shared with other jobs the load drifts, and
    // alternating the competitors spreads that drift over all of them.
    const competitors = new Map<string, Timed>([
      ['engine, GPU-resident', {
        run: async () => {
          steadyHost = hostCost(ctx, () => decode(ctx, pe, dec, emb, engCoords, engLabels, B));
          const o = steadyHost.result;
          await ctx.sync();
          o.masks.dispose();
          o.iouPred.dispose();
        },
      }],
      ['engine, with readback', {
        run: async () => {
          const o = decode(ctx, pe, dec, emb, engCoords, engLabels, B);
          await readTensor(ctx, o.masks);
          await readTensor(ctx, o.iouPred);
          o.masks.dispose();
          o.iouPred.dispose();
        },
      }],
    ]);
    if (ortWeb) competitors.set('ORT Web WebGPU, GPU io', { run: () => ortWeb!.bound.run() });
    const timings = await measureInterleaved(competitors, { runs, warmup }, (k, e) => {
      console.log(`${k} failed: ${(e as Error).message.split('\n')[0]}`);
    });
    const warm = await warmHostMs(hostRuns, async () => {
      steadyHost = hostCost(ctx, () => decode(ctx, pe, dec, emb, engCoords, engLabels, B));
      await ctx.sync();
      steadyHost.result.masks.dispose();
      steadyHost.result.iouPred.dispose();
      return steadyHost.hostMs;
    });
    if (warm) console.log(`host per call, ${hostRuns} more calls: median ${warm.median.toFixed(2)} ms (${warm.samples.map((h) => h.toFixed(1)).join(', ')})`);
    for (const [name, timing] of timings) {
      console.log(`${name}: ${fmt(timing)} -> ${fmtMs(timing.median / B)} per prompt set`);
      const check = name.startsWith('engine, GPU') ? engineCheck : name.startsWith('ORT') ? ortWeb?.check : undefined;
      rows.push({ name, batch: B, timing, check, note: name.startsWith('ORT') ? ortWeb?.note : undefined });
      const ours = name.startsWith('engine');
      const gpuResident = name === 'engine, GPU-resident';
      json.push({
        model: `SAM ViT-B prompt encoder + mask decoder, B = ${B}`,
        variant: ours ? `ours ${f16 ? 'f16' : 'f32'}, ${name.slice('engine, '.length)}` : name,
        items: B,
        ...timingFields(timing),
        ...(gpuResident ? { firstMs, compileMs: firstHost.compileMs, dispatches: steadyHost.dispatches, hostMs: warm?.median ?? steadyHost.hostMs } : {}),
        ...(ours ? {} : { firstMs: firstWebMs }),
        // Both engine rows produce the same output (the readback row reads it back): one check.
        ...checkFields(ours ? engineCheck : check, GATE, reference?.what ?? ''),
        note: name.startsWith('ORT') ? ortWeb?.note : undefined,
      });
    }
    if (ortWeb) {
      ortWeb.bound.dispose();
      await ortWeb.session.release();
    }

    const profiler = has('--no-profile') ? null : ctx.enableProfiling();
    if (profiler) {
    profiler.clear();
    out = decode(ctx, pe, dec, emb, engCoords, engLabels, B);
    await ctx.sync();
    out.masks.dispose();
    out.iouPred.dispose();
    await ctx.sync();
    console.log(profiler.formatTable());
    console.log(profiler.formatTable(profiler.stageTable(), 'stage'));
    if (tracePath) {
      const p = tracePath.replace(/\.json$/, `-b${B}.json`);
      writeFileSync(p, JSON.stringify(profiler.chromeTrace()));
      console.log(`trace: ${p}`);
    }
    profiler.clear();
    ctx.profiler = null;
    }

    if (model && B === 1 && !has('--no-ort-node')) {
      const session = await createOrtNodeSession(model);
      t = performance.now();
      await session.run(feeds);
      const ms = performance.now() - t;
      await session.release();
      rows.push({ name: `${session.label} (1 run)`, batch: B, timing: { median: ms, min: ms, p90: ms, mean: ms, runs: 1, samples: [ms] } });
    }
  }

  writeRows(has('--json') ? flag('--json', 'sam-decoder.json') : null, json, { adapter: ctx.description, f16 });
  console.log(`\n| SAM ViT-B prompt encoder + mask decoder, ${ctx.description} | B | median per call | per prompt set | vs engine | output check |`);
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const base = rows.find((x) => x.batch === r.batch && x.name === 'engine, GPU-resident')?.timing?.median;
    const med = r.timing ? fmtMs(r.timing.median) : '-';
    const per = r.timing ? fmtMs(r.timing.median / r.batch) : '-';
    const ratio = r.timing && base ? `${(r.timing.median / base).toFixed(2)}x` : '-';
    const v = r.check ? `${r.check.ok ? 'valid' : 'INVALID'}, rel L2 ${r.check.relL2.toExponential(1)}` : (r.note ?? '-');
    console.log(`| ${r.name} | ${r.batch} | ${med} | ${per} | ${ratio} | ${v} |`);
  }
  console.log(`\nload average after: ${fmtLoad()}; wall ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  emb.dispose();
  pe.dispose();
  dec.dispose();
  weights.dispose();
  await ctx.sync();
}

runBench(main);
