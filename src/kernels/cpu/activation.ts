/** Plain double-precision activations: the obviously-correct references for the WGSL versions. */
import type { Activation } from '../activation.js';

/** erf to ~1e-15: Maclaurin series for |x| < 2.5, Lentz continued fraction for erfc beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export function activate(act: Activation, x: number): number {
  switch (act) {
    case 'none':
      return x;
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'quick_gelu':
      return x / (1 + Math.exp(-1.702 * x));
    case 'relu':
      return Math.max(x, 0);
    case 'sigmoid':
      return 1 / (1 + Math.exp(-x));
  }
}
