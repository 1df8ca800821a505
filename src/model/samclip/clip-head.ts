/**
 * SAM-CLIP's CLIP head (arXiv 2310.15308; DESIGN.md section 5 fixes what the paper leaves open):
 *
 *   backbone tokens t [B, g, g, E] (after the last image-encoder block, BEFORE the neck)
 *   -> 3 SAM image-encoder `Block`s with global attention and relative position   -> h
 *   pooled = L2(MLP(LayerNorm(max over the g*g tokens of h)))                       [B, D]
 *   dense  = L2(MLP(LayerNorm(h))) per token                                        [B, g, g, D]
 *
 * LayerNorm eps 1e-5 (`clip_head.norm`, nn.LayerNorm's default; the blocks keep SAM's 1e-6), MLP =
 * Linear, GELU, Linear, GELU, Linear with widths read from the weights, L2 = x / ||x|| with no
 * epsilon (CLIP's own normalisation). The blocks are exactly SAM's `Block` (one implementation):
 * at grids other than the one the tables were made for, the rel-pos tables are resized linearly.
 */
import type { GpuContext } from '../../gpu/context.js';
import { check, fmtShape } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { l2Normalize } from '../../kernels/l2-normalize.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { linear } from '../../kernels/matmul.js';
import { reduceMax } from '../../kernels/reduce.js';
import type { Weights } from '../../weights/weights.js';
import { Block, type Taps } from '../sam/image-encoder.js';
import type { ClipHeadConfig } from './bundle.js';

export interface ClipHeadOutputs {
  /** [B, D], unit norm. */
  pooled?: Tensor;
  /** [B, g, g, D], unit norm per token. */
  dense?: Tensor;
}

export interface ClipHeadForwardOptions {
  pooled?: boolean;
  dense?: boolean;
  /**
   * Record the fixtures' intermediates: `head.block{i}`, `head.maxpool`, `head.pooled_raw`,
   * `head.dense_raw` (persistent copies; the caller disposes them).
   */
  taps?: Taps;
}

function keep(taps: Taps | undefined, name: string, t: Tensor): void {
  if (!taps) return;
  const r = t.ref();
  r.persistent = true;
  taps[name] = r;
}

export class ClipHead {
  readonly blocks: Block[];
  readonly normWeight: Tensor;
  readonly normBias: Tensor;
  readonly mlp: { weight: Tensor; bias: Tensor }[];

  constructor(
    w: Weights,
    readonly prefix: string,
    readonly cfg: ClipHeadConfig,
  ) {
    const blockCfg = { embedDim: cfg.dim, numHeads: cfg.numHeads, mlpDim: cfg.mlpDim };
    this.blocks = [];
    for (let i = 0; i < cfg.depth; i++) {
      this.blocks.push(new Block(w, `${prefix}.blocks.${i}`, blockCfg, 0, cfg.relPosSize, cfg.blockEps));
    }
    this.normWeight = w.get(`${prefix}.norm.weight`, [cfg.dim]);
    this.normBias = w.get(`${prefix}.norm.bias`, [cfg.dim]);
    this.mlp = [];
    const widths = cfg.mlpWidths;
    for (let i = 0; i + 1 < widths.length; i++) {
      this.mlp.push({
        weight: w.get(`${prefix}.mlp.${2 * i}.weight`, [widths[i + 1]!, widths[i]!]),
        bias: w.get(`${prefix}.mlp.${2 * i}.bias`, [widths[i + 1]!]),
      });
    }
  }

  /** Output width D. */
  get embedDim(): number {
    return this.cfg.mlpWidths[this.cfg.mlpWidths.length - 1]!;
  }

  /** The 3 blocks: tokens [B, g, g, E] -> h [B, g, g, E]. */
  blocksForward(ctx: GpuContext, tokens: Tensor, taps?: Taps): Tensor {
    check(tokens.ndim === 4 && tokens.dim(3) === this.cfg.dim,
      () => `ClipHead: tokens must be [B, g, g, ${this.cfg.dim}] (backbone tokens before the neck), got ${fmtShape(tokens.shape)}`);
    return ctx.scope(() => {
      let h = tokens;
      this.blocks.forEach((b, i) => {
        h = ctx.stage(`block${i}`, () => b.forward(ctx, h));
        keep(taps, `head.block${i}`, h);
      });
      return h;
    });
  }

  /** LayerNorm -> MLP (GELU between layers) on [..., E] rows, not normalised: [..., D]. */
  project(ctx: GpuContext, x: Tensor): Tensor {
    return ctx.scope(() => {
      let y = layerNorm(ctx, x, this.normWeight, this.normBias, this.cfg.normEps);
      this.mlp.forEach((l, i) => {
        y = linear(ctx, y, l.weight, l.bias, { act: i + 1 < this.mlp.length ? 'gelu' : 'none' });
      });
      return y;
    });
  }

  /** From the blocks' output h [B, g, g, E]: pooled [B, D] and/or dense [B, g, g, D], unit norm. */
  embed(ctx: GpuContext, h: Tensor, opts: ClipHeadForwardOptions = {}): ClipHeadOutputs {
    const wantPooled = opts.pooled ?? true;
    const wantDense = opts.dense ?? true;
    const taps = opts.taps;
    return ctx.scope(() => {
      const [B, gh, gw, E] = h.shape as [number, number, number, number];
      const out: ClipHeadOutputs = {};
      if (wantPooled) {
        out.pooled = ctx.stage('pooled', () => {
          const flat = h.isContiguous ? h.reshape([B, gh * gw, E]) : null;
          check(flat, () => `ClipHead: h ${h} must be contiguous`);
          const m = reduceMax(ctx, flat, 1);
          keep(taps, 'head.maxpool', m);
          const raw = this.project(ctx, m);
          keep(taps, 'head.pooled_raw', raw);
          return l2Normalize(ctx, raw, { outDtype: 'f32' });
        });
      }
      if (wantDense) {
        out.dense = ctx.stage('dense', () => {
          const raw = this.project(ctx, h);
          keep(taps, 'head.dense_raw', raw);
          return l2Normalize(ctx, raw, { outDtype: 'f32' });
        });
      }
      return out;
    });
  }

  /** tokens [B, g, g, E] -> pooled and/or dense embeddings (both by default). */
  forward(ctx: GpuContext, tokens: Tensor, opts: ClipHeadForwardOptions = {}): ClipHeadOutputs {
    return ctx.stage('clip_head', () =>
      ctx.scope(() => {
        const h = this.blocksForward(ctx, tokens, opts.taps);
        return this.embed(ctx, h, opts);
      }),
    );
  }

  dispose(): void {
    for (const b of this.blocks) b.dispose();
  }
}
