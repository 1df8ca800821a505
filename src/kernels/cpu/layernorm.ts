/** Reference LayerNorm / LayerNorm2d in double precision (two-pass: mean, then centred variance). */

/** x: [rows, n] row-major; weight/bias [n] or null. */
export function layerNormCpu(
  x: ArrayLike<number>,
  rows: number,
  n: number,
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
  eps: number,
): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let j = 0; j < n; j++) mean += x[r * n + j]!;
    mean /= n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (x[r * n + j]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let j = 0; j < n; j++) {
      out[r * n + j] = (x[r * n + j]! - mean) * inv * (weight ? weight[j]! : 1) + (bias ? bias[j]! : 0);
    }
  }
  return out;
}

/** SAM LayerNorm2d: x NCHW, normalised over C at each (n, h, w). */
export function layerNorm2dCpu(
  x: ArrayLike<number>,
  shape: readonly [number, number, number, number],
  weight: ArrayLike<number>,
  bias: ArrayLike<number>,
  eps: number,
): Float64Array {
  const [N, C, H, W] = shape;
  const hw = H * W;
  const out = new Float64Array(N * C * hw);
  for (let b = 0; b < N; b++) {
    for (let p = 0; p < hw; p++) {
      const at = (c: number) => b * C * hw + c * hw + p;
      let mean = 0;
      for (let c = 0; c < C; c++) mean += x[at(c)]!;
      mean /= C;
      let v = 0;
      for (let c = 0; c < C; c++) v += (x[at(c)]! - mean) ** 2;
      const inv = 1 / Math.sqrt(v / C + eps);
      for (let c = 0; c < C; c++) out[at(c)] = (x[at(c)]! - mean) * inv * weight[c]! + bias[c]!;
    }
  }
  return out;
}
