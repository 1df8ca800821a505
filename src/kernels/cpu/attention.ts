/** Reference attention in double precision: explicit scores, softmax, weighted sum. */

export interface CpuAttentionInput {
  /** [B, H, Nq, D], [B, H, Nk, D], [B, H, Nk, D], contiguous. */
  q: ArrayLike<number>;
  k: ArrayLike<number>;
  v: ArrayLike<number>;
  B: number;
  H: number;
  Nq: number;
  Nk: number;
  D: number;
  scale: number;
  causal?: boolean;
  /** Full [B, H, Nq, Nk] additive bias. */
  bias?: ArrayLike<number>;
  /** SAM decomposed rel-pos: tables [2*gh-1, D], [2*gw-1, D] on a gh x gw grid (self-attention). */
  relPos?: { h: ArrayLike<number>; w: ArrayLike<number>; grid: [number, number] };
}

/** Returns [B, Nq, H, D]. */
export function attentionCpu(p: CpuAttentionInput): Float64Array {
  const { B, H, Nq, Nk, D } = p;
  const out = new Float64Array(B * Nq * H * D);
  const scores = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const base = (b * H + h);
      for (let i = 0; i < Nq; i++) {
        const qi = (base * Nq + i) * D;
        let relH: number[] = [];
        let relW: number[] = [];
        if (p.relPos) {
          const [gh, gw] = p.relPos.grid;
          const qh = Math.floor(i / gw);
          const qw = i % gw;
          relH = Array.from({ length: gh }, (_, kh) => dot(p.q, qi, p.relPos!.h, (qh - kh + gh - 1) * D, D));
          relW = Array.from({ length: gw }, (_, kw) => dot(p.q, qi, p.relPos!.w, (qw - kw + gw - 1) * D, D));
        }
        let max = -Infinity;
        for (let j = 0; j < Nk; j++) {
          if (p.causal && j > i) {
            scores[j] = -Infinity;
            continue;
          }
          let s = p.scale * dot(p.q, qi, p.k, (base * Nk + j) * D, D);
          if (p.bias) s += p.bias[(base * Nq + i) * Nk + j]!;
          if (p.relPos) {
            const gw = p.relPos.grid[1];
            s += relH[Math.floor(j / gw)]! + relW[j % gw]!;
          }
          scores[j] = s;
          max = Math.max(max, s);
        }
        let sum = 0;
        for (let j = 0; j < Nk; j++) sum += scores[j] = Math.exp(scores[j]! - max);
        const o = ((b * Nq + i) * H + h) * D;
        for (let j = 0; j < Nk; j++) {
          const w = scores[j]! / sum;
          const vj = (base * Nk + j) * D;
          for (let d = 0; d < D; d++) out[o + d] = out[o + d]! + w * p.v[vj + d]!;
        }
      }
    }
  }
  return out;
}

function dot(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number, n: number): number {
  let s = 0;
  for (let d = 0; d < n; d++) s += a[ai + d]! * b[bi + d]!;
  return s;
}
