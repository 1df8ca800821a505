/**
 * SAM's ViT image encoder, mirroring segment_anything/modeling/image_encoder.py (ImageEncoderViT,
 * PatchEmbed, Block, Attention) at commit dca509fe. Field paths are checkpoint keys: every tensor is
 * pulled with `w.get(prefix + '...', shape)`.
 *
 * Data flow for a [B, 3, H, W] input (H, W multiples of the patch size; g = H / 16 rows):
 *   patch_embed (conv k=16 s=16, written straight as BHWC tokens) + pos_embed
 *   -> blocks: x + proj(attn(pad(norm1(x)))) cropped, then + mlp(norm2(.))
 *   -> neck: conv1x1 -> LayerNorm2d -> conv3x3 -> LayerNorm2d (NCHW embedding)
 *
 * Choices that are easy to get wrong (DESIGN.md section 4):
 *  - windowed blocks pad the token grid with zeros AFTER norm1 to a multiple of the window; the
 *    padded tokens take part in attention as keys (their q/k/v are the projection bias), exactly like
 *    the official window_partition. `Block.attention` runs qkv, attention and the output projection
 *    on the padded grid (its outputs at padded positions equal the official ones, which the reference
 *    fixtures record in window layout); the production path (`Block.forward` without taps) writes
 *    the padded tokens' q/k/v as the bias and projects only the real tokens: the same numbers.
 *  - relative position terms use the unscaled query (inside the attention kernel).
 *  - other input sizes (SAM-CLIP: 224/336/448 on a 1024 model): the absolute table is resized
 *    bicubically (align_corners false) to the token grid, global blocks' rel-pos tables linearly to
 *    2g - 1 rows; windowed blocks keep their tables (windows are always window x window). Resized
 *    tables are cached per grid and freed by `dispose()`.
 *  - The residual adds are fused: attention + shortcut inside norm2 (layerNorm's residual/returnSum),
 *    MLP + residual in the second linear's epilogue.
 */
import type { GpuContext } from '../../gpu/context.js';
import { DispatchPlans } from '../../gpu/dispatch-plan.js';
import { check, fmtShape } from '../../gpu/errors.js';
import type { Pacer } from '../../gpu/pacer.js';
import type { Tensor } from '../../gpu/tensor.js';
import { gridSelfAttention } from '../../kernels/attention.js';
import { conv2d } from '../../kernels/conv2d.js';
import { copy, copyInto, pad } from '../../kernels/copy.js';
import { add } from '../../kernels/elementwise.js';
import { layerNorm, layerNorm2d } from '../../kernels/layernorm.js';
import { linear } from '../../kernels/matmul.js';
import { resizeBicubic, resizeLinear1d } from '../../kernels/resize.js';
import type { Weights } from '../../weights/weights.js';
import { SAM_ENCODER_LN_EPS, type SamConfig } from './config.js';

/** Tensors of one stage, kept for parity tests (names follow the reference fixtures' `enc.*`). */
export type Taps = Record<string, Tensor>;

/** The encoder fields a block stack needs (SAM-CLIP's head blocks reuse `Block` with their own). */
export type BlockConfig = Pick<SamConfig, 'embedDim' | 'numHeads' | 'mlpDim'>;

/** One cached tensor per key, persistent across scopes, freed by `clear()`. */
class TensorCache {
  private readonly map = new Map<string, Tensor>();
  get(key: string, make: () => Tensor): Tensor {
    let t = this.map.get(key);
    if (!t || t.isDisposed) {
      t = make();
      t.persistent = true;
      this.map.set(key, t);
    }
    return t;
  }
  clear(): void {
    for (const t of this.map.values()) t.dispose();
    this.map.clear();
  }
}

export class PatchEmbed {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(
    w: Weights,
    prefix: string,
    readonly patchSize: number,
    embedDim: number,
  ) {
    this.weight = w.get(`${prefix}.proj.weight`, [embedDim, 3, patchSize, patchSize]);
    this.bias = w.get(`${prefix}.proj.bias`, [embedDim]);
  }

  /**
   * [B, 3, H, W] -> tokens [B, H/p, W/p, E] (the official permute(0, 2, 3, 1), written directly), in
   * f32 whatever the activation dtype: they start the blocks' residual stream (Block.forward).
   */
  forward(ctx: GpuContext, x: Tensor): Tensor {
    return conv2d(ctx, x, this.weight, this.bias, { stride: this.patchSize, outLayout: 'nhwc', outDtype: 'f32' });
  }
}

/** Multi-head attention with decomposed relative position (the official `Attention`). */
export class Attention {
  readonly qkvWeight: Tensor;
  readonly qkvBias: Tensor;
  readonly projWeight: Tensor;
  readonly projBias: Tensor;
  readonly relPosH: Tensor;
  readonly relPosW: Tensor;
  private readonly tables = new TensorCache();

  constructor(
    w: Weights,
    prefix: string,
    readonly dim: number,
    readonly heads: number,
    /** Rows of the stored tables: 2 * inputSize - 1 (window size, or the native grid). */
    tableRows: number,
  ) {
    const hd = dim / heads;
    this.qkvWeight = w.get(`${prefix}.qkv.weight`, [3 * dim, dim]);
    this.qkvBias = w.get(`${prefix}.qkv.bias`, [3 * dim]);
    this.projWeight = w.get(`${prefix}.proj.weight`, [dim, dim]);
    this.projBias = w.get(`${prefix}.proj.bias`, [dim]);
    this.relPosH = w.get(`${prefix}.rel_pos_h`, [tableRows, hd]);
    this.relPosW = w.get(`${prefix}.rel_pos_w`, [tableRows, hd]);
  }

  /** The official get_rel_pos: a table resized linearly to 2 * size - 1 rows when it has another length. */
  relTable(ctx: GpuContext, which: 'h' | 'w', size: number): Tensor {
    const t = which === 'h' ? this.relPosH : this.relPosW;
    const rows = 2 * size - 1;
    if (t.dim(0) === rows) return t;
    return this.tables.get(`${which}${rows}`, () => resizeLinear1d(ctx, t, rows, { layout: 'nlc', outDtype: 'f32' }));
  }

  /**
   * x: [B, Hg, Wg, dim] tokens (already padded to multiples of `window` when windowed) -> the
   * projected attention output, same shape. `window` 0 means global attention over the grid.
   */
  forward(ctx: GpuContext, x: Tensor, window: number): Tensor {
    return ctx.scope(() => {
      const [, Hg, Wg] = x.shape as [number, number, number, number];
      const qkv = linear(ctx, x, this.qkvWeight, this.qkvBias);
      const size = window ? [window, window] : [Hg, Wg];
      const relPos = { h: this.relTable(ctx, 'h', size[0]!), w: this.relTable(ctx, 'w', size[1]!) };
      const a = gridSelfAttention(ctx, qkv, this.heads, { window: window || undefined, relPos });
      return linear(ctx, a, this.projWeight, this.projBias);
    });
  }

  dispose(): void {
    this.tables.clear();
  }
}

/** Transformer block with window or global attention (the official `Block`). */
export class Block {
  readonly norm1Weight: Tensor;
  readonly norm1Bias: Tensor;
  readonly norm2Weight: Tensor;
  readonly norm2Bias: Tensor;
  readonly lin1Weight: Tensor;
  readonly lin1Bias: Tensor;
  readonly lin2Weight: Tensor;
  readonly lin2Bias: Tensor;
  readonly attn: Attention;

  constructor(
    w: Weights,
    prefix: string,
    cfg: BlockConfig,
    /** 0: global attention; else the window side. */
    readonly windowSize: number,
    /** Side of the grid the stored rel-pos tables were made for (window, or the native token grid). */
    relPosSize: number,
    readonly eps = SAM_ENCODER_LN_EPS,
  ) {
    const E = cfg.embedDim;
    this.norm1Weight = w.get(`${prefix}.norm1.weight`, [E]);
    this.norm1Bias = w.get(`${prefix}.norm1.bias`, [E]);
    this.attn = new Attention(w, `${prefix}.attn`, E, cfg.numHeads, 2 * relPosSize - 1);
    this.norm2Weight = w.get(`${prefix}.norm2.weight`, [E]);
    this.norm2Bias = w.get(`${prefix}.norm2.bias`, [E]);
    this.lin1Weight = w.get(`${prefix}.mlp.lin1.weight`, [cfg.mlpDim, E]);
    this.lin1Bias = w.get(`${prefix}.mlp.lin1.bias`, [cfg.mlpDim]);
    this.lin2Weight = w.get(`${prefix}.mlp.lin2.weight`, [E, cfg.mlpDim]);
    this.lin2Bias = w.get(`${prefix}.mlp.lin2.bias`, [E]);
  }

  /**
   * The attention branch on norm1's output [B, H, W, E]: window padding, attention, projection.
   * Returns the padded grid [B, Hp, Wp, E] for windowed blocks (crop [:, :H, :W] for the tokens).
   */
  attention(ctx: GpuContext, normed: Tensor): Tensor {
    return ctx.scope(() => {
      const [, H, W] = normed.shape as [number, number, number, number];
      const ws = this.windowSize;
      if (!ws) return this.attn.forward(ctx, normed, 0);
      const ph = (ws - (H % ws)) % ws;
      const pw = (ws - (W % ws)) % ws;
      const padded = ph || pw ? pad(ctx, normed, [0, 0, 0, pw, 0, ph]) : normed;
      return this.attn.forward(ctx, padded, ws);
    });
  }

  /**
   * x [B, H, W, E] -> block output. With `taps`, records norm1, attn (padded grid), mlp (the MLP
   * branch before its residual) under `${tapPrefix}.*`, computing the attention branch exactly as
   * the official code lays it out (`attention`). Without taps, windowed blocks skip the padded
   * tokens' projections: norm1 is zero there, so their q/k/v rows are exactly the qkv bias (written
   * by a broadcast copy instead of 3E-wide dot products of zeros, ~20% of the qkv GEMM at 1024 px),
   * and only the real tokens' attention outputs are projected. Same numbers either way.
   */
  forward(ctx: GpuContext, x: Tensor, taps?: Taps, tapPrefix = ''): Tensor {
    return ctx.scope(() => {
      const [, H, W] = x.shape as [number, number, number, number];
      // The residual stream (x, x1, the output) keeps x's dtype, f32 from the patch embedding on;
      // the branches (norms, q/k/v, attention, MLP hidden) are stored in the context's activation
      // dtype. Storing the stream in f16 too gave SAM ViT-B rel L2 1.25e-2 against PyTorch at
      // 512 px (random weights), over the f16 rule's 1e-2; the stream is 1/8 of a block's traffic.
      // The tapped path (parity tests) runs in the stream's dtype throughout.
      const n1 = layerNorm(ctx, x, this.norm1Weight, this.norm1Bias, this.eps, taps ? {} : { outDtype: ctx.activationDtype });
      if (taps) {
        const a = this.attention(ctx, n1);
        const cropped = a.dim(1) === H && a.dim(2) === W ? a : a.slice(1, 0, H).slice(2, 0, W);
        const { out: n2, sum: x1 } = layerNorm(ctx, cropped, this.norm2Weight, this.norm2Bias, this.eps, { residual: x, returnSum: true });
        const h = linear(ctx, n2, this.lin1Weight, this.lin1Bias, { act: 'gelu' });
        const m = linear(ctx, h, this.lin2Weight, this.lin2Bias);
        const y = add(ctx, x1, m);
        for (const [k, t] of [['norm1', n1], ['attn', a], ['mlp', m]] as const) keep(taps, `${tapPrefix}.${k}`, t);
        return y;
      }
      const x1 = this.attentionResidual(ctx, n1, x);
      const n2 = layerNorm(ctx, x1, this.norm2Weight, this.norm2Bias, this.eps, { outDtype: ctx.activationDtype });
      const h = linear(ctx, n2, this.lin1Weight, this.lin1Bias, { act: 'gelu' });
      return linear(ctx, h, this.lin2Weight, this.lin2Bias, { residual: x1, outDtype: x1.dtype });
    });
  }

  /** x + attention branch (cropped to the real tokens), for norm1's output `n1` of `x`. */
  private attentionResidual(ctx: GpuContext, n1: Tensor, x: Tensor): Tensor {
    const [B, H, W, E] = n1.shape as [number, number, number, number];
    const ws = this.windowSize;
    const ph = ws ? (ws - (H % ws)) % ws : 0;
    const pw = ws ? (ws - (W % ws)) % ws : 0;
    const at = this.attn;
    let qkv = linear(ctx, n1, at.qkvWeight, at.qkvBias);
    if (ph || pw) {
      const full = ctx.empty([B, H + ph, W + pw, 3 * E], qkv.dtype);
      const views: Tensor[] = [];
      const view = (t: Tensor) => (views.push(t), t);
      if (ph) copyInto(ctx, at.qkvBias, view(full.slice(1, H, H + ph)));
      if (pw) copyInto(ctx, at.qkvBias, view(view(full.slice(1, 0, H)).slice(2, W, W + pw)));
      copyInto(ctx, qkv, view(view(full.slice(1, 0, H)).slice(2, 0, W)));
      for (const v of views) v.dispose();
      qkv.dispose();
      qkv = full;
    }
    const relPos = { h: at.relTable(ctx, 'h', ws || H), w: at.relTable(ctx, 'w', ws || W) };
    const a = gridSelfAttention(ctx, qkv, at.heads, { window: ws || undefined, relPos });
    // The real tokens of the padded grid go to the projection as a strided view (no crop copy).
    const real = ph || pw ? a.slice(1, 0, H).slice(2, 0, W) : a;
    return linear(ctx, real, at.projWeight, at.projBias, { residual: x, outDtype: x.dtype });
  }

  /** x1 (after the attention residual) -> x1 + mlp(norm2(x1)): the second half, for parity tests. */
  mlp(ctx: GpuContext, x1: Tensor): Tensor {
    return ctx.scope(() => {
      const n2 = layerNorm(ctx, x1, this.norm2Weight, this.norm2Bias, this.eps);
      const h = linear(ctx, n2, this.lin1Weight, this.lin1Bias, { act: 'gelu' });
      return linear(ctx, h, this.lin2Weight, this.lin2Bias);
    });
  }

  dispose(): void {
    this.attn.dispose();
  }
}

/** Keep a tensor beyond the scopes it was made in (the caller disposes taps). */
function keep(taps: Taps, name: string, t: Tensor): void {
  const r = t.ref();
  r.persistent = true;
  taps[name] = r;
}

export interface EncoderForwardOptions {
  /** Also return the last block's tokens [B, g, g, E] (before the neck; SAM-CLIP's CLIP head input). */
  returnTokens?: boolean;
  /** Record every intermediate (reference fixture names, `enc.*`); the caller disposes them. */
  taps?: boolean;
}

export interface EncoderOutput {
  /** [B, outChans, H/16, W/16], NCHW. */
  embedding: Tensor;
  tokens?: Tensor;
  taps?: Taps;
}

export class ImageEncoderViT {
  readonly patchEmbed: PatchEmbed;
  readonly posEmbed: Tensor;
  readonly blocks: Block[];
  readonly neck: { conv1: Tensor; ln1w: Tensor; ln1b: Tensor; conv2: Tensor; ln2w: Tensor; ln2b: Tensor };
  private readonly posCache = new TensorCache();
  /** Recorded forward calls (src/gpu/dispatch-plan.ts). */
  private readonly plans = new DispatchPlans();

  constructor(
    w: Weights,
    readonly prefix: string,
    readonly cfg: SamConfig,
  ) {
    const { embedDim: E, posEmbedGrid: G, outChans: O } = cfg;
    check(E % cfg.numHeads === 0, () => `ImageEncoderViT: width ${E} does not split into ${cfg.numHeads} heads`);
    this.patchEmbed = new PatchEmbed(w, `${prefix}.patch_embed`, cfg.patchSize, E);
    this.posEmbed = w.get(`${prefix}.pos_embed`, [1, G, G, E]);
    const globals = new Set(cfg.globalAttnIndexes);
    this.blocks = [];
    for (let i = 0; i < cfg.depth; i++) {
      const global = globals.has(i) || cfg.windowSize === 0;
      this.blocks.push(new Block(w, `${prefix}.blocks.${i}`, cfg, global ? 0 : cfg.windowSize, global ? G : cfg.windowSize));
    }
    this.neck = {
      conv1: w.get(`${prefix}.neck.0.weight`, [O, E, 1, 1]),
      ln1w: w.get(`${prefix}.neck.1.weight`, [O]),
      ln1b: w.get(`${prefix}.neck.1.bias`, [O]),
      conv2: w.get(`${prefix}.neck.2.weight`, [O, O, 3, 3]),
      ln2w: w.get(`${prefix}.neck.3.weight`, [O]),
      ln2b: w.get(`${prefix}.neck.3.bias`, [O]),
    };
  }

  /** The absolute position table for a gh x gw grid: as stored, or resized bicubically (cached). */
  positionTable(ctx: GpuContext, gh: number, gw: number): Tensor {
    const G = this.cfg.posEmbedGrid;
    if (gh === G && gw === G) return this.posEmbed;
    return this.posCache.get(`${gh}x${gw}`, () => resizeBicubic(ctx, this.posEmbed, gh, gw, { layout: 'nhwc', outDtype: 'f32' }));
  }

  /** Patch embedding plus position table: [B, 3, H, W] -> [B, H/16, W/16, E] f32 (block 0's input: the residual stream). */
  embed(ctx: GpuContext, x: Tensor, taps?: Taps): Tensor {
    const p = this.cfg.patchSize;
    check(x.ndim === 4 && x.dim(1) === 3, () => `ImageEncoderViT: input must be [B, 3, H, W], got ${fmtShape(x.shape)}`);
    check(x.dim(2) % p === 0 && x.dim(3) % p === 0 && x.dim(2) > 0 && x.dim(3) > 0,
      () => `ImageEncoderViT: input ${fmtShape(x.shape)} is not a multiple of the ${p}-px patch (pad it: the model's size is ${this.cfg.imgSize})`);
    return ctx.scope(() =>
      ctx.stage('patch_embed', () => {
        const t = this.patchEmbed.forward(ctx, x);
        const pos = this.positionTable(ctx, t.dim(1), t.dim(2));
        const y = add(ctx, t, pos);
        if (taps) {
          keep(taps, 'enc.patch_embed', t);
          keep(taps, 'enc.pos_added', y);
        }
        return y;
      }),
    );
  }

  /**
   * One neck layer: 0 conv1x1 (tokens [B, g, g, E] -> NCHW), 1 LayerNorm2d, 2 conv3x3, 3 LayerNorm2d.
   * Separate so parity tests can feed each layer its recorded input.
   */
  neckStep(ctx: GpuContext, i: number, x: Tensor): Tensor {
    const n = this.neck;
    const eps = SAM_ENCODER_LN_EPS;
    switch (i) {
      case 0:
        return conv2d(ctx, x, n.conv1, undefined, { inLayout: 'nhwc' });
      case 1:
        return layerNorm2d(ctx, x, n.ln1w, n.ln1b, eps);
      case 2:
        return conv2d(ctx, x, n.conv2, undefined, { padding: 1 });
      case 3:
        return layerNorm2d(ctx, x, n.ln2w, n.ln2b, eps);
      default:
        throw new RangeError(`ImageEncoderViT.neckStep: no neck layer ${i}`);
    }
  }

  /** Neck on the last block's tokens [B, g, g, E] -> NCHW embedding [B, outChans, g, g]. */
  neckForward(ctx: GpuContext, tokens: Tensor, taps?: Taps): Tensor {
    return ctx.scope(() =>
      ctx.stage('neck', () => {
        let t = tokens;
        for (let i = 0; i < 4; i++) {
          t = this.neckStep(ctx, i, t);
          if (taps) keep(taps, `enc.neck${i}`, t);
        }
        return t;
      }),
    );
  }

  /**
   * x: [B, 3, S, S] normalised and padded input (S = cfg.imgSize, or any other multiple of 16: the
   * position tables are resized) -> { embedding [B, outChans, S/16, S/16], tokens? [B, g, g, E] }.
   */
  forward(ctx: GpuContext, x: Tensor, opts: EncoderForwardOptions = {}): EncoderOutput {
    // Without taps the call depends on the input layout and these options only: from the third
    // call on, its ~460 dispatches are replayed instead of re-encoded (src/gpu/dispatch-plan.ts).
    if (opts.taps) return this.forwardCode(ctx, x, opts);
    return this.plans.run(ctx, `${ctx.activationDtype}:${!!opts.returnTokens}`, [x], () => {
      const { embedding, tokens } = this.forwardCode(ctx, x, opts);
      return tokens ? { embedding, tokens } : { embedding };
    });
  }

  private forwardCode(ctx: GpuContext, x: Tensor, opts: EncoderForwardOptions): EncoderOutput {
    const taps: Taps | undefined = opts.taps ? {} : undefined;
    try {
      return ctx.scope(() =>
        ctx.stage('image_encoder', () => {
          let t = this.embed(ctx, x, taps);
          this.blocks.forEach((b, i) => {
            t = ctx.stage(`block${i}`, () => b.forward(ctx, t, taps, `enc.block${i}`));
            if (taps) keep(taps, `enc.block${i}`, t);
          });
          // f16 activations (ContextOptions.activations): the embedding leaves the encoder in f32.
          const neck = this.neckForward(ctx, t, taps);
          const embedding = neck.dtype === 'f32' ? neck : copy(ctx, neck, 'f32');
          const out: EncoderOutput = { embedding };
          if (opts.returnTokens) out.tokens = t;
          if (taps) out.taps = taps;
          return out;
        }),
      );
    } catch (e) {
      if (taps) for (const v of Object.values(taps)) v.dispose();
      throw e;
    }
  }

  /**
   * The last block's tokens [B, g, g, E] (what `forward` feeds the neck), submitted block by block
   * through `pacer` (progress per block, cancellation between blocks). Same kernels, same result.
   */
  async tokensPaced(ctx: GpuContext, x: Tensor, pacer: Pacer): Promise<Tensor> {
    const n = this.blocks.length;
    let t = ctx.scope(() => ctx.stage('image_encoder', () => this.embed(ctx, x)));
    try {
      for (let i = 0; i < n; i++) {
        const input = t;
        // Each block's call is replayed from the third paced encode of one size on (src/gpu/dispatch-plan.ts).
        const block = () => this.blocks[i]!.forward(ctx, input);
        t = ctx.scope(() => ctx.stage('image_encoder', () => ctx.stage(`block${i}`, () => this.plans.runOne(ctx, `block${i}:${ctx.activationDtype}`, [input], block))));
        input.dispose();
        await pacer.step(`image encoder block ${i + 1}/${n}`, i + 1, n);
      }
      return t;
    } catch (e) {
      t.dispose();
      throw e;
    }
  }

  /** `forward(ctx, x)` paced block by block (see `tokensPaced`); tokens kept when asked. */
  async forwardPaced(ctx: GpuContext, x: Tensor, pacer: Pacer, opts: { returnTokens?: boolean } = {}): Promise<EncoderOutput> {
    const tokens = await this.tokensPaced(ctx, x, pacer.part(0, 0.97));
    let embedding: Tensor | undefined;
    try {
      embedding = this.neckForward(ctx, tokens);
      await pacer.step('image encoder neck', 1, 1);
    } catch (e) {
      tokens.dispose();
      embedding?.dispose();
      throw e;
    }
    if (opts.returnTokens) return { embedding, tokens };
    tokens.dispose();
    return { embedding };
  }

  /** Free the cached resized position tables (weights belong to their Weights set). */
  dispose(): void {
    this.plans.dispose();
    this.posCache.clear();
    for (const b of this.blocks) b.dispose();
  }
}
