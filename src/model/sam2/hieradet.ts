/**
 * SAM 2's Hiera trunk, mirroring sam2/modeling/backbones/hieradet.py (Hiera, MultiScaleBlock,
 * MultiScaleAttention) and backbones/utils.py (PatchEmbed, window_partition / window_unpartition)
 * at commit 2b90b9f5. Field paths are checkpoint keys under `image_encoder.trunk`.
 *
 * Data flow for [1, 3, S, S]:
 *   patch_embed (7x7 conv, stride 4, padding 3, written as BHWC tokens) + position table
 *   -> blocks: x = shortcut + attn(window(norm1(x))); x = x + mlp(norm2(x))
 *   -> the output of every stage's last block (BHWC), for the FPN neck.
 *
 * The position table (Hiera._get_pos_embed): `pos_embed` [1, E, h0, w0] resized bicubically to the
 * token grid, plus `pos_embed_window` [1, E, w, w] tiled over it; built once per grid (cached).
 *
 * Attention (MultiScaleAttention): fused qkv, heads split, softmax(q k^T / sqrt(d)) v, projection.
 * Windowed blocks pad the normed tokens with zeros to a multiple of the window (padded tokens take
 * part as keys: their q/k/v are the qkv bias, exactly as window_partition pads) and crop after.
 * Global blocks attend over the whole grid (the chunked algorithm on CPU adapters). At a stage
 * change (the first block of stages 2-4), the block widens (dim -> 2 dim, heads x2) and pools:
 *  - the shortcut is proj(norm1(x)) max-pooled 2x2 (not x: the widths differ);
 *  - queries are max-pooled 2x2 inside each window (w -> w/2) while keys and values keep the whole
 *    window, so each pooled query attends over w^2 tokens; the windows are then reassembled on
 *    the pooled grid (window w/2, padded to its multiple) and cropped to the pooled shortcut.
 * These pooled blocks run on window-partitioned copies of the qkv projection (the fused attention
 * kernel addresses windows of one size for queries and keys alike; here they differ).
 *
 * Large grids: at 1024 px the first stage is 256 x 256 tokens, and a pooled block's qkv output
 * (3 x 192 channels for Hiera-T) would be 151 MB, over a 128 MiB storage binding. Windowed blocks
 * therefore run in horizontal bands of whole window rows whenever their largest intermediate
 * (qkv or the 4x MLP) would not fit one binding; every op of a block is per token or per window,
 * so bands give exactly the same numbers. Global blocks (64 x 64 at 1024) never need it.
 */
import type { GpuContext } from '../../gpu/context.js';
import { check, fmtShape } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { attention, gridSelfAttention } from '../../kernels/attention.js';
import { conv2d } from '../../kernels/conv2d.js';
import { copy, copyInto, pad } from '../../kernels/copy.js';
import { add } from '../../kernels/elementwise.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { linear } from '../../kernels/matmul.js';
import { maxPool2d } from '../../kernels/maxpool2d.js';
import { resizeBicubic } from '../../kernels/resize.js';
import type { Weights } from '../../weights/weights.js';
import { HIERA_LN_EPS, HIERA_PATCH, type HieraBlockSpec, type HieraConfig, hieraBlocks } from './config.js';

/** Intermediates kept for parity tests, under the reference fixtures' names (`trunk.*`). */
export type Taps = Record<string, Tensor>;

/** Keep a tensor beyond the scopes it was made in (the caller disposes taps). */
export function keepTap(taps: Taps | undefined, name: string, t: Tensor): void {
  if (!taps) return;
  const r = t.ref();
  r.persistent = true;
  taps[name] = r;
}

interface LinearParams {
  weight: Tensor;
  bias: Tensor;
}

function linearParams(w: Weights, prefix: string, outDim: number, inDim: number): LinearParams {
  return { weight: w.get(`${prefix}.weight`, [outDim, inDim]), bias: w.get(`${prefix}.bias`, [outDim]) };
}

function normParams(w: Weights, prefix: string, dim: number): LinearParams {
  return { weight: w.get(`${prefix}.weight`, [dim]), bias: w.get(`${prefix}.bias`, [dim]) };
}

/** [B, nWy * w, nWx * w, C] contiguous grid -> window-partitioned copy [B * nWy * nWx, w, w, C]. */
function partition(ctx: GpuContext, x: Tensor, w: number): Tensor {
  const [B, Hp, Wp, C] = x.shape as [number, number, number, number];
  const [ny, nx] = [Hp / w, Wp / w];
  const v = x.asStrided([B, ny, nx, w, w, C], [Hp * Wp * C, w * Wp * C, w * C, Wp * C, C, 1], x.offset);
  try {
    return copy(ctx, v).reshape([B * ny * nx, w, w, C]);
  } finally {
    v.dispose();
  }
}

/** Window layout [B * nWy * nWx, w, w, C] (contiguous) -> grid [B, nWy * w, nWx * w, C]. */
function unpartition(ctx: GpuContext, x: Tensor, B: number, ny: number, nx: number): Tensor {
  const [, w, , C] = x.shape as [number, number, number, number];
  const v = x.asStrided([B, ny, w, nx, w, C], [ny * nx * w * w * C, nx * w * w * C, w * C, w * w * C, C, 1], x.offset);
  try {
    return copy(ctx, v).reshape([B, ny * w, nx * w, C]);
  } finally {
    v.dispose();
  }
}

/** A [B, H, W, C] grid padded with zeros bottom / right to multiples of `w` (a new handle either way). */
function padToWindow(ctx: GpuContext, x: Tensor, w: number): Tensor {
  const [, H, W] = x.shape as [number, number, number, number];
  const ph = (w - (H % w)) % w;
  const pw = (w - (W % w)) % w;
  return ph || pw ? pad(ctx, x, [0, 0, 0, pw, 0, ph]) : x.ref();
}

/** hieradet.MultiScaleBlock (with its MultiScaleAttention). */
export class MultiScaleBlock {
  readonly norm1: LinearParams;
  readonly qkv: LinearParams;
  readonly attnProj: LinearParams;
  readonly norm2: LinearParams;
  readonly mlp0: LinearParams;
  readonly mlp1: LinearParams;
  /** Shortcut projection where the width changes. */
  readonly proj: LinearParams | null;

  constructor(
    w: Weights,
    prefix: string,
    readonly spec: HieraBlockSpec,
    readonly qStride: number,
  ) {
    const { dim, dimOut } = spec;
    this.norm1 = normParams(w, `${prefix}.norm1`, dim);
    this.qkv = linearParams(w, `${prefix}.attn.qkv`, 3 * dimOut, dim);
    this.attnProj = linearParams(w, `${prefix}.attn.proj`, dimOut, dimOut);
    this.norm2 = normParams(w, `${prefix}.norm2`, dimOut);
    this.mlp0 = linearParams(w, `${prefix}.mlp.layers.0`, 4 * dimOut, dimOut);
    this.mlp1 = linearParams(w, `${prefix}.mlp.layers.1`, dimOut, 4 * dimOut);
    this.proj = dim !== dimOut ? linearParams(w, `${prefix}.proj`, dimOut, dim) : null;
  }

  /** Side of the output grid for an input side. */
  outSide(side: number): number {
    return this.spec.qPool ? Math.floor(side / this.qStride) : side;
  }

  /**
   * Input rows per band so that the largest intermediate (qkv, 3 dim_out, or the MLP, 4 dim_out,
   * per padded token) fits one storage binding; whole window rows, or all rows.
   */
  bandRows(ctx: GpuContext, H: number, W: number): number {
    const { window: win, dimOut } = this.spec;
    const Wp = win ? Math.ceil(W / win) * win : W;
    const rowBytes = Wp * 4 * 4 * dimOut;
    const limit = ctx.limits.maxStorageBufferBindingSize;
    if (H * rowBytes <= limit) return H;
    check(win > 0, () => `Hiera block ${this.spec.index}: a ${H}x${W} grid of ${dimOut} channels is too large for global attention within one ${limit}-byte binding`);
    const rows = Math.floor(limit / rowBytes / win) * win;
    check(rows >= win, () => `Hiera block ${this.spec.index}: one row of ${win}x${win} windows (${W} tokens wide) does not fit one ${limit}-byte binding`);
    return rows;
  }

  /** x [B, H, W, dim] -> [B, H', W', dim_out]. With taps, records `${name}.attn` (window layout) and `${name}`. */
  forward(ctx: GpuContext, x: Tensor, taps?: Taps, name = ''): Tensor {
    const [B, H, W] = x.shape as [number, number, number, number];
    check(x.ndim === 4 && x.dim(3) === this.spec.dim, () => `Hiera block ${this.spec.index}: input must be [B, H, W, ${this.spec.dim}], got ${fmtShape(x.shape)}`);
    const rows = taps ? H : this.bandRows(ctx, H, W);
    if (rows >= H) return ctx.scope(() => this.forwardBand(ctx, x, taps, name));
    // Bands of whole window rows; each writes its rows of the output.
    const out = ctx.empty([B, this.outSide(H), this.outSide(W), this.spec.dimOut]);
    for (let r0 = 0; r0 < H; r0 += rows) {
      const r1 = Math.min(H, r0 + rows);
      ctx.scope(() => {
        const y = this.forwardBand(ctx, x.slice(1, r0, r1), undefined, name);
        const o0 = this.outSide(r0);
        copyInto(ctx, y, out.slice(1, o0, o0 + y.dim(1)));
      });
    }
    return out;
  }

  private forwardBand(ctx: GpuContext, x: Tensor, taps: Taps | undefined, name: string): Tensor {
    const n1 = layerNorm(ctx, x, this.norm1.weight, this.norm1.bias, HIERA_LN_EPS);
    const x1 = this.spec.qPool ? this.pooledAttention(ctx, n1, taps, name) : this.attentionResidual(ctx, n1, x, taps, name);
    const n2 = layerNorm(ctx, x1, this.norm2.weight, this.norm2.bias, HIERA_LN_EPS);
    const h = linear(ctx, n2, this.mlp0.weight, this.mlp0.bias, { act: 'gelu' });
    return linear(ctx, h, this.mlp1.weight, this.mlp1.bias, { residual: x1 });
  }

  /** shortcut + attention on the same grid (windowed with padding, or global). */
  private attentionResidual(ctx: GpuContext, n1: Tensor, x: Tensor, taps: Taps | undefined, name: string): Tensor {
    const [, H, W] = n1.shape as [number, number, number, number];
    const win = this.spec.window;
    const shortcut = this.proj ? linear(ctx, n1, this.proj.weight, this.proj.bias) : x;
    const padded = win ? padToWindow(ctx, n1, win) : n1;
    const qkv = linear(ctx, padded, this.qkv.weight, this.qkv.bias);
    const a = gridSelfAttention(ctx, qkv, this.spec.heads, { window: win || undefined });
    const [Hp, Wp] = [a.dim(1), a.dim(2)];
    if (taps) {
      const projected = linear(ctx, a, this.attnProj.weight, this.attnProj.bias);
      keepTap(taps, `${name}.attn`, win ? partition(ctx, projected, win) : projected);
      return add(ctx, shortcut, Hp === H && Wp === W ? projected : projected.slice(1, 0, H).slice(2, 0, W));
    }
    const real = Hp === H && Wp === W ? a : copy(ctx, a.slice(1, 0, H).slice(2, 0, W));
    return linear(ctx, real, this.attnProj.weight, this.attnProj.bias, { residual: shortcut });
  }

  /**
   * The stage-change block: pooled shortcut, queries pooled inside each window, reassembled on the
   * pooled grid and cropped to the shortcut.
   */
  private pooledAttention(ctx: GpuContext, n1: Tensor, taps: Taps | undefined, name: string): Tensor {
    const [B, H, W] = n1.shape as [number, number, number, number];
    const { window: win, heads, dimOut: C } = this.spec;
    const s = this.qStride;
    check(win > 0, () => `Hiera block ${this.spec.index}: query pooling with global attention is not implemented (no released model has it)`);
    check(this.proj !== null, () => `Hiera block ${this.spec.index}: query pooling without a width change is not implemented`);
    const shortcut = maxPool2d(ctx, linear(ctx, n1, this.proj!.weight, this.proj!.bias), { kernel: s, layout: 'nhwc' });
    const padded = padToWindow(ctx, n1, win);
    const [ny, nx] = [padded.dim(1) / win, padded.dim(2) / win];
    const qkv = linear(ctx, padded, this.qkv.weight, this.qkv.bias);
    const windows = partition(ctx, qkv, win); // [nW, w, w, 3C]
    const q = maxPool2d(ctx, windows.slice(3, 0, C), { kernel: s, layout: 'nhwc' }); // [nW, w/s, w/s, C]
    const wq = q.dim(1);
    const nW = windows.dim(0);
    const D = C / heads;
    // Pooled grid: window w/s, padded as window_unpartition computes it from the pooled shortcut.
    const [H2, W2] = [shortcut.dim(1), shortcut.dim(2)];
    check(Math.ceil(H2 / wq) === ny && Math.ceil(W2 / wq) === nx,
      () => `Hiera block ${this.spec.index}: a ${H}x${W} grid pooled to ${H2}x${W2} does not re-tile into ${ny}x${nx} windows of ${wq} (as in the official code, the grid must keep its window count)`);
    const q4 = q.asStrided([nW, heads, wq * wq, D], [wq * wq * C, D, C, 1], q.offset);
    const k4 = windows.asStrided([nW, heads, win * win, D], [win * win * 3 * C, D, 3 * C, 1], windows.offset + C);
    const v4 = windows.asStrided([nW, heads, win * win, D], [win * win * 3 * C, D, 3 * C, 1], windows.offset + 2 * C);
    const a = attention(ctx, q4, k4, v4).reshape([nW, wq, wq, C]);
    const o = linear(ctx, a, this.attnProj.weight, this.attnProj.bias);
    keepTap(taps, `${name}.attn`, o);
    const grid = unpartition(ctx, o, B, ny, nx);
    return add(ctx, shortcut, grid.dim(1) === H2 && grid.dim(2) === W2 ? grid : grid.slice(1, 0, H2).slice(2, 0, W2));
  }
}

/** hieradet.Hiera. */
export class Hiera {
  readonly patchEmbed: LinearParams;
  readonly posEmbed: Tensor;
  readonly posEmbedWindow: Tensor;
  readonly blocks: MultiScaleBlock[];
  private readonly posCache = new Map<string, Tensor>();

  constructor(
    w: Weights,
    readonly prefix: string,
    readonly cfg: HieraConfig,
  ) {
    const E = cfg.embedDim;
    const k = HIERA_PATCH.kernel;
    this.patchEmbed = { weight: w.get(`${prefix}.patch_embed.proj.weight`, [E, 3, k, k]), bias: w.get(`${prefix}.patch_embed.proj.bias`, [E]) };
    this.posEmbed = w.get(`${prefix}.pos_embed`, [1, E, ...cfg.windowPosEmbedBkgSize]);
    const w0 = cfg.windowSpec[0]!;
    this.posEmbedWindow = w.get(`${prefix}.pos_embed_window`, [1, E, w0, w0]);
    this.blocks = hieraBlocks(cfg).map((b) => new MultiScaleBlock(w, `${prefix}.blocks.${b.index}`, b, cfg.qStride));
  }

  /**
   * Hiera._get_pos_embed for an h x w token grid, channels-last [1, h, w, E]: the bicubic
   * background plus the window table tiled (h and w must be multiples of the window). Cached.
   */
  positionTable(ctx: GpuContext, h: number, w: number): Tensor {
    const key = `${h}x${w}`;
    const have = this.posCache.get(key);
    if (have && !have.isDisposed) return have;
    const E = this.cfg.embedDim;
    const w0 = this.cfg.windowSpec[0]!;
    check(h % w0 === 0 && w % w0 === 0, () => `Hiera: the ${h}x${w} token grid is not a multiple of the ${w0}-token window table (pos_embed_window is tiled over it)`);
    const table = ctx.scope(() => {
      const bkg = resizeBicubic(ctx, this.posEmbed, h, w); // [1, E, h, w]
      // Both as [1, h/w0, w0, w/w0, w0, E] (the NHWC grid split into tiles); the window repeats per tile.
      const shape = [1, h / w0, w0, w / w0, w0, E];
      const a = bkg.asStrided(shape, [E * h * w, w0 * w, w, w0, 1, h * w], 0);
      const pw = this.posEmbedWindow;
      const b = pw.asStrided(shape, [0, 0, w0, 0, 1, w0 * w0], pw.offset);
      return add(ctx, a, b).reshape([1, h, w, E]);
    });
    table.persistent = true;
    this.posCache.set(key, table);
    return table;
  }

  /** PatchEmbed + position table: [B, 3, S, S] -> block 0's input [B, S/4, S/4, E]. */
  embed(ctx: GpuContext, x: Tensor, taps?: Taps): Tensor {
    check(x.ndim === 4 && x.dim(1) === 3, () => `Hiera: input must be [B, 3, H, W], got ${fmtShape(x.shape)}`);
    return ctx.scope(() =>
      ctx.stage('patch_embed', () => {
        const t = conv2d(ctx, x, this.patchEmbed.weight, this.patchEmbed.bias, {
          stride: HIERA_PATCH.stride,
          padding: HIERA_PATCH.padding,
          outLayout: 'nhwc',
          outDtype: 'f32',
        });
        const pos = this.positionTable(ctx, t.dim(1), t.dim(2));
        const y = add(ctx, t, pos);
        keepTap(taps, 'trunk.patch_embed', t);
        keepTap(taps, 'trunk.pos_embed', pos);
        keepTap(taps, 'trunk.pos_added', y);
        return y;
      }),
    );
  }

  /** Blocks from block `first` on a BHWC input; returns every stage end's output (finest first). */
  runBlocks(ctx: GpuContext, x: Tensor, taps?: Taps, first = 0): Tensor[] {
    return ctx.scope(() => {
      const outs: Tensor[] = [];
      let t = x;
      for (const b of this.blocks.slice(first)) {
        const i = b.spec.index;
        const y = ctx.stage(`block${i}`, () => b.forward(ctx, t, taps, `trunk.block${i}`));
        if (t !== x) t.dispose();
        t = y;
        keepTap(taps, `trunk.block${i}`, t);
        if (b.spec.stageEnd) outs.push(t.ref());
      }
      t.dispose();
      return outs;
    });
  }

  /** Hiera.forward: [B, 3, S, S] -> stage outputs [B, S/4 ... S/32, S/4 ..., C_i] (BHWC, finest first). */
  forward(ctx: GpuContext, x: Tensor, taps?: Taps): Tensor[] {
    return ctx.scope(() => ctx.stage('trunk', () => this.runBlocks(ctx, this.embed(ctx, x, taps), taps)));
  }

  dispose(): void {
    for (const t of this.posCache.values()) t.dispose();
    this.posCache.clear();
  }
}
