/** Reference 2-D convolution in double precision over plain NCHW arrays (PyTorch `Conv2d` semantics). */
import type { Activation } from '../activation.js';
import { activate } from './activation.js';

export interface CpuConv2dOptions {
  stride?: [number, number];
  /** [top, left, bottom, right]. */
  padding?: [number, number, number, number];
  dilation?: [number, number];
  groups?: number;
  act?: Activation;
}

/** x: [N, C, H, W], w: [O, C/groups, kh, kw], contiguous. Returns [N, O, OH, OW] and its shape. */
export function conv2dCpu(
  x: ArrayLike<number>,
  xShape: readonly [number, number, number, number],
  w: ArrayLike<number>,
  wShape: readonly [number, number, number, number],
  bias: ArrayLike<number> | undefined,
  opts: CpuConv2dOptions = {},
): { data: Float64Array; shape: [number, number, number, number] } {
  const [N, C, H, W] = xShape;
  const [O, Cg, kh, kw] = wShape;
  const [sh, sw] = opts.stride ?? [1, 1];
  const [pt, pl, pb, pr] = opts.padding ?? [0, 0, 0, 0];
  const [dh, dw] = opts.dilation ?? [1, 1];
  const groups = opts.groups ?? 1;
  const Og = O / groups;
  const OH = Math.floor((H + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const out = new Float64Array(N * O * OH * OW);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oy = 0; oy < OH; oy++) {
        for (let ox = 0; ox < OW; ox++) {
          let s = bias ? bias[o]! : 0;
          for (let ci = 0; ci < Cg; ci++) {
            const c = g * Cg + ci;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - pt + ky * dh;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pl + kx * dw;
                if (ix < 0 || ix >= W) continue;
                s += x[((n * C + c) * H + iy) * W + ix]! * w[((o * Cg + ci) * kh + ky) * kw + kx]!;
              }
            }
          }
          out[((n * O + o) * OH + oy) * OW + ox] = activate(opts.act ?? 'none', s);
        }
      }
    }
  }
  return { data: out, shape: [N, O, OH, OW] };
}
