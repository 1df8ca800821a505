/**
 * Assert numerical closeness with a readable failure report (the comparison itself:
 * test/helpers/comparison.ts, re-exported here).
 */
import { expect } from 'vitest';
import { type Comparison, type Tolerance, compare, formatComparison } from './comparison.js';

export * from './comparison.js';

/** Assert closeness; the failure message carries the full report. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  name = 'tensor',
  shape?: readonly number[],
): Comparison {
  const c = compare(actual, expected, tol);
  if (c.failures > 0) expect.fail(formatComparison(name, c, tol, shape));
  return c;
}
