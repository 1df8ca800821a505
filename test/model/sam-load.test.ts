/**
 * SAM checkpoint loading: official and Hugging Face names give identical weights and embeddings,
 * F16 / BF16 stored files load, the f16 upload path stays within the f16 gate, and bad checkpoints
 * (another model, a missing / misshaped / extra tensor) fail with errors naming key and shapes.
 * Also the random-weights generator: its key sets equal the official ones (the fixtures' specs).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import { readTensor } from '../../src/kernels/copy.js';
import { type SamConfig, samConfigFromWeights, samTensorSpec } from '../../src/model/sam/config.js';
import { ImageEncoderViT } from '../../src/model/sam/image-encoder.js';
import { loadSamWeights } from '../../src/model/sam/load.js';
import { samHfRenameTable, samOfficialToHf } from '../../src/weights/families/sam-hf.js';
import {
  CLIP_PRESETS, type RandomDType, SAM_PRESETS, clipTensorSpec, encodeValues, planRandomWeights, randomTensor, writeRandomWeights,
} from '../../src/weights/random.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { type SafetensorsTensor, encodeSafetensors } from '../../src/weights/safetensors-writer.js';
import { Weights } from '../../src/weights/weights.js';
import { compare } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { REFERENCE, type ManifestTensor, manifest, openReference, readJson } from '../helpers/reference.js';

const gpu = useGpu();
const M = manifest();
const EMB = M.sam.encoder.tensors.image_embedding as ManifestTensor;

let official: Map<string, { shape: number[]; data: Float32Array }>;
let input: Float32Array;
let reference: Float32Array;

beforeAll(async () => {
  const f = await openReference('sam_tiny.weights.safetensors');
  official = new Map();
  for (const k of f.keys()) official.set(k, { shape: [...f.info(k).shape], data: await f.readF32(k) });
  await f.close();
  const enc = await openReference('sam_tiny.encoder.safetensors');
  input = await enc.readF32('input');
  reference = await enc.readF32('image_embedding');
  await enc.close();
});

/** An in-memory checkpoint from the tiny weights, with renames / drops / edits / another dtype. */
function build(opts: {
  rename?: (k: string) => string;
  drop?: string[];
  edit?: Record<string, { shape: number[]; data: Float32Array }>;
  extra?: Record<string, { shape: number[]; data: Float32Array }>;
  dtype?: RandomDType;
  metadata?: Record<string, string>;
  name?: string;
}): SafetensorsFile {
  const entries: SafetensorsTensor[] = [];
  const all = new Map([...official, ...Object.entries(opts.edit ?? {}), ...Object.entries(opts.extra ?? {})]);
  for (const [k, v] of all) {
    if (opts.drop?.includes(k)) continue;
    const dtype = opts.dtype ?? 'F32';
    entries.push({ name: (opts.rename ?? ((x) => x))(k), dtype, shape: v.shape, data: encodeValues(v.data, dtype) });
  }
  // The fixture's architecture is named as its file names it (non-standard SAMs must say what they are).
  return SafetensorsFile.fromBytes(encodeSafetensors(entries, { model: 'sam_tiny', ...opts.metadata }), opts.name ?? 'test.safetensors');
}

async function embed(ctx: GpuContext, w: Weights, cfg: SamConfig): Promise<Float32Array> {
  const enc = new ImageEncoderViT(w, 'image_encoder', cfg);
  const x = ctx.upload(input, [1, 3, 256, 256]);
  const { embedding } = enc.forward(ctx, x);
  const out = (await readTensor(ctx, embedding)) as Float32Array;
  x.dispose();
  embedding.dispose();
  enc.dispose();
  return out;
}

describe('Hugging Face names', () => {
  it('maps every official key to the converter\'s HF name and back', () => {
    const table = samHfRenameTable();
    const expectHf: Record<string, string> = {
      'image_encoder.pos_embed': 'vision_encoder.pos_embed',
      'image_encoder.patch_embed.proj.weight': 'vision_encoder.patch_embed.projection.weight',
      'image_encoder.blocks.3.norm2.bias': 'vision_encoder.layers.3.layer_norm2.bias',
      'image_encoder.blocks.1.attn.rel_pos_h': 'vision_encoder.layers.1.attn.rel_pos_h',
      'image_encoder.blocks.0.mlp.lin1.weight': 'vision_encoder.layers.0.mlp.lin1.weight',
      'image_encoder.neck.0.weight': 'vision_encoder.neck.conv1.weight',
      'image_encoder.neck.3.bias': 'vision_encoder.neck.layer_norm2.bias',
      'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix': 'shared_image_embedding.positional_embedding',
      'prompt_encoder.point_embeddings.2.weight': 'prompt_encoder.point_embed.2.weight',
      'prompt_encoder.mask_downscaling.4.weight': 'prompt_encoder.mask_embed.layer_norm2.weight',
      'prompt_encoder.mask_downscaling.6.bias': 'prompt_encoder.mask_embed.conv3.bias',
      'prompt_encoder.no_mask_embed.weight': 'prompt_encoder.no_mask_embed.weight',
      'mask_decoder.transformer.layers.1.norm4.weight': 'mask_decoder.transformer.layers.1.layer_norm4.weight',
      'mask_decoder.transformer.layers.0.cross_attn_image_to_token.out_proj.bias': 'mask_decoder.transformer.layers.0.cross_attn_image_to_token.out_proj.bias',
      'mask_decoder.transformer.norm_final_attn.weight': 'mask_decoder.transformer.layer_norm_final_attn.weight',
      'mask_decoder.output_upscaling.1.bias': 'mask_decoder.upscale_layer_norm.bias',
      'mask_decoder.output_upscaling.3.weight': 'mask_decoder.upscale_conv2.weight',
      'mask_decoder.output_hypernetworks_mlps.2.layers.0.weight': 'mask_decoder.output_hypernetworks_mlps.2.proj_in.weight',
      'mask_decoder.output_hypernetworks_mlps.2.layers.1.bias': 'mask_decoder.output_hypernetworks_mlps.2.layers.0.bias',
      'mask_decoder.iou_prediction_head.layers.2.weight': 'mask_decoder.iou_prediction_head.proj_out.weight',
      'mask_decoder.mask_tokens.weight': 'mask_decoder.mask_tokens.weight',
    };
    for (const [o, h] of Object.entries(expectHf)) expect(samOfficialToHf(o), o).toBe(h);
    for (const cfg of Object.values(SAM_PRESETS)) {
      const names = samTensorSpec(cfg).map((s) => s.name);
      const hf = names.map(samOfficialToHf);
      expect(new Set(hf).size).toBe(names.length);
      for (const [i, h] of hf.entries()) {
        const rule = table.rules.find((r) => r.from.test(h));
        expect(rule ? h.replace(rule.from, rule.to) : h, h).toBe(names[i]);
      }
    }
  });

  it('an HF-named file loads to the same weights and the same embedding, bit for bit', async () => {
    const ctx = gpu();
    const a = await loadSamWeights(ctx, build({}));
    const hf = build({ rename: samOfficialToHf, name: 'hf.safetensors' });
    expect(hf.keys()).toContain('vision_encoder.layers.0.layer_norm1.weight');
    const b = await loadSamWeights(ctx, hf);
    expect(b.weights.family).toBe('sam-hf');
    expect(b.config).toEqual(a.config);
    expect(b.weights.keys().sort()).toEqual(a.weights.keys().sort());
    const ea = await embed(ctx, a.weights, a.config);
    const eb = await embed(ctx, b.weights, b.config);
    expect(compare(eb, ea).maxAbs).toBe(0);
    const c = compare(ea, reference);
    console.log(`official-name load: image_embedding rel_l2 ${c.relL2.toExponential(2)}`);
    expect(c.relL2).toBeLessThan(1e-4);
    a.weights.dispose();
    b.weights.dispose();
  });

  it('an HF file holding the tied prompt-encoder copy too loads from the top-level copy', async () => {
    const pe = official.get('prompt_encoder.pe_layer.positional_encoding_gaussian_matrix')!;
    const entries: SafetensorsTensor[] = [...official].map(([k, v]) => ({ name: samOfficialToHf(k), dtype: 'F32', shape: v.shape, data: v.data }));
    // An older export: the tied copy too (zeros here, so using it by mistake would show).
    entries.push({ name: 'prompt_encoder.shared_embedding.positional_embedding', dtype: 'F32', shape: pe.shape, data: new Float32Array(pe.data.length) });
    const file = SafetensorsFile.fromBytes(encodeSafetensors(entries, { model: 'sam_tiny' }), 'tied.safetensors');
    const { weights } = await loadSamWeights(gpu(), file);
    const got = await readTensor(gpu(), weights.get('prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'));
    expect(Array.from(got)).toEqual(Array.from(pe.data));
    weights.dispose();
  });
});

describe('stored dtypes and the f16 path', () => {
  for (const dtype of ['F16', 'BF16'] as const) {
    // Gates against the f32 reference: F16 the f16 gate 1e-2; BF16 3e-2 (8-bit mantissa: 8x F16's rounding).
    it(`${dtype}-stored weights load and encode`, async () => {
      const { weights, config } = await loadSamWeights(gpu(), build({ dtype }));
      const e = await embed(gpu(), weights, config);
      const c = compare(e, reference);
      console.log(`${dtype}-stored weights: image_embedding rel_l2 ${c.relL2.toExponential(2)}`);
      expect(c.relL2).toBeLessThan(dtype === 'F16' ? 1e-2 : 3e-2);
      expect(c.relL2).toBeGreaterThan(0); // the rounding really happened
      weights.dispose();
    });
  }

  it('f16 upload path (matrices stored f16 on the GPU) within rel_l2 1e-2', async () => {
    const { weights, config } = await loadSamWeights(gpu(), `${REFERENCE}/sam_tiny.weights.safetensors`, { dtype: 'f16' });
    expect(weights.get('image_encoder.blocks.0.attn.qkv.weight').dtype).toBe('f16');
    expect(weights.get('image_encoder.blocks.0.norm1.weight').dtype).toBe('f32');
    const e = await embed(gpu(), weights, config);
    const c = compare(e, reference);
    console.log(`f16 weights on the GPU: image_embedding rel_l2 ${c.relL2.toExponential(2)} (max abs ${c.maxAbs.toExponential(2)}, absmax ${EMB.absmax})`);
    expect(c.relL2).toBeLessThan(1e-2);
    weights.dispose();
  });
});

describe('bad checkpoints give errors naming the key and shapes', () => {
  it('a checkpoint of another model', async () => {
    await expect(loadSamWeights(gpu(), `${REFERENCE}/clip_tiny.weights.safetensors`)).rejects.toThrow(
      /clip_tiny\.weights\.safetensors: this checkpoint is OpenAI \/ OpenCLIP CLIP, not SAM/,
    );
    await expect(loadSamWeights(gpu(), `${REFERENCE}/sam_tiny.encoder.safetensors`)).rejects.toThrow(/not a checkpoint this engine knows/);
    await expect(loadSamWeights(gpu(), `${REFERENCE}/sam_tiny.weights.safetensors`, { family: 'clip' })).rejects.toThrow(/, not SAM/);
  });

  it('a missing tensor', async () => {
    await expect(loadSamWeights(gpu(), build({ drop: ['mask_decoder.iou_token.weight'] }))).rejects.toThrow(
      "test.safetensors (sam): missing tensor 'mask_decoder.iou_token.weight' [1, 64]",
    );
    await expect(loadSamWeights(gpu(), build({ drop: ['image_encoder.neck.0.weight'] }))).rejects.toThrow(/missing tensor 'image_encoder\.neck\.0\.weight'/);
    await expect(loadSamWeights(gpu(), build({ drop: ['image_encoder.blocks.2.attn.rel_pos_w'] }))).rejects.toThrow(
      "missing tensor 'image_encoder.blocks.2.attn.rel_pos_w' [13, 32]",
    );
  });

  it('a wrongly shaped tensor', async () => {
    const edit = { 'image_encoder.blocks.2.mlp.lin2.weight': { shape: [96, 380], data: new Float32Array(96 * 380) } };
    await expect(loadSamWeights(gpu(), build({ edit }))).rejects.toThrow(
      "tensor 'image_encoder.blocks.2.mlp.lin2.weight' has shape [96, 380], expected [96, 384]",
    );
    const pos = { 'image_encoder.pos_embed': { shape: [1, 16, 15, 96], data: new Float32Array(16 * 15 * 96) } };
    await expect(loadSamWeights(gpu(), build({ edit: pos }))).rejects.toThrow("'image_encoder.pos_embed' has shape [1, 16, 15, 96], expected [1, g, g, 96]");
    const hf = build({ rename: samOfficialToHf, edit: { 'mask_decoder.output_upscaling.3.bias': { shape: [9], data: new Float32Array(9) } } });
    await expect(loadSamWeights(gpu(), hf)).rejects.toThrow("(sam-hf): tensor 'mask_decoder.output_upscaling.3.bias' has shape [9], expected [8]");
  });

  it('an unexpected tensor', async () => {
    const extra = { 'mask_decoder.extra_head.weight': { shape: [4, 4], data: new Float32Array(16) } };
    await expect(loadSamWeights(gpu(), build({ extra }))).rejects.toThrow("1 unexpected tensor(s) for SAM: 'mask_decoder.extra_head.weight' [4, 4]");
    const stray = { 'image_encoder.blocks.9.norm1.weight': { shape: [96], data: new Float32Array(96) } };
    await expect(loadSamWeights(gpu(), build({ extra: stray }))).rejects.toThrow("unexpected tensor(s) for SAM: 'image_encoder.blocks.9.norm1.weight' [96]");
  });
});

describe('random weights', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'samclip-random-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('SAM key set, order and shapes equal the official state_dict of the fixtures (sam-tiny)', () => {
    const spec = readJson(`${REFERENCE}/sam_tiny.spec.json`).tensors as { name: string; shape: number[] }[];
    const ours = samTensorSpec(SAM_PRESETS['sam-tiny']);
    expect(ours.map((s) => [s.name, s.shape])).toEqual(spec.map((s) => [s.name, s.shape]));
  });

  it('CLIP key set, order and shapes equal the official state_dict of the fixtures (OpenAI names)', () => {
    const spec = readJson(`${REFERENCE}/clip_tiny.spec.json`).tensors as { name: string; shape: number[] }[];
    const c = M.clip.config;
    const ours = clipTensorSpec({
      embedDim: c.embed_dim, imageResolution: c.image_resolution, visionLayers: c.vision_layers, visionWidth: c.vision_width,
      visionPatchSize: c.vision_patch_size, contextLength: c.context_length, vocabSize: c.vocab_size,
      transformerWidth: c.transformer_width, transformerHeads: c.transformer_heads, transformerLayers: c.transformer_layers,
    });
    expect(ours.map((s) => [s.name, s.shape])).toEqual(spec.map((s) => [s.name, s.shape]));
  });

  it('full-size presets: parameter counts and configs derived back from the key shapes', () => {
    const count = (f: Parameters<typeof planRandomWeights>[0]['family']) => planRandomWeights({ family: f }).values;
    expect(count('sam-tiny')).toBe(M.sam.weights.num_values);
    // segment-anything's published sizes: ViT-B 93.7M, ViT-L 312.3M, ViT-H 641.1M parameters.
    expect(Math.round(count('sam-vit-b') / 1e5) / 10).toBe(93.7);
    expect(Math.round(count('sam-vit-l') / 1e5) / 10).toBe(312.3);
    expect(Math.round(count('sam-vit-h') / 1e5) / 10).toBe(641.1);
    // OpenAI CLIP: ViT-B/16 149.6M, ViT-L/14 427.6M.
    expect(Math.round(count('clip-vit-b-16') / 1e5) / 10).toBe(149.6);
    expect(Math.round(count('clip-vit-l-14') / 1e5) / 10).toBe(427.6);
    for (const [name, cfg] of Object.entries(SAM_PRESETS)) {
      const shapes = new Map(samTensorSpec(cfg).map((s) => [s.name, s.shape]));
      const derived = samConfigFromWeights({
        file: name, family: 'sam', metadata: {}, has: (k) => shapes.has(k), shape: (k) => shapes.get(k), keys: () => [...shapes.keys()],
      });
      expect(derived, name).toEqual(cfg);
    }
    expect(CLIP_PRESETS['clip-vit-l-14'].visionPatchSize).toBe(14);
  });

  it('per-tensor generators: deterministic, independent of other tensors, at the fixtures\' scales', () => {
    const spec = samTensorSpec(SAM_PRESETS['sam-vit-b']);
    const qkv = spec.find((s) => s.name === 'image_encoder.blocks.3.attn.qkv.weight')!;
    const a = randomTensor(qkv, 7);
    const same = (x: Float32Array, y: Float32Array) => x.length === y.length && x.every((v, i) => v === y[i]);
    expect(same(randomTensor(qkv, 7), a)).toBe(true);
    expect(same(randomTensor(qkv, 8), a)).toBe(false);
    const sd = (x: Float32Array, from: number, to: number) => {
      let s = 0;
      for (let i = from; i < to; i++) s += x[i]! * x[i]!;
      return Math.sqrt(s / (to - from));
    };
    const K = 768;
    expect(sd(a, 0, 2 * K * K) * Math.sqrt(K)).toBeCloseTo(1.5, 1); // q, k rows x1.5
    expect(sd(a, 2 * K * K, 3 * K * K) * Math.sqrt(K)).toBeCloseTo(1, 1);
    const ln = randomTensor(spec.find((s) => s.name === 'image_encoder.blocks.0.norm1.weight')!, 7);
    expect(ln.reduce((p, v) => p + v, 0) / ln.length).toBeCloseTo(1, 1);
  });

  it('writes a loadable file (sam-tiny, HF names, F16 stored; config from its metadata)', async () => {
    const path = join(dir, 'tiny-hf.safetensors');
    const r = await writeRandomWeights(path, { family: 'sam-tiny', seed: 3, dtype: 'F16', names: 'hf' });
    expect(r.tensors).toBe(202);
    await expect(writeRandomWeights(path, { family: 'sam-tiny' })).rejects.toThrow(/already exists/);
    const { weights, config } = await loadSamWeights(gpu(), path);
    expect(weights.family).toBe('sam-hf');
    expect(config).toEqual(SAM_PRESETS['sam-tiny']);
    // The encoder runs on them and stays finite and O(1) (the scales keep activations sane).
    const e = await embed(gpu(), weights, config);
    const rms = Math.sqrt(e.reduce((p, v) => p + v * v, 0) / e.length);
    expect(e.every(Number.isFinite)).toBe(true);
    expect(rms).toBeGreaterThan(0.5);
    expect(rms).toBeLessThan(2);
    weights.dispose();
  });
});
