/** Byte comparisons for the image tests, with failure messages that locate the worst pixel (floats: test/helpers/comparison.ts). */

export interface ByteDiff {
  n: number;
  /** Elements (bytes) that differ at all. */
  differing: number;
  maxAbs: number;
  worst: number;
  worstActual: number;
  worstExpected: number;
}

export function diffBytes(actual: ArrayLike<number>, expected: ArrayLike<number>): ByteDiff {
  if (actual.length !== expected.length) throw new Error(`length mismatch: actual ${actual.length}, expected ${expected.length}`);
  let differing = 0;
  let maxAbs = 0;
  let worst = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (d > 0) differing++;
    if (d > maxAbs) {
      maxAbs = d;
      worst = i;
    }
  }
  return {
    n: expected.length,
    differing,
    maxAbs,
    worst,
    worstActual: worst >= 0 ? actual[worst]! : NaN,
    worstExpected: worst >= 0 ? expected[worst]! : NaN,
  };
}

/** "(y, x, c)" of a flat HWC index. */
export function hwcIndex(i: number, width: number, channels: number): string {
  if (i < 0) return '(none)';
  const c = i % channels;
  const p = (i - c) / channels;
  return `(y ${Math.floor(p / width)}, x ${p % width}, c ${c})`;
}

export function describeBytes(name: string, d: ByteDiff, width: number, channels: number): string {
  if (d.differing === 0) return `${name}: identical (${d.n} bytes)`;
  return (
    `${name}: ${d.differing} of ${d.n} bytes differ (${((100 * d.differing) / d.n).toFixed(4)}%), ` +
    `max |Δ| ${d.maxAbs} at ${hwcIndex(d.worst, width, channels)} (actual ${d.worstActual}, expected ${d.worstExpected})`
  );
}
