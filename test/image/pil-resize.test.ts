/**
 * pilResize against values derived from first principles (no Pillow, no shared code with the
 * implementation): the continuous definition of antialiased resampling — output sample i sits at
 * (i + ½)·s in source coordinates (s = in/out), source pixel j at j + ½, weights K(d / max(s, 1))
 * normalised over the pixels inside the image — evaluated in float64 and rounded.
 *
 * Tolerances, declared per case: hand-worked cases are exact; comparisons with the continuous
 * reference allow 1 step (Pillow rounds the weights to 22-bit fixed point and, in 2-D, rounds
 * the intermediate rows to uint8).
 */
import { describe, expect, it } from 'vitest';
import { ImageError, type ImageU8 } from '../../src/image/image.js';
import { PIL_PRECISION_BITS, pilCoefficients, pilResize, type PilFilter } from '../../src/image/pil-resize.js';
import { describeBytes, diffBytes } from './image-compare.js';

const KERNELS: Record<string, { k: (x: number) => number; r: number }> = {
  box: { k: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0), r: 0.5 },
  bilinear: { k: (x) => Math.max(0, 1 - Math.abs(x)), r: 1 },
  bicubic: {
    // Keys (1981) cubic convolution with a = −0.5 (Catmull–Rom).
    k: (x) => {
      const t = Math.abs(x);
      if (t < 1) return 1.5 * t ** 3 - 2.5 * t ** 2 + 1;
      if (t < 2) return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2;
      return 0;
    },
    r: 2,
  },
  lanczos: {
    k: (x) => {
      if (x <= -3 || x >= 3) return 0;
      const s = (v: number): number => (v === 0 ? 1 : Math.sin(Math.PI * v) / (Math.PI * v));
      return s(x) * s(x / 3);
    },
    r: 3,
  },
};

/** Continuous 1-D resampling of `src` (length n) to `m` samples, float64, no rounding. */
function continuous1d(src: ArrayLike<number>, m: number, filter: string): Float64Array {
  const n = src.length;
  const s = n / m;
  const f = Math.max(s, 1);
  const { k } = KERNELS[filter]!;
  const out = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const c = (i + 0.5) * s;
    let acc = 0;
    let wsum = 0;
    for (let j = 0; j < n; j++) {
      const w = k((j + 0.5 - c) / f);
      acc += w * src[j]!;
      wsum += w;
    }
    out[i] = acc / wsum;
  }
  return out;
}

const clamp255 = (v: number): number => Math.min(255, Math.max(0, Math.round(v)));

/**
 * Separable 2-D resampling of one channel: rows first, each intermediate sample stored as uint8
 * (rounded and clipped, as any 8-bit two-pass resampler must), then columns, rounded again.
 */
function continuous2d(img: ImageU8, ch: number, w: number, h: number, filter: string): Uint8Array {
  const { width: W, height: H, channels: C, data } = img;
  const rows: Float64Array[] = [];
  for (let y = 0; y < H; y++) {
    const row = new Float64Array(W);
    for (let x = 0; x < W; x++) row[x] = data[(y * W + x) * C + ch]!;
    rows.push(continuous1d(row, w, filter));
  }
  const out = new Uint8Array(w * h);
  for (let x = 0; x < w; x++) {
    const col = rows.map((r) => clamp255(r[x]!));
    const v = continuous1d(col, h, filter);
    for (let y = 0; y < h; y++) out[y * w + x] = clamp255(v[y]!);
  }
  return out;
}

/** Seeded xorshift noise, so the synthetic images are the same on every run. */
function noiseImage(w: number, h: number, c: number, seed: number): ImageU8 {
  let s = seed >>> 0 || 1;
  const data = new Uint8Array(w * h * c);
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[i] = s & 255;
  }
  return { width: w, height: h, channels: c, data };
}

function solid(w: number, h: number, px: number[]): ImageU8 {
  const c = px.length;
  const data = new Uint8Array(w * h * c);
  for (let i = 0; i < w * h; i++) data.set(px, i * c);
  return { width: w, height: h, channels: c, data };
}

const row = (values: number[]): ImageU8 => ({ width: values.length, height: 1, channels: 1, data: Uint8Array.from(values) });
const col = (values: number[]): ImageU8 => ({ width: 1, height: values.length, channels: 1, data: Uint8Array.from(values) });
const ALL: PilFilter[] = ['box', 'bilinear', 'hamming', 'bicubic', 'lanczos'];

describe('pilResize: invariants', () => {
  it('a constant image stays constant at every size and filter (exact)', () => {
    const sizes: [number, number, number, number][] = [
      [1, 1, 5, 3], [37, 23, 100, 61], [37, 23, 7, 5], [1800, 2, 7, 1], [13, 7, 5, 11], [9, 9, 9, 4], [4, 4, 1, 1],
    ];
    for (const px of [[0], [1], [128], [254], [255], [3, 200, 77], [90, 91, 92, 255]]) {
      for (const [W, H, w, h] of sizes) {
        for (const filter of ALL) {
          const out = pilResize(solid(W, H, px), w, h, { filter });
          const want = solid(w, h, px).data;
          const d = diffBytes(out.data, want);
          expect(d.maxAbs, `${describeBytes(`${W}×${H}→${w}×${h} ${filter} [${px}]`, d, w, px.length)}`).toBe(0);
        }
      }
    }
  });

  it('a 1×1 image upscales to copies of its pixel (exact)', () => {
    for (const filter of ALL) {
      const out = pilResize({ width: 1, height: 1, channels: 3, data: Uint8Array.of(200, 10, 77) }, 4, 3, { filter });
      expect(Array.from(out.data), filter).toEqual(Array.from(solid(4, 3, [200, 10, 77]).data));
    }
  });

  it('never modifies its input and returns a new buffer even when nothing changes', () => {
    const img = noiseImage(11, 7, 3, 5);
    const copy = new Uint8Array(img.data);
    const same = pilResize(img, 11, 7, { filter: 'bicubic' });
    expect(same.data).not.toBe(img.data);
    expect(Array.from(same.data)).toEqual(Array.from(copy));
    pilResize(img, 5, 13, { filter: 'lanczos' });
    expect(Array.from(img.data)).toEqual(Array.from(copy));
  });
});

describe('pilResize: hand-worked cases (exact)', () => {
  it('bilinear 2 → 4 (upscale): samples at ¼ and ¾ between the two pixels, edges clamp', () => {
    // Output centres 0.25, 0.75, 1.25, 1.75 in pixel units; source centres 0.5, 1.5.
    expect(Array.from(pilResize(row([0, 200]), 4, 1, { filter: 'bilinear' }).data)).toEqual([0, 50, 150, 200]);
    expect(Array.from(pilResize(row([10, 30]), 4, 1, { filter: 'bilinear' }).data)).toEqual([10, 15, 25, 30]);
    expect(Array.from(pilResize(col([10, 30]), 1, 4, { filter: 'bilinear' }).data)).toEqual([10, 15, 25, 30]);
  });

  it('bilinear 8 → 4 (downscale): the triangle widens to 2 source pixels per side', () => {
    const v = [7, 70, 140, 210, 0, 35, 100, 250];
    // Output centre 1: pixels at 0.5, 1.5, 2.5 lie 0.5, 0.5, 1.5 away → weights ¾, ¾, ¼ (/1.75).
    // Interior centres 3 and 5: weights ¼, ¾, ¾, ¼ (/2). Last centre 7: mirror of the first.
    const want = [
      (0.75 * v[0]! + 0.75 * v[1]! + 0.25 * v[2]!) / 1.75,
      (0.25 * v[1]! + 0.75 * v[2]! + 0.75 * v[3]! + 0.25 * v[4]!) / 2,
      (0.25 * v[3]! + 0.75 * v[4]! + 0.75 * v[5]! + 0.25 * v[6]!) / 2,
      (0.25 * v[5]! + 0.75 * v[6]! + 0.75 * v[7]!) / 1.75,
    ].map(Math.round);
    expect(want).toEqual([53, 140, 52, 155]);
    expect(Array.from(pilResize(row(v), 4, 1, { filter: 'bilinear' }).data)).toEqual(want);
  });

  it('box 8 → 2 is the mean of each 4 pixels', () => {
    expect(Array.from(pilResize(row([0, 0, 1, 3, 100, 100, 103, 105]), 2, 1, { filter: 'box' }).data)).toEqual([1, 102]);
  });

  it('bicubic reproduces a linear ramp away from the borders (up and down)', () => {
    const ramp = Array.from({ length: 50 }, (_, j) => 10 + 4 * j);
    for (const m of [125, 20]) {
      const s = 50 / m;
      const out = pilResize(row(ramp), m, 1, { filter: 'bicubic' }).data;
      let checked = 0;
      for (let i = 0; i < m; i++) {
        const c = (i + 0.5) * s; // centre in source units
        if (c - 2 * Math.max(s, 1) < 0 || c + 2 * Math.max(s, 1) > 50) continue; // kernel crosses a border
        expect(Math.abs(out[i]! - (10 + 4 * (c - 0.5))), `m=${m} i=${i}`).toBeLessThanOrEqual(0.5 + 1e-9);
        checked++;
      }
      expect(checked).toBeGreaterThan(m / 2);
    }
  });

  it('bicubic overshoot at a hard edge is clipped to [0, 255]', () => {
    const out = pilResize(row([0, 0, 0, 255, 255, 255]), 24, 1, { filter: 'bicubic' }).data;
    expect(Math.min(...out)).toBe(0);
    expect(Math.max(...out)).toBe(255);
    // Without clipping the undershoot before the edge would be negative: the continuous value is.
    const cont = continuous1d([0, 0, 0, 255, 255, 255], 24, 'bicubic');
    expect(Math.min(...cont)).toBeLessThan(-1);
    expect(Math.max(...cont)).toBeGreaterThan(256);
  });

  it('box [0.5, 0, 4.5, 1] at the same width samples half-way between neighbours', () => {
    const out = pilResize(row([0, 10, 30, 60, 100]), 4, 1, { filter: 'bilinear', box: [0.5, 0, 4.5, 1] });
    expect(Array.from(out.data)).toEqual([5, 20, 45, 80]);
  });

  it('an integer box the size of the output is a plain crop', () => {
    const img = noiseImage(9, 8, 3, 77);
    const out = pilResize(img, 4, 3, { filter: 'lanczos', box: [2, 5, 6, 8] });
    const want: number[] = [];
    for (let y = 5; y < 8; y++) for (let x = 2; x < 6; x++) for (let c = 0; c < 3; c++) want.push(img.data[(y * 9 + x) * 3 + c]!);
    expect(Array.from(out.data)).toEqual(want);
  });

  it('RGBA is resampled premultiplied: transparent pixels lend no colour', () => {
    // Opaque blue next to fully transparent red: averaging premultiplied colour gives blue at
    // alpha ½ (straight averaging would give purple).
    const img: ImageU8 = { width: 2, height: 1, channels: 4, data: Uint8Array.of(255, 0, 0, 0, 0, 0, 255, 255) };
    expect(Array.from(pilResize(img, 1, 1, { filter: 'box' }).data)).toEqual([0, 0, 255, 128]);
    expect(Array.from(pilResize(img, 1, 1, { filter: 'box', premultiplyAlpha: false }).data)).toEqual([128, 0, 128, 128]);
  });
});

describe('pilResize vs the continuous definition (max |Δ| ≤ 1)', () => {
  it('extreme 1-D downscale 1800 → 7 (horizontal and vertical only)', () => {
    const src = Array.from(noiseImage(1800, 1, 1, 9).data);
    for (const filter of ['bilinear', 'bicubic', 'box', 'lanczos'] as PilFilter[]) {
      const want = Array.from(continuous1d(src, 7, filter), clamp255);
      const h = pilResize(row(src), 7, 1, { filter }).data;
      const v = pilResize(col(src), 1, 7, { filter }).data;
      expect(diffBytes(h, want).maxAbs, `${filter} horizontal`).toBeLessThanOrEqual(1);
      expect(diffBytes(v, want).maxAbs, `${filter} vertical`).toBeLessThanOrEqual(1);
    }
  });

  it('2-D: odd sizes, up and down, every channel layout', () => {
    const cases: [number, number, number, number][] = [
      [37, 23, 100, 61], [37, 23, 7, 5], [13, 7, 5, 11], [64, 48, 17, 31], [5, 5, 1, 1], [1, 9, 4, 20],
    ];
    let total = 0;
    let exact = 0;
    for (const [W, H, w, h] of cases) {
      for (const c of [1, 3]) {
        const img = noiseImage(W, H, c, W * 131 + H * 7 + c);
        for (const filter of ['bilinear', 'bicubic', 'lanczos'] as PilFilter[]) {
          const out = pilResize(img, w, h, { filter });
          for (let ch = 0; ch < c; ch++) {
            const want = continuous2d(img, ch, w, h, filter);
            const got = out.data.filter((_, i) => i % c === ch);
            const d = diffBytes(got, want);
            expect(d.maxAbs, describeBytes(`${W}×${H}×${c}→${w}×${h} ${filter} ch${ch}`, d, w, 1)).toBeLessThanOrEqual(1);
            total += d.n;
            exact += d.n - d.differing;
          }
        }
      }
    }
    // Only the 22-bit fixed-point weights separate the two, so all but rare near-ties agree.
    console.log(`2-D vs continuous: ${exact} of ${total} samples identical (${((100 * exact) / total).toFixed(3)}%)`);
    expect(exact / total).toBeGreaterThan(0.995);
  });
});

describe('pilCoefficients', () => {
  it('weights are normalised, fixed point sums to ~2^22, taps stay inside the image', () => {
    for (const [n, m] of [[1800, 7], [37, 100], [23, 23], [1, 5], [534, 171]] as const) {
      for (const filter of ALL) {
        const co = pilCoefficients(n, 0, n, m, filter);
        const f = KERNELS[filter] ? Math.max(n / m, 1) * KERNELS[filter]!.r : Math.max(n / m, 1);
        expect(co.ksize).toBe(Math.ceil(f) * 2 + 1);
        for (let i = 0; i < m; i++) {
          const lo = co.bounds[2 * i]!;
          const cnt = co.bounds[2 * i + 1]!;
          expect(lo).toBeGreaterThanOrEqual(0);
          expect(lo + cnt).toBeLessThanOrEqual(n);
          let s = 0;
          let fs = 0;
          for (let t = 0; t < cnt; t++) {
            s += co.weights[i * co.ksize + t]!;
            fs += co.fixed[i * co.ksize + t]!;
          }
          expect(Math.abs(s - 1)).toBeLessThan(1e-12);
          expect(Math.abs(fs - 2 ** PIL_PRECISION_BITS)).toBeLessThanOrEqual(cnt);
        }
      }
    }
  });
});

describe('pilResize: bad input', () => {
  const img = noiseImage(4, 3, 3, 1);
  it('names what is wrong', () => {
    expect(() => pilResize({ ...img, data: new Uint8Array(5) }, 2, 2)).toThrow(/5 bytes but 4×3×3 needs 36/);
    expect(() => pilResize({ ...img, channels: 5 }, 2, 2)).toThrow(/channels must be 1 \(L\), 2 \(LA\), 3 \(RGB\) or 4 \(RGBA\), got 5/);
    expect(() => pilResize({ ...img, data: new Float32Array(36) as unknown as Uint8Array }, 2, 2)).toThrow(/Uint8Array/);
    expect(() => pilResize(img, 0, 2)).toThrow(/positive integers, got 0×2/);
    expect(() => pilResize(img, 2.5, 2)).toThrow(ImageError);
    expect(() => pilResize(img, 2, 2, { filter: 'nearest' as PilFilter })).toThrow(/unknown filter 'nearest'/);
    expect(() => pilResize(img, 2, 2, { box: [-1, 0, 2, 2] })).toThrow(/offset can't be negative/);
    expect(() => pilResize(img, 2, 2, { box: [0, 0, 5, 2] })).toThrow(/exceeds the 4×3 image/);
    expect(() => pilResize(img, 2, 2, { box: [3, 0, 2, 2] })).toThrow(/empty/);
    expect(() => pilResize(img, 2, 2, { box: [0, 0, NaN, 2] })).toThrow(/4 finite numbers/);
  });
});
