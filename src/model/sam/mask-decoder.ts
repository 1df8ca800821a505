/**
 * SAM's mask decoder (segment_anything/modeling/mask_decoder.py).
 *
 *   tokens = [iou_token; mask_tokens (M + 1)] ++ sparse prompt tokens           [B, 5 + N, C]
 *   src    = image_embedding + dense prompt, token-major                         [Bk, HW, C]
 *   hs, src = TwoWayTransformer(src, image_pe, tokens)
 *   upscaled = GELU(convT(GELU(LayerNorm2d(convT(src)))))                        [B, C/8, 4h, 4w]
 *   masks_all[b, i] = MLP_i(hs[b, 1 + i]) . upscaled[b]   (hypernetworks, 3 layers, ReLU)
 *   iou_all = MLP(hs[:, 0])                               (IoU head, `iou_head_depth` layers)
 *   multimask: masks_all[:, 1:], else masks_all[:, :1] (same slicing for IoU)
 *
 * The upscaling runs channels-last: the transformer's image tokens [B, HW, C] are already NHWC,
 * the first transposed convolution writes NHWC so LayerNorm2d is a plain LayerNorm over the
 * contiguous last dim, and the second reads NHWC and writes NCHW with its GELU fused.
 *
 * Many prompt sets are decoded in chunks so that no intermediate outgrows one storage binding
 * (the largest per prompt set is the upscaled embedding, C/8 x 16hw floats: 8 MiB for ViT-B).
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Tensor } from '../../gpu/tensor.js';
import { concat, copy, copyInto } from '../../kernels/copy.js';
import { convTranspose2d } from '../../kernels/conv-transpose2d.js';
import { activate, add } from '../../kernels/elementwise.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { matmul } from '../../kernels/matmul.js';
import type { Weights } from '../../weights/weights.js';
import { LAYER_NORM_2D_EPS, Mlp } from './common.js';
import type { SamConfig } from './config.js';
import { PromptError } from './prompt-encoder.js';
import { TwoWayTransformer, type TwoWayTransformerConfig } from './two-way-transformer.js';

/** The fields of SamConfig the mask decoder reads. */
export type MaskDecoderConfig = TwoWayTransformerConfig & Pick<SamConfig, 'numMultimaskOutputs' | 'iouHeadDepth' | 'iouHeadHiddenDim'>;

export interface MaskDecoderInputs {
  /** [1, C, h, w]: one image's embedding, shared by every prompt set. */
  imageEmbeddings: Tensor;
  /** get_dense_pe() token-major [1, h*w, C]. */
  imagePeTokens: Tensor;
  /** [B, N, C], or null when the prompts have no points or boxes (N = 0). */
  sparse: Tensor | null;
  /** [B, C, h, w], any strided view (the stride-0 `no_mask_embed` broadcast included). */
  dense: Tensor;
  /** B (needed when `sparse` is null). */
  batch: number;
}

/** predict_masks() outputs plus the intermediates the reference fixtures record. */
export interface MaskDecoderAll {
  /** [B, M + 1, 4h, 4w] */
  masksAll: Tensor;
  /** [B, M + 1] */
  iouAll: Tensor;
  /** Transformer tokens out [B, 5 + N, C] (capture only). */
  hs?: Tensor;
  /** Transformer image tokens out [B, HW, C] (capture only). */
  keys?: Tensor;
  /** output_upscaling(src) [B, C/8, 4h, 4w] (capture only). */
  upscaled?: Tensor;
}

export interface MaskDecoderOutputs {
  /** Low-res mask logits [B, M', 4h, 4w], M' = M (multimask) or 1. */
  masks: Tensor;
  /** [B, M'] */
  iouPred: Tensor;
}

/** [Bd, C, h, w] (h, w jointly strided) -> [Bk, h*w, C] token-major view; a stride-0 batch becomes 1. */
function tokenMajor(t: Tensor): Tensor {
  const [B, C, h, w] = t.shape as [number, number, number, number];
  const [s0, s1, s2, s3] = t.strides as [number, number, number, number];
  if (h > 1 && w > 1 && s2 !== w * s3) throw new PromptError(`mask decoder: ${t} has rows and columns that are not jointly strided`);
  const b = s0 === 0 ? 1 : B;
  return t.asStrided([b, h * w, C], [s0, w > 1 ? s3 : s2, s1], t.offset);
}

export class MaskDecoder {
  readonly iouToken: Tensor;
  readonly maskTokens: Tensor;
  readonly numMaskTokens: number;
  readonly transformer: TwoWayTransformer;
  readonly upscaling: {
    convT0: { weight: Tensor; bias: Tensor };
    norm1: { weight: Tensor; bias: Tensor };
    convT3: { weight: Tensor; bias: Tensor };
  };
  readonly hypernetworks: Mlp[];
  readonly iouHead: Mlp;
  private outputTokens: Tensor | null = null;

  constructor(w: Weights, prefix: string, readonly cfg: MaskDecoderConfig) {
    const C = cfg.promptEmbedDim;
    if (C % 8 !== 0) throw new Error(`MaskDecoder: transformer width ${C} must be a multiple of 8`);
    this.numMaskTokens = cfg.numMultimaskOutputs + 1;
    this.iouToken = w.get(`${prefix}.iou_token.weight`, [1, C]);
    this.maskTokens = w.get(`${prefix}.mask_tokens.weight`, [this.numMaskTokens, C]);
    this.transformer = new TwoWayTransformer(w, `${prefix}.transformer`, cfg);
    this.upscaling = {
      convT0: { weight: w.get(`${prefix}.output_upscaling.0.weight`, [C, C / 4, 2, 2]), bias: w.get(`${prefix}.output_upscaling.0.bias`, [C / 4]) },
      norm1: { weight: w.get(`${prefix}.output_upscaling.1.weight`, [C / 4]), bias: w.get(`${prefix}.output_upscaling.1.bias`, [C / 4]) },
      convT3: { weight: w.get(`${prefix}.output_upscaling.3.weight`, [C / 4, C / 8, 2, 2]), bias: w.get(`${prefix}.output_upscaling.3.bias`, [C / 8]) },
    };
    this.hypernetworks = [];
    for (let i = 0; i < this.numMaskTokens; i++) {
      this.hypernetworks.push(new Mlp(w, `${prefix}.output_hypernetworks_mlps.${i}`, C, C, C / 8, 3));
    }
    this.iouHead = new Mlp(w, `${prefix}.iou_prediction_head`, C, cfg.iouHeadHiddenDim, this.numMaskTokens, cfg.iouHeadDepth);
  }

  /** Prompt sets decoded per pass so that the largest intermediate fits one storage binding. */
  maxBatch(ctx: GpuContext, gridH: number, gridW: number): number {
    const perSet = 8 * gridH * gridW * this.cfg.promptEmbedDim; // C/8 x 16hw floats, 4 bytes
    return Math.max(1, Math.floor(ctx.limits.maxStorageBufferBindingSize / perSet));
  }

  /** [iou_token; mask_tokens] as one persistent [5, C] table, built on first use. */
  private tokensTable(ctx: GpuContext): Tensor {
    if (!this.outputTokens) {
      const t = concat(ctx, [this.iouToken, this.maskTokens], 0);
      t.persistent = true;
      this.outputTokens = t;
    }
    return this.outputTokens;
  }

  /** Free the token table this decoder made (its weights belong to their Weights set). */
  dispose(): void {
    this.outputTokens?.dispose();
    this.outputTokens = null;
  }

  /** MaskDecoder.predict_masks for one chunk of prompt sets. */
  predictMasks(ctx: GpuContext, inp: MaskDecoderInputs, opts: { capture?: boolean } = {}): MaskDecoderAll {
    const C = this.cfg.promptEmbedDim;
    const [, , h, w] = inp.imageEmbeddings.shape as [number, number, number, number];
    const B = inp.batch;
    return ctx.scope(() => {
      const T = 1 + this.numMaskTokens + (inp.sparse?.dim(1) ?? 0);
      const tokens = ctx.empty([B, T, C]);
      const head = tokens.slice(1, 0, 1 + this.numMaskTokens);
      copyInto(ctx, this.tokensTable(ctx), head);
      if (inp.sparse) copyInto(ctx, inp.sparse, tokens.slice(1, 1 + this.numMaskTokens, T));

      const src = ctx.stage('src', () => add(ctx, tokenMajor(inp.imageEmbeddings), tokenMajor(inp.dense)));
      const { queries: hs, keys } = ctx.stage('transformer', () => this.transformer.forward(ctx, src, inp.imagePeTokens, tokens));

      const upscaled = ctx.stage('output_upscaling', () => {
        const u = this.upscaling;
        const x0 = convTranspose2d(ctx, keys.reshape([B, h, w, C]), u.convT0.weight, u.convT0.bias, { stride: 2, inLayout: 'nhwc', outLayout: 'nhwc' });
        const x1 = activate(ctx, layerNorm(ctx, x0, u.norm1.weight, u.norm1.bias, LAYER_NORM_2D_EPS), 'gelu');
        return convTranspose2d(ctx, x1, u.convT3.weight, u.convT3.bias, { stride: 2, inLayout: 'nhwc', act: 'gelu' });
      });

      const masksAll = ctx.stage('hypernetworks', () => {
        const hyper = concat(ctx, this.hypernetworks.map((mlp, i) => mlp.forward(ctx, hs.slice(1, 1 + i, 2 + i))), 1);
        const up = upscaled.reshape([B, C / 8, 16 * h * w]);
        return matmul(ctx, hyper, up).reshape([B, this.numMaskTokens, 4 * h, 4 * w]);
      });
      const iouAll = ctx.stage('iou_head', () => this.iouHead.forward(ctx, hs.slice(1, 0, 1)).reshape([B, this.numMaskTokens]));
      const out: MaskDecoderAll = { masksAll, iouAll };
      if (opts.capture) Object.assign(out, { hs, keys, upscaled });
      return out;
    });
  }

  /**
   * MaskDecoder.forward: low-res logits and IoU predictions, sliced for multimask output
   * (contiguous). Prompt sets are processed in chunks of `maxBatch`.
   */
  forward(ctx: GpuContext, inp: MaskDecoderInputs, multimaskOutput: boolean, opts: { maxBatch?: number } = {}): MaskDecoderOutputs {
    const [, , h, w] = inp.imageEmbeddings.shape as [number, number, number, number];
    const B = inp.batch;
    const chunk = Math.min(opts.maxBatch ?? Infinity, this.maxBatch(ctx, h, w));
    const [m0, m1] = multimaskOutput ? [1, this.numMaskTokens] : [0, 1];
    return ctx.stage('mask_decoder', () =>
      ctx.scope(() => {
        const pick = (all: MaskDecoderAll) => ({ masks: copy(ctx, all.masksAll.slice(1, m0, m1)), iouPred: copy(ctx, all.iouAll.slice(1, m0, m1)) });
        if (B <= chunk) return pick(this.predictMasks(ctx, inp));
        const parts: MaskDecoderOutputs[] = [];
        for (let b0 = 0; b0 < B; b0 += chunk) {
          const b1 = Math.min(B, b0 + chunk);
          const d = inp.dense;
          const dense = d.strides[0] === 0 ? d.asStrided([b1 - b0, ...d.shape.slice(1)], d.strides, d.offset) : d.slice(0, b0, b1);
          const sparse = inp.sparse?.slice(0, b0, b1) ?? null;
          parts.push(ctx.scope(() => pick(this.predictMasks(ctx, { ...inp, batch: b1 - b0, sparse, dense }))));
        }
        return { masks: concat(ctx, parts.map((p) => p.masks), 0), iouPred: concat(ctx, parts.map((p) => p.iouPred), 0) };
      }),
    );
  }
}
