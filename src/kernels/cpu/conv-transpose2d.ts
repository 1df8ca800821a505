/** Reference transposed 2-D convolution in double precision (PyTorch `ConvTranspose2d`, groups 1). */
import type { Activation } from '../activation.js';
import { activate } from './activation.js';

export interface CpuConvTranspose2dOptions {
  stride?: [number, number];
  padding?: [number, number];
  outputPadding?: [number, number];
  act?: Activation;
}

/**
 * x: [N, C_in, H, W], w: [C_in, C_out, kh, kw], contiguous. Scatter form (the definition): every
 * input pixel adds x * w into the output window at (iy * stride + ky - padding, ...).
 */
export function convTranspose2dCpu(
  x: ArrayLike<number>,
  xShape: readonly [number, number, number, number],
  w: ArrayLike<number>,
  wShape: readonly [number, number, number, number],
  bias: ArrayLike<number> | undefined,
  opts: CpuConvTranspose2dOptions = {},
): { data: Float64Array; shape: [number, number, number, number] } {
  const [N, C, H, W] = xShape;
  const [, O, kh, kw] = wShape;
  const [sh, sw] = opts.stride ?? [1, 1];
  const [ph, pw] = opts.padding ?? [0, 0];
  const [oph, opw] = opts.outputPadding ?? [0, 0];
  const OH = (H - 1) * sh - 2 * ph + kh + oph;
  const OW = (W - 1) * sw - 2 * pw + kw + opw;
  const out = new Float64Array(N * O * OH * OW);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let iy = 0; iy < H; iy++) {
        for (let ix = 0; ix < W; ix++) {
          const v = x[((n * C + c) * H + iy) * W + ix]!;
          for (let o = 0; o < O; o++) {
            for (let ky = 0; ky < kh; ky++) {
              const oy = iy * sh + ky - ph;
              if (oy < 0 || oy >= OH) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ox = ix * sw + kx - pw;
                if (ox < 0 || ox >= OW) continue;
                out[((n * O + o) * OH + oy) * OW + ox]! += v * w[((c * O + o) * kh + ky) * kw + kx]!;
              }
            }
          }
        }
      }
    }
  }
  for (let i = 0; i < out.length; i++) {
    const o = Math.floor(i / (OH * OW)) % O;
    out[i] = activate(opts.act ?? 'none', out[i]! + (bias ? bias[o]! : 0));
  }
  return { data: out, shape: [N, O, OH, OW] };
}
