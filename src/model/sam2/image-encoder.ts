/**
 * SAM 2's image encoder, mirroring sam2/modeling/backbones/image_encoder.py (ImageEncoder, FpnNeck)
 * at commit 2b90b9f5: the Hiera trunk, then a feature pyramid over its four stage outputs.
 *
 * FpnNeck: a 1x1 convolution per level to `d_model` channels (`convs.j` takes the trunk's level
 * n - j, deepest first), then top-down from the coarsest level: levels listed in
 * `fpn_top_down_levels` (2 and 3 in every released model) add the level above upsampled 2x by
 * nearest neighbour; the others keep only their lateral features. The upsampling is a stride-0
 * view read by the add (no kernel). `scalp` drops the coarsest levels from the output (1: the
 * image predictor uses levels 0-2).
 *
 * The sine position encodings the neck also returns (`vision_pos_enc`) feed only the video
 * model's memory attention; the image predictor never reads them, so they are not computed.
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Pacer } from '../../gpu/pacer.js';
import { check, fmtShape } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { conv2d } from '../../kernels/conv2d.js';
import { add } from '../../kernels/elementwise.js';
import type { Weights } from '../../weights/weights.js';
import type { Sam2Config } from './config.js';
import { Hiera, type Taps, keepTap } from './hieradet.js';

/** image_encoder.FpnNeck. */
export class FpnNeck {
  readonly convs: { weight: Tensor; bias: Tensor }[];

  constructor(
    w: Weights,
    prefix: string,
    readonly cfg: Sam2Config['neck'],
  ) {
    const d = cfg.dModel;
    this.convs = cfg.backboneChannelList.map((c, j) => ({
      weight: w.get(`${prefix}.convs.${j}.conv.weight`, [d, c, 1, 1]),
      bias: w.get(`${prefix}.convs.${j}.conv.bias`, [d]),
    }));
  }

  /** Trunk outputs (BHWC, finest first) -> FPN levels [B, d, h_i, w_i] (NCHW, finest first, all levels). */
  forward(ctx: GpuContext, xs: readonly Tensor[], taps?: Taps): Tensor[] {
    const n = this.convs.length - 1;
    check(xs.length === n + 1, () => `FpnNeck: ${xs.length} trunk levels for ${n + 1} convolutions`);
    return ctx.scope(() =>
      ctx.stage('neck', () => {
        const out: Tensor[] = new Array(n + 1);
        let prev: Tensor | null = null;
        for (let i = n; i >= 0; i--) {
          const conv = this.convs[n - i]!;
          const lateral = conv2d(ctx, xs[i]!, conv.weight, conv.bias, { inLayout: 'nhwc' });
          if (prev && this.cfg.fpnTopDownLevels.includes(i)) {
            const [B, d, h, w] = prev.shape as [number, number, number, number];
            check(lateral.dim(2) === 2 * h && lateral.dim(3) === 2 * w,
              () => `FpnNeck: level ${i} ${fmtShape(lateral.shape)} is not twice level ${i + 1} ${fmtShape(prev!.shape)}`);
            // Nearest 2x: every coarse pixel read twice along each axis through stride 0.
            const shape = [B, d, h, 2, w, 2];
            const up: Tensor = prev.asStrided(shape, [d * h * w, h * w, w, 0, 1, 0], prev.offset);
            const lat = lateral.reshape(shape);
            prev = add(ctx, lat, up).reshape([B, d, 2 * h, 2 * w]);
          } else {
            prev = lateral;
          }
          out[i] = prev;
          keepTap(taps, `neck.fpn${i}`, prev);
        }
        return out;
      }),
    );
  }
}

/** image_encoder.ImageEncoder: trunk + neck, minus the `scalp` coarsest levels. */
export class ImageEncoder {
  readonly trunk: Hiera;
  readonly neck: FpnNeck;

  constructor(
    w: Weights,
    prefix: string,
    readonly cfg: Sam2Config,
  ) {
    this.trunk = new Hiera(w, `${prefix}.trunk`, cfg.trunk);
    this.neck = new FpnNeck(w, `${prefix}.neck`, cfg.neck);
  }

  /** [B, 3, S, S] (normalised) -> backbone_fpn levels, finest first (S/4, S/8, S/16 for scalp 1). */
  forward(ctx: GpuContext, x: Tensor, taps?: Taps): Tensor[] {
    return ctx.scope(() =>
      ctx.stage('image_encoder', () => {
        const levels = this.neck.forward(ctx, this.trunk.forward(ctx, x, taps), taps);
        return levels.slice(0, levels.length - this.cfg.neck.scalp);
      }),
    );
  }

  /**
   * `forward` submitted block by block through `pacer` (progress per block, cancellation between
   * blocks): the same kernels and the same result.
   */
  async forwardPaced(ctx: GpuContext, x: Tensor, pacer: Pacer): Promise<Tensor[]> {
    const blocks = this.trunk.blocks;
    const n = blocks.length;
    const ends: Tensor[] = [];
    let t = ctx.scope(() => ctx.stage('image_encoder', () => this.trunk.embed(ctx, x)));
    try {
      for (const b of blocks) {
        const i = b.spec.index;
        const input = t;
        t = ctx.scope(() => ctx.stage('image_encoder', () => ctx.stage(`block${i}`, () => b.forward(ctx, input))));
        input.dispose();
        if (b.spec.stageEnd) ends.push(t.ref());
        await pacer.step(`image encoder block ${i + 1}/${n}`, i + 1, n + 1);
      }
      const levels = ctx.scope(() =>
        ctx.stage('image_encoder', () => {
          const all = this.neck.forward(ctx, ends);
          return all.slice(0, all.length - this.cfg.neck.scalp);
        }),
      );
      try {
        await pacer.step('image encoder neck', n + 1, n + 1);
      } catch (e) {
        for (const l of levels) l.dispose();
        throw e;
      }
      return levels;
    } finally {
      t.dispose();
      for (const e of ends) e.dispose();
    }
  }

  dispose(): void {
    this.trunk.dispose();
  }
}
