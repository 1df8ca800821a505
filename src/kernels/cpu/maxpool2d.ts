/** Reference max pooling over plain NCHW arrays: nn.MaxPool2d(kernel, stride), floor mode, NaN wins. */
export function maxPool2dCpu(
  x: ArrayLike<number>,
  [N, C, H, W]: readonly [number, number, number, number],
  [kh, kw]: readonly [number, number],
  [sh, sw]: readonly [number, number],
): { data: Float64Array; shape: [number, number, number, number] } {
  const OH = Math.floor((H - kh) / sh) + 1;
  const OW = Math.floor((W - kw) / sw) + 1;
  const out = new Float64Array(N * C * OH * OW);
  for (let nc = 0; nc < N * C; nc++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        let m = -Infinity;
        for (let i = 0; i < kh; i++) {
          for (let j = 0; j < kw; j++) {
            const v = x[(nc * H + oy * sh + i) * W + ox * sw + j]!;
            if (Number.isNaN(v) || v > m) m = Number.isNaN(m) ? m : v;
          }
        }
        out[(nc * OH + oy) * OW + ox] = m;
      }
    }
  }
  return { data: out, shape: [N, C, OH, OW] };
}
