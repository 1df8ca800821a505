/**
 * Loading SAM 2 checkpoints: the official `.pt` layout (torch.save zip, `{'model': state_dict}`,
 * video keys included), safetensors under official names, and Hugging Face `Sam2Model` names;
 * automatic family detection; strictness (missing, unexpected and misshaped tensors named); and
 * the configurations of the four released models derived from their shapes alone.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTensor } from '../../src/kernels/copy.js';
import { type Sam2Config, sam2ConfigFromWeights, sam2Preset, sam2TensorSpec } from '../../src/model/sam2/config.js';
import { loadSam2Weights } from '../../src/model/sam2/load.js';
import { Sam2 } from '../../src/model/sam2/sam2.js';
import { MemoryModelCache } from '../../src/hub/chunked-cache.js';
import type { RegistryEntry } from '../../src/hub/registry.js';
import { FileModelCache } from '../../src/node/hub-cache.js';
import { Sam2Predictor } from '../../src/pipelines/sam2-predictor.js';
import type { WeightShapes } from '../../src/model/sam/config.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { detectFamily } from '../../src/weights/families.js';
import { sam2OfficialToHf } from '../../src/weights/families/sam2-hf.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { WeightError } from '../../src/weights/weights.js';
import { useGpu } from '../helpers/gpu.js';
import { FIXTURES } from '../helpers/reference.js';
import { bytesOf, buildSafetensors, type BuildTensor } from '../helpers/safetensors-build.js';
import { torchSaveModel } from '../helpers/torch-save.js';
import { Loopback } from '../hub/loopback.js';
import { SAM2_WEIGHTS, tinyOverrides } from './sam2-fixture.js';

const gpu = useGpu();
let dir: string;
/** The reference weights as (name, shape, values), in file order. */
let tensors: { name: string; shape: number[]; data: Float32Array }[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sam2-load-'));
  const file = await SafetensorsFile.open(SAM2_WEIGHTS);
  tensors = await Promise.all(file.keys().map(async (name) => ({ name, shape: [...file.info(name).shape], data: await file.readF32(name) })));
  await file.close();
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const f32 = (name: string, shape: number[], data: Float32Array): BuildTensor => ({ name, dtype: 'F32', shape, data: bytesOf(data) });

/** The reference weights under Hugging Face names (point embeddings stacked, video keys as HF names them). */
function hfFile(opts: { bothPe?: boolean } = {}): Uint8Array {
  const out: BuildTensor[] = [];
  const points: Float32Array[] = [];
  for (const t of tensors) {
    if (/^sam_prompt_encoder\.point_embeddings\.\d\.weight$/.test(t.name)) {
      points.push(t.data);
      continue;
    }
    if (/^memory_attention\.layers\.0\.self_attn\.out_proj\.weight$/.test(t.name)) out.push(f32('memory_attention.layers.0.self_attn.o_proj.weight', t.shape, t.data));
    if (/^(memory_|maskmem|no_mem_pos|no_obj|obj_ptr|mask_downsample)/.test(t.name)) continue;
    out.push(f32(sam2OfficialToHf(t.name), t.shape, t.data));
    if (opts.bothPe && t.name === 'sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix') {
      out.push(f32('prompt_encoder.shared_embedding.positional_embedding', t.shape, t.data));
    }
  }
  const C = points[0]!.length;
  const stacked = new Float32Array(4 * C);
  points.forEach((p, i) => stacked.set(p, i * C));
  out.push(f32('prompt_encoder.point_embed.weight', [4, C], stacked));
  return buildSafetensors(out);
}

/** Decode one prompt with a model and return its outputs (for comparing load paths). */
async function decodeOnce(model: Sam2): Promise<Float32Array[]> {
  const ctx = gpu();
  const S = model.imageSize;
  const x = new Float32Array(3 * S * S).map((_, i) => Math.sin(i * 0.001));
  const f = model.encodeImage(ctx, ctx.upload(x, [1, 3, S, S]));
  const out = await model.decode(ctx, f, { batch: 1, points: { coords: [40, 70], labels: [1] }, boxes: [10, 20, 120, 200] }, false);
  const res = [await readTensor(ctx, f.imageEmbed), await readTensor(ctx, out.masks), await readTensor(ctx, out.iouPred), await readTensor(ctx, out.objectScoreLogits)];
  for (const t of [f.imageEmbed, f.highRes.s0, f.highRes.s1, f.visionFeatures, out.masks, out.iouPred, out.objectScoreLogits]) t.dispose();
  return res as Float32Array[];
}

describe('SAM 2 checkpoints', () => {
  let reference: Float32Array[];

  it('official safetensors (video keys present): detected, loaded strictly, decodes', async () => {
    const file = await SafetensorsFile.open(SAM2_WEIGHTS);
    expect(detectFamily(file.keys(), file.name)).toBe('sam2');
    await file.close();
    const model = await Sam2.load(gpu(), SAM2_WEIGHTS, { overrides: tinyOverrides(), dtype: 'f32' });
    expect(model.weights.keys().some((k) => k.startsWith('memory_'))).toBe(false);
    reference = await decodeOnce(model);
    model.dispose();
  });

  it('official .pt (torch.save zip of {"model": state_dict}) through the .pth reader: the same numbers', async () => {
    const path = join(dir, 'sam2_tiny.pt');
    await writeFile(path, torchSaveModel(tensors));
    const model = await Sam2.load(gpu(), path, { overrides: tinyOverrides(), dtype: 'f32' });
    const got = await decodeOnce(model);
    got.forEach((g, i) => expect(Array.from(g), `output ${i}`).toEqual(Array.from(reference[i]!)));
    model.dispose();
    // And from the bytes (browsers): the zip is recognised by its signature.
    const fromBytes = await Sam2.load(gpu(), torchSaveModel(tensors), { overrides: tinyOverrides(), dtype: 'f32' });
    expect(Array.from((await decodeOnce(fromBytes))[1]!)).toEqual(Array.from(reference[1]!));
    fromBytes.dispose();
  });

  it('Sam2Predictor.fromPretrained: a .pt from a Hub-like server, by path (file cache) and by bytes (memory cache)', async () => {
    const srv = await Loopback.start();
    const entry: RegistryEntry = { name: 'sam2-tiny', kind: 'sam2', description: 'tiny SAM 2', repo: 'test/sam2-tiny', file: 'sam2_tiny.pt', sha256: null, size: null, family: 'sam2' };
    srv.serve('/test/sam2-tiny/resolve/main/sam2_tiny.pt', { body: Buffer.from(torchSaveModel(tensors)) });
    try {
      for (const cache of [new FileModelCache(join(dir, 'hub')), new MemoryModelCache()]) {
        const p = await Sam2Predictor.fromPretrained(gpu(), entry, { endpoint: srv.base, cache, overrides: tinyOverrides(), dtype: 'f32' });
        const got = await decodeOnce(p.model);
        p.model.dispose();
        got.forEach((g, i) => expect(Array.from(g), `output ${i} (${cache.constructor.name})`).toEqual(Array.from(reference[i]!)));
      }
      const sam: RegistryEntry = { ...entry, name: 'sam-tiny', kind: 'sam', family: 'sam-hf' };
      await expect(Sam2Predictor.fromPretrained(gpu(), sam, { endpoint: srv.base })).rejects.toThrow(/'sam-tiny' is a SAM model, not a SAM 2 one/);
    } finally {
      await srv.close();
    }
  });

  it('Hugging Face Sam2Model names (stacked point embeddings, tied PE once or twice): detected, the same numbers', async () => {
    for (const bothPe of [false, true]) {
      const bytes = hfFile({ bothPe });
      const file = SafetensorsFile.fromBytes(bytes, `hf-${bothPe}.safetensors`);
      expect(detectFamily(file.keys(), file.name)).toBe('sam2-hf');
      const model = await Sam2.load(gpu(), file, { overrides: tinyOverrides(), dtype: 'f32' });
      const got = await decodeOnce(model);
      got.forEach((g, i) => expect(Array.from(g), `output ${i} (bothPe ${bothPe})`).toEqual(Array.from(reference[i]!)));
      model.dispose();
    }
  });

  it('strict: a missing, a misshaped and an unexpected tensor are named with their shapes', async () => {
    const without = tensors.filter((t) => t.name !== 'sam_mask_decoder.conv_s1.bias');
    const missing = buildSafetensors(without.map((t) => f32(t.name, t.shape, t.data)));
    await expect(loadSam2Weights(gpu(), missing, { overrides: tinyOverrides() })).rejects.toThrow(/missing tensor 'sam_mask_decoder\.conv_s1\.bias' \[16\]/);
    const reshaped = buildSafetensors(tensors.map((t) => (t.name === 'sam_mask_decoder.obj_score_token.weight' ? f32(t.name, [2, 32], t.data) : f32(t.name, t.shape, t.data))));
    await expect(loadSam2Weights(gpu(), reshaped, { overrides: tinyOverrides() })).rejects.toThrow(/'sam_mask_decoder\.obj_score_token\.weight' has shape \[2, 32\], expected \[1, 64\]/);
    const extra = buildSafetensors([...tensors.map((t) => f32(t.name, t.shape, t.data)), f32('sam_mask_decoder.extra_head.weight', [3], new Float32Array(3))]);
    await expect(loadSam2Weights(gpu(), extra, { overrides: tinyOverrides() })).rejects.toThrow(/1 unexpected tensor\(s\) for the SAM 2 image model: 'sam_mask_decoder\.extra_head\.weight' \[3\]/);
  });

  it('another model\'s checkpoint is refused with what it is', async () => {
    const sam = join(FIXTURES, 'reference', 'sam_tiny.weights.safetensors');
    await expect(loadSam2Weights(gpu(), sam)).rejects.toThrow(/is 'sam', not SAM 2 .* load SAM checkpoints with SamPredictor/);
    await expect(SamPredictor.load(gpu(), SAM2_WEIGHTS)).rejects.toThrow(/official SAM 2 \(load it with Sam2Predictor\)/);
  });
});

/** A configuration's tensor list seen as a checkpoint header (shapes only). */
function shapesOf(cfg: Sam2Config, metadata: Record<string, string> = {}): WeightShapes {
  const m = new Map(sam2TensorSpec(cfg).map((s) => [s.name, s.shape]));
  return { file: 'spec', family: 'sam2', metadata, has: (k) => m.has(k), shape: (k) => m.get(k), keys: () => [...m.keys()] };
}

describe('released models: configuration from shapes alone', () => {
  for (const name of ['hiera-t', 'hiera-s', 'hiera-b+', 'hiera-l'] as const) {
    it(`${name}: the shapes plus the released-model table give the official configuration`, () => {
      const want = sam2Preset(name);
      expect(sam2ConfigFromWeights(shapesOf(want))).toEqual(want);
    });
  }

  it('parameter counts agree with the published totals (38.9 / 46 / 80.8 / 224.4 M) minus one shared video part', () => {
    // The published totals include the video modules (memory attention and encoder, object
    // pointers), the same for every size: what is left over must be one constant.
    const published = { 'hiera-t': 38.9e6, 'hiera-s': 46e6, 'hiera-b+': 80.8e6, 'hiera-l': 224.4e6 };
    const rest = Object.entries(published).map(([name, total]) => {
      const spec = sam2TensorSpec(sam2Preset(name as keyof typeof published));
      return total - spec.reduce((a, s) => a + s.shape.reduce((p, d) => p * d, 1), 0);
    });
    for (const r of rest) expect(r).toBeGreaterThan(7.3e6);
    expect(Math.max(...rest) - Math.min(...rest)).toBeLessThan(0.1e6); // the published figures are rounded to 0.1 M
  });

  it('an unknown layout needs its heads, windows and global blocks; metadata can give them', () => {
    const tiny = sam2Preset('hiera-t');
    const odd: Sam2Config = { ...tiny, trunk: { ...tiny.trunk, stages: [1, 2, 5, 2], globalAttBlocks: [4, 6] } };
    expect(() => sam2ConfigFromWeights(shapesOf(odd))).toThrow(WeightError);
    const meta = { sam2: JSON.stringify({ num_heads: 1, window_spec: [8, 4, 14, 7], global_att_blocks: [4, 6] }) };
    expect(sam2ConfigFromWeights(shapesOf(odd, meta)).trunk).toEqual(odd.trunk);
  });
});
