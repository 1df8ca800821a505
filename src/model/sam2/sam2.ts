/**
 * The SAM 2 image model: the parts of sam2/modeling/sam2_base.py (SAM2Base) and
 * sam2/sam2_image_predictor.py that an image needs, built from one weight set, with the model's
 * own pre- and post-processing (sam2/utils/transforms.py) as GPU stages.
 *
 *  - `preprocess`: ToTensor (/ 255), then Resize((S, S)) -- antialiased bilinear on the float
 *    image, aspect ratio NOT kept (torchvision >= 0.17 antialiases tensors) -- then ImageNet
 *    Normalize ((x - mean) / std per channel, float32). The 8-bit image is uploaded as bytes and
 *    the division is fused into the resize's first pass (src/kernels/resize-antialias.ts).
 *  - `encodeImage` (forward_image + _prepare_backbone_features + set_image): image encoder;
 *    `conv_s0` / `conv_s1` on FPN levels 0 / 1 (the decoder's high-resolution skips); level 2 plus
 *    `no_mem_embed` (`directly_add_no_mem_embed`: an image has no memory) is the image embedding.
 *  - `decode` (_predict): prompts in the model frame; boxes become points labelled 2 / 3 in front
 *    of the clicks (prompt-encoder.ts); prompt encoder, then the mask decoder with the dynamic
 *    multimask fallback for single-mask output.
 *  - `postprocessMasks`: low-res logits -> bilinear (align_corners false) straight to the original
 *    size (the predictor's defaults never run the hole-filling extension). Binarisation (> 0) is
 *    the caller's (`thresholdBits`).
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Pacer } from '../../gpu/pacer.js';
import { ShapeError, check, fmtShape } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { type ImageU8, checkImage } from '../../image/image.js';
import { add, div, sub } from '../../kernels/elementwise.js';
import { resizeBilinear } from '../../kernels/resize.js';
import { packBytes, resizeAntialiasBytes } from '../../kernels/resize-antialias.js';
import type { Weights } from '../../weights/weights.js';
import { type EncoderPrompts, type PromptEncoder } from '../sam/prompt-encoder.js';
import type { Sam2Config } from './config.js';
import type { Taps } from './hieradet.js';
import { ImageEncoder } from './image-encoder.js';
import { type LoadSam2Options, type Sam2Source, loadSam2Weights } from './load.js';
import { type Sam2DecoderOutputs, Sam2MaskDecoder } from './mask-decoder.js';
import { boxesAsPoints, createSam2PromptEncoder } from './prompt-encoder.js';

/** SAM2Transforms' Normalize (ImageNet statistics, on [0, 1] values). */
export const SAM2_PIXEL_MEAN = [0.485, 0.456, 0.406] as const;
export const SAM2_PIXEL_STD = [0.229, 0.224, 0.225] as const;
/** SAM2ImagePredictor.mask_threshold. */
export const SAM2_MASK_THRESHOLD = 0.0;
/** The predictor clamps the low-res logits it returns to this range (masks use the unclamped ones). */
export const SAM2_LOW_RES_CLAMP = 32.0;

/**
 * One image's features on the GPU (the predictor's `_features`). For a video frame the same
 * fields hold, except that memory attention would condition `visionFeatures` instead of adding
 * `no_mem_embed`: the decoder reads only `imageEmbed` and `highRes`.
 */
export interface Sam2ImageFeatures {
  /** FPN level 2 + no_mem_embed [1, C, S/16, S/16]: the decoder's image embedding. */
  imageEmbed: Tensor;
  /** conv_s0(FPN level 0) [1, C/8, S/4, S/4] and conv_s1(FPN level 1) [1, C/4, S/8, S/8]. */
  highRes: { s0: Tensor; s1: Tensor };
  /** FPN level 2 before no_mem_embed [1, C, S/16, S/16] (what memory attention would read). */
  visionFeatures: Tensor;
}

export class Sam2 {
  readonly maskThreshold = SAM2_MASK_THRESHOLD;
  private normTables: { mean: Tensor; std: Tensor } | null = null;

  private constructor(
    readonly config: Sam2Config,
    readonly weights: Weights,
    readonly imageEncoder: ImageEncoder,
    readonly promptEncoder: PromptEncoder,
    readonly maskDecoder: Sam2MaskDecoder,
    readonly noMemEmbed: Tensor,
  ) {}

  /** Build the model from weights under official names; every tensor of the set must be used. */
  static async create(ctx: GpuContext, weights: Weights, config: Sam2Config): Promise<Sam2> {
    const encoder = new ImageEncoder(weights, 'image_encoder', config);
    const promptEncoder = await createSam2PromptEncoder(ctx, weights, 'sam_prompt_encoder', config);
    const decoder = new Sam2MaskDecoder(weights, 'sam_mask_decoder', config);
    const noMem = weights.get('no_mem_embed', [1, 1, config.promptEmbedDim]);
    weights.assertAllUsed('the SAM 2 image model (image encoder, prompt encoder, mask decoder, no_mem_embed)');
    return new Sam2(config, weights, encoder, promptEncoder, decoder, noMem);
  }

  /** Load a checkpoint (official `.pt` / safetensors, or Hugging Face names) and build the model. */
  static async load(ctx: GpuContext, src: Sam2Source, opts: LoadSam2Options = {}): Promise<Sam2> {
    const { weights, config } = await loadSam2Weights(ctx, src, opts);
    try {
      return await Sam2.create(ctx, weights, config);
    } catch (e) {
      weights.dispose();
      throw e;
    }
  }

  get imageSize(): number {
    return this.config.imageSize;
  }

  /** Side of the low-res logits / mask input (S / 4). */
  get lowResSize(): number {
    return 4 * this.config.imageEmbeddingSize;
  }

  /** SAM2Transforms on an RGB image (HWC uint8) -> [1, 3, S, S] float32. */
  preprocess(ctx: GpuContext, image: ImageU8): Tensor {
    checkImage(image, 'Sam2.preprocess input');
    if (image.channels !== 3) throw new ShapeError(`Sam2.preprocess: expects an RGB image (3 channels), got ${image.channels}`);
    const S = this.imageSize;
    if (!this.normTables) {
      const mean = ctx.upload(Float32Array.from(SAM2_PIXEL_MEAN), [1, 3, 1, 1]);
      const std = ctx.upload(Float32Array.from(SAM2_PIXEL_STD), [1, 3, 1, 1]);
      mean.persistent = std.persistent = true;
      this.normTables = { mean, std };
    }
    const { mean, std } = this.normTables;
    return ctx.stage('preprocess', () =>
      ctx.scope(() => {
        const words = ctx.upload(packBytes(image.data as Uint8Array), [Math.ceil(image.data.length / 4)], 'u32');
        const resized = resizeAntialiasBytes(ctx, { words, height: image.height, width: image.width, channels: 3 }, S, S, { divisor: 255 });
        return div(ctx, sub(ctx, resized, mean), std);
      }),
    );
  }

  /** Image encoder + high-res projections + no_mem_embed on a preprocessed input [1, 3, S, S]. */
  encodeImage(ctx: GpuContext, input: Tensor, taps?: Taps): Sam2ImageFeatures {
    this.checkInput(input);
    return ctx.scope(() => this.features(ctx, this.imageEncoder.forward(ctx, input, taps)));
  }

  /** `encodeImage`, paced block by block (progress, cancellation) when a pacer is given. */
  async encodeImagePaced(ctx: GpuContext, input: Tensor, pacer: Pacer | null): Promise<Sam2ImageFeatures> {
    if (!pacer) return this.encodeImage(ctx, input);
    this.checkInput(input);
    const levels = await this.imageEncoder.forwardPaced(ctx, input, pacer.part(0, 0.97));
    try {
      const f = ctx.scope(() => this.features(ctx, levels));
      await pacer.step('high-resolution features', 1, 1);
      return f;
    } finally {
      for (const l of levels) l.dispose();
    }
  }

  private checkInput(input: Tensor): void {
    const S = this.imageSize;
    check(input.ndim === 4 && input.dim(0) === 1 && input.dim(1) === 3 && input.dim(2) === S && input.dim(3) === S,
      () => `Sam2.encodeImage: input must be [1, 3, ${S}, ${S}] (preprocessed), got ${fmtShape(input.shape)}`);
  }

  /** FPN levels 0-2 -> the decoder's features (conv_s0 / conv_s1, level 2 + no_mem_embed). */
  private features(ctx: GpuContext, levels: readonly Tensor[]): Sam2ImageFeatures {
    const [fpn0, fpn1, fpn2] = levels as [Tensor, Tensor, Tensor];
    const highRes = this.maskDecoder.highResFeatures(ctx, fpn0, fpn1);
    const C = this.config.promptEmbedDim;
    const nm = this.noMemEmbed;
    const imageEmbed = ctx.stage('no_mem_embed', () => add(ctx, fpn2, nm.asStrided([1, C, 1, 1], [0, 1, 0, 0], nm.offset)));
    return { imageEmbed, highRes, visionFeatures: fpn2.ref() };
  }

  /**
   * Prompt encoder + mask decoder for prompts already in the model frame (transformed, not yet
   * shifted by 0.5): low-res logits, IoU (after the sigmoid) and object-score logits, owned by the
   * caller. Safe to overlap with other calls on the context (its temporaries live in a task).
   */
  async decode(ctx: GpuContext, features: Sam2ImageFeatures, prompts: EncoderPrompts, multimaskOutput: boolean, opts: { maxBatch?: number } = {}): Promise<Sam2DecoderOutputs> {
    const g = this.config.imageEmbeddingSize;
    const C = this.config.promptEmbedDim;
    const e = features.imageEmbed;
    check(e.ndim === 4 && e.dim(0) === 1 && e.dim(1) === C && e.dim(2) === g && e.dim(3) === g,
      () => `Sam2.decode: image embedding must be [1, ${C}, ${g}, ${g}], got ${fmtShape(e.shape)}`);
    const task = ctx.task();
    try {
      const { sparse, dense } = task.run(() => ctx.stage('prompt_encoder', () => this.promptEncoder.forward(ctx, boxesAsPoints(prompts))));
      return await this.maskDecoder.decode(
        ctx,
        { imageEmbeddings: e, imagePeTokens: this.promptEncoder.densePeTokenMajor(), sparse, dense, batch: prompts.batch, highRes: features.highRes },
        multimaskOutput,
        opts,
      );
    } finally {
      task.dispose();
    }
  }

  /** How many masks `postprocessMasks` can take at once for this original size. */
  postprocessChunk(ctx: GpuContext, originalSize: readonly [number, number]): number {
    const perMask = 4 * originalSize[0] * originalSize[1];
    check(perMask <= ctx.limits.maxStorageBufferBindingSize,
      () => `Sam2.postprocessMasks: one ${originalSize[0]}x${originalSize[1]} mask needs ${perMask} bytes, over the adapter's binding limit`);
    return Math.max(1, Math.floor(ctx.limits.maxStorageBufferBindingSize / perMask));
  }

  /** SAM2Transforms.postprocess_masks: logits [N, C, L, L] -> [N, C, H, W] (N x C within `postprocessChunk`). */
  postprocessMasks(ctx: GpuContext, lowRes: Tensor, originalSize: readonly [number, number]): Tensor {
    const [H, W] = originalSize;
    check(lowRes.ndim === 4, () => `Sam2.postprocessMasks: expects [N, C, h, w] logits, got ${fmtShape(lowRes.shape)}`);
    check(Number.isInteger(H) && Number.isInteger(W) && H >= 1 && W >= 1, () => `Sam2.postprocessMasks: original size ${H}x${W} must be positive integers`);
    const n = lowRes.dim(0) * lowRes.dim(1);
    const chunk = this.postprocessChunk(ctx, originalSize);
    check(n <= chunk, () => `Sam2.postprocessMasks: ${n} masks at once exceed the ${chunk} that fit one binding; split the batch`);
    return ctx.stage('postprocess_masks', () => resizeBilinear(ctx, lowRes, H, W));
  }

  dispose(): void {
    this.imageEncoder.dispose();
    this.promptEncoder.dispose();
    this.maskDecoder.dispose();
    this.normTables?.mean.dispose();
    this.normTables?.std.dispose();
    this.normTables = null;
    this.weights.dispose();
  }
}

