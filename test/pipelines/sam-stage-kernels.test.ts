/**
 * SAM's stage kernels (src/model/sam/stage-kernels.ts) against plain CPU loops: exact results
 * (bits and counts are integers; the normalisation is one float32 subtract and divide).
 * Odd sizes: pixel counts that are not multiples of 32 (bit words) or of the 16384-pixel count
 * block, one-pixel masks, non-zero tensor offsets, values exactly at the thresholds.
 */
import { describe, expect, it } from 'vitest';
import { normalizePadU8, thresholdBits, thresholdCounts, unpackMaskBits } from '../../src/model/sam/stage-kernels.js';
import { useGpu } from '../helpers/gpu.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

describe('thresholdBits / unpackMaskBits', () => {
  for (const [n, h, w] of [[3, 7, 9], [1, 1, 1], [2, 33, 65], [5, 31, 1]] as const) {
    it(`${n} masks of ${h}x${w}`, async () => {
      const ctx = gpu();
      const rng = new Rng(n * 1000 + h * 10 + w);
      const x = rng.randn(n * h * w);
      x[0] = 0; // exactly at the threshold: not above it
      const base = ctx.upload(new Float32Array([9, ...x]), [n * h * w + 1]);
      const view = base.slice(0, 1, n * h * w + 1).reshape([n, h, w]);
      const bits = thresholdBits(ctx, view, 0);
      expect(bits.shape).toEqual([n, Math.ceil((h * w) / 32)]);
      const words = (await ctx.read(bits)) as Uint32Array;
      for (let m = 0; m < n; m++) {
        const got = unpackMaskBits(words, m, h * w);
        for (let p = 0; p < h * w; p++) expect(got[p], `mask ${m} pixel ${p}`).toBe(x[m * h * w + p]! > 0 ? 1 : 0);
      }
      for (const t of [base, view, bits]) t.dispose();
    });
  }
});

describe('thresholdCounts', () => {
  for (const [n, pixels] of [[2, 16384 * 2 + 77], [1, 5], [4, 16384]] as const) {
    it(`${n} masks of ${pixels} pixels`, async () => {
      const ctx = gpu();
      const rng = new Rng(pixels + n);
      const x = rng.randn(n * pixels, 2);
      x[3] = 1;
      x[4] = -1;
      const t = ctx.upload(x, [n, pixels]);
      const got = await thresholdCounts(ctx, t, 1, -1);
      for (let m = 0; m < n; m++) {
        let hi = 0;
        let lo = 0;
        for (let p = 0; p < pixels; p++) {
          const v = x[m * pixels + p]!;
          if (v > 1) hi++;
          if (v > -1) lo++;
        }
        expect([got[2 * m], got[2 * m + 1]], `mask ${m}`).toEqual([hi, lo]);
      }
      t.dispose();
    });
  }
});

describe('normalizePadU8', () => {
  it('odd image inside a padded square; byte packing across words', async () => {
    const ctx = gpu();
    const [h, w, S] = [5, 7, 9];
    const rng = new Rng(7);
    const rgb = Uint8Array.from({ length: h * w * 3 }, () => rng.int(0, 256));
    rgb[0] = 255;
    rgb[1] = 0;
    const mean = [123.675, 116.28, 103.53];
    const std = [58.395, 57.12, 57.375];
    const t = normalizePadU8(ctx, rgb, h, w, S, mean, std);
    const got = (await ctx.read(t)) as Float32Array;
    const fr = Math.fround;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) {
          const exp = y < h && x < w ? fr(fr(rgb[(y * w + x) * 3 + c]! - fr(mean[c]!)) / fr(std[c]!)) : 0;
          expect(got[(c * S + y) * S + x], `c${c} y${y} x${x}`).toBe(exp);
        }
      }
    }
    t.dispose();
    expect(() => normalizePadU8(ctx, rgb, h, w, 6, mean, std)).toThrow(/does not fit the 6x6 input/);
    expect(() => normalizePadU8(ctx, rgb.subarray(1), h, w, S, mean, std)).toThrow(/104 bytes for a 5x7 RGB image/);
  });
});
