/**
 * Numerical comparison with a readable report: max abs error, relative L2, the worst index with both
 * values, and how many elements failed. NaN and +-Inf must match exactly. No test-runner imports, so
 * browser test pages use it too; test/helpers/compare.ts adds the vitest assertion.
 */
export interface Tolerance {
  /** Relative L2 bound: ||a - e|| / ||e||. */
  relL2?: number;
  /** Per-element bound: |a - e| <= atol + rtol * |e|. */
  atol?: number;
  rtol?: number;
}

export interface Comparison {
  n: number;
  maxAbs: number;
  relL2: number;
  worst: number;
  worstActual: number;
  worstExpected: number;
  failures: number;
  nonFiniteMismatch: number;
}

export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance = {}): Comparison {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: actual ${actual.length}, expected ${expected.length}`);
  }
  let diff2 = 0;
  let ref2 = 0;
  let maxAbs = 0;
  let worst = -1;
  let failures = 0;
  let nonFiniteMismatch = 0;
  const atol = tol.atol ?? Infinity;
  const rtol = tol.rtol ?? 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      // Non-finite values must match exactly (NaN with NaN, +Inf with +Inf).
      if (!(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)))) {
        nonFiniteMismatch++;
        failures++;
        maxAbs = Infinity;
        worst = i;
      }
      continue;
    }
    const d = Math.abs(a - e);
    diff2 += d * d;
    ref2 += e * e;
    if (d > maxAbs || worst < 0) {
      maxAbs = d;
      worst = i;
    }
    if (d > atol + rtol * Math.abs(e)) failures++;
  }
  const relL2 = ref2 > 0 ? Math.sqrt(diff2 / ref2) : Math.sqrt(diff2);
  if (tol.relL2 !== undefined && relL2 > tol.relL2) failures = Math.max(failures, 1);
  return {
    n: expected.length,
    maxAbs,
    relL2,
    worst,
    worstActual: worst >= 0 ? actual[worst]! : NaN,
    worstExpected: worst >= 0 ? expected[worst]! : NaN,
    failures,
    nonFiniteMismatch,
  };
}

export function formatComparison(name: string, c: Comparison, tol: Tolerance, shape?: readonly number[]): string {
  const where = shape ? ` at ${unravel(c.worst, shape)}` : ` at flat index ${c.worst}`;
  return (
    `${name}: ${c.failures} of ${c.n} elements out of tolerance ${JSON.stringify(tol)}; ` +
    `max abs err ${c.maxAbs.toExponential(3)}${where} (actual ${c.worstActual}, expected ${c.worstExpected}), ` +
    `rel L2 ${c.relL2.toExponential(3)}` +
    (c.nonFiniteMismatch ? `, ${c.nonFiniteMismatch} NaN/Inf mismatches` : '')
  );
}

function unravel(i: number, shape: readonly number[]): string {
  const idx: number[] = [];
  let r = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    idx.unshift(r % shape[d]!);
    r = Math.floor(r / shape[d]!);
  }
  return `[${idx.join(', ')}]`;
}

/** How many entries differ, and the first that does (-1 if none). Lengths must agree. */
export function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; first: number } {
  if (a.length !== b.length) throw new Error(`mismatches: lengths ${a.length} and ${b.length}`);
  let diff = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      diff++;
      if (first < 0) first = i;
    }
  }
  return { diff, first };
}

/** Intersection over union of two binary masks (0/1 per pixel); two empty masks give 1. */
export function maskIoU(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i]! & b[i]!;
    union += a[i]! | b[i]!;
  }
  return union === 0 ? 1 : inter / union;
}
