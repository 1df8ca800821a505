/**
 * Size and coordinate arithmetic: SAM's get_preprocess_shape / apply_coords / apply_boxes against the
 * prompts recorded in the reference manifest (exact after float32 rounding, as the predictor feeds
 * float32 to the model), torchvision's Resize(int) size rule and CenterCrop rounding.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ImageError } from '../../src/image/image.js';
import {
  applyBoxes,
  applyCoords,
  centerCropOffsets,
  samResizeShape,
  shortSideResizeShape,
} from '../../src/image/transforms.js';

const manifestPath = fileURLToPath(new URL('../fixtures/reference/manifest.json', import.meta.url));

interface SamCase {
  name: string;
  point_coords?: number[][];
  transformed_point_coords?: number[][];
  box?: number[] | number[][];
  transformed_box?: number[][];
}
interface SamPhoto {
  original_size: [number, number];
  input_size: [number, number];
  cases: SamCase[];
}

const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
  sam: { config: { img_size: number }; photos: SamPhoto[] };
};

describe('SAM ResizeLongestSide arithmetic', () => {
  it('get_preprocess_shape: int(x + 0.5) rounding, worked by hand', () => {
    // 1200×1800 → scale 1024/1800: 682.666… → 683; 1024.
    expect(samResizeShape(1200, 1800, 1024)).toEqual([683, 1024]);
    // 534×800 → 534·1.28 = 683.52 → 684 (the dog at 1024 px).
    expect(samResizeShape(534, 800, 1024)).toEqual([684, 1024]);
    expect(samResizeShape(534, 800, 256)).toEqual([171, 256]); // 170.88 → 171
    expect(samResizeShape(1000, 1000, 1024)).toEqual([1024, 1024]);
    expect(samResizeShape(3, 2000, 1024)).toEqual([2, 1024]); // 1.536 → 2
    expect(samResizeShape(1, 4000, 1024)).toEqual([0, 1024]); // 0.256 → 0, as SAM computes it
    expect(samResizeShape(2, 8, 4)).toEqual([1, 4]); // exactly 1.0
    expect(samResizeShape(3, 4, 2)).toEqual([2, 2]); // 1.5 + 0.5 = 2.0 → 2 (a tie rounds up)
  });

  it('matches the input sizes recorded for the photos', () => {
    for (const p of manifest.sam.photos) {
      expect(samResizeShape(p.original_size[0], p.original_size[1], manifest.sam.config.img_size)).toEqual(p.input_size);
    }
  });

  it('apply_coords / apply_boxes reproduce every prompt in the manifest (exact in float32)', () => {
    let checked = 0;
    for (const p of manifest.sam.photos) {
      for (const c of p.cases) {
        if (c.point_coords && c.transformed_point_coords) {
          const got = applyCoords(c.point_coords.flat(), p.original_size, manifest.sam.config.img_size);
          expect(Array.from(got, Math.fround), c.name).toEqual(c.transformed_point_coords.flat());
          checked++;
        }
        if (c.box && c.transformed_box) {
          const got = applyBoxes((c.box as number[]).flat(), p.original_size, manifest.sam.config.img_size);
          expect(Array.from(got, Math.fround), c.name).toEqual(c.transformed_box.flat());
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(8);
  });

  it('apply_coords scales x by new_w/old_w and y by new_h/old_h (float64)', () => {
    const got = applyCoords([500, 375, 1799, 0], [1200, 1800], 1024);
    expect(Array.from(got)).toEqual([500 * (1024 / 1800), 375 * (683 / 1200), 1799 * (1024 / 1800), 0]);
  });

  it('rejects malformed input with a message', () => {
    expect(() => applyCoords([1, 2, 3], [10, 10], 4)).toThrow(/pairs, got 3 numbers/);
    expect(() => applyBoxes([1, 2, 3, 4, 5, 6], [10, 10], 4)).toThrow(/4 numbers per box/);
    expect(() => samResizeShape(0, 10, 4)).toThrow(ImageError);
    expect(() => samResizeShape(10, 10, 0)).toThrow(/target length/);
  });
});

describe('torchvision Resize(int) and CenterCrop', () => {
  it('shorter side to size, longer side int(size · long / short)', () => {
    expect(shortSideResizeShape(1200, 1800, 224)).toEqual([224, 336]);
    expect(shortSideResizeShape(534, 800, 224)).toEqual([224, 335]); // 335.58 → 335
    expect(shortSideResizeShape(534, 800, 64)).toEqual([64, 95]); // 95.88 → 95
    expect(shortSideResizeShape(800, 534, 64)).toEqual([95, 64]); // portrait
    expect(shortSideResizeShape(100, 100, 224)).toEqual([224, 224]);
    expect(shortSideResizeShape(3, 1000, 2)).toEqual([2, 666]); // 666.67 → 666
  });

  it('crop offsets use round-half-to-even like Python round()', () => {
    expect(centerCropOffsets(64, 95, 64, 64)).toEqual([0, 16]); // 15.5 → 16 (even)
    expect(centerCropOffsets(64, 97, 64, 64)).toEqual([0, 16]); // 16.5 → 16 (even)
    expect(centerCropOffsets(64, 99, 64, 64)).toEqual([0, 18]); // 17.5 → 18
    expect(centerCropOffsets(64, 96, 64, 64)).toEqual([0, 16]);
    expect(centerCropOffsets(336, 224, 224, 224)).toEqual([56, 0]);
    expect(centerCropOffsets(5, 5, 5, 5)).toEqual([0, 0]);
  });

  it('refuses a crop larger than the image', () => {
    expect(() => centerCropOffsets(10, 10, 11, 10)).toThrow(/larger than the 10×10 image/);
  });
});
