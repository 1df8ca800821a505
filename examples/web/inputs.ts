/**
 * The page's inputs: weights from a picked file or a URL, images from a picked file or a URL. The
 * engine (in the worker) reads and decodes them; the page only checks what it can say at once and
 * decodes the photo for display (createImageBitmap: off the page thread). Each failure is a
 * DemoInputError naming the file and what is wrong.
 */
import { SamclipError } from '../../src/gpu/errors.js';
import { EXACT_BITMAP_OPTIONS } from '../../src/image/image-input.js';
import type { DemoImage } from './demo.js';

/** Bad input given to the page (wrong file, unreadable image, missing model, ...). */
export class DemoInputError extends SamclipError {
  override name = 'DemoInputError';
}

/** A weights URL as typed (relative ones resolve against the page, in the worker client), checked. */
export function weightsUrl(url: string): string {
  const u = url.trim();
  if (!u) throw new DemoInputError('weights URL: enter the address of a .safetensors file');
  try {
    new URL(u, location.href);
  } catch {
    throw new DemoInputError(`weights URL '${u}' is not a valid address`);
  }
  return u;
}

/** Images larger than this are refused before the worker decodes them into memory. */
const MAX_MEGAPIXELS = 100;

/**
 * Decode for display (JPEG, PNG, WebP, ... whatever the browser reads; EXIF orientation applied,
 * no colour-space conversion, as the worker's decode does). The Blob itself goes to the worker.
 */
export async function decodeImageBlob(blob: Blob, name: string): Promise<{ image: DemoImage; bitmap: ImageBitmap }> {
  if (blob.size === 0) throw new DemoInputError(`${name}: empty file (0 bytes), not an image`);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, EXACT_BITMAP_OPTIONS);
  } catch (e) {
    throw new DemoInputError(
      `${name}: the browser cannot decode this file as an image (type '${blob.type || 'unknown'}', ${blob.size} bytes): ${(e as Error).message}`,
    );
  }
  const { width, height } = bitmap;
  if (width * height > MAX_MEGAPIXELS * 1e6) {
    bitmap.close();
    throw new DemoInputError(`${name}: ${width}x${height} is over ${MAX_MEGAPIXELS} megapixels; downscale it first`);
  }
  return { image: { blob, name, width, height }, bitmap };
}

export async function fetchImage(url: string): Promise<{ image: DemoImage; bitmap: ImageBitmap }> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new DemoInputError(`${url}: fetch failed: ${(e as Error).message}`);
  }
  if (!res.ok) throw new DemoInputError(`${url}: HTTP ${res.status} ${res.statusText}`);
  return decodeImageBlob(await res.blob(), url);
}
