/**
 * How large a decoded image may be, checked from the header before any pixel memory is allocated:
 * a 572 KB PNG can declare 14000 x 14000 pixels and ask for gigabytes. Shared by the decoders
 * (decode.ts): each reads width and height from its header and calls `checkImageSize` first.
 */
import { type LimitExceeded, limitText } from '../util/limits.js';
import { ImageFileError } from './errors.js';

/** Default cap on decoded pixel memory (width x height x 4 bytes): 512 MiB, about 134 megapixels. */
export const DEFAULT_MAX_IMAGE_BYTES = 512 * 2 ** 20;
/** Default cap on pixel count (megapixels). */
export const DEFAULT_MAX_MEGAPIXELS = 200;

export interface ImageSizeLimits {
  /** Refuse images above this many megapixels (default 200). */
  maxMegapixels?: number;
  /**
   * Refuse images whose decoded pixels would take more than this many bytes, counted as 4 bytes a
   * pixel (the RGBA buffers decoders fill); default 512 MiB.
   */
  maxImageBytes?: number;
}

/** An image refused for its size before decoding (named limit, value, limit). */
export class ImageLimitError extends ImageFileError implements LimitExceeded {
  override name = 'ImageLimitError';
  constructor(
    file: string,
    context: string,
    readonly quantity: string,
    readonly value: number,
    readonly limit: number,
    readonly option: string | null,
    unit: string,
  ) {
    super(file, `${context}: ${limitText({ quantity, value, limit, option }, unit)}`);
  }
}

/** Throw ImageLimitError when a `width` x `height` image is over a limit. Call before allocating. */
export function checkImageSize(file: string, format: string, width: number, height: number, limits: ImageSizeLimits = {}): void {
  const what = `${format} of ${width}x${height} pixels`;
  const maxMp = limits.maxMegapixels ?? DEFAULT_MAX_MEGAPIXELS;
  const mp = (width * height) / 1e6;
  if (mp > maxMp) throw new ImageLimitError(file, what, 'megapixels', +mp.toFixed(1), maxMp, 'maxMegapixels', '');
  const maxBytes = limits.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const bytes = width * height * 4;
  if (bytes > maxBytes) throw new ImageLimitError(file, what, 'decoded pixel memory', bytes, maxBytes, 'maxImageBytes', 'bytes');
}

/** Width and height from a PNG's IHDR chunk, or null when the header is not there. */
export function pngDimensions(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 24 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') return null;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: dv.getUint32(16), height: dv.getUint32(20) };
}

/** Start-of-frame markers (baseline, progressive, lossless, arithmetic; not DHT C4, JPG C8, DAC CC). */
const SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

/**
 * Width and height from a JPEG's start-of-frame segment, walking the marker segments before the
 * first scan; null when there is none (or the height is deferred to a DNL marker).
 */
export function jpegDimensions(bytes: Uint8Array): { width: number; height: number } | null {
  let p = 2; // after SOI
  while (p + 4 <= bytes.length) {
    if (bytes[p] !== 0xff) return null;
    const marker = bytes[p + 1]!;
    if (marker === 0xff) {
      p++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      p += 2; // standalone markers carry no length
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return null; // scan or end before any frame header
    const len = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    if (SOF.has(marker)) {
      if (p + 9 > bytes.length) return null;
      const height = (bytes[p + 5]! << 8) | bytes[p + 6]!;
      const width = (bytes[p + 7]! << 8) | bytes[p + 8]!;
      return height > 0 ? { width, height } : null;
    }
    p += 2 + len;
  }
  return null;
}
