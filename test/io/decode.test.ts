/**
 * Node image decoding (exactness against Pillow is test/io/decode-exact.test.ts): EXIF orientation (all eight values,
 * expectations written from the EXIF specification's "0th row / 0th column" table, not from the
 * code), PNG colour types, and one-line errors naming the file for unreadable, empty, truncated and
 * unsupported inputs.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { ImageFileError, applyOrientation, decodeImage, encodePng, readImage, type ExifOrientation } from '../../src/io/index.js';
import { encodeJpeg, quadrantImage, withExif } from './jpeg-helpers.js';

const IMAGES = join(import.meta.dirname, '..', 'fixtures', 'images');
const tmp = mkdtempSync(join(tmpdir(), 'samclip-io-'));

type Side = 'top' | 'bottom' | 'left' | 'right';
/** EXIF 2.3, tag 274: the visual side of the stored 0th row and of the stored 0th column. */
const SPEC: Record<ExifOrientation, [Side, Side]> = {
  1: ['top', 'left'],
  2: ['top', 'right'],
  3: ['bottom', 'right'],
  4: ['bottom', 'left'],
  5: ['left', 'top'],
  6: ['right', 'top'],
  7: ['right', 'bottom'],
  8: ['left', 'bottom'],
};
const opposite: Record<Side, Side> = { top: 'bottom', bottom: 'top', left: 'right', right: 'left' };

/** The display corner where two sides meet, as [horizontal, vertical]. */
function corner(a: Side, b: Side): [Side, Side] {
  return a === 'left' || a === 'right' ? [a, b] : [b, a];
}

/** Expected colours at the display corners TL, TR, BL, BR for the quadrant card. */
function expectedCorners(o: ExifOrientation): Record<string, string> {
  const [row0, col0] = SPEC[o];
  const place = (rowSide: Side, colSide: Side) => corner(rowSide, colSide).join('-');
  const where: Record<string, string> = {
    [place(row0, col0)]: 'red', // stored top-left
    [place(row0, opposite[col0])]: 'green', // stored top-right
    [place(opposite[row0], col0)]: 'blue', // stored bottom-left
    [place(opposite[row0], opposite[col0])]: 'white', // stored bottom-right
  };
  return { TL: where['left-top']!, TR: where['right-top']!, BL: where['left-bottom']!, BR: where['right-bottom']! };
}

function colourName(d: ArrayLike<number>, i: number): string {
  const [r, g, b] = [d[i]!, d[i + 1]!, d[i + 2]!];
  const names: [string, number[]][] = [['red', [255, 0, 0]], ['green', [0, 255, 0]], ['blue', [0, 0, 255]], ['white', [255, 255, 255]]];
  let best = '';
  let bestD = Infinity;
  for (const [n, c] of names) {
    const dist = (r - c[0]!) ** 2 + (g - c[1]!) ** 2 + (b - c[2]!) ** 2;
    if (dist < bestD) [best, bestD] = [n, dist];
  }
  return best;
}

function cornersOf(img: { width: number; height: number; channels: number; data: ArrayLike<number> }): Record<string, string> {
  const { width: w, height: h, channels: c } = img;
  const at = (x: number, y: number) => colourName(img.data, c * (y * w + x));
  const m = 4;
  return { TL: at(m, m), TR: at(w - 1 - m, m), BL: at(m, h - 1 - m), BR: at(w - 1 - m, h - 1 - m) };
}

describe('EXIF orientation', () => {
  const card = quadrantImage(48, 32);
  const plain = encodeJpeg(card);
  for (const o of [1, 2, 3, 4, 5, 6, 7, 8] as ExifOrientation[]) {
    it(`orientation ${o} is applied (${SPEC[o].join(' / ')})`, async () => {
      for (const le of [false, true]) {
        const img = await decodeImage(withExif(plain, o, le), `card-${o}.jpg`);
        expect(img.orientation).toBe(o);
        expect([img.width, img.height]).toEqual(o >= 5 ? [32, 48] : [48, 32]);
        expect(cornersOf(img)).toEqual(expectedCorners(o));
      }
      // Asking not to orient gives the stored pixels.
      const raw = await decodeImage(withExif(plain, o), 'x.jpg', { orientation: false });
      expect(cornersOf(raw)).toEqual(expectedCorners(1));
    });
  }

  it('applyOrientation is exact on every pixel: 6 then 8 and 5 then 5 are the identity; 3 is 2 then 4', () => {
    const w = 7;
    const h = 5;
    const img = { width: w, height: h, channels: 2, data: Uint8Array.from({ length: w * h * 2 }, (_, i) => i % 251) };
    const back = applyOrientation(applyOrientation(img, 6), 8);
    expect([back.width, back.height]).toEqual([w, h]);
    expect([...back.data]).toEqual([...img.data]);
    expect([...applyOrientation(applyOrientation(img, 5), 5).data]).toEqual([...img.data]);
    expect([...applyOrientation(applyOrientation(img, 2), 4).data]).toEqual([...applyOrientation(img, 3).data]);
    expect([...applyOrientation(applyOrientation(img, 7), 7).data]).toEqual([...img.data]);
  });

  it('an out-of-range orientation value shows the photo as stored', async () => {
    const img = await decodeImage(withExif(plain, 9), 'bad-exif.jpg');
    expect(img.orientation).toBe(1);
    expect(cornersOf(img)).toEqual(expectedCorners(1));
  });
});

describe('PNG', () => {
  const w = 5;
  const h = 3;
  for (const channels of [1, 2, 3, 4]) {
    it(`${channels}-channel PNG round trip`, async () => {
      const data = Uint8Array.from({ length: w * h * channels }, (_, i) => (i * 37) % 256);
      const bytes = encodePng({ width: w, height: h, channels, data });
      // An independent reader (pngjs directly) sees the colour type we meant.
      const direct = PNG.sync.read(Buffer.from(bytes));
      expect(direct.colorType).toBe({ 1: 0, 2: 4, 3: 2, 4: 6 }[channels]);
      const img = await decodeImage(bytes, 'rt.png');
      const hasAlpha = channels === 2 || channels === 4;
      expect([img.width, img.height, img.channels, img.format]).toEqual([w, h, hasAlpha ? 4 : 3, 'png']);
      for (let p = 0; p < w * h; p++) {
        const src = channels <= 2 ? [data[p * channels]!, data[p * channels]!, data[p * channels]!] : [...data.subarray(p * channels, p * channels + 3)];
        expect([...img.data.subarray(p * img.channels, p * img.channels + 3)]).toEqual(src);
        if (hasAlpha) expect(img.data[p * 4 + 3]).toBe(data[p * channels + channels - 1]);
      }
    });
  }
});

/** The JPEG with the size in its start-of-frame header replaced (the pixel data then no longer fits it). */
function withSize(jpegBytes: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(jpegBytes); // a copy (Buffer.slice would share the bytes)
  for (let i = 2; i + 9 < out.length; ) {
    const marker = out[i + 1]!;
    if (marker >= 0xc0 && marker <= 0xc2) {
      new DataView(out.buffer).setUint16(i + 5, height);
      new DataView(out.buffer).setUint16(i + 7, width);
      return out;
    }
    i += 2 + ((out[i + 2]! << 8) | out[i + 3]!);
  }
  throw new Error('no start-of-frame marker');
}

describe('bad input', () => {
  const dog = readFileSync(join(IMAGES, 'dog.jpg'));
  const png = encodePng({ width: 64, height: 64, channels: 3, data: new Uint8Array(64 * 64 * 3).map((_, i) => (i * 7) % 256) });
  const cases: [string, Uint8Array | null, RegExp][] = [
    ['missing.jpg', null, /missing\.jpg: cannot read image: no such file/],
    ['empty.jpg', new Uint8Array(0), /empty\.jpg: empty file/],
    ['half.jpg', dog.subarray(0, dog.length >> 1), /half\.jpg: truncated JPEG/],
    ['header-only.jpg', dog.subarray(0, 600), /header-only\.jpg: truncated JPEG/],
    // Refused from the frame header before decoding (src/io/image-limits.ts, ImageLimitError).
    ['huge.jpg', withSize(dog, 60000, 50000), /huge\.jpg: JPEG of 60000x50000 pixels: megapixels: 3000 is over the limit of 200; raise it with the maxMegapixels option/],
    ['cut.png', png.subarray(0, png.length - 30), /cut\.png: truncated or corrupt PNG/],
    ['anim.gif', new Uint8Array([...'GIF89a'].map((c) => c.charCodeAt(0)).concat(Array(20).fill(0))), /anim\.gif: unsupported image format \(looks like GIF\): only JPEG and PNG/],
    ['photo.webp', new Uint8Array([...'RIFF\0\0\0\0WEBPVP8 '].map((c) => c.charCodeAt(0))), /photo\.webp: unsupported image format \(looks like WebP\)/],
    ['notes.txt', new TextEncoder().encode('hello, this is not an image\n'), /notes\.txt: unsupported image format/],
  ];
  for (const [name, bytes, re] of cases) {
    it(`${name}: ${re.source.split(':').slice(1).join(':').trim()}`, async () => {
      const path = join(tmp, name);
      if (bytes) writeFileSync(path, bytes);
      const err = await readImage(path).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ImageFileError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).toContain(path);
      expect((err as Error).message).not.toContain('\n');
    });
  }

  it('a directory is refused by name', async () => {
    await expect(readImage(tmp)).rejects.toThrow(/is a directory/);
  });
});
