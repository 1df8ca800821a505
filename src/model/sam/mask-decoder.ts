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
 * The upscaling runs channels-last, and each ConvTranspose2d (kernel = stride = 2) is computed as
 * what it is: a per-pixel GEMM [pixels, C_in] @ [C_in, C_out * 4] whose 4 output columns per
 * channel are the 2x2 sub-pixels, followed by a pixel shuffle. The shuffle is never a copy: the
 * LayerNorm2d reads the first GEMM's output through a 6-D strided view and writes plain NHWC; the
 * hypernetwork product reads the second GEMM's output per sub-pixel phase (a batch dim of the
 * matmul) and the final slicing copy puts the phases back in place. On lavapipe the GEMM runs
 * 1.2-1.8x faster than the general transposed-convolution kernel on these shapes.
 *
 * Many prompt sets are decoded in chunks so that no intermediate outgrows one storage binding
 * (the largest per prompt set is the upscaled embedding, C/8 x 16hw floats: 8 MiB for ViT-B).
 *
 * SAM 2's decoder (sam2/modeling/sam/mask_decoder.py) is this one plus: an object-score token in
 * front of the IoU token (`leadingTokens`, read by `objScoreHead`), high-resolution features added
 * after each transposed convolution (`MaskDecoderInputs.highRes`: before the LayerNorm, and before
 * the last GELU), a sigmoid on the IoU head, and MLP layers named `layers.0/1` in the transformer.
 * src/model/sam2/mask-decoder.ts configures those through the hooks marked below.
 */
import type { GpuContext } from '../../gpu/context.js';
import { DispatchPlans } from '../../gpu/dispatch-plan.js';
import type { Tensor } from '../../gpu/tensor.js';
import { concat, copy, copyInto } from '../../kernels/copy.js';
import { activate, add, addAct } from '../../kernels/elementwise.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { matmul } from '../../kernels/matmul.js';
import type { Weights } from '../../weights/weights.js';
import { LAYER_NORM_2D_EPS, Mlp, StackedMlps } from './common.js';
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
  /**
   * SAM 2: high-resolution features (conv_s0 / conv_s1 of the FPN's finer levels), NCHW
   * [1, C/8, 4h, 4w] and [1, C/4, 2h, 2w], added after the first and second transposed convolution.
   */
  highRes?: { s0: Tensor; s1: Tensor };
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
  /** SAM 2: object-score logits [B, 1]. */
  objectScoreLogits?: Tensor;
}

export interface MaskDecoderOutputs {
  /** Low-res mask logits [B, M', 4h, 4w], M' = M (multimask) or 1. */
  masks: Tensor;
  /** [B, M'] */
  iouPred: Tensor;
}

/** Every tensor a decoder call reads that changes from call to call (dispatch plans rebind them). */
function planInputs(inp: MaskDecoderInputs): (Tensor | null)[] {
  return [inp.imageEmbeddings, inp.imagePeTokens, inp.sparse, inp.dense, inp.highRes?.s0 ?? null, inp.highRes?.s1 ?? null];
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
  /** The hypernetworks as one batched MLP (3 dispatches for all mask tokens). */
  private readonly stackedHypernetworks: StackedMlps;
  readonly iouHead: Mlp;
  /** Hook (SAM 2): tokens in front of the IoU token (its object-score token). */
  protected leadingTokens: Tensor[] = [];
  /** Hook (SAM 2): the head reading the first leading token's output. */
  protected objScoreHead: { forward(ctx: GpuContext, x: Tensor): Tensor } | null = null;
  private outputTokens: Tensor | null = null;
  /** Recorded forward calls (src/gpu/dispatch-plan.ts). */
  private readonly plans = new DispatchPlans();
  private readonly biasX4: [Tensor | null, Tensor | null] = [null, null];
  private readonly gemmWeights: [Tensor | null, Tensor | null] = [null, null];

  constructor(
    w: Weights,
    prefix: string,
    readonly cfg: MaskDecoderConfig,
    opts: { transformerMlpNames?: readonly [string, string]; iouSigmoid?: boolean } = {},
  ) {
    const C = cfg.promptEmbedDim;
    if (C % 8 !== 0) throw new Error(`MaskDecoder: transformer width ${C} must be a multiple of 8`);
    this.numMaskTokens = cfg.numMultimaskOutputs + 1;
    this.iouToken = w.get(`${prefix}.iou_token.weight`, [1, C]);
    this.maskTokens = w.get(`${prefix}.mask_tokens.weight`, [this.numMaskTokens, C]);
    this.transformer = new TwoWayTransformer(w, `${prefix}.transformer`, cfg, opts.transformerMlpNames);
    this.upscaling = {
      convT0: { weight: w.get(`${prefix}.output_upscaling.0.weight`, [C, C / 4, 2, 2]), bias: w.get(`${prefix}.output_upscaling.0.bias`, [C / 4]) },
      norm1: { weight: w.get(`${prefix}.output_upscaling.1.weight`, [C / 4]), bias: w.get(`${prefix}.output_upscaling.1.bias`, [C / 4]) },
      convT3: { weight: w.get(`${prefix}.output_upscaling.3.weight`, [C / 4, C / 8, 2, 2]), bias: w.get(`${prefix}.output_upscaling.3.bias`, [C / 8]) },
    };
    this.hypernetworks = [];
    for (let i = 0; i < this.numMaskTokens; i++) {
      this.hypernetworks.push(new Mlp(w, `${prefix}.output_hypernetworks_mlps.${i}`, C, C, C / 8, 3));
    }
    this.stackedHypernetworks = new StackedMlps(this.hypernetworks);
    this.iouHead = new Mlp(w, `${prefix}.iou_prediction_head`, C, cfg.iouHeadHiddenDim, this.numMaskTokens, cfg.iouHeadDepth, opts.iouSigmoid);
  }

  /** Prompt sets decoded per pass so that the largest intermediate fits one storage binding. */
  maxBatch(ctx: GpuContext, gridH: number, gridW: number): number {
    const perSet = 8 * gridH * gridW * this.cfg.promptEmbedDim; // C/8 x 16hw floats, 4 bytes
    return Math.max(1, Math.floor(ctx.limits.maxStorageBufferBindingSize / perSet));
  }

  /** [leading tokens; iou_token; mask_tokens] as one persistent table, built on first use. */
  private tokensTable(ctx: GpuContext): Tensor {
    if (!this.outputTokens) {
      const t = concat(ctx, [...this.leadingTokens, this.iouToken, this.maskTokens], 0);
      t.persistent = true;
      this.outputTokens = t;
    }
    return this.outputTokens;
  }

  /** Free what this decoder made (token table, stacked and GEMM-layout weights, plans); its weights belong to their Weights set. */
  dispose(): void {
    this.plans.dispose();
    this.stackedHypernetworks.dispose();
    this.transformer.dispose();
    this.outputTokens?.dispose();
    this.outputTokens = null;
    for (const t of [...this.biasX4, ...this.gemmWeights]) t?.dispose();
    this.biasX4.fill(null);
    this.gemmWeights.fill(null);
  }

  /** [C_out] bias -> [C_out * 4] (each channel's value for its 2x2 sub-pixels), made once. */
  private expandedBias(ctx: GpuContext, which: 0 | 1): Tensor {
    const have = this.biasX4[which];
    if (have) return have;
    const b = which === 0 ? this.upscaling.convT0.bias : this.upscaling.convT3.bias;
    const n = b.dim(0);
    const t = copy(ctx, b.asStrided([n, 4], [1, 0], b.offset)).reshape([4 * n]);
    t.persistent = true;
    this.biasX4[which] = t;
    return t;
  }

  /**
   * A ConvTranspose2d weight [C_in, C_out, 2, 2] as the GEMM operand [C_in, C_out * 4], stored
   * transposed (contiguous along C_in, made once): the nn.Linear layout the vec4 matmul variants
   * take (tiled_nt, direct_nt, direct_sg_nt). Straight from the checkpoint it is contiguous along C_out * 4 and
   * would get the general tiled kernel: 2.8 GFLOP/s against ~8 on lavapipe.
   */
  private gemmWeight(ctx: GpuContext, which: 0 | 1): Tensor {
    let t = this.gemmWeights[which];
    if (!t) {
      const w = which === 0 ? this.upscaling.convT0.weight : this.upscaling.convT3.weight;
      const [cin, cout] = w.shape as [number, number];
      const view = w.reshape([cin, 4 * cout]).transpose(0, 1);
      t = copy(ctx, view); // [C_out * 4, C_in]
      view.dispose();
      t.persistent = true;
      this.gemmWeights[which] = t;
    }
    return t.transpose(0, 1);
  }

  /**
   * output_upscaling on the transformer's image tokens [B, h*w, C]: returns the second GEMM's
   * output y2 [B, 2h, 2w, C/8, 2, 2] (GELU applied) and, for capture, its NCHW view. With
   * `highRes` (SAM 2): act1(ln1(dc1(src) + s1)), then act2(dc2(.) + s0); each feature map is read
   * through a view in the GEMM output's sub-pixel layout, broadcast over the prompt sets.
   */
  private upscale(ctx: GpuContext, keys: Tensor, B: number, h: number, w: number, capture: boolean, highRes?: MaskDecoderInputs['highRes']): { y2: Tensor; upscaledView?: Tensor } {
    const C = this.cfg.promptEmbedDim;
    const [C1, C2] = [C / 4, C / 8];
    const u = this.upscaling;
    // ConvTranspose #1 as a GEMM: y1[b, y, x, o, a, c] = sum_k keys[b, y*w + x, k] w0[k, o, a, c] + b0[o].
    const y1 = matmul(ctx, keys, this.gemmWeight(ctx, 0), { bias: this.expandedBias(ctx, 0) });
    // Pixel shuffle as a view: [B, h, a, w, c, C1] is NHWC [B, 2h, 2w, C1] in logical order.
    const shuffled = y1.asStrided([B, h, 2, w, 2, C1], [h * w * 4 * C1, w * 4 * C1, 2, 4 * C1, 1, 4], y1.offset);
    // s1 [1, C1, 2h, 2w] in the shuffled order [B, h, a, w, c, C1]: pixel (2y + a, 2x + c).
    const s1 = highRes?.s1.asStrided([B, h, 2, w, 2, C1], [0, 4 * w, 2 * w, 2, 1, 4 * h * w], highRes.s1.offset);
    const x1 = activate(ctx, layerNorm(ctx, shuffled, u.norm1.weight, u.norm1.bias, LAYER_NORM_2D_EPS, { residual: s1 }), 'gelu');
    // ConvTranspose #2 (+ GELU) on the NHWC grid [B, 4hw, C1].
    const x1Rows = x1.reshape([B, 4 * h * w, C1]);
    let y2 = matmul(ctx, x1Rows, this.gemmWeight(ctx, 1), { bias: this.expandedBias(ctx, 1), act: highRes ? 'none' : 'gelu' });
    if (highRes) {
      // s0 [1, C2, 4h, 4w] in y2's order [B, Y, X, C2, a, c] over the 2h x 2w grid: pixel (2Y + a, 2X + c).
      const shape = [B, 2 * h, 2 * w, C2, 2, 2];
      const s0 = highRes.s0.asStrided(shape, [0, 2 * 4 * w, 2, 16 * h * w, 4 * w, 1], highRes.s0.offset);
      const y2v = y2.reshape(shape);
      y2 = addAct(ctx, y2v, s0, 'gelu').reshape(y2.shape);
    }
    if (!capture) return { y2 };
    // upscaled[b, k, 2y + a, 2x + c] = y2[b, y, x, k, a, c] (y, x over the 2h x 2w grid).
    const upscaledView = y2.asStrided([B, C2, 2 * h, 2, 2 * w, 2], [16 * h * w * C2, 4, 2 * w * 4 * C2, 2, 4 * C2, 1], y2.offset);
    return { y2, upscaledView };
  }

  /**
   * MaskDecoder.predict_masks for one chunk of prompt sets. `maskRange` [m0, m1) keeps only those
   * masks in `masksAll` (forward's multimask slicing, done by the copy that puts the sub-pixel
   * phases in place rather than by another copy).
   */
  predictMasks(ctx: GpuContext, inp: MaskDecoderInputs, opts: { capture?: boolean; maskRange?: readonly [number, number] } = {}): MaskDecoderAll {
    const C = this.cfg.promptEmbedDim;
    const [, , h, w] = inp.imageEmbeddings.shape as [number, number, number, number];
    const B = inp.batch;
    return ctx.scope(() => {
      // Output tokens: [leading (SAM 2: object score); iou; mask tokens], then the prompt tokens.
      const s = this.leadingTokens.length;
      const nOut = s + 1 + this.numMaskTokens;
      const T = nOut + (inp.sparse?.dim(1) ?? 0);
      const tokens = ctx.empty([B, T, C]);
      const head = tokens.slice(1, 0, nOut);
      copyInto(ctx, this.tokensTable(ctx), head);
      if (inp.sparse) copyInto(ctx, inp.sparse, tokens.slice(1, nOut, T));

      const src = ctx.stage('src', () => add(ctx, tokenMajor(inp.imageEmbeddings), tokenMajor(inp.dense)));
      const { queries: hs, keys } = ctx.stage('transformer', () => this.transformer.forward(ctx, src, inp.imagePeTokens, tokens));

      const { y2, upscaledView } = ctx.stage('output_upscaling', () => this.upscale(ctx, keys, B, h, w, !!opts.capture, inp.highRes));

      const masksAll = ctx.stage('hypernetworks', () => {
        const M = this.numMaskTokens;
        const C2 = C / 8;
        const P = 4 * h * w; // pixels of each sub-pixel phase (the 2h x 2w grid)
        // Mask token i through hypernetwork i, all at once: [M, B, C] -> [M, B, C2], seen as [B, M, C2].
        const hyper = this.stackedHypernetworks.forward(ctx, hs.slice(1, s + 1, s + 1 + M).transpose(0, 1)).transpose(0, 1);
        // y2 [B, 2h, 2w, C2, 2, 2] seen as [B, phase, C2, P]; out [B, phase, M, P].
        const up = y2.asStrided([B, 4, C2, P], [P * 4 * C2, 1, 4, 4 * C2], y2.offset);
        const byPhase = matmul(ctx, hyper.unsqueeze(1), up);
        // masks[b, m, 2y + a, 2x + c] = byPhase[b, 2a + c, m, y * 2w + x]
        const shuffled = byPhase.asStrided([B, M, 2 * h, 2, 2 * w, 2], [4 * M * P, P, 2 * w, 2 * M * P, 1, M * P], 0);
        const [m0, m1] = opts.maskRange ?? [0, M];
        return copy(ctx, shuffled.slice(1, m0, m1)).reshape([B, m1 - m0, 4 * h, 4 * w]);
      });
      const iouAll = ctx.stage('iou_head', () => this.iouHead.forward(ctx, hs.slice(1, s, s + 1)).reshape([B, this.numMaskTokens]));
      const out: MaskDecoderAll = { masksAll, iouAll };
      const objHead = this.objScoreHead;
      if (objHead) out.objectScoreLogits = ctx.stage('obj_score_head', () => objHead.forward(ctx, hs.slice(1, 0, 1)).reshape([B, 1]));
      if (opts.capture) Object.assign(out, { hs, keys, upscaled: copy(ctx, upscaledView!).reshape([B, C / 8, 4 * h, 4 * w]) });
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
    // Everything below depends on the input layouts, B, the chunk, multimaskOutput and the fold
    // policy only: from the third call on, its ~100 dispatches are replayed instead of re-encoded.
    const key = `forward:${B}:${chunk}:${multimaskOutput}:${this.transformer.fold}`;
    return ctx.stage('mask_decoder', () => this.plans.run(ctx, key, planInputs(inp), () => this.forwardCode(ctx, inp, B, chunk, m0, m1)));
  }

  /** `predictMasks` without captures, replayed from the third call with the same batch and input layouts. */
  predictMasksReplayed(ctx: GpuContext, inp: MaskDecoderInputs): MaskDecoderAll {
    return this.plans.run(ctx, `predict:${inp.batch}:${this.transformer.fold}`, planInputs(inp), () => {
      const { masksAll, iouAll, objectScoreLogits } = this.predictMasks(ctx, inp);
      return { masksAll, iouAll, objectScoreLogits };
    });
  }

  private forwardCode(ctx: GpuContext, inp: MaskDecoderInputs, B: number, chunk: number, m0: number, m1: number): MaskDecoderOutputs {
    return ctx.scope(() => {
      const maskRange = [m0, m1] as const;
      const pick = (all: MaskDecoderAll) => ({ masks: all.masksAll, iouPred: copy(ctx, all.iouAll.slice(1, m0, m1)) });
      if (B <= chunk) return pick(this.predictMasks(ctx, inp, { maskRange }));
      const parts: MaskDecoderOutputs[] = [];
      for (let b0 = 0; b0 < B; b0 += chunk) {
        const b1 = Math.min(B, b0 + chunk);
        const d = inp.dense;
        const dense = d.strides[0] === 0 ? d.asStrided([b1 - b0, ...d.shape.slice(1)], d.strides, d.offset) : d.slice(0, b0, b1);
        const sparse = inp.sparse?.slice(0, b0, b1) ?? null;
        parts.push(ctx.scope(() => pick(this.predictMasks(ctx, { ...inp, batch: b1 - b0, sparse, dense }, { maskRange }))));
      }
      return { masks: concat(ctx, parts.map((p) => p.masks), 0), iouPred: concat(ctx, parts.map((p) => p.iouPred), 0) };
    });
  }
}
