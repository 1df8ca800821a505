/**
 * The SAM model object (segment_anything/modeling/sam.py): image encoder + prompt encoder + mask
 * decoder built from one weight set, and the model's own pre- and post-processing as GPU stages.
 *
 *  - `preprocess`: the resized uint8 RGB image -> (x - pixel_mean) / pixel_std, zero padded to
 *    the square input, NCHW float32 (Sam.preprocess). The Pillow-exact resize itself stays on the
 *    CPU (src/image); only bytes are uploaded.
 *  - `postprocessMasks`: low-res logits -> bilinear (align_corners false) to imgSize x imgSize ->
 *    crop the padding -> bilinear to the original size (Sam.postprocess_masks). Two resizes, the
 *    crop a zero-copy view. Binarisation (`> mask_threshold`, 0.0) is `thresholdBits`.
 *
 * Stage-level entry points take already-preprocessed tensors so parity work can feed each stage
 * the recorded upstream tensor.
 */
import type { GpuContext } from '../../gpu/context.js';
import { ShapeError, check, fmtShape } from '../../gpu/errors.js';
import type { Pacer } from '../../gpu/pacer.js';
import type { Tensor } from '../../gpu/tensor.js';
import { type ImageU8, checkImage } from '../../image/image.js';
import { SAM_PIXEL_MEAN, SAM_PIXEL_STD } from '../../image/preprocess.js';
import { resizeBilinear } from '../../kernels/resize.js';
import type { SafetensorsFile } from '../../weights/safetensors.js';
import { WeightError, type Weights } from '../../weights/weights.js';
import type { SamConfig } from './config.js';
import { ImageEncoderViT } from './image-encoder.js';
import { type LoadSamOptions, loadSamWeights } from './load.js';
import { MaskDecoder, type MaskDecoderOutputs } from './mask-decoder.js';
import { type EncoderPrompts, PromptEncoder } from './prompt-encoder.js';
import { normalizePadU8 } from './stage-kernels.js';

/** Sam.mask_threshold. */
export const SAM_MASK_THRESHOLD = 0.0;

export interface SamCreateOptions {
  /** Build the image encoder (default: when the weights hold `image_encoder.*`). */
  imageEncoder?: boolean;
  pixelMean?: readonly [number, number, number];
  pixelStd?: readonly [number, number, number];
}

export class Sam {
  readonly maskThreshold = SAM_MASK_THRESHOLD;

  private constructor(
    readonly config: SamConfig,
    readonly weights: Weights,
    readonly imageEncoder: ImageEncoderViT | null,
    readonly promptEncoder: PromptEncoder,
    readonly maskDecoder: MaskDecoder,
    readonly pixelMean: readonly [number, number, number],
    readonly pixelStd: readonly [number, number, number],
  ) {}

  /**
   * Build the model from weights under official names. With the image encoder included, every
   * tensor of the set must be consumed (strict); without it, everything but `image_encoder.*`.
   */
  static async create(ctx: GpuContext, weights: Weights, config: SamConfig, opts: SamCreateOptions = {}): Promise<Sam> {
    const hasEncoder = weights.keys().some((k) => k.startsWith('image_encoder.'));
    const withEncoder = opts.imageEncoder ?? hasEncoder;
    if (withEncoder && !hasEncoder) {
      throw new WeightError(`${weights.file}: no 'image_encoder.*' tensors; load a full SAM checkpoint or pass { imageEncoder: false }`);
    }
    const encoder = withEncoder ? new ImageEncoderViT(weights, 'image_encoder', config) : null;
    const promptEncoder = await PromptEncoder.create(ctx, weights, 'prompt_encoder', config);
    const maskDecoder = new MaskDecoder(weights, 'mask_decoder', config);
    if (withEncoder) weights.assertAllUsed('SAM (image encoder, prompt encoder, mask decoder)');
    return new Sam(config, weights, encoder, promptEncoder, maskDecoder, opts.pixelMean ?? SAM_PIXEL_MEAN, opts.pixelStd ?? SAM_PIXEL_STD);
  }

  /** Load a checkpoint (official, Hugging Face or SAM-CLIP bundle names) and build the model. */
  static async load(ctx: GpuContext, src: string | SafetensorsFile, opts: LoadSamOptions & SamCreateOptions = {}): Promise<Sam> {
    const { weights, config } = await loadSamWeights(ctx, src, opts);
    try {
      return await Sam.create(ctx, weights, config, opts);
    } catch (e) {
      weights.dispose();
      throw e;
    }
  }

  get imgSize(): number {
    return this.config.imgSize;
  }

  /** Side of the low-res logits / mask input (4 x the embedding grid: 256 at 1024). */
  get lowResSize(): number {
    return 4 * this.config.imageEmbeddingSize;
  }

  /**
   * Sam.preprocess on the GPU: a resized RGB image (longest side imgSize, e.g. from pilResize)
   * -> [1, 3, imgSize, imgSize] normalised and zero padded.
   */
  preprocess(ctx: GpuContext, resized: ImageU8): Tensor {
    checkImage(resized, 'Sam.preprocess input');
    if (resized.channels !== 3) throw new ShapeError(`Sam.preprocess: expects an RGB image (3 channels), got ${resized.channels}`);
    const S = this.imgSize;
    return ctx.stage('preprocess', () => normalizePadU8(ctx, resized.data, resized.height, resized.width, S, this.pixelMean, this.pixelStd));
  }

  /** Image encoder on a preprocessed input [1, 3, S, S] -> embedding [1, C, g, g]. */
  encodeImage(ctx: GpuContext, input: Tensor): Tensor {
    return this.encoderFor(input).forward(ctx, input).embedding;
  }

  /** `encodeImage`, paced block by block (progress, cancellation) when a pacer is given. */
  async encodeImagePaced(ctx: GpuContext, input: Tensor, pacer: Pacer | null): Promise<Tensor> {
    const encoder = this.encoderFor(input);
    return pacer ? (await encoder.forwardPaced(ctx, input, pacer)).embedding : encoder.forward(ctx, input).embedding;
  }

  private encoderFor(input: Tensor): ImageEncoderViT {
    if (!this.imageEncoder) throw new WeightError(`${this.weights.file}: this SAM was built without its image encoder`);
    const S = this.imgSize;
    check(input.ndim === 4 && input.dim(0) === 1 && input.dim(1) === 3 && input.dim(2) === S && input.dim(3) === S,
      () => `Sam.encodeImage: input must be [1, 3, ${S}, ${S}] (preprocessed and padded), got ${fmtShape(input.shape)}`);
    return this.imageEncoder;
  }

  /**
   * Prompt encoder + mask decoder for prompts already in the input frame (ResizeLongestSide
   * applied): low-res logits [B, M', 4g, 4g] and IoU predictions [B, M'].
   */
  predictLowRes(ctx: GpuContext, embedding: Tensor, prompts: EncoderPrompts, multimaskOutput: boolean, opts: { maxBatch?: number } = {}): MaskDecoderOutputs {
    const g = this.config.imageEmbeddingSize;
    const C = this.config.promptEmbedDim;
    check(embedding.ndim === 4 && embedding.dim(0) === 1 && embedding.dim(1) === C && embedding.dim(2) === g && embedding.dim(3) === g,
      () => `Sam.predictLowRes: image embedding must be [1, ${C}, ${g}, ${g}], got ${fmtShape(embedding.shape)}`);
    return ctx.scope(() => {
      const { sparse, dense } = ctx.stage('prompt_encoder', () => this.promptEncoder.forward(ctx, prompts));
      return this.maskDecoder.forward(
        ctx,
        { imageEmbeddings: embedding, imagePeTokens: this.promptEncoder.densePeTokenMajor(), sparse, dense, batch: prompts.batch },
        multimaskOutput,
        opts,
      );
    });
  }

  /** How many masks `postprocessMasks` can take at once for this original size. */
  postprocessChunk(ctx: GpuContext, originalSize: readonly [number, number]): number {
    const S = this.imgSize;
    const perMask = 4 * Math.max(S * S, originalSize[0] * originalSize[1]);
    check(perMask <= ctx.limits.maxStorageBufferBindingSize,
      () => `Sam.postprocessMasks: one ${originalSize[0]}x${originalSize[1]} mask needs ${perMask} bytes, over the adapter's binding limit`);
    return Math.max(1, Math.floor(ctx.limits.maxStorageBufferBindingSize / perMask));
  }

  /**
   * Sam.postprocess_masks: low-res logits [N, C, 4g, 4g] (any strided view) -> logits at the
   * original size [N, C, H, W]. `inputSize` is the resized image's [h, w] inside the padded square.
   * N * C must not exceed `postprocessChunk` (callers loop over chunks).
   */
  postprocessMasks(ctx: GpuContext, lowRes: Tensor, inputSize: readonly [number, number], originalSize: readonly [number, number]): Tensor {
    const S = this.imgSize;
    const [h, w] = inputSize;
    const [H, W] = originalSize;
    check(lowRes.ndim === 4, () => `Sam.postprocessMasks: expects [N, C, h, w] logits, got ${fmtShape(lowRes.shape)}`);
    check(Number.isInteger(h) && Number.isInteger(w) && h >= 1 && w >= 1 && h <= S && w <= S,
      () => `Sam.postprocessMasks: input size ${h}x${w} does not fit the ${S}x${S} model input`);
    check(Number.isInteger(H) && Number.isInteger(W) && H >= 1 && W >= 1, () => `Sam.postprocessMasks: original size ${H}x${W} must be positive integers`);
    const n = lowRes.dim(0) * lowRes.dim(1);
    const chunk = this.postprocessChunk(ctx, originalSize);
    check(n <= chunk, () => `Sam.postprocessMasks: ${n} masks at once exceed the ${chunk} that fit one binding; split the batch`);
    return ctx.stage('postprocess_masks', () =>
      ctx.scope(() => {
        const full = resizeBilinear(ctx, lowRes, S, S);
        return resizeBilinear(ctx, full, H, W, { crop: { top: 0, left: 0, height: h, width: w } });
      }),
    );
  }

  dispose(): void {
    this.imageEncoder?.dispose();
    this.promptEncoder.dispose();
    this.maskDecoder.dispose();
    this.weights.dispose();
  }
}
