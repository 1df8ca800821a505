/**
 * CLIP's image tower, `VisionTransformer` (openai/CLIP clip/model.py):
 *
 *   conv1 (patch embedding, no bias) -> [class token; patch tokens] + positional_embedding
 *   -> ln_pre -> transformer -> ln_post(class token) -> @ proj
 *
 * Other input sizes: the position table's grid rows are resized to the new token grid, the class
 * row is kept, as OpenCLIP's `resize_pos_embed` does. Two interpolations are offered:
 *  - 'bicubic-antialias' (default): `F.interpolate(mode='bicubic', antialias=True,
 *    align_corners=False)`, what current OpenCLIP uses. PyTorch's antialiased path is Pillow's
 *    separable convolution (cubic a = -0.5, support widened when shrinking, weights renormalised at
 *    the borders), so the table is resized once per grid on the CPU with the Pillow coefficients of
 *    src/image and cached on the GPU. Needs `await prepare(ctx, size)` (the pipelines call it).
 *  - 'bicubic': `F.interpolate(mode='bicubic', align_corners=False)` without antialias (a = -0.75,
 *    border replicate), the rule DESIGN.md gives SAM-CLIP; runs on the GPU resize kernel.
 * At the native grid the table is added unchanged.
 */
import type { GpuContext } from '../../gpu/context.js';
import { DispatchPlans } from '../../gpu/dispatch-plan.js';
import { ShapeError, fmtShape } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { pilCoefficients } from '../../image/pil-resize.js';
import { conv2d } from '../../kernels/conv2d.js';
import { concat, copyInto, readTensor } from '../../kernels/copy.js';
import { add } from '../../kernels/elementwise.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { matmul } from '../../kernels/matmul.js';
import { resizeBicubic } from '../../kernels/resize.js';
import type { Weights } from '../../weights/weights.js';
import { ClipError, type VisionConfig } from './config.js';
import type { TapFn } from './taps.js';
import { Transformer } from './transformer.js';

export type PosEmbedInterpolation = 'bicubic-antialias' | 'bicubic';

export interface VisionForwardOptions {
  tap?: TapFn;
}

/**
 * Resize a [g*g, W] grid table (row-major grid, channels last) to [oh*ow, W] with PyTorch's
 * antialiased bicubic (= Pillow's), in double precision. Exported for tests.
 */
export function resizeGridAntialias(src: ArrayLike<number>, gh: number, gw: number, C: number, oh: number, ow: number): Float32Array {
  // Horizontal pass (along x), then vertical (along y), as PyTorch's separable AA kernel does.
  const cx = pilCoefficients(gw, 0, gw, ow, 'bicubic');
  const tmp = new Float64Array(gh * ow * C);
  for (let y = 0; y < gh; y++) {
    for (let x = 0; x < ow; x++) {
      const lo = cx.bounds[2 * x]!;
      const n = cx.bounds[2 * x + 1]!;
      const o = (y * ow + x) * C;
      for (let t = 0; t < n; t++) {
        const wgt = cx.weights[x * cx.ksize + t]!;
        const s = (y * gw + lo + t) * C;
        for (let c = 0; c < C; c++) tmp[o + c]! += wgt * src[s + c]!;
      }
    }
  }
  const cy = pilCoefficients(gh, 0, gh, oh, 'bicubic');
  const out = new Float32Array(oh * ow * C);
  const acc = new Float64Array(C);
  for (let y = 0; y < oh; y++) {
    const lo = cy.bounds[2 * y]!;
    const n = cy.bounds[2 * y + 1]!;
    for (let x = 0; x < ow; x++) {
      acc.fill(0);
      for (let t = 0; t < n; t++) {
        const wgt = cy.weights[y * cy.ksize + t]!;
        const s = ((lo + t) * ow + x) * C;
        for (let c = 0; c < C; c++) acc[c]! += wgt * tmp[s + c]!;
      }
      out.set(acc, (y * ow + x) * C);
    }
  }
  return out;
}

export class VisionTransformer {
  private readonly conv1: Tensor;
  private readonly classEmbedding: Tensor;
  private readonly positionalEmbedding: Tensor;
  private readonly lnPreW: Tensor;
  private readonly lnPreB: Tensor;
  private readonly lnPostW: Tensor;
  private readonly lnPostB: Tensor;
  private readonly proj: Tensor;
  readonly transformer: Transformer;
  /** Resized position tables [1 + gh*gw, W] f32, by "ghxgw". */
  private readonly posCache = new Map<string, Tensor>();
  private posHost: Promise<Float32Array> | null = null;
  /** Recorded forward calls (src/gpu/dispatch-plan.ts). */
  private readonly plans = new DispatchPlans();

  constructor(
    w: Weights,
    readonly prefix: string,
    readonly cfg: VisionConfig,
    readonly posEmbedInterpolation: PosEmbedInterpolation = 'bicubic-antialias',
  ) {
    const { width: W, patch: P, grid: g, embedDim: E } = cfg;
    this.conv1 = w.get(`${prefix}conv1.weight`, [W, 3, P, P]);
    this.classEmbedding = w.get(`${prefix}class_embedding`, [W]);
    this.positionalEmbedding = w.get(`${prefix}positional_embedding`, [g * g + 1, W]);
    this.lnPreW = w.get(`${prefix}ln_pre.weight`, [W]);
    this.lnPreB = w.get(`${prefix}ln_pre.bias`, [W]);
    this.transformer = new Transformer(w, `${prefix}transformer`, cfg);
    this.lnPostW = w.get(`${prefix}ln_post.weight`, [W]);
    this.lnPostB = w.get(`${prefix}ln_post.bias`, [W]);
    this.proj = w.get(`${prefix}proj`, [W, E]);
  }

  /** Token grid of an input of `height` x `width` pixels (each a multiple of the patch size). */
  gridFor(height: number, width: number): [number, number] {
    const P = this.cfg.patch;
    if (!Number.isInteger(height) || !Number.isInteger(width) || height < P || width < P || height % P || width % P) {
      throw new ShapeError(`CLIP vision: input ${height}x${width} must be positive multiples of the patch size ${P} (native size ${this.cfg.imageSize})`);
    }
    return [height / P, width / P];
  }

  /** Whether forward() can run at this input size right now (the table is native or already resized). */
  isPrepared(height: number, width = height): boolean {
    const [gh, gw] = this.gridFor(height, width);
    return (gh === this.cfg.grid && gw === this.cfg.grid) || this.posEmbedInterpolation === 'bicubic' || this.posCache.has(`${gh}x${gw}`);
  }

  /** Make forward() ready for inputs of `height` x `width` (resizes and caches the position table). */
  async prepare(ctx: GpuContext, height: number, width = height): Promise<void> {
    const [gh, gw] = this.gridFor(height, width);
    const key = `${gh}x${gw}`;
    if (this.isPrepared(height, width)) return;
    this.posHost ??= readTensor(ctx, this.positionalEmbedding).then((a) => a as Float32Array);
    let host: Float32Array;
    try {
      host = await this.posHost;
    } catch (e) {
      this.posHost = null;
      throw e;
    }
    if (this.posCache.has(key)) return;
    const { width: W, grid: g } = this.cfg;
    const resized = resizeGridAntialias(host.subarray(W), g, g, W, gh, gw);
    const table = new Float32Array((1 + gh * gw) * W);
    table.set(host.subarray(0, W));
    table.set(resized, W);
    const t = ctx.upload(table, [1 + gh * gw, W]);
    t.persistent = true;
    this.posCache.set(key, t);
  }

  /** The position table for a gh x gw grid (class row first); owned and cached by the tower. */
  positionTable(ctx: GpuContext, gh: number, gw: number): Tensor {
    const { grid: g, width: W } = this.cfg;
    if (gh === g && gw === g) return this.positionalEmbedding;
    const key = `${gh}x${gw}`;
    const cached = this.posCache.get(key);
    if (cached) return cached;
    if (this.posEmbedInterpolation !== 'bicubic') {
      throw new ClipError(
        `CLIP vision: the position table is not resized for a ${gh}x${gw} grid (${gh * this.cfg.patch}x${gw * this.cfg.patch} input, native ${this.cfg.imageSize}); ` +
          `call 'await vision.prepare(ctx, height, width)' first`,
      );
    }
    const t = ctx.scope(() => {
      const gridRows = this.positionalEmbedding.slice(0, 1, 1 + g * g).reshape([1, g, g, W]);
      const r = resizeBicubic(ctx, gridRows, gh, gw, { layout: 'nhwc', outDtype: 'f32' }).reshape([gh * gw, W]);
      const cls = this.positionalEmbedding.slice(0, 0, 1);
      return concat(ctx, [this.positionalEmbedding.dtype === 'f32' ? cls : castRow(ctx, cls), r], 0);
    });
    t.persistent = true;
    this.posCache.set(key, t);
    return t;
  }

  /** pixels [B, 3, H, W] (normalised, f32) -> image features [B, embedDim] (not normalised). */
  forward(ctx: GpuContext, pixels: Tensor, opts: VisionForwardOptions = {}): Tensor {
    if (pixels.ndim !== 4 || pixels.dim(1) !== 3) {
      throw new ShapeError(`CLIP vision: pixels must be [B, 3, H, W], got ${fmtShape(pixels.shape)}`);
    }
    // Without taps the call depends on the input layout only: from the third call on, its
    // dispatches are replayed instead of re-encoded (src/gpu/dispatch-plan.ts).
    if (opts.tap) return this.forwardCode(ctx, pixels, opts);
    return this.plans.runOne(ctx, ctx.activationDtype, [pixels], () => this.forwardCode(ctx, pixels, opts));
  }

  private forwardCode(ctx: GpuContext, pixels: Tensor, opts: VisionForwardOptions): Tensor {
    const [B, , Hpx, Wpx] = pixels.shape as [number, number, number, number];
    const [gh, gw] = this.gridFor(Hpx, Wpx);
    const { width: W, patch: P, eps } = this.cfg;
    const N = 1 + gh * gw;
    const tap = opts.tap;
    return ctx.stage('clip_vision', () =>
      ctx.scope(() => {
        const pos = this.positionTable(ctx, gh, gw);
        // Patch tokens straight into token-major layout: [B, gh, gw, W].
        const patches = ctx.stage('conv1', () => conv2d(ctx, pixels, this.conv1, undefined, { stride: P, outLayout: 'nhwc', outDtype: ctx.activationDtype }));
        if (tap) tap('visual.conv1', patches.permute([0, 3, 1, 2]));
        const tokens = ctx.empty([B, N, W], ctx.activationDtype);
        copyInto(ctx, this.classEmbedding.reshape([1, 1, W]), tokens.slice(1, 0, 1));
        copyInto(ctx, patches.reshape([B, gh * gw, W]), tokens.slice(1, 1, N));
        const withPos = add(ctx, tokens, pos);
        const x0 = layerNorm(ctx, withPos, this.lnPreW, this.lnPreB, eps);
        tap?.('visual.ln_pre', x0);
        const x = this.transformer.forward(ctx, x0, { tap, tapPrefix: 'visual.' });
        const cls = layerNorm(ctx, x.slice(1, 0, 1), this.lnPostW, this.lnPostB, eps).reshape([B, W]);
        tap?.('visual.ln_post', cls);
        return matmul(ctx, cls, this.proj, { outDtype: 'f32' });
      }),
    );
  }

  dispose(): void {
    this.plans.dispose();
    for (const t of this.posCache.values()) t.dispose();
    this.posCache.clear();
  }
}

function castRow(ctx: GpuContext, row: Tensor): Tensor {
  const out = ctx.empty(row.shape, 'f32');
  copyInto(ctx, row, out);
  return out;
}
