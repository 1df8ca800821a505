/**
 * Promptable segmentation with SAM (segment_anything/predictor.py, SamPredictor): encode an image
 * once, then decode any number of prompts against its GPU-resident embedding.
 *
 *   const predictor = await SamPredictor.load(ctx, 'sam_vit_b.safetensors');
 *   const emb = await predictor.encode(image);               // {width, height, channels: 3, data}
 *   const r = await predictor.predict(emb, { points: [[500, 375]], labels: [1] });
 *   r.masks[i]      // Uint8Array, height * width, 0/1 (row-major), at the original size
 *   r.iouPredictions, r.lowResLogits                          // feed a low-res mask back as maskInput
 *   emb.dispose();
 *
 * or, like the official class, with a current image: `await predictor.setImage(image)` then
 * `predictor.predict({ box: [x0, y0, x1, y1] })`.
 *
 * Prompts are in original-image pixels (x, y); they are mapped to the model's input frame like
 * ResizeLongestSide.apply_coords / apply_boxes. Several prompt sets decode in one batched call
 * (`predictBatch`, like predict_torch with B boxes); they must share a structure (same number of
 * points, all or none with a box, all or none with a mask input).
 *
 * Stage-level entry points (`encodePreprocessed`, `embeddingFrom`, `decodeTransformed`,
 * `postprocess`) take the float tensors of the official pipeline's intermediate stages.
 */
import type { GpuContext, TensorTask } from '../gpu/context.js';
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import type { Tensor } from '../gpu/tensor.js';
import type { PretrainedName, PretrainedOptions } from '../hub/pretrained.js';
import { type ImageU8, ImageError, checkImage, toRgb } from '../image/image.js';
import { type ImageInput, toImageU8 } from '../image/image-input.js';
import { pilResize } from '../image/pil-resize.js';
import { applyCoords, samResizeShape } from '../image/transforms.js';
import type { LoadSamOptions } from '../model/sam/load.js';
import type { MaskDecoderOutputs } from '../model/sam/mask-decoder.js';
import { type EncoderPrompts, PromptError } from '../model/sam/prompt-encoder.js';
import { Sam, type SamCreateOptions } from '../model/sam/sam.js';
import type { SafetensorsFile } from '../weights/safetensors.js';

import type { AmgPredictor } from './automatic-mask-generator.js';
import { type PredictOptions, PromptPredictor, type SamPrediction, type SamPrompt } from './prompt-sets.js';

export { PromptError } from '../model/sam/prompt-encoder.js';
export { lowResMask, type PredictOptions, type SamPoints, type SamPrediction, type SamPrompt } from './prompt-sets.js';

/** An image embedding on the GPU, with the sizes needed to map prompts and masks. */
export class SamImageEmbedding {
  constructor(
    /** [1, C, g, g]; owned by this object. */
    readonly tensor: Tensor,
    /** [H, W] of the image given to `encode`. */
    readonly originalSize: readonly [number, number],
    /** [h, w] of the resized image inside the padded square input. */
    readonly inputSize: readonly [number, number],
  ) {
    tensor.persistent = true;
  }

  get disposed(): boolean {
    return this.tensor.isDisposed;
  }

  dispose(): void {
    this.tensor.dispose();
  }
}

export class SamPredictor extends PromptPredictor<SamImageEmbedding, SamPrediction> implements AmgPredictor<SamImageEmbedding> {
  constructor(
    readonly ctx: GpuContext,
    readonly model: Sam,
  ) {
    super();
  }

  protected isEmbedding(x: unknown): x is SamImageEmbedding {
    return x instanceof SamImageEmbedding;
  }

  /** Load a SAM checkpoint (official / Hugging Face / SAM-CLIP names; another model is an error). */
  static async load(ctx: GpuContext, src: string | SafetensorsFile, opts: LoadSamOptions & SamCreateOptions = {}): Promise<SamPredictor> {
    return new SamPredictor(ctx, await Sam.load(ctx, src, opts));
  }

  /**
   * A SAM model by registry name ('sam-vit-b', 'sam-vit-l', 'sam-vit-h'), from the cache or
   * downloaded into it first (resumable, SHA-256 checked; src/hub). See docs/api.md.
   */
  static async fromPretrained(ctx: GpuContext, name: PretrainedName, opts: PretrainedOptions & LoadSamOptions & SamCreateOptions = {}): Promise<SamPredictor> {
    // The registry and downloader load on first use: apps that load weights by URL do not ship them.
    const { openPretrained } = await import('../hub/pretrained.js');
    const { file } = await openPretrained(name, 'sam', opts);
    try {
      return await SamPredictor.load(ctx, file, opts);
    } finally {
      await file.close();
    }
  }

  // ---------------------------------------------------------------- image

  /**
   * SamPredictor.set_image: Pillow-exact bilinear resize of the longest side to the model's input
   * size (CPU), normalise + pad (GPU), image encoder. Non-RGB images are converted like Pillow's
   * convert('RGB') (grey replicated, alpha dropped).
   */
  async encode(input: ImageInput, opts: ProgressOptions = {}): Promise<SamImageEmbedding> {
    const image = await toImageU8(input, { what: 'SamPredictor.encode', signal: opts.signal });
    return this.encodePaced(image, Pacer.for(this.ctx, opts, 'SamPredictor.encode'));
  }

  /** `encode` with a pacer from a larger call (automatic masks), or none. */
  async encodePaced(image: ImageU8, pacer: Pacer | null): Promise<SamImageEmbedding> {
    checkImage(image, 'SamPredictor.encode');
    const rgb = toRgb(image);
    const S = this.model.imgSize;
    const [h, w] = samResizeShape(rgb.height, rgb.width, S);
    if (h < 1 || w < 1) throw new ImageError(`SamPredictor.encode: a ${rgb.height}x${rgb.width} image resized to longest side ${S} would be ${h}x${w}`);
    const resized = pilResize(rgb, w, h, { filter: 'bilinear' });
    pacer?.note('preprocess', 1, 50);
    const ctx = this.ctx;
    const input = ctx.scope(() => this.model.preprocess(ctx, resized));
    let emb: Tensor;
    try {
      emb = await this.model.encodeImagePaced(ctx, input, pacer?.part(0.02, 1) ?? null);
    } finally {
      input.dispose();
    }
    try {
      await ctx.sync();
    } catch (e) {
      emb.dispose();
      throw e;
    }
    return new SamImageEmbedding(emb, [rgb.height, rgb.width], [h, w]);
  }

  /** Stage entry: encode an already preprocessed input [1, 3, S, S] (float32, normalised, padded). */
  encodePreprocessed(input: Tensor | Float32Array, originalSize: readonly [number, number], inputSize?: readonly [number, number]): SamImageEmbedding {
    const ctx = this.ctx;
    const S = this.model.imgSize;
    const emb = ctx.scope(() => {
      const t = input instanceof Float32Array ? ctx.upload(input, [1, 3, S, S]) : input;
      return this.model.encodeImage(ctx, t);
    });
    return new SamImageEmbedding(emb, originalSize, inputSize ?? samResizeShape(originalSize[0], originalSize[1], S));
  }

  /** Stage entry (SamPredictor.set_image_embedding): wrap an embedding [1, C, g, g] computed elsewhere. */
  embeddingFrom(embedding: Tensor | Float32Array, originalSize: readonly [number, number]): SamImageEmbedding {
    const { promptEmbedDim: C, imageEmbeddingSize: g } = this.model.config;
    let t: Tensor;
    if (embedding instanceof Float32Array) {
      if (embedding.length !== C * g * g) throw new PromptError(`embeddingFrom: ${embedding.length} values; expected [1, ${C}, ${g}, ${g}]`);
      t = this.ctx.upload(embedding, [1, C, g, g]);
    } else {
      t = embedding.ref();
    }
    return new SamImageEmbedding(t, originalSize, samResizeShape(originalSize[0], originalSize[1], this.model.imgSize));
  }

  // ---------------------------------------------------------------- decode

  /** Stage entry: prompt encoder + mask decoder on prompts already in the input frame. */
  decodeTransformed(emb: SamImageEmbedding, prompts: EncoderPrompts, multimaskOutput: boolean): MaskDecoderOutputs {
    if (emb.disposed) throw new PromptError('the image embedding was disposed');
    return this.model.predictLowRes(this.ctx, emb.tensor, prompts, multimaskOutput);
  }

  /** Stage entry: low-res logits [N, C, L, L] -> logits at the original size [N, C, H, W]. */
  postprocess(emb: SamImageEmbedding, lowRes: Tensor): Tensor {
    return this.model.postprocessMasks(this.ctx, lowRes, emb.inputSize, emb.originalSize);
  }

  postprocessChunk(emb: SamImageEmbedding): number {
    return this.model.postprocessChunk(this.ctx, emb.originalSize);
  }

  /** Grid points in image pixels (interleaved x, y) -> the model frame (automatic masks). */
  gridToModelFrame(points: ArrayLike<number>, emb: SamImageEmbedding): number[] {
    return Array.from(applyCoords(points, emb.originalSize, this.model.imgSize));
  }

  /** One foreground point per prompt set, three masks each (automatic masks). */
  async decodePoints(emb: SamImageEmbedding, coords: number[]): Promise<MaskDecoderOutputs> {
    const B = coords.length / 2;
    // A scope with nothing around it: the outputs belong to the caller.
    return this.ctx.scope(() => this.decodeTransformed(emb, { batch: B, points: { coords, labels: new Array<number>(B).fill(1) } }, true));
  }

  protected decodePrompts(emb: SamImageEmbedding, prompts: readonly SamPrompt[], opts: PredictOptions): Promise<SamPrediction[]> {
    const decode = (enc: EncoderPrompts, task: TensorTask) => task.run(() => this.model.predictLowRes(this.ctx, emb.tensor, enc, opts.multimaskOutput ?? true));
    return this.runPrompts(emb, prompts, opts, decode, (_, preds) => preds);
  }

  dispose(): void {
    this.resetImage();
    this.model.dispose();
  }
}
