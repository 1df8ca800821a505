/**
 * JPEG decoding equals Pillow 9.4 (libjpeg-turbo 2.1.5) to the last bit: max |delta| = 0 on the two
 * photos (test/fixtures/images/decoded_rgb.safetensors) and on every variant in
 * test/fixtures/images/jpeg-variants (baseline / progressive, 4:4:4 / 4:2:2 / 4:2:0 / 4:4:0 / 4:1:1,
 * grey, restart markers, arithmetic coding, RGB without colour transform, CMYK and YCCK, an embedded
 * wide-gamut ICC profile, corrupt entropy data, EXIF orientations 1-8), whose expected pixels
 * tools/gen-jpeg-variants.py recorded with Pillow as `ImageOps.exif_transpose(im).convert('RGB')`.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readImage } from '../../src/io/index.js';
import { readSafetensorsSimple } from '../helpers/read-safetensors-simple.js';

const IMAGES = join(import.meta.dirname, '..', 'fixtures', 'images');
const VARIANTS = join(IMAGES, 'jpeg-variants');

interface Variant {
  name: string;
  how: string;
  pillow_mode: string;
  layers: number[][];
  progressive: boolean;
  orientation: number;
}

/** Max |a - b| and the first index where it occurs. */
function maxDelta(a: ArrayLike<number>, b: ArrayLike<number>): { max: number; at: number } {
  let max = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max) [max, at] = [d, i];
  }
  return { max, at };
}

async function expectPillowPixels(file: string, expected: { shape: number[]; bytes: Uint8Array }, orientation: number): Promise<void> {
  const img = await readImage(file);
  const [h, w] = expected.shape;
  expect([img.width, img.height, img.channels, img.format, img.orientation]).toEqual([w, h, 3, 'jpeg', orientation]);
  const { max, at } = maxDelta(img.data, expected.bytes);
  const where = at < 0 ? '' : ` (first at pixel x=${Math.floor(at / 3) % w!}, y=${Math.floor(at / 3 / w!)}, channel ${at % 3}: ours ${img.data[at]}, Pillow ${expected.bytes[at]})`;
  expect(max, `${file}: max |ours - Pillow| = ${max}${where}`).toBe(0);
}

describe('JPEG decoding equals Pillow (libjpeg-turbo)', () => {
  const photos = readSafetensorsSimple(join(IMAGES, 'decoded_rgb.safetensors'));
  for (const name of ['truck', 'dog']) {
    it(`${name}.jpg: max |delta| = 0 over all values`, async () => {
      await expectPillowPixels(join(IMAGES, `${name}.jpg`), photos.get(name), 1);
    });
  }

  const expected = readSafetensorsSimple(join(VARIANTS, 'expected.safetensors'));
  const list = JSON.parse(expected.metadata.variants!) as Variant[];

  it('the variant set covers every flavour the decoder must handle', () => {
    expect(expected.metadata.pillow).toBe('9.4.0');
    expect(expected.metadata.libjpeg_turbo).toBe('2.1.5');
    const sampling = (v: Variant) => v.layers.slice(0, 3).map((l) => `${l[1]}x${l[2]}`).join(',');
    const has = (f: (v: Variant) => boolean) => list.filter(f).length;
    expect(has((v) => v.progressive)).toBeGreaterThanOrEqual(4);
    expect(has((v) => !v.progressive && sampling(v) === '1x1,1x1,1x1' && v.pillow_mode === 'RGB')).toBeGreaterThanOrEqual(2); // 4:4:4
    expect(has((v) => sampling(v) === '2x1,1x1,1x1')).toBeGreaterThanOrEqual(2); // 4:2:2
    expect(has((v) => sampling(v) === '2x2,1x1,1x1' && v.pillow_mode === 'RGB')).toBeGreaterThanOrEqual(5); // 4:2:0
    expect(has((v) => v.pillow_mode === 'L')).toBeGreaterThanOrEqual(3);
    expect(has((v) => v.pillow_mode === 'CMYK')).toBe(3);
    expect(has((v) => /restart/.test(v.how))).toBeGreaterThanOrEqual(4);
    expect(list.map((v) => v.orientation).filter((o) => o !== 1).sort()).toEqual([2, 3, 4, 5, 6, 7, 8]);
  });

  for (const v of list) {
    it(`${v.name}: ${v.how}`, async () => {
      await expectPillowPixels(join(VARIANTS, `${v.name}.jpg`), expected.get(v.name), v.orientation);
    });
  }
});
