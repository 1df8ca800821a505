/**
 * Preprocessing layout and arithmetic on small synthetic images: NCHW order, float32 rounding in
 * PyTorch's order, zero padding, channel handling and error messages. (The comparison with the
 * official pipelines is in preprocess-reference.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { toRgb, type ImageU8 } from '../../src/image/image.js';
import {
  CLIP_MEAN,
  CLIP_STD,
  SAM_PIXEL_MEAN,
  SAM_PIXEL_STD,
  clipPreprocess,
  fixedResize,
  normalizeToChw,
  samPreprocess,
  samclipPreprocess,
} from '../../src/image/preprocess.js';

const f = Math.fround;

function gradient(w: number, h: number, c: number): ImageU8 {
  const data = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) data[(y * w + x) * c + k] = (x * 7 + y * 13 + k * 50) & 255;
  return { width: w, height: h, channels: c, data };
}

describe('normalizeToChw', () => {
  it('SAM: (v − mean) / std per channel, NCHW, each step rounded to float32', () => {
    const img: ImageU8 = { width: 2, height: 1, channels: 3, data: Uint8Array.of(0, 128, 255, 10, 20, 30) };
    const out = normalizeToChw(img, { mean: SAM_PIXEL_MEAN, std: SAM_PIXEL_STD });
    const want = (v: number, c: number): number => f(f(v - f(SAM_PIXEL_MEAN[c]!)) / f(SAM_PIXEL_STD[c]!));
    expect(Array.from(out)).toEqual([want(0, 0), want(10, 0), want(128, 1), want(20, 1), want(255, 2), want(30, 2)]);
    // Sanity on the numbers themselves: (0 − 123.675) / 58.395 ≈ −2.1179.
    expect(out[0]).toBeCloseTo(-2.117904, 5);
  });

  it('CLIP: v / 255 first, then (x − mean) / std', () => {
    const img: ImageU8 = { width: 1, height: 1, channels: 3, data: Uint8Array.of(255, 0, 51) };
    const out = normalizeToChw(img, { mean: CLIP_MEAN, std: CLIP_STD, divide255: true });
    const want = (v: number, c: number): number => f(f(f(v / 255) - f(CLIP_MEAN[c]!)) / f(CLIP_STD[c]!));
    expect(Array.from(out)).toEqual([want(255, 0), want(0, 1), want(51, 2)]);
    expect(out[0]).toBeCloseTo((1 - 0.48145466) / 0.26862954, 5);
  });

  it('pads bottom/right with zeros after normalisation', () => {
    const img = gradient(3, 2, 3);
    const out = normalizeToChw(img, { mean: SAM_PIXEL_MEAN, std: SAM_PIXEL_STD, padTo: [4, 5] });
    expect(out.length).toBe(3 * 4 * 5);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 5; x++) {
          const v = out[c * 20 + y * 5 + x]!;
          if (y < 2 && x < 3) expect(v).toBe(f(f(img.data[(y * 3 + x) * 3 + c]! - f(SAM_PIXEL_MEAN[c]!)) / f(SAM_PIXEL_STD[c]!)));
          else expect(v).toBe(0);
        }
      }
    }
  });

  it('rejects non-RGB input, a smaller pad and a zero std', () => {
    expect(() => normalizeToChw(gradient(2, 2, 4), { mean: SAM_PIXEL_MEAN, std: SAM_PIXEL_STD })).toThrow(/RGB image \(3 channels\), got 4/);
    expect(() => normalizeToChw(gradient(4, 4, 3), { mean: SAM_PIXEL_MEAN, std: SAM_PIXEL_STD, padTo: [3, 4] })).toThrow(/cannot pad a 4×4 image to the smaller 3×4/);
    expect(() => normalizeToChw(gradient(2, 2, 3), { mean: SAM_PIXEL_MEAN, std: [1, 0, 1] })).toThrow(/std/);
  });
});

describe('samPreprocess', () => {
  it('resizes the longest side, pads to a square and reports both sizes', () => {
    const img = gradient(50, 30, 3);
    const out = samPreprocess(img, { size: 32 });
    expect(out.originalSize).toEqual([30, 50]);
    expect(out.inputSize).toEqual([19, 32]); // 30 · 32/50 = 19.2 → 19
    expect([out.resized.width, out.resized.height]).toEqual([32, 19]);
    expect(out.shape).toEqual([1, 3, 32, 32]);
    expect(out.input.length).toBe(3 * 32 * 32);
    // Row 19 onwards is padding in every channel.
    for (let c = 0; c < 3; c++) for (let i = 19 * 32; i < 32 * 32; i++) expect(out.input[c * 1024 + i]).toBe(0);
  });

  it('an image already at the target size is only normalised', () => {
    const img = gradient(16, 9, 3);
    const out = samPreprocess(img, { size: 16 });
    expect(Array.from(out.resized.data)).toEqual(Array.from(img.data));
  });

  it('asks for RGB input and refuses degenerate shapes', () => {
    expect(() => samPreprocess(gradient(8, 8, 4), { size: 16 })).toThrow(/RGB images \(3 channels\), got 4; convert with toRgb/);
    expect(() => samPreprocess(gradient(2000, 1, 3), { size: 16 })).toThrow(/would be 0×16/);
  });
});

describe('clipPreprocess / samclipPreprocess / fixedResize', () => {
  it('CLIP: shorter side to size, centre crop, any channel layout', () => {
    for (const c of [1, 2, 3, 4]) {
      const out = clipPreprocess(gradient(40, 25, c), { size: 16 });
      expect(out.shape).toEqual([1, 3, 16, 16]);
      expect([out.resized.width, out.resized.height, out.resized.channels]).toEqual([16, 16, 3]);
      expect(out.input.length).toBe(3 * 16 * 16);
    }
    // Grey input: the three channels carry the same bytes.
    const g = clipPreprocess(gradient(40, 25, 1), { size: 16 }).resized.data;
    for (let i = 0; i < g.length; i += 3) expect([g[i + 1], g[i + 2]]).toEqual([g[i], g[i]]);
  });

  it('SAM-CLIP: square resize (aspect not kept), SAM normalisation, no padding', () => {
    const img = gradient(40, 25, 3);
    const out = samclipPreprocess(img, 24);
    expect([out.resized.width, out.resized.height]).toEqual([24, 24]);
    expect(Array.from(out.resized.data)).toEqual(Array.from(fixedResize(img, 24, 24).data));
    expect(Array.from(out.input)).toEqual(Array.from(normalizeToChw(out.resized, { mean: SAM_PIXEL_MEAN, std: SAM_PIXEL_STD })));
  });

  it('toRgb replicates grey and drops alpha', () => {
    expect(Array.from(toRgb({ width: 1, height: 1, channels: 2, data: Uint8Array.of(9, 100) }).data)).toEqual([9, 9, 9]);
    expect(Array.from(toRgb({ width: 1, height: 1, channels: 4, data: Uint8Array.of(1, 2, 3, 4) }).data)).toEqual([1, 2, 3]);
  });
});
