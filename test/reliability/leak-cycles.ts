/**
 * The leak check's workload, run as its own process (`node --import tsx --expose-gc`; see
 * leak.test.ts): `cycles` rounds of encode -> predict -> dispose, the prompt rotating through
 * points, a box, and a box with the previous round's low-res mask as mask input, sampling the GPU
 * buffer pool and the process's memory (after a garbage collection) every `every` cycles.
 *
 *   node --import tsx --expose-gc test/reliability/leak-cycles.ts MODEL CYCLES EVERY
 *
 * MODEL is `tiny` (the reference fixtures' SAM, 256 px: ~0.25 s of CPU per encode on lavapipe) or
 * `micro` (a 64-px SAM with seeded random weights loaded through an explicit config, ~20x cheaper
 * to encode; what CI runs). Prints one JSON line: { samples: [{ cycle, ms, liveBytes,
 * reservedBytes, rssBytes, heapBytes }], ms }.
 */
import { join } from 'node:path';
import { GpuContext } from '../../src/gpu/context.js';
import type { SamConfig } from '../../src/model/sam/config.js';
import { samTensorSpec } from '../../src/model/sam/config.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { mulberry32 } from '../../src/util/mulberry32.js';
import { encodeValues, randomTensor } from '../../src/weights/random.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { encodeSafetensors } from '../../src/weights/safetensors-writer.js';
import { REFERENCE } from '../helpers/reference.js';

/** A 64-px SAM: 4 x 4 tokens, width 32, two blocks (one windowed, one global). */
export const MICRO_SAM: SamConfig = {
  imgSize: 64, patchSize: 16, embedDim: 32, depth: 2, numHeads: 2, mlpDim: 64, windowSize: 2, globalAttnIndexes: [1], outChans: 32,
  posEmbedGrid: 4, promptEmbedDim: 32, imageEmbeddingSize: 4, maskInChans: 16, decoderDepth: 2, decoderHeads: 2, decoderMlpDim: 64,
  numMultimaskOutputs: 3, iouHeadDepth: 3, iouHeadHiddenDim: 32,
};

async function loadPredictor(ctx: GpuContext, model: string): Promise<SamPredictor> {
  if (model === 'tiny') return SamPredictor.load(ctx, join(REFERENCE, 'sam_tiny.weights.safetensors'));
  const tensors = samTensorSpec(MICRO_SAM).map((s) => ({ name: s.name, dtype: 'F32' as const, shape: s.shape, data: encodeValues(randomTensor(s, 1), 'F32') }));
  return SamPredictor.load(ctx, SafetensorsFile.fromBytes(encodeSafetensors(tensors), 'micro-sam'), { config: MICRO_SAM });
}

const [model = 'micro', cyclesArg = '300', everyArg = '25'] = process.argv.slice(2);
const cycles = Number(cyclesArg);
const every = Number(everyArg);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

const ctx = await GpuContext.create();
const predictor = await loadPredictor(ctx, model);
const r = mulberry32(11);
const W = 96;
const H = 72;
const image = { width: W, height: H, channels: 3 as const, data: Uint8Array.from({ length: W * H * 3 }, () => Math.floor(r() * 256)) };
const L = predictor.lowResSize;
const samples: Record<string, number>[] = [];
const t0 = performance.now();
let mask: Float32Array | null = null;
for (let c = 1; c <= cycles; c++) {
  const emb = await predictor.encode(image);
  const kind = c % 3;
  const out: Awaited<ReturnType<SamPredictor["predict"]>> =
    kind === 0
      ? await predictor.predict(emb, { points: [[r() * W, r() * H]], labels: [1] })
      : await predictor.predict(emb, { box: [5, 5, W - 5, H - 5], ...(kind === 2 && mask ? { maskInput: mask } : {}) }, { multimaskOutput: false });
  if (out.masks.length !== (kind === 0 ? 3 : 1)) throw new Error(`cycle ${c}: ${out.masks.length} masks`);
  mask = out.lowResLogits.slice(0, L * L);
  emb.dispose();
  if (c % every === 0 || c === 1) {
    await ctx.sync();
    gc();
    const s = ctx.poolStats();
    const m = process.memoryUsage();
    samples.push({ cycle: c, ms: Math.round(performance.now() - t0), liveBytes: s.liveBytes, reservedBytes: s.reservedBytes, rssBytes: m.rss, heapBytes: m.heapUsed });
  }
}
const ms = performance.now() - t0;
predictor.dispose();
await ctx.sync();
ctx.destroy();
process.stdout.write(`\n${JSON.stringify({ samples, ms })}\n`);
process.exit(0);
