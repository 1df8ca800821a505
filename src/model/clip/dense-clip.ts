/**
 * Training-free dense CLIP features for composite mode (public CLIP weights, no SAM-CLIP head):
 * one unit-norm D-vector per image patch, comparable with text embeddings by cosine.
 *
 * Methods (`DenseClipMethod`), all sharing blocks 0 .. L-2 of the CLIP vision tower unchanged:
 *
 *  - 'maskclip' (default): MaskCLIP, Zhou, Loy & Dai, "Extract Free Dense Labels from CLIP"
 *    (ECCV 2022, arXiv 2112.01071), as its official ViT code does it (chongzhou96/MaskCLIP, read in the copy at volgachen/MaskCLIP:
 *    mmseg/models/backbones/vit.py with `return_qkv`, and MaskClipHead): in the LAST block the
 *    query-key attention is dropped and each token keeps its own value embedding:
 *        v  = out_proj(W_v ln_1(x) + b_v)              (no softmax(q k^T) mixing)
 *        y  = x + v                                     (the block's attention residual)
 *        y  = y + mlp(ln_2(y))                          (the block's MLP residual, unchanged)
 *        f  = ln_post(y) @ proj,  dense = f / ||f||
 *    Because nothing mixes tokens in that block, only the patch tokens go through it.
 *  - 'value': the value embedding alone, v -> ln_post -> proj (no residual, no MLP), the variant
 *    of some re-implementations (e.g. RogerQi/maskclip_onnx, which reports it works better).
 *  - 'baseline': the unmodified last block for every token (the class-token path's features at
 *    each patch): the usual poor localisation, kept for comparison.
 *
 * Images larger than the CLIP input: sliding windows of the tower's native size (mmseg's
 * `slide_inference` grid: windows every `stride` pixels, the last one flush with the border), run
 * as one batch; each token's feature is the mean of the unit-norm features of the windows covering
 * it (mmseg averages the cosine logits of overlapping windows, which is the same thing for any class
 * set; the mean is not re-normalised). `windows: 'whole'` instead runs the tower once on the whole
 * input with its position table resized (needs `prepare` for the antialiased default).
 */
import type { GpuContext } from '../../gpu/context.js';
import { SamclipError, check, fmtShape } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { conv2d } from '../../kernels/conv2d.js';
import { copy, copyInto, readTensor } from '../../kernels/copy.js';
import { add } from '../../kernels/elementwise.js';
import { l2Normalize } from '../../kernels/l2-normalize.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { linear, matmul } from '../../kernels/matmul.js';
import type { ClipModel } from './clip.js';
import type { VisionConfig } from './config.js';

export type DenseClipMethod = 'maskclip' | 'value' | 'baseline';
export const DENSE_CLIP_METHODS: readonly DenseClipMethod[] = ['maskclip', 'value', 'baseline'];

export class DenseClipError extends SamclipError {
  override name = 'DenseClipError';
}

export interface DenseClipOptions {
  method?: DenseClipMethod;
  /** 'slide' (default): native-size windows; 'whole': one pass with a resized position table. */
  windows?: 'slide' | 'whole';
  /** Window side in pixels (default: the tower's native input size). */
  window?: number;
  /** Window step in pixels (default: half the window, a multiple of the patch). */
  stride?: number;
}

/** mmseg slide_inference's window origins along one axis. */
export function slideOrigins(length: number, window: number, stride: number): number[] {
  if (length <= window) return [0];
  const n = Math.max(length - window + stride - 1, 0);
  const count = Math.floor(n / stride) + 1;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const end = Math.min(i * stride + window, length);
    out.push(Math.max(end - window, 0));
  }
  return out;
}

export class DenseClip {
  readonly cfg: VisionConfig;
  private readonly conv1: Tensor;
  private readonly classEmbedding: Tensor;
  private readonly lnPre: [Tensor, Tensor];
  private readonly ln1: [Tensor, Tensor];
  private readonly ln2: [Tensor, Tensor];
  private readonly lnPost: [Tensor, Tensor];
  private readonly proj: Tensor;
  private readonly vWeight: Tensor;
  private readonly vBias: Tensor;
  private readonly outProj: [Tensor, Tensor];
  private readonly fc: [Tensor, Tensor];
  private readonly cproj: [Tensor, Tensor];

  /**
   * Reads the tower's tensors by their canonical (OpenAI) names from the model's weight set: the
   * embedding stage and the last block are re-run here with the method's changes, the other
   * blocks are the model's own `ResidualAttentionBlock`s.
   */
  constructor(
    ctx: GpuContext,
    readonly clip: ClipModel,
  ) {
    if (!clip.visual || !clip.config.vision) throw new DenseClipError(`${clip.weights.file}: dense CLIP features need a CLIP vision tower`);
    const cfg = clip.config.vision;
    this.cfg = cfg;
    const w = clip.weights;
    const { width: W, patch: P, embedDim: E, mlpWidth: F } = cfg;
    const last = `visual.transformer.resblocks.${cfg.layers - 1}`;
    const pair = (k: string, n: number): [Tensor, Tensor] => [w.get(`${k}.weight`, [n]), w.get(`${k}.bias`, [n])];
    this.conv1 = w.get('visual.conv1.weight', [W, 3, P, P]);
    this.classEmbedding = w.get('visual.class_embedding', [W]);
    this.lnPre = pair('visual.ln_pre', W);
    this.lnPost = pair('visual.ln_post', W);
    this.proj = w.get('visual.proj', [W, E]);
    this.ln1 = pair(`${last}.ln_1`, W);
    this.ln2 = pair(`${last}.ln_2`, W);
    const inW = w.get(`${last}.attn.in_proj_weight`, [3 * W, W]);
    const inB = w.get(`${last}.attn.in_proj_bias`, [3 * W]);
    // The value rows [2W, 3W) of the fused projection: the weight is read through a view; the bias
    // must be a standalone contiguous vector for the matmul epilogue, so it is copied once.
    this.vWeight = inW.slice(0, 2 * W, 3 * W);
    this.vWeight.persistent = true;
    this.vBias = ctx.scope(() => copy(ctx, inB.slice(0, 2 * W, 3 * W)));
    this.vBias.persistent = true;
    this.outProj = [w.get(`${last}.attn.out_proj.weight`, [W, W]), w.get(`${last}.attn.out_proj.bias`, [W])];
    this.fc = [w.get(`${last}.mlp.c_fc.weight`, [F, W]), w.get(`${last}.mlp.c_fc.bias`, [F])];
    this.cproj = [w.get(`${last}.mlp.c_proj.weight`, [W, F]), w.get(`${last}.mlp.c_proj.bias`, [W])];
  }

  /** Native input side of the tower (224 for ViT-B/16). */
  get imageSize(): number {
    return this.cfg.imageSize;
  }

  /** Resolved window / stride for `opts`. */
  windowing(opts: DenseClipOptions): { window: number; stride: number } {
    const P = this.cfg.patch;
    const window = opts.window ?? this.cfg.imageSize;
    const stride = opts.stride ?? Math.max(P, Math.round(window / 2 / P) * P);
    check(Number.isInteger(window) && window >= P && window % P === 0, () => `dense CLIP: window ${window} must be a positive multiple of the ${P}-px patch`);
    check(Number.isInteger(stride) && stride >= P && stride % P === 0 && stride <= window,
      () => `dense CLIP: stride ${stride} must be a multiple of the ${P}-px patch, at most the window ${window}`);
    return { window, stride };
  }

  /**
   * Dense features of a batch of inputs pixels [B, 3, h, w] (CLIP-normalised; h, w multiples of the
   * patch; other sizes than native need `clip.prepareImageSize` first) -> [B, h/p, w/p, D], unit norm.
   */
  forwardBatch(ctx: GpuContext, pixels: Tensor, method: DenseClipMethod = 'maskclip'): Tensor {
    check(DENSE_CLIP_METHODS.includes(method), () => `dense CLIP: unknown method '${method}' (use ${DENSE_CLIP_METHODS.join(', ')})`);
    check(pixels.ndim === 4 && pixels.dim(1) === 3, () => `dense CLIP: pixels must be [B, 3, H, W], got ${fmtShape(pixels.shape)}`);
    const visual = this.clip.visual!;
    const [B, , Hp, Wp] = pixels.shape as [number, number, number, number];
    const [gh, gw] = visual.gridFor(Hp, Wp);
    const { width: W, patch: P, eps, act, layers } = this.cfg;
    const N = 1 + gh * gw;
    return ctx.stage('dense_clip', () =>
      ctx.scope(() => {
        // Embedding stage, as VisionTransformer.forward: [cls; patches] + pos -> ln_pre.
        const patches = conv2d(ctx, pixels, this.conv1, undefined, { stride: P, outLayout: 'nhwc', outDtype: 'f32' });
        const tokens = ctx.empty([B, N, W]);
        copyInto(ctx, this.classEmbedding.reshape([1, 1, W]), tokens.slice(1, 0, 1));
        copyInto(ctx, patches.reshape([B, gh * gw, W]), tokens.slice(1, 1, N));
        let x = layerNorm(ctx, add(ctx, tokens, visual.positionTable(ctx, gh, gw)), this.lnPre[0], this.lnPre[1], eps);
        const blocks = visual.transformer.resblocks;
        for (let i = 0; i < layers - 1; i++) {
          const xi = x;
          x = ctx.stage(`resblock${i}`, () => blocks[i]!.forward(ctx, xi));
        }
        let y: Tensor;
        if (method === 'baseline') {
          const xl = x;
          y = ctx.stage(`resblock${layers - 1}`, () => blocks[layers - 1]!.forward(ctx, xl)).slice(1, 1, N);
        } else {
          // Per-token value path: no token mixing, so the class token is dropped first.
          const pt = copy(ctx, x.slice(1, 1, N));
          y = ctx.stage(`resblock${layers - 1}_value`, () => {
            const h = layerNorm(ctx, pt, this.ln1[0], this.ln1[1], eps);
            const v = linear(ctx, h, this.vWeight, this.vBias);
            if (method === 'value') return linear(ctx, v, this.outProj[0], this.outProj[1]);
            const y1 = linear(ctx, v, this.outProj[0], this.outProj[1], { residual: pt });
            const h2 = layerNorm(ctx, y1, this.ln2[0], this.ln2[1], eps);
            const m = linear(ctx, h2, this.fc[0], this.fc[1], { act });
            return linear(ctx, m, this.cproj[0], this.cproj[1], { residual: y1 });
          });
        }
        const normed = layerNorm(ctx, y, this.lnPost[0], this.lnPost[1], eps);
        const f = matmul(ctx, normed, this.proj, { outDtype: 'f32' });
        return l2Normalize(ctx, f).reshape([B, gh, gw, this.cfg.embedDim]);
      }),
    );
  }

  /**
   * Dense features of one image pixels [1, 3, H, W] (CLIP-normalised) -> [1, H/p, W/p, D]:
   * sliding windows (default) or one whole-image pass.
   */
  async features(ctx: GpuContext, pixels: Tensor, opts: DenseClipOptions = {}): Promise<Tensor> {
    const method = opts.method ?? 'maskclip';
    check(pixels.ndim === 4 && pixels.dim(0) === 1 && pixels.dim(1) === 3, () => `dense CLIP: pixels must be [1, 3, H, W], got ${fmtShape(pixels.shape)}`);
    const [, , H, W] = pixels.shape as [number, number, number, number];
    const P = this.cfg.patch;
    check(H % P === 0 && W % P === 0, () => `dense CLIP: input ${H}x${W} must be a multiple of the ${P}-px patch`);
    if (opts.windows === 'whole') {
      await this.clip.prepareImageSize(ctx, H, W);
      return this.forwardBatch(ctx, pixels, method);
    }
    const { window, stride } = this.windowing(opts);
    if (H <= window && W <= window) {
      if (H !== this.cfg.imageSize || W !== this.cfg.imageSize) await this.clip.prepareImageSize(ctx, H, W);
      return this.forwardBatch(ctx, pixels, method);
    }
    check(H >= window && W >= window, () => `dense CLIP: a ${H}x${W} input is smaller than the ${window}-px window on one side; resize it first`);
    if (window !== this.cfg.imageSize) await this.clip.prepareImageSize(ctx, window, window);
    const ys = slideOrigins(H, window, stride);
    const xs = slideOrigins(W, window, stride);
    const nW = ys.length * xs.length;
    const g = window / P;
    const [GH, GW] = [H / P, W / P];
    const D = this.cfg.embedDim;
    const feats = ctx.scope(() => {
      const batch = ctx.empty([nW, 3, window, window]);
      let k = 0;
      for (const y0 of ys) {
        for (const x0 of xs) {
          copyInto(ctx, pixels.slice(2, y0, y0 + window).slice(3, x0, x0 + window), batch.slice(0, k, k + 1));
          k++;
        }
      }
      return this.forwardBatch(ctx, batch, method);
    });
    // Average the windows on the host: [nW, g, g, D] is small (9 x 14 x 14 x 512 floats for ViT-B).
    const host = (await readTensor(ctx, feats)) as Float32Array;
    feats.dispose();
    const sum = new Float64Array(GH * GW * D);
    const count = new Uint16Array(GH * GW);
    let k = 0;
    for (const y0 of ys) {
      for (const x0 of xs) {
        const ty = y0 / P;
        const tx = x0 / P;
        for (let i = 0; i < g; i++) {
          for (let j = 0; j < g; j++) {
            const t = (ty + i) * GW + tx + j;
            count[t]!++;
            const src = ((k * g + i) * g + j) * D;
            for (let d = 0; d < D; d++) sum[t * D + d]! += host[src + d]!;
          }
        }
        k++;
      }
    }
    const out = new Float32Array(GH * GW * D);
    for (let t = 0; t < GH * GW; t++) for (let d = 0; d < D; d++) out[t * D + d] = sum[t * D + d]! / count[t]!;
    return ctx.upload(out, [1, GH, GW, D]);
  }

  dispose(): void {
    this.vWeight.dispose();
    this.vBias.dispose();
  }
}
