/**
 * CLIP's `ResidualAttentionBlock` and `Transformer` (openai/CLIP clip/model.py; OpenCLIP
 * open_clip/transformer.py has the same structure and key names for these models):
 *
 *   x = x + out_proj(MHA(ln_1(x)))        in_proj packs the rows [q; k; v]
 *   x = x + c_proj(act(c_fc(ln_2(x))))    act = QuickGELU (OpenAI) or exact GELU (OpenCLIP)
 *
 * Tokens are kept batch-first [B, N, W] (upstream permutes to LND around the transformer; the
 * arithmetic per token is the same). q, k and v are strided views into the fused projection's
 * output, so no split or head-transpose copy is made; the attention kernel returns the heads
 * already merged ([B, N, H, D] = [B, N, W]); both residual adds are fused into the epilogues of
 * the output projections.
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Tensor } from '../../gpu/tensor.js';
import type { Weights } from '../../weights/weights.js';
import { attention } from '../../kernels/attention.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { linear } from '../../kernels/matmul.js';
import { ClipError, type TowerConfig } from './config.js';
import type { TapFn } from './taps.js';

export class ResidualAttentionBlock {
  private readonly ln1w: Tensor;
  private readonly ln1b: Tensor;
  private readonly inProjW: Tensor;
  private readonly inProjB: Tensor;
  private readonly outProjW: Tensor;
  private readonly outProjB: Tensor;
  private readonly ln2w: Tensor;
  private readonly ln2b: Tensor;
  private readonly fcW: Tensor;
  private readonly fcB: Tensor;
  private readonly projW: Tensor;
  private readonly projB: Tensor;

  constructor(
    w: Weights,
    readonly prefix: string,
    readonly cfg: TowerConfig,
  ) {
    const { width: W, mlpWidth: F } = cfg;
    this.ln1w = w.get(`${prefix}.ln_1.weight`, [W]);
    this.ln1b = w.get(`${prefix}.ln_1.bias`, [W]);
    this.inProjW = w.get(`${prefix}.attn.in_proj_weight`, [3 * W, W]);
    this.inProjB = w.get(`${prefix}.attn.in_proj_bias`, [3 * W]);
    this.outProjW = w.get(`${prefix}.attn.out_proj.weight`, [W, W]);
    this.outProjB = w.get(`${prefix}.attn.out_proj.bias`, [W]);
    this.ln2w = w.get(`${prefix}.ln_2.weight`, [W]);
    this.ln2b = w.get(`${prefix}.ln_2.bias`, [W]);
    this.fcW = w.get(`${prefix}.mlp.c_fc.weight`, [F, W]);
    this.fcB = w.get(`${prefix}.mlp.c_fc.bias`, [F]);
    this.projW = w.get(`${prefix}.mlp.c_proj.weight`, [W, F]);
    this.projB = w.get(`${prefix}.mlp.c_proj.bias`, [W]);
  }

  /** x [B, N, W] contiguous f32 -> [B, N, W]; `causal` masks keys after each query (text tower). */
  forward(ctx: GpuContext, x: Tensor, causal = false): Tensor {
    return ctx.scope(() => {
      const { width: W, heads: H, eps, act } = this.cfg;
      const [B, N] = [x.dim(0), x.dim(1)];
      const D = W / H;
      const h = layerNorm(ctx, x, this.ln1w, this.ln1b, eps);
      const qkv = linear(ctx, h, this.inProjW, this.inProjB); // [B, N, 3W]
      const view = (part: number) => qkv.asStrided([B, H, N, D], [N * 3 * W, D, 3 * W, 1], qkv.offset + part * W);
      const a = ctx.stage('attn', () => attention(ctx, view(0), view(1), view(2), { causal })); // [B, N, H, D]
      const merged = a.reshape([B, N, W]);
      const x1 = linear(ctx, merged, this.outProjW, this.outProjB, { residual: x });
      const h2 = layerNorm(ctx, x1, this.ln2w, this.ln2b, eps);
      const m = ctx.stage('mlp', () => linear(ctx, h2, this.fcW, this.fcB, { act }));
      return linear(ctx, m, this.projW, this.projB, { residual: x1 });
    });
  }
}

/** `<prefix>.resblocks.{0..layers-1}`. Taps are named `<tapPrefix>resblock<i>`. */
export class Transformer {
  readonly resblocks: ResidualAttentionBlock[];

  constructor(w: Weights, prefix: string, readonly cfg: TowerConfig) {
    if (cfg.width % cfg.heads !== 0) throw new ClipError(`${prefix}: width ${cfg.width} is not a multiple of ${cfg.heads} heads`);
    this.resblocks = Array.from({ length: cfg.layers }, (_, i) => new ResidualAttentionBlock(w, `${prefix}.resblocks.${i}`, cfg));
  }

  forward(ctx: GpuContext, x: Tensor, opts: { causal?: boolean; tap?: TapFn; tapPrefix?: string } = {}): Tensor {
    let cur = x;
    this.resblocks.forEach((blk, i) => {
      const next = ctx.stage(`resblock${i}`, () => blk.forward(ctx, cur, opts.causal));
      if (cur !== x) cur.dispose();
      cur = next;
      opts.tap?.(`${opts.tapPrefix ?? ''}resblock${i}`, cur);
    });
    return cur;
  }
}
