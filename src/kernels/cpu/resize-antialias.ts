/**
 * Reference antialiased bilinear resampling in double precision over plain NCHW arrays, following
 * PyTorch's `_upsample_bilinear2d_aa` (align_corners false): separable, width then height.
 */

/** [first tap, normalised weights] along one axis for output index i. */
export function antialiasTaps(i: number, inLen: number, outLen: number): { lo: number; weights: number[] } {
  const scale = inLen / outLen;
  const support = scale >= 1 ? scale : 1;
  const invscale = scale >= 1 ? 1 / scale : 1;
  const centre = scale * (i + 0.5);
  const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
  const hi = Math.min(Math.trunc(centre + support + 0.5), inLen);
  const weights: number[] = [];
  for (let j = lo; j < hi; j++) weights.push(Math.max(0, 1 - Math.abs((j - centre + 0.5) * invscale)));
  const total = weights.reduce((a, w) => a + w, 0);
  return { lo, weights: total !== 0 ? weights.map((w) => w / total) : weights };
}

export function resizeAntialiasCpu(
  x: ArrayLike<number>,
  [N, C, H, W]: readonly [number, number, number, number],
  outH: number,
  outW: number,
): Float64Array {
  const mid = new Float64Array(N * C * H * outW);
  const tx = Array.from({ length: outW }, (_, i) => antialiasTaps(i, W, outW));
  for (let p = 0; p < N * C * H; p++) {
    for (let ox = 0; ox < outW; ox++) {
      const { lo, weights } = tx[ox]!;
      let acc = 0;
      weights.forEach((w, j) => (acc += x[p * W + lo + j]! * w));
      mid[p * outW + ox] = acc;
    }
  }
  const out = new Float64Array(N * C * outH * outW);
  const ty = Array.from({ length: outH }, (_, i) => antialiasTaps(i, H, outH));
  for (let nc = 0; nc < N * C; nc++) {
    for (let oy = 0; oy < outH; oy++) {
      const { lo, weights } = ty[oy]!;
      for (let ox = 0; ox < outW; ox++) {
        let acc = 0;
        weights.forEach((w, j) => (acc += mid[(nc * H + lo + j) * outW + ox]! * w));
        out[(nc * outH + oy) * outW + ox] = acc;
      }
    }
  }
  return out;
}
