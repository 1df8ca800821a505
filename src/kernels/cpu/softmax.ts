/** Reference softmax over the last dim of [rows, n], double precision, max-subtracted. */
export function softmaxCpu(x: ArrayLike<number>, rows: number, n: number, scale = 1): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, scale * x[r * n + j]!);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(scale * x[r * n + j]! - m);
    for (let j = 0; j < n; j++) out[r * n + j] = Math.exp(scale * x[r * n + j]! - m) / s;
  }
  return out;
}
