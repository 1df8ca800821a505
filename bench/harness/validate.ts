/**
 * Output check of a benchmarked variant against the reference (onnxruntime-node CPU) before it is
 * timed. Built on test/helpers/comparison.ts's compare (free of vitest, unlike test/helpers/compare.ts).
 */
import { compare } from '../../test/helpers/comparison.js';

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
  const d = compare(actual, expected);
  return {
    relL2: d.relL2,
    maxAbs: d.maxAbs,
    worst: Math.max(d.worst, 0),
    actual: actual[Math.max(d.worst, 0)]!,
    expected: expected[Math.max(d.worst, 0)]!,
    nonFinite: d.nonFiniteMismatch,
    ok: d.nonFiniteMismatch === 0 && d.relL2 <= relL2Max,
  };
}

export function fmtCheck(c: Check): string {
  const head = `relL2 ${c.relL2.toExponential(2)}, max abs ${c.maxAbs.toExponential(2)} at ${c.worst} (${c.actual} vs ${c.expected})`;
  return (c.nonFinite ? `${head}, ${c.nonFinite} NaN/Inf mismatches` : head) + (c.ok ? '' : '  ** INVALID **');
}
