/**
 * JPEG and PNG decoding on Node into the engine's `ImageU8`, with the EXIF orientation applied
 * (read by exifr) so pixel coordinates mean what a photo viewer shows. Other formats are
 * recognised by their signature and refused by name.
 *
 * JPEG pixels equal Pillow's (`Image.open(f).convert('RGB')`, libjpeg-turbo), so the same file gives
 * the same answer here, in PyTorch and in Chromium: they are decoded by libvips (through `sharp`,
 * mozjpeg: libjpeg-turbo's decoder, with its accurate integer IDCT and fancy chroma upsampling),
 * with embedded ICC profiles ignored as Pillow ignores them, and CMYK / YCCK converted to RGB with
 * Pillow's own formula. test/io/decode-exact.test.ts checks max |delta| = 0 on the photos and on
 * variants of every JPEG flavour. PNG stays with pngjs (pure JavaScript; PNG decoding is exact).
 */
import { readFile } from 'node:fs/promises';
import exifr from 'exifr';
import { PNG } from 'pngjs';
import type SharpConstructor from 'sharp';
import type { ImageU8 } from '../image/image.js';
import { ImageFileError } from './errors.js';
import { DEFAULT_MAX_MEGAPIXELS, type ImageSizeLimits, checkImageSize, jpegDimensions, pngDimensions } from './image-limits.js';
import { type ExifOrientation, applyOrientation, isExifOrientation } from './orientation.js';

export type ImageFormat = 'jpeg' | 'png';

export interface DecodedImage extends ImageU8 {
  readonly channels: 3 | 4;
  readonly data: Uint8Array;
  readonly format: ImageFormat;
  /** The EXIF orientation found in the file (1 when absent); already applied to the pixels. */
  readonly orientation: ExifOrientation;
}

/** `maxMegapixels` / `maxImageBytes` (image-limits.ts) are checked from the header, before allocating. */
export interface DecodeOptions extends ImageSizeLimits {
  /** Apply the EXIF orientation (default true). */
  orientation?: boolean;
}

/** Signatures of formats people try, so the error can say what the file is. */
const OTHER_FORMATS: { name: string; test: (b: Uint8Array) => boolean }[] = [
  { name: 'GIF', test: (b) => ascii(b, 0, 4) === 'GIF8' },
  { name: 'WebP', test: (b) => ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP' },
  { name: 'BMP', test: (b) => ascii(b, 0, 2) === 'BM' },
  { name: 'TIFF', test: (b) => ascii(b, 0, 4) === 'II*\0' || ascii(b, 0, 4) === 'MM\0*' },
  { name: 'HEIF/AVIF', test: (b) => ascii(b, 4, 4) === 'ftyp' },
  { name: 'JPEG 2000', test: (b) => b.length >= 12 && ascii(b, 4, 8) === 'jP  \r\n\x87\n' },
  { name: 'PDF', test: (b) => ascii(b, 0, 5) === '%PDF-' },
  { name: 'safetensors or text', test: (b) => b.length > 0 && b.every((x, i) => i > 64 || x === 9 || x === 10 || x === 13 || (x >= 32 && x < 127)) },
];

function ascii(b: Uint8Array, at: number, n: number): string {
  return b.length < at + n ? '' : String.fromCharCode(...b.subarray(at, at + n));
}

/** 'jpeg' / 'png' from the first bytes, or null. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 8 && ascii(bytes, 0, 8) === '\x89PNG\r\n\x1a\n') return 'png';
  return null;
}

/** Read and decode a JPEG or PNG file. */
export async function readImage(path: string, opts: DecodeOptions = {}): Promise<DecodedImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT' ? 'no such file' :
      err.code === 'EISDIR' ? 'is a directory, not an image file' :
      err.code === 'EACCES' ? 'permission denied' :
      err.message;
    throw new ImageFileError(path, `cannot read image: ${why}`);
  }
  return decodeImage(bytes, path, opts);
}

/** Decode JPEG / PNG bytes; `name` is used in error messages. */
export async function decodeImage(bytes: Uint8Array, name = '<bytes>', opts: DecodeOptions = {}): Promise<DecodedImage> {
  if (bytes.length === 0) throw new ImageFileError(name, 'empty file (0 bytes), not an image');
  const format = sniffImageFormat(bytes);
  if (!format) {
    const other = OTHER_FORMATS.find((f) => f.test(bytes));
    const head = [...bytes.subarray(0, 8)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
    throw new ImageFileError(
      name,
      `unsupported image format${other ? ` (looks like ${other.name})` : ''}: only JPEG and PNG are read (first bytes: ${head})`,
    );
  }
  const dims = format === 'jpeg' ? jpegDimensions(bytes) : pngDimensions(bytes);
  if (dims) checkImageSize(name, format.toUpperCase(), dims.width, dims.height, opts);
  const maxMp = opts.maxMegapixels ?? DEFAULT_MAX_MEGAPIXELS;
  const raw = format === 'jpeg' ? await decodeJpeg(bytes, name, maxMp) : decodePng(bytes, name);
  let orientation: ExifOrientation = 1;
  if (opts.orientation !== false) orientation = await readOrientation(bytes, name);
  const shown = applyOrientation(raw, orientation);
  return { ...shown, channels: raw.channels, data: shown.data as Uint8Array, format, orientation };
}

type Sharp = typeof SharpConstructor;
let sharpModule: Promise<Sharp> | undefined;

/** sharp, loaded on the first JPEG (its native binary is not needed to read PNGs or write files). */
function loadSharp(name: string): Promise<Sharp> {
  sharpModule ??= import('sharp').then((m) => m.default);
  return sharpModule.catch((e: unknown) => {
    sharpModule = undefined;
    const why = (e as Error).message.split('\n')[0];
    throw new ImageFileError(
      name,
      `JPEG decoding needs the sharp package and its prebuilt libvips for ${process.platform}-${process.arch}, which did not load (${why}); ` +
        'reinstall with `npm install --include=optional sharp`, see docs/images.md',
    );
  });
}

/** The end-of-image marker tells a file cut short apart; some writers append bytes after it, so look near the end. */
function hasJpegEnd(bytes: Uint8Array): boolean {
  const tail = bytes.subarray(Math.max(0, bytes.length - 4096));
  for (let i = tail.length - 2; i >= 0; i--) if (tail[i] === 0xff && tail[i + 1] === 0xd9) return true;
  return false;
}

async function decodeJpeg(bytes: Uint8Array, name: string, maxMp: number): Promise<ImageU8 & { channels: 3; data: Uint8Array }> {
  const sharp = await loadSharp(name);
  const hasEoi = hasJpegEnd(bytes);
  const fail = (e: unknown): never => {
    const msg = (e as Error).message.split('\n')[0];
    if (!hasEoi) throw new ImageFileError(name, `truncated JPEG (${bytes.length} bytes, no end-of-image marker; decoder: ${msg})`);
    throw new ImageFileError(name, `corrupt or unsupported JPEG (${msg})`);
  };
  // The header first: size and colour space, before any pixel memory is allocated.
  const header = await sharp(bytes, { limitInputPixels: false }).metadata().catch(fail);
  const { width, height } = header;
  if (header.format !== 'jpeg' || !(width > 0 && height > 0)) throw new ImageFileError(name, `JPEG has no image data (${width}×${height})`);
  const mp = (width * height) / 1e6;
  if (mp > maxMp) throw new ImageFileError(name, `JPEG too large (${width}×${height}, ${mp.toFixed(1)} megapixels; limit ${maxMp})`);
  if (!hasEoi) throw new ImageFileError(name, `truncated JPEG (${bytes.length} bytes, no end-of-image marker)`);
  // ignoreIcc: Pillow hands out the stored RGB, it does not colour-manage. failOn 'truncated':
  // libjpeg's warnings (e.g. a bad Huffman code in corrupt data) do not stop Pillow either.
  let img = sharp(bytes, { ignoreIcc: true, failOn: 'truncated', limitInputPixels: width * height });
  const cmyk = header.space === 'cmyk';
  // CMYK stays CMYK through libvips (values already in Adobe polarity, as Pillow reads them) and is
  // converted below with Pillow's formula rather than through an ICC profile.
  if (cmyk) img = img.pipelineColourspace('cmyk').toColourspace('cmyk');
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true }).catch(fail);
  if (info.width !== width || info.height !== height) throw new ImageFileError(name, `JPEG decoded to ${info.width}×${info.height}, header says ${width}×${height}`);
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (cmyk && info.channels === 4) return { width, height, channels: 3, data: cmykToRgb(pixels) };
  if (info.channels === 3) return { width, height, channels: 3, data: pixels };
  if (info.channels === 1) return { width, height, channels: 3, data: greyToRgb(pixels) };
  throw new ImageFileError(name, `unsupported JPEG colour layout (${info.channels} channels, colour space ${header.space})`);
}

function greyToRgb(grey: Uint8Array): Uint8Array {
  const rgb = new Uint8Array(grey.length * 3);
  for (let i = 0; i < grey.length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = grey[i]!;
  return rgb;
}

/**
 * Pillow's CMYK -> RGB (`convert('RGB')`, Pillow 9.4; checked against it on random values and by
 * the CMYK / YCCK variants): with nk = 255 - K, each of R, G, B is nk - C·nk/255 for its ink, the
 * division rounded like Pillow's MULDIV255. (Never negative, so no clamp is needed.)
 */
function cmykToRgb(cmyk: Uint8Array): Uint8Array {
  const n = cmyk.length >> 2;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const nk = 255 - cmyk[4 * i + 3]!;
    for (let c = 0; c < 3; c++) {
      const t = cmyk[4 * i + c]! * nk + 128;
      rgb[3 * i + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return rgb;
}

function decodePng(bytes: Uint8Array, name: string): ImageU8 & { channels: 3 | 4; data: Uint8Array } {
  let png: { width: number; height: number; data: Uint8Array; alpha: boolean };
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as unknown as typeof png;
  } catch (e) {
    const msg = (e as Error).message;
    const truncated = /end|waiting|waitng|unexpected|invalid inflate|incorrect header|unfinished/i.test(msg) || !hasIend(bytes);
    throw new ImageFileError(name, `${truncated ? 'truncated or corrupt' : 'corrupt or unsupported'} PNG (${bytes.length} bytes; decoder: ${msg})`);
  }
  // pngjs always hands out RGBA; keep the alpha channel only when the file has one.
  const n = png.width * png.height;
  if (png.alpha) return { width: png.width, height: png.height, channels: 4, data: new Uint8Array(png.data) };
  const rgb = new Uint8Array(n * 3);
  const src = png.data;
  for (let i = 0; i < n; i++) {
    rgb[3 * i] = src[4 * i]!;
    rgb[3 * i + 1] = src[4 * i + 1]!;
    rgb[3 * i + 2] = src[4 * i + 2]!;
  }
  return { width: png.width, height: png.height, channels: 3, data: rgb };
}

function hasIend(bytes: Uint8Array): boolean {
  return ascii(bytes, Math.max(0, bytes.length - 8), 4) === 'IEND';
}

async function readOrientation(bytes: Uint8Array, name: string): Promise<ExifOrientation> {
  let v: unknown;
  try {
    v = await exifr.orientation(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch {
    // Broken EXIF blocks are common in edited photos; the pixels are still good, so show them as stored.
    return 1;
  }
  // Values outside 1..8 are writer bugs; viewers and Pillow show such photos as stored.
  if (!isExifOrientation(v)) return 1;
  return v;
}
