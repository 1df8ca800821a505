/** Reference L2 normalisation over the last dim of [rows, n], double precision. */
export function l2NormalizeCpu(x: ArrayLike<number>, rows: number, n: number, eps?: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += x[r * n + j]! ** 2;
    const norm = Math.sqrt(s);
    const d = eps === undefined ? norm : Math.max(norm, eps);
    for (let j = 0; j < n; j++) out[r * n + j] = x[r * n + j]! / d;
  }
  return out;
}
