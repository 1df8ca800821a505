/** Reference reductions over one dim of a row-major tensor, double precision. */
import type { ReduceOp } from '../reduce.js';

/** Reduce `shape` along `dim`; the result has that dim removed (row-major). argmax: first index on ties. */
export function reduceCpu(op: ReduceOp, x: ArrayLike<number>, shape: readonly number[], dim: number): Float64Array {
  const outer = shape.slice(0, dim).reduce((p, d) => p * d, 1);
  const len = shape[dim]!;
  const inner = shape.slice(dim + 1).reduce((p, d) => p * d, 1);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let best = -Infinity;
      let bi = 0;
      let sum = 0;
      for (let k = 0; k < len; k++) {
        const v = x[(o * len + k) * inner + i]!;
        sum += v;
        if (v > best) {
          best = v;
          bi = k;
        }
      }
      out[o * inner + i] = op === 'max' ? best : op === 'argmax' ? bi : op === 'sum' ? sum : sum / len;
    }
  }
  return out;
}
