/**
 * PNG output (pngjs): grey (masks), grey+alpha, RGB (label maps, overlays) and RGBA, 8 bits per
 * channel, written through a temporary file and a rename so a reader never sees half a picture.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';
import { type ImageU8, checkImage } from '../image/image.js';
import { ImageFileError } from './errors.js';

/** PNG colour types by channel count: 0 grey, 4 grey+alpha, 2 RGB, 6 RGBA. */
const COLOR_TYPE: Record<number, 0 | 2 | 4 | 6> = { 1: 0, 2: 4, 3: 2, 4: 6 };

export function encodePng(img: ImageU8): Uint8Array {
  checkImage(img, 'PNG output');
  const colorType = COLOR_TYPE[img.channels]!;
  const png = new PNG({ width: img.width, height: img.height, colorType, inputColorType: colorType, inputHasAlpha: img.channels === 2 || img.channels === 4 });
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  // Level 6 is zlib's default: level 9 costs several times more for a few per cent on masks.
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: img.channels === 2 || img.channels === 4, deflateLevel: 6 });
}

/** Encode and write; parent directories are created. */
export async function writePng(path: string, img: ImageU8): Promise<void> {
  const bytes = encodePng(img);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new ImageFileError(path, `cannot write PNG: ${(e as Error).message}`);
  }
}

/** A 0/1 (or any non-zero) mask as a grey image: 255 inside, 0 outside. */
export function maskToGrey(mask: ArrayLike<number>, width: number, height: number): ImageU8 & { channels: 1; data: Uint8Array } {
  if (mask.length !== width * height) {
    throw new ImageFileError('mask', `has ${mask.length} values, ${width}×${height} needs ${width * height}`);
  }
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = mask[i] ? 255 : 0;
  return { width, height, channels: 1, data: out };
}
