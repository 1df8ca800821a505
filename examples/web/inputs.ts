/**
 * The page's inputs: weights from a picked file or a URL, images from a picked file or a URL,
 * decoded by the browser. Each failure is a DemoInputError naming the file and what is wrong.
 */
import { SamclipError } from '../../src/gpu/errors.js';
import type { ImageU8 } from '../../src/image/image.js';
import { BlobSource } from '../../src/weights/blob-source.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';

/** Bad input given to the page (wrong file, unreadable image, missing model, ...). */
export class DemoInputError extends SamclipError {
  override name = 'DemoInputError';
}

/** Open a picked safetensors file (only its header is read now). */
export async function openWeightsFile(file: File): Promise<SafetensorsFile> {
  if (file.size === 0) throw new DemoInputError(`${file.name}: empty file (0 bytes), not a safetensors checkpoint`);
  return SafetensorsFile.fromSource(new BlobSource(file, file.name));
}

/** Open a checkpoint by URL (relative URLs resolve against the page); Range requests when the server allows. */
export async function openWeightsUrl(url: string): Promise<SafetensorsFile> {
  const u = url.trim();
  if (!u) throw new DemoInputError('weights URL: enter the address of a .safetensors file');
  let abs: string;
  try {
    abs = new URL(u, location.href).href;
  } catch {
    throw new DemoInputError(`weights URL '${u}' is not a valid address`);
  }
  return SafetensorsFile.fromUrl(abs);
}

/** Images larger than this are refused before decoding into memory. */
const MAX_MEGAPIXELS = 100;

/**
 * Decode with the browser (JPEG, PNG, WebP, ... whatever it reads), EXIF orientation applied, no
 * colour-space conversion (the reference pipeline, Pillow, does none either), then read the pixels
 * back through a 2D canvas as RGBA.
 */
export async function decodeImageBlob(blob: Blob, name: string): Promise<{ image: ImageU8; bitmap: ImageBitmap }> {
  if (blob.size === 0) throw new DemoInputError(`${name}: empty file (0 bytes), not an image`);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
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
  const canvas = new OffscreenCanvas(width, height);
  const g = canvas.getContext('2d', { willReadFrequently: true });
  if (!g) throw new DemoInputError(`${name}: no 2D canvas available to read the decoded pixels`);
  g.drawImage(bitmap, 0, 0);
  const data = g.getImageData(0, 0, width, height).data;
  return { image: { width, height, channels: 4, data }, bitmap };
}

export async function fetchImage(url: string): Promise<{ image: ImageU8; bitmap: ImageBitmap }> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new DemoInputError(`${url}: fetch failed: ${(e as Error).message}`);
  }
  if (!res.ok) throw new DemoInputError(`${url}: HTTP ${res.status} ${res.statusText}`);
  return decodeImageBlob(await res.blob(), url);
}
