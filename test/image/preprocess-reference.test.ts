/**
 * The preprocessing against the official pipelines' own outputs (fixtures/reference, made with
 * Pillow 9.4, torchvision 0.14, PyTorch 1.13):
 * - SAM `SamPredictor.set_image` (tiny config: longest side 256): `resized_image`, `preprocessed`;
 * - CLIP `clip._transform(64)`: `photos_resized_u8`, `images` rows 1–2 (the photos);
 * - SAM-CLIP: `r160/r112.resized_image` (square resizes), `r256.resized_image` (refinement input)
 *   and each `rR.preprocessed`.
 * Declared tolerances: resized uint8 max |Δ| ≤ 1 (the project's gate; measured: identical), float
 * inputs rel L2 ≤ 1e-6 (measured: bit-identical).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ImageU8 } from '../../src/image/image.js';
import { clipPreprocess, samPreprocess, samclipPreprocess } from '../../src/image/preprocess.js';
import { readSafetensorsSimple } from '../helpers/read-safetensors-simple.js';
import { compare, formatComparison } from '../helpers/comparison.js';
import { describeBytes, diffBytes } from './image-compare.js';

const fixture = (p: string): string => fileURLToPath(new URL(`../fixtures/${p}`, import.meta.url));
const photos = readSafetensorsSimple(fixture('images/decoded_rgb.safetensors'));
const BYTE_TOL = 1;
const REL_L2_TOL = 1e-6;

function photo(name: 'truck' | 'dog'): ImageU8 {
  const t = photos.get(name);
  const [h, w, c] = t.shape as [number, number, number];
  return { width: w, height: h, channels: c, data: t.bytes };
}

function checkBytes(name: string, actual: ImageU8, expected: Uint8Array, shape: number[]): void {
  expect([actual.height, actual.width, actual.channels], `${name}: shape`).toEqual(shape);
  const d = diffBytes(actual.data, expected);
  const msg = describeBytes(name, d, actual.width, actual.channels);
  console.log(msg);
  expect(d.maxAbs, msg).toBeLessThanOrEqual(BYTE_TOL);
}

function checkFloats(name: string, actual: Float32Array, expected: Float32Array): void {
  const d = compare(actual, expected, { relL2: REL_L2_TOL });
  const msg = formatComparison(name, d, { relL2: REL_L2_TOL });
  console.log(msg);
  expect(d.nonFiniteMismatch, msg).toBe(0);
  expect(d.relL2, msg).toBeLessThanOrEqual(REL_L2_TOL);
}

describe('SAM preprocessing vs SamPredictor (tiny: longest side 256)', () => {
  for (const name of ['truck', 'dog'] as const) {
    it(`${name}: resized_image and preprocessed`, () => {
      const ref = readSafetensorsSimple(fixture(`reference/sam_tiny.photo_${name}.safetensors`));
      const img = photo(name);
      const out = samPreprocess(img, { size: 256 });
      expect(out.originalSize).toEqual([img.height, img.width]);
      expect(out.inputSize).toEqual([171, 256]);
      expect(out.shape).toEqual([1, 3, 256, 256]);
      checkBytes(`sam ${name} resized_image`, out.resized, ref.u8('resized_image'), ref.get('resized_image').shape);
      expect(ref.get('preprocessed').shape).toEqual([1, 3, 256, 256]);
      checkFloats(`sam ${name} preprocessed`, out.input, ref.f32('preprocessed'));
    });
  }
});

describe('CLIP preprocessing vs clip._transform(64)', () => {
  const ref = readSafetensorsSimple(fixture('reference/clip_tiny.safetensors'));
  const resized = ref.u8('photos_resized_u8'); // (2, 64, 64, 3): truck, dog
  const images = ref.f32('images'); // (3, 3, 64, 64): row 0 synthetic, rows 1–2 truck, dog
  const per = 64 * 64 * 3;
  (['truck', 'dog'] as const).forEach((name, i) => {
    it(`${name}: photos_resized_u8[${i}] and images[${i + 1}]`, () => {
      expect(ref.get('photos_resized_u8').shape).toEqual([2, 64, 64, 3]);
      const out = clipPreprocess(photo(name), { size: 64 });
      checkBytes(`clip ${name} resized`, out.resized, resized.subarray(i * per, (i + 1) * per), [64, 64, 3]);
      checkFloats(`clip ${name} images[${i + 1}]`, out.input, images.subarray((i + 1) * per, (i + 2) * per));
    });
  });
});

describe('SAM-CLIP preprocessing vs the samclip fixtures', () => {
  for (const name of ['truck', 'dog'] as const) {
    const ref = readSafetensorsSimple(fixture(`reference/samclip/samclip_tiny.photo_${name}.safetensors`));
    for (const r of [160, 112]) {
      it(`${name}: r${r} square resize (aspect not kept) and normalisation`, () => {
        const out = samclipPreprocess(photo(name), r);
        checkBytes(`samclip ${name} r${r}.resized_image`, out.resized, ref.u8(`r${r}.resized_image`), [r, r, 3]);
        expect(ref.get(`r${r}.preprocessed`).shape).toEqual([1, 3, r, r]);
        checkFloats(`samclip ${name} r${r}.preprocessed`, out.input, ref.f32(`r${r}.preprocessed`));
      });
    }
    it(`${name}: r256 refinement input (SAM's own path)`, () => {
      const out = samPreprocess(photo(name), { size: 256 });
      checkBytes(`samclip ${name} r256.resized_image`, out.resized, ref.u8('r256.resized_image'), [171, 256, 3]);
      checkFloats(`samclip ${name} r256.preprocessed`, out.input, ref.f32('r256.preprocessed'));
    });
  }
});
