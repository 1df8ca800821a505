/**
 * Shared access to the tiny-SAM reference fixtures for the prompt-encoder, mask-decoder,
 * predictor and automatic-mask tests: the config, the weights, the photos and their recorded
 * prompt cases (test/fixtures/reference/manifest.json -> sam.photos[i].cases).
 */
import type { GpuContext } from '../../src/gpu/context.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import type { SamPrompt } from '../../src/pipelines/prompt-sets.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { Weights } from '../../src/weights/weights.js';
import { type ManifestTensor, FIXTURES, manifest, openReference } from '../helpers/reference.js';
import { join } from 'node:path';

export interface SamCase {
  name: string;
  api: string;
  point_coords?: number[][];
  point_labels?: number[];
  box?: number[];
  boxes?: number[][];
  mask_input?: string;
  mask_from?: string;
  multimask_output: boolean;
  transformed_point_coords?: number[][];
  transformed_box?: number[][];
  transformed_boxes?: number[][];
  tensors: Record<string, string>;
}

export interface SamPhoto {
  name: 'truck' | 'dog';
  file: string;
  original_size: [number, number];
  input_size: [number, number];
  cases: SamCase[];
  tensors: Record<string, ManifestTensor>;
}

const M = manifest();

export const SAM_PHOTOS: SamPhoto[] = M.sam.photos.map((p: Omit<SamPhoto, 'name'>) => ({
  ...p,
  name: p.file.includes('truck') ? 'truck' : 'dog',
}));

/** The tiny model's hyper-parameters, from the manifest (what samConfigFromWeights derives). */
export function tinySamConfigFromManifest() {
  const c = M.sam.config;
  return {
    imgSize: c.img_size as number,
    patchSize: c.patch_size as number,
    embedDim: c.embed_dim as number,
    depth: c.depth as number,
    numHeads: c.num_heads as number,
    mlpDim: (c.embed_dim * c.mlp_ratio) as number,
    windowSize: c.window_size as number,
    globalAttnIndexes: c.global_attn_indexes as number[],
    outChans: c.out_chans as number,
    posEmbedGrid: (c.img_size / c.patch_size) as number,
    promptEmbedDim: c.prompt_embed_dim as number,
    imageEmbeddingSize: c.image_embedding_size[0] as number,
    maskInChans: c.mask_in_chans as number,
    decoderDepth: c.decoder_depth as number,
    decoderHeads: c.decoder_num_heads as number,
    decoderMlpDim: c.decoder_mlp_dim as number,
    numMultimaskOutputs: c.num_multimask_outputs as number,
    iouHeadDepth: c.iou_head_depth as number,
    iouHeadHiddenDim: c.iou_head_hidden_dim as number,
  };
}

export const TINY_WEIGHTS = join(FIXTURES, 'reference', 'sam_tiny.weights.safetensors');

export async function loadTinyWeights(ctx: GpuContext, opts: { include?: (k: string) => boolean } = {}): Promise<Weights> {
  const file = await SafetensorsFile.open(TINY_WEIGHTS);
  try {
    return await Weights.load(ctx, file, null, opts);
  } finally {
    await file.close();
  }
}

/** A photo's reference tensors with manifest entries. */
export class PhotoRef {
  private constructor(
    readonly photo: SamPhoto,
    readonly file: SafetensorsFile,
  ) {}

  private static readonly cache = new Map<string, Promise<PhotoRef>>();

  /** One open file per photo and test process (closed when the process ends). */
  static open(photo: SamPhoto): Promise<PhotoRef> {
    let p = PhotoRef.cache.get(photo.file);
    if (!p) {
      p = openReference(photo.file).then((f) => new PhotoRef(photo, f));
      PhotoRef.cache.set(photo.file, p);
    }
    return p;
  }

  entry(name: string): ManifestTensor {
    const e = this.photo.tensors[name];
    if (!e) throw new Error(`${this.photo.file}: no manifest entry for '${name}'`);
    return e;
  }

  f32(name: string): Promise<Float32Array> {
    return this.file.readF32(name);
  }

  async upload(ctx: GpuContext, name: string, shape?: number[]): Promise<Tensor> {
    const data = await this.f32(name);
    return ctx.upload(data, shape ?? this.entry(name).shape);
  }

  /** Case tensor name -> stored name. */
  caseTensor(c: SamCase, stage: string): string {
    const n = c.tensors[stage];
    if (!n) throw new Error(`case ${c.name}: no tensor for stage '${stage}'`);
    return n;
  }
}

/** Transformed (model-frame) prompts of a case, as the official predictor fed them. */
export function transformedPrompts(c: SamCase) {
  const batch = c.transformed_boxes ? c.transformed_boxes.length : 1;
  const points = c.transformed_point_coords
    ? { coords: c.transformed_point_coords.flat(), labels: c.point_labels! }
    : undefined;
  const boxes = c.transformed_boxes ? c.transformed_boxes.flat() : c.transformed_box ? c.transformed_box.flat() : undefined;
  return { batch, points, boxes };
}


/** Multi-line rel-L2 log for the closing notes. */
export function logStage(what: string, r: { relL2: number; maxAbs: number; relL2Gate: number }): void {
  console.log(`${what}: rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)}), max_abs ${r.maxAbs.toExponential(2)}`);
}

/** A recorded case's raw prompts (original-image pixels) as SamPredictor prompt sets. */
export function casePrompts(c: SamCase, mask?: Float32Array): SamPrompt[] {
  if (c.boxes) return c.boxes.map((b) => ({ box: b as [number, number, number, number] }));
  const p: SamPrompt = {};
  if (c.point_coords) {
    p.points = c.point_coords.map((q) => [q[0]!, q[1]!] as [number, number]);
    p.labels = c.point_labels!;
  }
  if (c.box) p.box = c.box as [number, number, number, number];
  if (mask) p.maskInput = mask;
  return [p];
}
