/**
 * Reference resampling in double precision over plain NCHW arrays, following PyTorch
 * `F.interpolate` (bilinear / bicubic, antialias off) as its source defines it.
 */
export interface CpuResizeOptions {
  mode: 'bilinear' | 'bicubic';
  alignCorners?: boolean;
}

function sourceCoord(d: number, inLen: number, outLen: number, alignCorners: boolean): number {
  if (alignCorners) return outLen > 1 ? (d * (inLen - 1)) / (outLen - 1) : 0;
  return ((d + 0.5) * inLen) / outLen - 0.5;
}

/** Keys cubic convolution kernel, a = -0.75. */
function keys(t: number): number {
  const a = -0.75;
  const x = Math.abs(t);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** [tap index, weight] pairs along one axis for output position d. */
function axisTaps(d: number, inLen: number, outLen: number, o: CpuResizeOptions): [number, number][] {
  const s = sourceCoord(d, inLen, outLen, !!o.alignCorners);
  const clampIdx = (i: number) => Math.min(Math.max(i, 0), inLen - 1);
  if (o.mode === 'bilinear') {
    const c = Math.max(s, 0);
    const i0 = Math.min(Math.floor(c), inLen - 1);
    const w1 = Math.min(Math.max(c - i0, 0), 1);
    return [
      [i0, 1 - w1],
      [clampIdx(i0 + 1), w1],
    ];
  }
  const f = Math.floor(s);
  const t = s - f;
  return [-1, 0, 1, 2].map((k) => [clampIdx(f + k), keys(t - k)]);
}

export function resizeCpu(
  x: ArrayLike<number>,
  [N, C, H, W]: readonly [number, number, number, number],
  outH: number,
  outW: number,
  opts: CpuResizeOptions,
): Float64Array {
  const out = new Float64Array(N * C * outH * outW);
  const ys = Array.from({ length: outH }, (_, d) => axisTaps(d, H, outH, opts));
  const xs = Array.from({ length: outW }, (_, d) => axisTaps(d, W, outW, opts));
  for (let p = 0; p < N * C; p++) {
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        let s = 0;
        for (const [iy, wy] of ys[oy]!) for (const [ix, wx] of xs[ox]!) s += wy * wx * x[(p * H + iy) * W + ix]!;
        out[(p * outH + oy) * outW + ox] = s;
      }
    }
  }
  return out;
}
