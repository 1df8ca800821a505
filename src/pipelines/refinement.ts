/**
 * SAM refinement of a class map (DESIGN.md section 5, "Refinement"), the CPU half: everything here
 * works on the g x g token grid of the padded native input (64 x 64 at 1024 px), which is small.
 *
 *  1. P = softmax over classes of the scores S (per token).
 *  2. Mask prompt per class: clamp(ln P_c - ln(1 - P_c), -clamp, clamp), in float32 like the
 *     reference (where P rounds to 1 or 0 the logit is +-inf before the clamp, so it saturates).
 *     The bilinear resize to the mask-input size (4g) runs on the GPU, where the prompt is consumed.
 *  3. Points per class: candidates are tokens whose centre (p * i + p / 2) lies inside the resized,
 *     unpadded image and whose P_c > pointThreshold; taken in decreasing P_c (ties in row-major
 *     order), skipping any within `minTokenDistance` (Chebyshev, inclusive) of one already taken, at
 *     most `maxPoints`; each point at its token centre in input pixels, label 1. With a `seed` the
 *     candidates are visited in a seeded random order instead (the same filter applies), so repeated
 *     calls with the same seed agree. A class without a point is not decoded.
 *  4. Decoding, post-processing and compositing run on the GPU (semantic-segmentation.ts and
 *     src/model/samclip/label-kernels.ts).
 */
import { SamclipError } from '../gpu/errors.js';
import { mulberry32 } from '../util/mulberry32.js';

/** A refinement option that cannot be used. */
export class RefinementError extends SamclipError {
  override name = 'RefinementError';
}

export interface RefinementOptions {
  /** Candidate tokens need P_c above this (default 0.5). */
  pointThreshold?: number;
  /** Points per class, 1..3 in DESIGN.md (default 3). */
  maxPoints?: number;
  /** Chebyshev distance (in tokens) at or below which a candidate is skipped (default g / 8). */
  minTokenDistance?: number;
  /** Bound of the mask-prompt logits (default 20). */
  clamp?: number;
  /** Seeded random candidate order instead of the deterministic best-first order. */
  seed?: number;
}

export interface ResolvedRefinement {
  pointThreshold: number;
  maxPoints: number;
  minTokenDistance: number;
  clamp: number;
  seed: number | undefined;
}

/** Defaults for a g x g grid, with the caller's options checked. */
export function resolveRefinement(opts: RefinementOptions, grid: number): ResolvedRefinement {
  const r: ResolvedRefinement = {
    pointThreshold: opts.pointThreshold ?? 0.5,
    maxPoints: opts.maxPoints ?? 3,
    minTokenDistance: opts.minTokenDistance ?? Math.max(1, Math.round(grid / 8)),
    clamp: opts.clamp ?? 20,
    seed: opts.seed,
  };
  if (!(r.pointThreshold >= 0 && r.pointThreshold < 1)) throw new RefinementError(`pointThreshold ${r.pointThreshold} must be a probability in [0, 1)`);
  if (!Number.isInteger(r.maxPoints) || r.maxPoints < 1) throw new RefinementError(`maxPoints ${r.maxPoints} must be an integer >= 1`);
  if (!Number.isInteger(r.minTokenDistance) || r.minTokenDistance < 0) throw new RefinementError(`minTokenDistance ${r.minTokenDistance} must be an integer >= 0`);
  if (!(r.clamp > 0) || !Number.isFinite(r.clamp)) throw new RefinementError(`clamp ${r.clamp} must be a finite number > 0`);
  if (r.seed !== undefined && (!Number.isInteger(r.seed) || r.seed < 0 || r.seed > 0xffffffff)) {
    throw new RefinementError(`seed ${r.seed} must be an integer in [0, 2^32)`);
  }
  return r;
}

/**
 * P = softmax over classes, from token-major scores S [N, C] to class-major P [C, N]
 * (double-precision sums, rounded to f32 once).
 */
export function softmaxClasses(sTokenMajor: Float32Array, tokens: number, classes: number): Float32Array {
  const P = new Float32Array(classes * tokens);
  for (let n = 0; n < tokens; n++) {
    const row = n * classes;
    let m = -Infinity;
    for (let c = 0; c < classes; c++) m = Math.max(m, sTokenMajor[row + c]!);
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(sTokenMajor[row + c]! - m);
    for (let c = 0; c < classes; c++) P[c * tokens + n] = Math.exp(sTokenMajor[row + c]! - m) / z;
  }
  return P;
}

/** [C, N] <- [N, C]. */
export function toClassMajor(tokenMajor: Float32Array, tokens: number, classes: number): Float32Array {
  const out = new Float32Array(tokens * classes);
  for (let n = 0; n < tokens; n++) for (let c = 0; c < classes; c++) out[c * tokens + n] = tokenMajor[n * classes + c]!;
  return out;
}

const fr = Math.fround;

/** clamp(ln P - ln(1 - P), -clamp, clamp) in float32 (PyTorch's op order) for one class map. */
export function maskPromptLogits(p: Float32Array, clamp: number): Float32Array {
  const out = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!;
    const l = fr(fr(Math.log(v)) - fr(Math.log(fr(1 - v))));
    out[i] = Number.isNaN(l) ? 0 : Math.min(clamp, Math.max(-clamp, l));
  }
  return out;
}

export interface ClassPoints {
  /** (i, j) token indices (row, column). */
  tokens: [number, number][];
  /** (x, y) in input-frame pixels. */
  coords: [number, number][];
}

/**
 * Points for one class map p [gh * gw] (row-major) on the padded input grid. `inputSize` [h, w] is
 * the resized image inside the padded square; `patch` the token size in pixels.
 */
export function selectPoints(
  p: Float32Array,
  gh: number,
  gw: number,
  inputSize: readonly [number, number],
  patch: number,
  opts: ResolvedRefinement,
  classIndex = 0,
): ClassPoints {
  const [ih, iw] = inputSize;
  const half = patch / 2;
  const cand: { i: number; j: number; v: number; order: number }[] = [];
  for (let i = 0; i < gh; i++) {
    if (patch * i + half >= ih) break;
    for (let j = 0; j < gw; j++) {
      if (patch * j + half >= iw) break;
      const v = p[i * gw + j]!;
      if (v > opts.pointThreshold) cand.push({ i, j, v, order: i * gw + j });
    }
  }
  if (opts.seed === undefined) {
    cand.sort((a, b) => b.v - a.v || a.order - b.order);
  } else {
    // Fisher-Yates with a per-class stream: the same seed gives the same points for a class
    // whatever the other classes are.
    const next = mulberry32((opts.seed ^ Math.imul(classIndex + 1, 0x9e3779b1)) >>> 0);
    for (let k = cand.length - 1; k > 0; k--) {
      const r = Math.floor(next() * (k + 1));
      [cand[k], cand[r]] = [cand[r]!, cand[k]!];
    }
  }
  const taken: [number, number][] = [];
  for (const c of cand) {
    if (taken.length >= opts.maxPoints) break;
    if (taken.some(([ti, tj]) => Math.max(Math.abs(ti - c.i), Math.abs(tj - c.j)) <= opts.minTokenDistance)) continue;
    taken.push([c.i, c.j]);
  }
  return { tokens: taken, coords: taken.map(([i, j]) => [patch * j + half, patch * i + half]) };
}

export interface RefinementPlan {
  /** Per class (all classes): points (empty = not decoded). */
  points: ClassPoints[];
  /** Classes to decode, ascending. */
  decoded: number[];
  /** Mask-prompt logits on the g x g grid for the decoded classes, [K, gh, gw] (K = decoded.length). */
  promptLogits: Float32Array;
}

/** Steps 2 and 3 for every class of P [C, gh * gw]. */
export function planRefinement(
  P: Float32Array,
  classes: number,
  gh: number,
  gw: number,
  inputSize: readonly [number, number],
  patch: number,
  opts: ResolvedRefinement,
): RefinementPlan {
  const N = gh * gw;
  if (P.length !== classes * N) throw new RefinementError(`planRefinement: P has ${P.length} values, expected ${classes} x ${gh} x ${gw}`);
  const points: ClassPoints[] = [];
  const decoded: number[] = [];
  for (let c = 0; c < classes; c++) {
    const pts = selectPoints(P.subarray(c * N, (c + 1) * N), gh, gw, inputSize, patch, opts, c);
    points.push(pts);
    if (pts.tokens.length > 0) decoded.push(c);
  }
  const promptLogits = new Float32Array(decoded.length * N);
  decoded.forEach((c, k) => promptLogits.set(maskPromptLogits(P.subarray(c * N, (c + 1) * N), opts.clamp), k * N));
  return { points, decoded, promptLogits };
}
