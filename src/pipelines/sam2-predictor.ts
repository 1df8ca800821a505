/**
 * Promptable segmentation with SAM 2 / 2.1 (sam2/sam2_image_predictor.py, SAM2ImagePredictor),
 * the same shape as SamPredictor: encode an image once, then decode any number of prompt sets
 * against its GPU-resident features.
 *
 *   const predictor = await Sam2Predictor.load(ctx, 'sam2.1_hiera_tiny.pt');   // or model.safetensors
 *   const emb = await predictor.encode(image);                 // {width, height, channels: 3, data}
 *   const r = await predictor.predict(emb, { points: [[500, 375]], labels: [1] });
 *   r.masks[i], r.iouPredictions, r.lowResLogits, r.objectScoreLogits
 *   emb.dispose();
 *
 * What differs from SAM, as upstream:
 *  - the image is stretched to S x S (no aspect preservation), so prompts map with
 *    x * S / W and y * S / H (float32: coords / [W, H], then * S);
 *  - single-mask output (`multimaskOutput: false`) returns token 0's mask only when it is stable,
 *    else the best multimask mask (`choices` says which);
 *  - IoU predictions are sigmoid outputs; each prompt set also gets an object-score logit;
 *  - masks are the low-res logits resized bilinearly straight to the original size, > 0; the
 *    returned low-res logits are clamped to [-32, 32] (as the official predictor returns them).
 *
 * The embedding (`Sam2ImageEmbedding`) holds the image's features: the decoder's image embedding,
 * the two high-resolution feature maps and the raw FPN features a video predictor's memory
 * attention would read, so video propagation can reuse it unchanged.
 */
import type { GpuContext } from '../gpu/context.js';
import type { PretrainedName, PretrainedOptions } from '../hub/pretrained.js';
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import type { Tensor } from '../gpu/tensor.js';
import { type ImageU8, checkImage, toRgb } from '../image/image.js';
import { type ImageInput, toImageU8 } from '../image/image-input.js';
import type { EncoderPrompts } from '../model/sam/prompt-encoder.js';
import { PromptError } from '../model/sam/prompt-encoder.js';
import type { LoadSam2Options, Sam2Source } from '../model/sam2/load.js';
import type { Sam2DecoderOutputs } from '../model/sam2/mask-decoder.js';
import { SAM2_LOW_RES_CLAMP, Sam2, type Sam2ImageFeatures } from '../model/sam2/sam2.js';
import { SafetensorsFile } from '../weights/safetensors.js';
import type { AmgPredictor } from './automatic-mask-generator.js';
import { type PredictOptions, PromptPredictor, type SamPrediction, type SamPrompt } from './prompt-sets.js';

/** One image's SAM 2 features on the GPU, with the size needed to map prompts and masks. */
export class Sam2ImageEmbedding {
  constructor(
    /** Owned by this object. */
    readonly features: Sam2ImageFeatures,
    /** [H, W] of the image given to `encode`. */
    readonly originalSize: readonly [number, number],
    /** [S, S]: the model's input frame (SAM 2 resizes to a square, not keeping the aspect ratio). */
    readonly inputSize: readonly [number, number],
  ) {
    for (const t of this.tensors()) t.persistent = true;
  }

  /** The decoder's image embedding [1, C, S/16, S/16]. */
  get tensor(): Tensor {
    return this.features.imageEmbed;
  }

  private tensors(): Tensor[] {
    const f = this.features;
    return [...new Set([f.imageEmbed, f.highRes.s0, f.highRes.s1, f.visionFeatures])];
  }

  get disposed(): boolean {
    return this.features.imageEmbed.isDisposed;
  }

  dispose(): void {
    for (const t of this.tensors()) t.dispose();
  }
}

export interface Sam2Prediction extends SamPrediction {
  /** The object-score logit of the prompt set (> 0: the model sees an object). */
  objectScoreLogit: number;
  /** Single-mask output: token 0's stability score and the token returned (0, or the best of 1..M). */
  choice?: { stability: number; token: number };
}

/** SAM2Transforms.transform_coords(normalize=True): x / W * S and y / H * S, each step in float32. */
export function sam2TransformCoords(coords: ArrayLike<number>, originalSize: readonly [number, number], size: number): number[] {
  const [H, W] = originalSize;
  const f = Math.fround;
  return Array.from(coords, (v, i) => f(f(f(v) / (i % 2 === 0 ? W : H)) * size));
}

export class Sam2Predictor extends PromptPredictor<Sam2ImageEmbedding, Sam2Prediction> implements AmgPredictor<Sam2ImageEmbedding> {
  /** SAM2AutomaticMaskGenerator's defaults differ from SAM's on this one. */
  readonly amgDefaults = { predIouThresh: 0.8 };

  constructor(
    readonly ctx: GpuContext,
    readonly model: Sam2,
  ) {
    super();
  }

  /** [S, S], the frame prompts are mapped to. */
  private get inputFrame(): [number, number] {
    return [this.model.imageSize, this.model.imageSize];
  }

  protected isEmbedding(x: unknown): x is Sam2ImageEmbedding {
    return x instanceof Sam2ImageEmbedding;
  }

  /** Load a SAM 2 checkpoint: official `.pt` / safetensors or Hugging Face `Sam2Model` names. */
  static async load(ctx: GpuContext, src: Sam2Source, opts: LoadSam2Options = {}): Promise<Sam2Predictor> {
    return new Sam2Predictor(ctx, await Sam2.load(ctx, src, opts));
  }

  /**
   * A SAM 2.1 model by registry name (`'sam2.1-hiera-t'`, `'sam2.1-hiera-t-hf'`, ...) or entry of
   * your own, from the model cache or downloaded into it first (see SamPredictor.fromPretrained).
   */
  static async fromPretrained(ctx: GpuContext, name: PretrainedName, opts: PretrainedOptions & LoadSam2Options = {}): Promise<Sam2Predictor> {
    // The registry and downloader load on first use: apps that load weights by URL do not ship them.
    const { fetchPretrained } = await import('../hub/pretrained.js');
    const cached = (await fetchPretrained(name, 'sam2', opts)).result.entry;
    // On Node the cached file has a path, read lazily (a .pt through the pth reader by its name).
    if (cached.path) return Sam2Predictor.load(ctx, cached.path, opts);
    const source = await cached.source();
    if (/\.(pt|pth)$/i.test(cached.record.file)) {
      // The pth reader needs the zip's bytes whole (its central directory is at the end).
      let bytes: Uint8Array;
      try {
        bytes = await source.read(0, source.size);
      } finally {
        await source.close();
      }
      return Sam2Predictor.load(ctx, bytes, opts);
    }
    const file = await SafetensorsFile.fromSource(source);
    try {
      return await Sam2Predictor.load(ctx, file, opts);
    } finally {
      await file.close();
    }
  }

  // ---------------------------------------------------------------- image

  /**
   * SAM2ImagePredictor.set_image: preprocess (GPU) and encode. Non-RGB images are converted like
   * Pillow's convert('RGB'). `onProgress` / `signal` pace the encoder block by block.
   */
  async encode(input: ImageInput, opts: ProgressOptions = {}): Promise<Sam2ImageEmbedding> {
    const image = await toImageU8(input, { what: 'Sam2Predictor.encode', signal: opts.signal });
    return this.encodePaced(image, Pacer.for(this.ctx, opts, 'Sam2Predictor.encode'));
  }

  /** `encode` with a pacer from a larger call (automatic masks), or none. */
  async encodePaced(image: ImageU8, pacer: Pacer | null): Promise<Sam2ImageEmbedding> {
    checkImage(image, 'Sam2Predictor.encode');
    const rgb = toRgb(image);
    const ctx = this.ctx;
    const input = ctx.scope(() => this.model.preprocess(ctx, rgb));
    pacer?.note('preprocess', 1, 50);
    let features: Sam2ImageFeatures;
    try {
      features = await this.model.encodeImagePaced(ctx, input, pacer?.part(0.02, 1) ?? null);
    } finally {
      input.dispose();
    }
    const emb = new Sam2ImageEmbedding(features, [rgb.height, rgb.width], this.inputFrame);
    try {
      await ctx.sync();
    } catch (e) {
      emb.dispose();
      throw e;
    }
    return emb;
  }

  /** Stage entry: encode an already preprocessed input [1, 3, S, S] (float32, normalised). */
  encodePreprocessed(input: Tensor | Float32Array, originalSize: readonly [number, number]): Sam2ImageEmbedding {
    const ctx = this.ctx;
    const S = this.model.imageSize;
    const features = ctx.scope(() => this.model.encodeImage(ctx, input instanceof Float32Array ? ctx.upload(input, [1, 3, S, S]) : input));
    return new Sam2ImageEmbedding(features, originalSize, this.inputFrame);
  }

  /**
   * Stage entry: features computed elsewhere (e.g. the official predictor's `_features`):
   * image_embed [1, C, g, g], high_res_feats [1, C/8, 4g, 4g] and [1, C/4, 2g, 2g].
   */
  embeddingFrom(f: { imageEmbed: Float32Array; highRes: [Float32Array, Float32Array] }, originalSize: readonly [number, number]): Sam2ImageEmbedding {
    const { promptEmbedDim: C, imageEmbeddingSize: g } = this.model.config;
    const shapes: [Float32Array, number[], string][] = [
      [f.imageEmbed, [1, C, g, g], 'image_embed'],
      [f.highRes[0], [1, C / 8, 4 * g, 4 * g], 'high_res_feats[0]'],
      [f.highRes[1], [1, C / 4, 2 * g, 2 * g], 'high_res_feats[1]'],
    ];
    for (const [a, shape, name] of shapes) {
      const n = shape.reduce((x, y) => x * y, 1);
      if (a.length !== n) throw new PromptError(`embeddingFrom: ${name} has ${a.length} values; expected [${shape.join(', ')}]`);
    }
    const [e, s0, s1] = shapes.map(([a, shape]) => this.ctx.upload(a, shape)) as [Tensor, Tensor, Tensor];
    return new Sam2ImageEmbedding({ imageEmbed: e, highRes: { s0, s1 }, visionFeatures: e }, originalSize, this.inputFrame);
  }

  // ---------------------------------------------------------------- decode

  /** Stage entry: prompt encoder + mask decoder on prompts already in the model frame. */
  decodeTransformed(emb: Sam2ImageEmbedding, prompts: EncoderPrompts, multimaskOutput: boolean): Promise<Sam2DecoderOutputs> {
    if (emb.disposed) throw new PromptError('the image embedding was disposed');
    return this.model.decode(this.ctx, emb.features, prompts, multimaskOutput);
  }

  /** Stage entry: low-res logits [N, C, L, L] -> logits at the original size [N, C, H, W]. */
  postprocess(emb: Sam2ImageEmbedding, lowRes: Tensor): Tensor {
    return this.model.postprocessMasks(this.ctx, lowRes, emb.originalSize);
  }

  postprocessChunk(emb: Sam2ImageEmbedding): number {
    return this.model.postprocessChunk(this.ctx, emb.originalSize);
  }

  /** Grid points in image pixels (interleaved x, y) -> the model frame (automatic masks). */
  gridToModelFrame(points: ArrayLike<number>, emb: Sam2ImageEmbedding): number[] {
    return sam2TransformCoords(points, emb.originalSize, this.model.imageSize);
  }

  /** One foreground point per prompt set, three masks each (automatic masks). */
  async decodePoints(emb: Sam2ImageEmbedding, coords: number[]): Promise<{ masks: Tensor; iouPred: Tensor }> {
    const B = coords.length / 2;
    const out = await this.decodeTransformed(emb, { batch: B, points: { coords, labels: new Array<number>(B).fill(1) } }, true);
    out.objectScoreLogits.dispose();
    return { masks: out.masks, iouPred: out.iouPred };
  }

  protected decodePrompts(emb: Sam2ImageEmbedding, prompts: readonly SamPrompt[], opts: PredictOptions): Promise<Sam2Prediction[]> {
    const ctx = this.ctx;
    return this.runPrompts(
      emb,
      prompts,
      opts,
      async (enc, task) => {
        // The decoder's outputs belong to the caller: hand them to this call's task.
        const out = await this.model.decode(ctx, emb.features, enc, opts.multimaskOutput ?? true);
        for (const t of [out.masks, out.iouPred, out.objectScoreLogits]) task.own(t);
        return out;
      },
      async (out, preds) => {
        const obj = (await ctx.read(out.objectScoreLogits)) as Float32Array;
        return preds.map((p, b) => {
          const r: Sam2Prediction = { ...p, objectScoreLogit: obj[b]! };
          if (out.choices) r.choice = out.choices[b]!;
          return r;
        });
      },
      SAM2_LOW_RES_CLAMP,
    );
  }

  dispose(): void {
    this.resetImage();
    this.model.dispose();
  }
}
