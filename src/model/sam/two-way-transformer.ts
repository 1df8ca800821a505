/**
 * SAM's two-way transformer (segment_anything/modeling/transformer.py): prompt tokens and image
 * tokens attend to each other, `depth` blocks, then a final token-to-image attention.
 *
 * Layout: queries [B, T, C] (T = 5 output tokens + prompt tokens), keys [Bk, HW, C] token-major,
 * positional encodings broadcast over the batch. `Bk` may be 1 while B > 1: when the dense
 * prompt is the broadcast `no_mask_embed`, every prompt set starts from the same image tokens, so
 * the first block's key-side projections (k/v of token-to-image, q of image-to-token) are computed
 * once and read by every prompt set through a stride-0 batch view. The maths is unchanged; only
 * repeated work is skipped.
 *
 * Attention: q/k/v projections to the internal width (C, or C / 2 for the cross attentions:
 * `attention_downsample_rate` 2), heads split as [B, H, N, D] views of the projections, fused
 * flash attention (scale 1/sqrt(D)), out projection back to C.
 *
 * Token-to-image attentions (few tokens against h*w image tokens) can run with the key/value
 * projections folded into the queries (Attention.forwardFolded): H * T * C per key instead of
 * C * Ci, e.g. 8 * 7 * 256 against 256 * 128 for one point on ViT-B, the same values up to
 * rounding. `TwoWayTransformer.fold` picks it when it saves work ('auto').
 *
 * The first block skips the positional encoding AND the residual of its self-attention
 * (`skip_first_layer_pe`): queries = self_attn(q, q, q), then norm1.
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Tensor } from '../../gpu/tensor.js';
import { attention } from '../../kernels/attention.js';
import { copy } from '../../kernels/copy.js';
import { add } from '../../kernels/elementwise.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { matmul } from '../../kernels/matmul.js';
import { softmax } from '../../kernels/softmax.js';
import type { Weights } from '../../weights/weights.js';
import { LayerNormParams, Linear, MlpBlock, stackLinears } from './common.js';
import type { SamConfig } from './config.js';

/** The fields of SamConfig the transformer reads. */
export type TwoWayTransformerConfig = Pick<SamConfig, 'promptEmbedDim' | 'decoderDepth' | 'decoderHeads' | 'decoderMlpDim'>;

/** A [B, N, C] tensor seen with batch `b` (stride-0 batch when it holds one shared row set). */
function batchView(t: Tensor, b: number): Tensor {
  if (t.dim(0) === b) return t.ref();
  if (t.dim(0) !== 1) throw new Error(`two-way transformer: batch ${t.dim(0)} cannot be broadcast to ${b}`);
  return t.asStrided([b, ...t.shape.slice(1)], [0, ...t.strides.slice(1)], t.offset);
}

/** transformer.Attention: projections with an internal width, multi-head attention, out projection. */
export class Attention {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  readonly internalDim: number;
  /** [q; k] and [q; k; v] projections stacked into one Linear, made on first use (see `projectShared`). */
  private readonly stacked = new Map<2 | 3, { weight: Tensor; bias: Tensor }>();

  constructor(w: Weights, prefix: string, readonly embeddingDim: number, readonly numHeads: number, downsampleRate = 1) {
    this.internalDim = Math.floor(embeddingDim / downsampleRate);
    if (this.internalDim % numHeads !== 0) {
      throw new Error(`${prefix}: ${numHeads} heads do not divide the internal width ${this.internalDim}`);
    }
    this.qProj = new Linear(w, `${prefix}.q_proj`, embeddingDim, this.internalDim);
    this.kProj = new Linear(w, `${prefix}.k_proj`, embeddingDim, this.internalDim);
    this.vProj = new Linear(w, `${prefix}.v_proj`, embeddingDim, this.internalDim);
    this.outProj = new Linear(w, `${prefix}.out_proj`, this.internalDim, embeddingDim);
  }

  /** [B, N, Ci] -> [B, H, N, D] view (the head dim stays contiguous). */
  private heads(t: Tensor, b: number): Tensor {
    const [, n, ci] = t.shape as [number, number, number];
    const h = this.numHeads;
    const d = ci / h;
    const s = t.strides;
    return t.asStrided([b, h, n, d], [t.dim(0) === 1 ? 0 : s[0]!, d * s[2]!, s[1]!, s[2]!], t.offset);
  }

  /**
   * q [Bq, Nq, C], k [Bk, Nk, C], v [Bk, Nk, C] (batches 1 or B) -> [B, Nq, C]. `projected`
   * skips a projection already done (first block's shared key side).
   */
  forward(ctx: GpuContext, q: Tensor, k: Tensor, v: Tensor, projected: { q?: Tensor; k?: Tensor; v?: Tensor } = {}): Tensor {
    return ctx.scope(() => {
      const shared = !projected.q && !projected.k && !projected.v && q === k ? this.projectShared(ctx, q, v === q ? 3 : 2) : [];
      const qp = projected.q ?? shared[0] ?? this.qProj.forward(ctx, q);
      const kp = projected.k ?? shared[1] ?? this.kProj.forward(ctx, k);
      const vp = projected.v ?? shared[2] ?? this.vProj.forward(ctx, v);
      const b = Math.max(qp.dim(0), kp.dim(0), vp.dim(0));
      const o = attention(ctx, this.heads(qp, b), this.heads(kp, b), this.heads(vp, b));
      return this.outProj.forward(ctx, o.reshape([b, qp.dim(1), this.internalDim]));
    });
  }

  /**
   * Self-attention projects one input two or three times (q = k = tokens + PE, v = tokens; or all
   * three from the tokens in the first block): one matmul against the stacked weights instead,
   * whose [.., 2 or 3 x Ci] output is sliced into views. One dispatch instead of two or three;
   * the same maths, up to the summation order of the matmul variant the wider output picks.
   */
  private projectShared(ctx: GpuContext, x: Tensor, parts: 2 | 3): Tensor[] {
    let t = this.stacked.get(parts);
    if (!t) {
      t = stackLinears(ctx, [this.qProj, this.kProj, this.vProj].slice(0, parts));
      this.stacked.set(parts, t);
    }
    const y = matmul(ctx, x, t.weight.transpose(0, 1), { bias: t.bias }); // [B, N, parts * Ci]
    const ci = this.internalDim;
    return Array.from({ length: parts }, (_, i) => y.slice(-1, i * ci, (i + 1) * ci));
  }

  /** Free the stacked projection weights (the Linears' own weights belong to their Weights set). */
  dispose(): void {
    for (const t of this.stacked.values()) {
      t.weight.dispose();
      t.bias.dispose();
    }
    this.stacked.clear();
  }

  /**
   * Whether few queries against many keys are cheaper with the key/value projections folded
   * into the queries (`forwardFolded`): per head, T queries of width C against N keys cost
   * 2 * H * T * C * N multiply-adds there, against 2 * C * Ci * N for projecting every key.
   */
  foldPays(numQueries: number): boolean {
    return this.numHeads * numQueries < this.internalDim;
  }

  /**
   * The same attention for few queries q [B, T, C] against many keys k, v [Bk, N, C] (Bk 1 or B),
   * without projecting the keys: per head h (D = Ci / H),
   *   q_h . (W_k,h x + b_k,h) = (W_k,h^T q_h) . x + const   (the constant drops out of the softmax)
   *   P (x W_v,h^T + b_v,h)   = (P x) W_v,h^T + b_v,h     (rows of P sum to 1)
   * so scores = Q~ k^T with Q~ = [W_k,h^T q_h] of width C, and the output is (P v) W_v,h^T + b_v,h.
   * Exact algebra; float32 rounding differs from the projected form by a few ulp.
   */
  forwardFolded(ctx: GpuContext, q: Tensor, k: Tensor, v: Tensor): Tensor {
    return ctx.scope(() => {
      const [B, T] = q.shape as [number, number];
      const C = this.embeddingDim;
      const H = this.numHeads;
      const D = this.internalDim / H;
      const qp = this.qProj.forward(ctx, q); // [B, T, Ci]
      const qh = qp.asStrided([B, H, T, D], [T * H * D, D, H * D, 1], qp.offset);
      const wk = this.kProj.weight; // [H * D, C] = [H, D, C]
      const qt = matmul(ctx, qh, wk.reshape([H, D, C])); // [B, H, T, C]
      const kT = k.transpose(1, 2); // [Bk, C, N]
      const scores = matmul(ctx, qt.reshape([B, H * T, C]), kT, { alpha: 1 / Math.sqrt(D) }); // [B, H*T, N]
      const p = softmax(ctx, scores);
      // P v with v transposed once (contiguous along the keys): the nn.Linear layout of the vec4
      // matmul variants; v as it comes is contiguous along C and would get the general tiled
      // kernel (lavapipe, 5 prompt sets at 1024: ~3x slower on this product).
      const vT = copy(ctx, v.transpose(1, 2)); // [Bk, C, N]
      const z = matmul(ctx, p, vT.transpose(1, 2)); // [B, H*T, C]
      const wv = this.vProj.weight; // [H, D, C] -> per head [C, D]
      const o = matmul(ctx, z.reshape([B, H, T, C]), wv.asStrided([H, C, D], [D * C, 1, C], wv.offset)); // [B, H, T, D]
      // + b_v per (head, dim), written token-major [B, T, H, D] for the out projection.
      const bv = this.vProj.bias;
      const merged = add(ctx, o.permute([0, 2, 1, 3]), bv.asStrided([1, 1, H, D], [0, 0, D, 1], bv.offset));
      return this.outProj.forward(ctx, merged.reshape([B, T, H * D]));
    });
  }
}

/**
 * Token-to-image attention with the key/value projections folded into the queries:
 * 'auto' when it saves work (few tokens, keys not shared across the batch: shared keys are
 * projected once for every prompt set, which is cheaper still), or forced either way (tests).
 */
export type FoldPolicy = 'auto' | 'never' | 'always';

function useFold(policy: FoldPolicy, a: Attention, numTokens: number, keysBatch: number, batch: number): boolean {
  if (policy !== 'auto') return policy === 'always';
  return a.foldPays(numTokens) && (keysBatch === batch || batch === 1);
}

/** transformer.TwoWayAttentionBlock. */
export class TwoWayAttentionBlock {
  readonly selfAttn: Attention;
  readonly norm1: LayerNormParams;
  readonly crossAttnTokenToImage: Attention;
  readonly norm2: LayerNormParams;
  readonly mlp: MlpBlock;
  readonly norm3: LayerNormParams;
  readonly norm4: LayerNormParams;
  readonly crossAttnImageToToken: Attention;

  constructor(w: Weights, prefix: string, cfg: TwoWayTransformerConfig, readonly skipFirstLayerPe: boolean, mlpNames?: readonly [string, string]) {
    const C = cfg.promptEmbedDim;
    const H = cfg.decoderHeads;
    this.selfAttn = new Attention(w, `${prefix}.self_attn`, C, H);
    this.norm1 = new LayerNormParams(w, `${prefix}.norm1`, C);
    this.crossAttnTokenToImage = new Attention(w, `${prefix}.cross_attn_token_to_image`, C, H, 2);
    this.norm2 = new LayerNormParams(w, `${prefix}.norm2`, C);
    this.mlp = new MlpBlock(w, `${prefix}.mlp`, C, cfg.decoderMlpDim, 'relu', mlpNames);
    this.norm3 = new LayerNormParams(w, `${prefix}.norm3`, C);
    this.norm4 = new LayerNormParams(w, `${prefix}.norm4`, C);
    this.crossAttnImageToToken = new Attention(w, `${prefix}.cross_attn_image_to_token`, C, H, 2);
  }

  /** Free what the attentions made on first use. */
  dispose(): void {
    for (const a of [this.selfAttn, this.crossAttnTokenToImage, this.crossAttnImageToToken]) a.dispose();
  }

  /** queries [B, T, C], keys [Bk, HW, C] (Bk 1 or B), queryPe [B, T, C], keyPe [1, HW, C]. */
  forward(ctx: GpuContext, queries: Tensor, keys: Tensor, queryPe: Tensor, keyPe: Tensor, fold: FoldPolicy = 'auto'): { queries: Tensor; keys: Tensor } {
    return ctx.scope(() => {
      const ln = (x: Tensor, p: LayerNormParams, residual?: Tensor) => layerNorm(ctx, x, p.weight, p.bias, p.eps, { residual });
      const B = queries.dim(0);
      // (1) self-attention of the tokens.
      let q: Tensor;
      if (this.skipFirstLayerPe) {
        q = ln(this.selfAttn.forward(ctx, queries, queries, queries), this.norm1);
      } else {
        const qpe = add(ctx, queries, queryPe);
        q = ln(this.selfAttn.forward(ctx, qpe, qpe, queries), this.norm1, queries);
      }
      // (2) tokens attend to the image. keys + keyPe keeps the keys' batch (often 1).
      const kpe = add(ctx, keys, keyPe);
      const t2i = this.crossAttnTokenToImage;
      const attn = useFold(fold, t2i, queries.dim(1), keys.dim(0), B) ? t2i.forwardFolded.bind(t2i) : t2i.forward.bind(t2i);
      q = ln(attn(ctx, add(ctx, q, queryPe), kpe, keys), this.norm2, q);
      // (3) MLP on the tokens.
      q = ln(this.mlp.forward(ctx, q), this.norm3, q);
      // (4) the image attends to the tokens: queries are the image tokens.
      const attnOut = this.crossAttnImageToToken.forward(ctx, kpe, add(ctx, q, queryPe), q);
      const keysB = batchView(keys, B);
      const k = ln(attnOut, this.norm4, keysB);
      return { queries: q, keys: k };
    });
  }
}

export interface TwoWayOutputs {
  /** Processed tokens [B, T, C]. */
  queries: Tensor;
  /** Processed image tokens [B, HW, C]. */
  keys: Tensor;
}

/** transformer.TwoWayTransformer. */
export class TwoWayTransformer {
  readonly layers: TwoWayAttentionBlock[];
  readonly finalAttnTokenToImage: Attention;
  readonly normFinalAttn: LayerNormParams;
  /** How token-to-image attentions are computed (see FoldPolicy). */
  fold: FoldPolicy = 'auto';

  /** `mlpNames`: the MLP's layer names (SAM: lin1 / lin2; SAM 2: layers.0 / layers.1). */
  constructor(w: Weights, prefix: string, readonly cfg: TwoWayTransformerConfig, mlpNames?: readonly [string, string]) {
    this.layers = [];
    for (let i = 0; i < cfg.decoderDepth; i++) {
      this.layers.push(new TwoWayAttentionBlock(w, `${prefix}.layers.${i}`, cfg, i === 0, mlpNames));
    }
    this.finalAttnTokenToImage = new Attention(w, `${prefix}.final_attn_token_to_image`, cfg.promptEmbedDim, cfg.decoderHeads, 2);
    this.normFinalAttn = new LayerNormParams(w, `${prefix}.norm_final_attn`, cfg.promptEmbedDim);
  }

  /** Free what the attentions made on first use. */
  dispose(): void {
    for (const l of this.layers) l.dispose();
    this.finalAttnTokenToImage.dispose();
  }

  /**
   * imageTokens [Bk, HW, C] (image embedding + dense prompt, token-major; Bk 1 or B),
   * imagePe [1, HW, C], pointEmbedding [B, T, C].
   */
  forward(ctx: GpuContext, imageTokens: Tensor, imagePe: Tensor, pointEmbedding: Tensor): TwoWayOutputs {
    return ctx.scope(() => {
      let queries = pointEmbedding;
      let keys = imageTokens;
      this.layers.forEach((layer, i) => {
        const out = ctx.stage(`layer${i}`, () => layer.forward(ctx, queries, keys, pointEmbedding, imagePe, this.fold));
        // Free the previous block's outputs now rather than at the end of the scope: with many
        // prompt sets the image tokens are the largest tensors of the decoder.
        if (queries !== pointEmbedding) queries.dispose();
        if (keys !== imageTokens) keys.dispose();
        ({ queries, keys } = out);
      });
      return ctx.stage('final_attn', () => {
        const a = this.finalAttnTokenToImage;
        const q = add(ctx, queries, pointEmbedding);
        const k = add(ctx, keys, imagePe);
        const B = pointEmbedding.dim(0);
        const out = useFold(this.fold, a, q.dim(1), keys.dim(0), B) ? a.forwardFolded(ctx, q, k, keys) : a.forward(ctx, q, k, keys);
        const n = this.normFinalAttn;
        return { queries: layerNorm(ctx, out, n.weight, n.bias, n.eps, { residual: queries }), keys };
      });
    });
  }
}
