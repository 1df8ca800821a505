/**
 * The 8-bit image type every CPU pre-processing function takes and returns, and its validation.
 * Decoding (JPEG/PNG) is left to the caller: a browser has `ImageData`, Node users have their own
 * decoder; both hand over interleaved HWC bytes.
 */
import { SamclipError } from '../gpu/errors.js';

/** Interleaved (HWC) 8-bit image: 1 = L, 2 = LA, 3 = RGB, 4 = RGBA. */
export interface ImageU8 {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly data: Uint8Array | Uint8ClampedArray;
}

/** An image or an image-related argument (size, box, channel count) that cannot be used. */
export class ImageError extends SamclipError {
  override name = 'ImageError';
}

/** Throws an ImageError naming `what` when the image's fields disagree with each other. */
export function checkImage(img: ImageU8, what = 'image'): void {
  if (img === null || typeof img !== 'object') throw new ImageError(`${what}: expected an image object, got ${String(img)}`);
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new ImageError(`${what}: width and height must be positive integers, got ${width}×${height}`);
  }
  if (!Number.isInteger(channels) || channels < 1 || channels > 4) {
    throw new ImageError(`${what}: channels must be 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA), got ${channels}`);
  }
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
    throw new ImageError(`${what}: data must be a Uint8Array or Uint8ClampedArray (HWC bytes)`);
  }
  const expected = width * height * channels;
  if (data.length !== expected) {
    throw new ImageError(
      `${what}: data has ${data.length} bytes but ${width}×${height}×${channels} needs ${expected}`,
    );
  }
}

/** Checks that a requested output size is a pair of positive integers. */
export function checkSize(width: number, height: number, what: string): void {
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1) {
    throw new ImageError(`${what}: output size must be positive integers, got ${width}×${height}`);
  }
}

/** Copies the rows [top, top + h) and columns [left, left + w) into a new image. */
export function cropImage(img: ImageU8, left: number, top: number, w: number, h: number): ImageU8 {
  checkImage(img);
  if (left < 0 || top < 0 || left + w > img.width || top + h > img.height || w < 1 || h < 1) {
    throw new ImageError(
      `crop (${left}, ${top}, ${w}×${h}) does not fit inside the ${img.width}×${img.height} image`,
    );
  }
  const c = img.channels;
  const out = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    const src = ((top + y) * img.width + left) * c;
    out.set(img.data.subarray(src, src + w * c), y * w * c);
  }
  return { width: w, height: h, channels: c, data: out };
}

/**
 * Like Pillow's `convert('RGB')` for 8-bit images: grey is replicated, alpha is dropped (no
 * compositing onto a background). An RGB image is returned as is, without a copy.
 */
export function toRgb(img: ImageU8): ImageU8 {
  checkImage(img);
  const c = img.channels;
  if (c === 3) return img;
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  const src = img.data;
  for (let i = 0; i < n; i++) {
    if (c <= 2) {
      const v = src[i * c]!;
      out[3 * i] = v;
      out[3 * i + 1] = v;
      out[3 * i + 2] = v;
    } else {
      out[3 * i] = src[4 * i]!;
      out[3 * i + 1] = src[4 * i + 1]!;
      out[3 * i + 2] = src[4 * i + 2]!;
    }
  }
  return { width: img.width, height: img.height, channels: 3, data: out };
}
