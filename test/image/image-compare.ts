/** Byte and float comparisons for the image tests, with failure messages that locate the worst pixel. */

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

export interface FloatDiff {
  n: number;
  maxAbs: number;
  relL2: number;
  worst: number;
  worstActual: number;
  worstExpected: number;
  nonFinite: number;
}

export function diffFloats(actual: ArrayLike<number>, expected: ArrayLike<number>): FloatDiff {
  if (actual.length !== expected.length) throw new Error(`length mismatch: actual ${actual.length}, expected ${expected.length}`);
  let d2 = 0;
  let r2 = 0;
  let maxAbs = 0;
  let worst = -1;
  let nonFinite = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(a) || !Number.isFinite(e)) {
      if (!Object.is(a, e)) nonFinite++;
      continue;
    }
    const d = Math.abs(a - e);
    d2 += d * d;
    r2 += e * e;
    if (d > maxAbs) {
      maxAbs = d;
      worst = i;
    }
  }
  return {
    n: expected.length,
    maxAbs,
    relL2: r2 > 0 ? Math.sqrt(d2 / r2) : Math.sqrt(d2),
    worst,
    worstActual: worst >= 0 ? actual[worst]! : NaN,
    worstExpected: worst >= 0 ? expected[worst]! : NaN,
    nonFinite,
  };
}

export function describeFloats(name: string, d: FloatDiff): string {
  if (d.maxAbs === 0 && d.nonFinite === 0) return `${name}: identical (${d.n} values)`;
  return (
    `${name}: max abs err ${d.maxAbs.toExponential(3)} at flat index ${d.worst} ` +
    `(actual ${d.worstActual}, expected ${d.worstExpected}), rel L2 ${d.relL2.toExponential(3)}` +
    (d.nonFinite ? `, ${d.nonFinite} NaN/Inf mismatches` : '')
  );
}
