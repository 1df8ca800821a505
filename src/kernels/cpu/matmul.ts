/** Reference matmul in double precision over plain arrays (row-major, contiguous). */
import type { Activation } from '../activation.js';
import { activate } from './activation.js';

export interface CpuMatmulOptions {
  bias?: ArrayLike<number>;
  act?: Activation;
  residual?: ArrayLike<number>;
  alpha?: number;
}

/** a: [batch, M, K], b: [batch, K, N] (batch may be 1 for either: broadcast). Returns [batch, M, N]. */
export function matmulCpu(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  batch: number,
  M: number,
  K: number,
  N: number,
  opts: CpuMatmulOptions = {},
): Float64Array {
  const out = new Float64Array(batch * M * N);
  const aBatch = a.length === M * K ? 0 : M * K;
  const bBatch = b.length === K * N ? 0 : K * N;
  for (let z = 0; z < batch; z++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[z * aBatch + m * K + k]! * b[z * bBatch + k * N + n]!;
        let v = (opts.alpha ?? 1) * s + (opts.bias ? opts.bias[n]! : 0);
        v = activate(opts.act ?? 'none', v);
        const o = (z * M + m) * N + n;
        out[o] = v + (opts.residual ? opts.residual[o]! : 0);
      }
    }
  }
  return out;
}
