/**
 * conv2d as im2col + matmul, for CPU adapters (conv2d.ts's `gemm` variant): the patches of x are
 * copied into a [N * OH * OW, C * kh * kw] matrix whose columns follow the weight's own (c, ky, kx)
 * order, and `linear` multiplies it by the weight seen as [O, C * kh * kw]. The output comes out
 * NHWC ([N, OH, OW, O]); an NCHW output costs one more copy. On lavapipe the nn.Linear kernels
 * (matmul-cpu.ts) run several times the GFLOP/s of the tiled implicit-GEMM conv, and the extra
 * copy is small next to the product (SAM's 3x3 neck conv: 9.4 M values copied for 4.8 GFLOP).
 */
import type { GpuContext } from '../gpu/context.js';
import { BYTES, type DType } from '../gpu/dtype.js';
import type { Tensor } from '../gpu/tensor.js';
import type { Activation } from './activation.js';
import type { ImageLayout } from './conv2d.js';
import { contiguous, copy, pad } from './copy.js';
import { linear } from './matmul.js';

export interface ConvGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  kh: number;
  kw: number;
  OH: number;
  OW: number;
  stride: readonly [number, number];
  dilation: readonly [number, number];
  /** top, left, bottom, right */
  pads: readonly [number, number, number, number];
}

/** Whether the im2col matrix fits one storage binding. */
export function gemmFits(ctx: GpuContext, g: ConvGeometry, dtype: DType): boolean {
  return g.N * g.OH * g.OW * g.C * g.kh * g.kw * BYTES[dtype] <= ctx.limits.maxStorageBufferBindingSize;
}

/** x: the logical NCHW view [N, C, H, W] (any strides); w: [O, C, kh, kw]. */
export function conv2dGemm(
  ctx: GpuContext,
  x: Tensor,
  w: Tensor,
  bias: Tensor | undefined,
  g: ConvGeometry,
  opts: { act?: Activation; outLayout: ImageLayout; outDtype: DType },
): Tensor {
  const [pt, pl, pb, pr] = g.pads;
  const K = g.C * g.kh * g.kw;
  const M = g.N * g.OH * g.OW;
  const owned: Tensor[] = [];
  try {
    const xp = pt || pl || pb || pr ? pad(ctx, x, [pl, pr, pt, pb]) : x.ref();
    owned.push(xp);
    // Patch (n, oy, ox), entry (c, ky, kx) sits at x[n, c, oy * sh + ky * dh, ox * sw + kx * dw].
    const [s0, s1, s2, s3] = xp.strides as [number, number, number, number];
    const [sh, sw] = g.stride;
    const [dh, dw] = g.dilation;
    const patches = xp.asStrided([g.N, g.OH, g.OW, g.C, g.kh, g.kw], [s0, sh * s2, sw * s3, s1, dh * s2, dw * s3], xp.offset);
    owned.push(patches);
    const cols = contiguous(ctx, patches); // no copy for a 1x1 conv on a contiguous NHWC input
    owned.push(cols);
    const a = cols.reshape([M, K]);
    const wc = contiguous(ctx, w);
    owned.push(a, wc);
    const w2 = wc.reshape([g.O, K]);
    owned.push(w2);
    const y = linear(ctx, a, w2, bias, { act: opts.act, outDtype: opts.outDtype });
    if (opts.outLayout === 'nhwc') {
      const out = y.reshape([g.N, g.OH, g.OW, g.O]);
      y.dispose();
      return out;
    }
    owned.push(y);
    const nchw = y.asStrided([g.N, g.O, g.OH, g.OW], [g.OH * g.OW * g.O, 1, g.OW * g.O, g.O], y.offset);
    owned.push(nchw);
    return copy(ctx, nchw);
  } finally {
    for (const t of owned) t.dispose();
  }
}
