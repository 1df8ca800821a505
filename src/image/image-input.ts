/**
 * Every form of image the pipelines take, and its conversion to the portable `ImageU8`.
 *
 * `ImageU8` (interleaved HWC bytes) works everywhere and is used as is. In browsers (pages and
 * workers) the platform's own image objects are accepted too; they are read back through a 2D
 * canvas as RGBA, the way `getImageData()` would, with the file's numbers kept:
 *
 *  - `Blob` / `File` and URL strings (fetched; a relative URL resolves against the page's
 *    `document.baseURI`, or the worker's `self.location`) are decoded by `createImageBitmap` with
 *    `colorSpaceConversion: 'none'` (an embedded ICC profile is ignored, as Pillow does) and
 *    `premultiplyAlpha: 'none'`; EXIF orientation is applied, like `readImage` on Node.
 *  - `HTMLImageElement` is waited for (`decode()`) and re-read the same way, so the page's colour
 *    management does not change the numbers.
 *  - `ImageData` is used without a copy; `ImageBitmap`, `HTMLCanvasElement`, `OffscreenCanvas`,
 *    `HTMLVideoElement` (its current frame) and `VideoFrame` are drawn as they are.
 *
 * What a browser's decoder gives: Chromium decodes JPEG with libjpeg-turbo, the library behind
 * Pillow, so a photo gives Pillow's pixels there (test/web/image-inputs.test.ts measures it); PNG is
 * lossless everywhere. A 2D canvas stores premultiplied alpha, so the colour of a pixel that is not
 * opaque comes back rounded (and black where alpha is 0); opaque images are read exactly.
 *
 * Node has no image decoder in the core library: strings, URLs and Blobs are refused there with a
 * message pointing at `readImage` of `samclip-webgpu/node`.
 */
import { throwIfAborted } from '../gpu/errors.js';
import { type ImageU8, ImageError, checkImage } from './image.js';
import { fetchableUrl } from '../util/url.js';

/** An image in any form the pipelines take (the browser forms only where the browser has them). */
export type ImageInput =
  | ImageU8
  | ImageData
  | ImageBitmap
  | HTMLImageElement
  | HTMLCanvasElement
  | OffscreenCanvas
  | HTMLVideoElement
  | VideoFrame
  | Blob
  | URL
  | string;

export interface ImageInputOptions {
  /** What error messages call the image (default 'image'), e.g. 'SamPredictor.encode'. */
  what?: string;
  /** Fetch for URL inputs (default: globalThis.fetch). */
  fetch?: (url: string, init?: { signal?: AbortSignal }) => Promise<Response>;
  /** Cancels a fetch or decode in progress (an AbortError naming `what` and the signal's reason). */
  signal?: AbortSignal;
}

/** `createImageBitmap` options that keep the file's own numbers (no colour management, straight alpha). */
export const EXACT_BITMAP_OPTIONS: ImageBitmapOptions = {
  colorSpaceConversion: 'none',
  premultiplyAlpha: 'none',
  imageOrientation: 'from-image',
};

const ACCEPTED =
  'an ImageU8 ({ width, height, channels, data }), ImageData, ImageBitmap, HTMLImageElement, HTMLCanvasElement, ' +
  'OffscreenCanvas, HTMLVideoElement, VideoFrame, Blob / File, or a URL';

/** The platform class of an object, e.g. 'ImageBitmap' (works across frames, unlike instanceof). */
function tagOf(x: object): string {
  return Object.prototype.toString.call(x).slice(8, -1);
}

/** True for the engine's own image form (the browser forms have no `channels`). */
export function isImageU8(x: unknown): x is ImageU8 {
  return x !== null && typeof x === 'object' && typeof (x as Partial<ImageU8>).channels === 'number';
}

/**
 * The image as `ImageU8`: an `ImageU8` is returned as is (checked), `ImageData` as a view of its
 * bytes (RGBA), everything else decoded / drawn and read back as RGBA.
 */
export async function toImageU8(input: ImageInput, opts: ImageInputOptions = {}): Promise<ImageU8> {
  const what = opts.what ?? 'image';
  throwIfAborted(opts.signal, what);
  if (typeof input === 'string' || input instanceof URL) return fetchImage(input, opts, what);
  if (input === null || typeof input !== 'object') {
    throw new ImageError(`${what}: expected ${ACCEPTED}; got ${input === null ? 'null' : typeof input}`);
  }
  if (isImageU8(input)) {
    checkImage(input, what);
    return input;
  }
  const tag = tagOf(input);
  switch (tag) {
    case 'ImageData':
      return fromImageData(input as ImageData, what);
    case 'Blob':
    case 'File':
      return decodeBlob(input as Blob, (input as File).name || 'Blob', what, opts.signal);
    case 'HTMLImageElement':
      return fromImageElement(input as HTMLImageElement, what, opts.signal);
    case 'ImageBitmap': {
      const b = input as ImageBitmap;
      if (b.width === 0 || b.height === 0) throw new ImageError(`${what}: the ImageBitmap is closed (or was transferred), it has no pixels`);
      return readPixels(b, b.width, b.height, what);
    }
    case 'HTMLCanvasElement':
    case 'OffscreenCanvas': {
      const c = input as HTMLCanvasElement | OffscreenCanvas;
      if (c.width === 0 || c.height === 0) throw new ImageError(`${what}: the ${tag} is empty (${c.width}x${c.height})`);
      return readPixels(c, c.width, c.height, what);
    }
    case 'HTMLVideoElement': {
      const v = input as HTMLVideoElement;
      // HAVE_CURRENT_DATA: a frame is there to draw.
      if (v.readyState < 2 || v.videoWidth === 0) {
        throw new ImageError(`${what}: the video has no current frame yet (readyState ${v.readyState}); wait for its 'loadeddata' event`);
      }
      return readPixels(v, v.videoWidth, v.videoHeight, what);
    }
    case 'VideoFrame': {
      const f = input as VideoFrame;
      if (f.format === null || f.displayWidth === 0) throw new ImageError(`${what}: the VideoFrame is closed, it has no pixels`);
      return readPixels(f, f.displayWidth, f.displayHeight, what);
    }
  }
  const keys = Object.keys(input).slice(0, 6).join(', ');
  throw new ImageError(`${what}: expected ${ACCEPTED}; got ${tag === 'Object' ? `an object with {${keys}}` : `a ${tag}`}`);
}

function fromImageData(img: ImageData, what: string): ImageU8 {
  // Chromium's float ImageData ({ pixelFormat: 'rgba-float16' }) holds no bytes to take.
  const format = (img as { pixelFormat?: string }).pixelFormat;
  if (!(img.data instanceof Uint8ClampedArray) || (format !== undefined && format !== 'rgba-unorm8')) {
    throw new ImageError(`${what}: ImageData with pixelFormat '${format}' is not 8-bit RGBA; read it with getImageData(x, y, w, h, { pixelFormat: 'rgba-unorm8' })`);
  }
  const out = { width: img.width, height: img.height, channels: 4, data: img.data };
  checkImage(out, what);
  return out;
}

function needsBrowser(what: string, form: string): never {
  throw new ImageError(
    `${what}: decoding ${form} needs a browser's createImageBitmap, which this runtime does not have; ` +
      "on Node, decode files with readImage(path) from 'samclip-webgpu/node' and pass the image it returns",
  );
}

async function fetchImage(src: string | URL, opts: ImageInputOptions, what: string): Promise<ImageU8> {
  let url: string | null;
  try {
    url = typeof src === 'string' ? fetchableUrl(src) : src.href;
  } catch (e) {
    throw new ImageError(`${what}: ${(e as Error).message}`);
  }
  if (url === null || typeof createImageBitmap !== 'function') needsBrowser(what, `'${String(src)}'`);
  const fetchFn = opts.fetch ?? globalThis.fetch?.bind(globalThis);
  if (!fetchFn) throw new ImageError(`${what}: ${url}: no fetch function available; pass { fetch }`);
  let res: Response;
  try {
    res = await fetchFn(url, opts.signal ? { signal: opts.signal } : undefined);
  } catch (e) {
    throwIfAborted(opts.signal, what);
    throw new ImageError(`${what}: ${url}: fetch failed: ${(e as Error).message}`);
  }
  if (!res.ok) throw new ImageError(`${what}: ${url}: HTTP ${res.status} ${res.statusText}`.trim());
  return decodeBlob(await res.blob(), url, what, opts.signal);
}

async function decodeBlob(blob: Blob, name: string, what: string, signal?: AbortSignal): Promise<ImageU8> {
  if (typeof createImageBitmap !== 'function') needsBrowser(what, `a ${tagOf(blob)} (${name})`);
  if (blob.size === 0) throw new ImageError(`${what}: ${name}: empty (0 bytes), not an image`);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, EXACT_BITMAP_OPTIONS);
  } catch (e) {
    throw new ImageError(`${what}: ${name}: the browser cannot decode it as an image (type '${blob.type || 'unknown'}', ${blob.size} bytes): ${(e as Error).message}`);
  }
  return readAndClose(bitmap, what, signal);
}

async function fromImageElement(img: HTMLImageElement, what: string, signal?: AbortSignal): Promise<ImageU8> {
  const src = img.currentSrc || img.src || '(no src)';
  if (!img.complete || img.naturalWidth === 0) {
    try {
      await img.decode();
    } catch (e) {
      throw new ImageError(`${what}: the <img> ${src} cannot be decoded (${(e as Error).message}); is its src an image?`);
    }
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(img, EXACT_BITMAP_OPTIONS);
  } catch (e) {
    // A cross-origin image without CORS taints a canvas and cannot be read at all.
    throw new ImageError(`${what}: the <img> ${src} cannot be read: ${(e as Error).message} (a cross-origin image needs crossOrigin="anonymous" and CORS headers)`);
  }
  return readAndClose(bitmap, what, signal);
}

function readAndClose(bitmap: ImageBitmap, what: string, signal?: AbortSignal): ImageU8 {
  try {
    throwIfAborted(signal, what);
    return readPixels(bitmap, bitmap.width, bitmap.height, what);
  } finally {
    bitmap.close();
  }
}

type Context2D = OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D;

/** A 2D context of the given size: OffscreenCanvas (pages and workers), else a detached <canvas>. */
function context2d(width: number, height: number, what: string): Context2D {
  const settings: CanvasRenderingContext2DSettings = { willReadFrequently: true, colorSpace: 'srgb' };
  let g: Context2D | null = null;
  if (typeof OffscreenCanvas === 'function') {
    g = new OffscreenCanvas(width, height).getContext('2d', settings);
  } else if (typeof document !== 'undefined') {
    const c = document.createElement('canvas');
    c.width = width;
    c.height = height;
    g = c.getContext('2d', settings);
  } else {
    throw new ImageError(`${what}: no 2D canvas here (OffscreenCanvas or document) to read the image's pixels`);
  }
  if (!g) throw new ImageError(`${what}: the browser refused a ${width}x${height} 2D canvas (too large?)`);
  return g;
}

function readPixels(src: CanvasImageSource, width: number, height: number, what: string): ImageU8 {
  const g = context2d(width, height, what);
  g.drawImage(src, 0, 0, width, height);
  let data: Uint8ClampedArray;
  try {
    data = g.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
  } catch (e) {
    throw new ImageError(`${what}: the ${width}x${height} image cannot be read back: ${(e as Error).message}`);
  }
  return { width, height, channels: 4, data };
}
