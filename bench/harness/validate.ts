/**
 * Output check of a benchmarked variant against the reference (onnxruntime-node CPU) before it is
 * timed. A plain function rather than test/helpers/compare.ts, which pulls in vitest's `expect`.
 */

export interface Check {
  relL2: number;
  maxAbs: number;
  /** Flat index of the largest difference, with both values. */
  worst: number;
  actual: number;
  expected: number;
  /** Elements where exactly one side is NaN/Inf (or they differ). */
  nonFinite: number;
  ok: boolean;
}

export function checkOutput(actual: ArrayLike<number>, expected: ArrayLike<number>, relL2Max: number): Check {
  if (actual.length !== expected.length) {
    throw new Error(`output has ${actual.length} elements, the reference ${expected.length}`);
  }
  let d2 = 0;
  let e2 = 0;
  let maxAbs = 0;
  let worst = 0;
  let nonFinite = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(e)) {
      if (!(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)))) nonFinite++;
      continue;
    }
    const d = Math.abs(a - e);
    d2 += d * d;
    e2 += e * e;
    if (d > maxAbs) {
      maxAbs = d;
      worst = i;
    }
  }
  const relL2 = e2 > 0 ? Math.sqrt(d2 / e2) : Math.sqrt(d2);
  return { relL2, maxAbs, worst, actual: actual[worst]!, expected: expected[worst]!, nonFinite, ok: nonFinite === 0 && relL2 <= relL2Max };
}

export function fmtCheck(c: Check): string {
  const head = `relL2 ${c.relL2.toExponential(2)}, max abs ${c.maxAbs.toExponential(2)} at ${c.worst} (${c.actual} vs ${c.expected})`;
  return (c.nonFinite ? `${head}, ${c.nonFinite} NaN/Inf mismatches` : head) + (c.ok ? '' : '  ** INVALID **');
}
