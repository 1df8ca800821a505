/**
 * The reference photos as the end-to-end tests start from them: the `.jpg` files decoded by the
 * library's own Node decoder (`readImage`, equal to Pillow's decode: test/io/decode-exact.test.ts),
 * not the pre-decoded pixels in decoded_rgb.safetensors, so a decoder regression shows up end to end.
 */
import { join } from 'node:path';
import { beforeAll } from 'vitest';
import { type DecodedImage, readImage } from '../../src/io/decode.js';
import { FIXTURES } from './reference.js';

export type PhotoName = 'truck' | 'dog';
const NAMES: PhotoName[] = ['truck', 'dog'];

/** Decodes the photos in a beforeAll of the calling test file; the getter hands them out. */
export function usePhotos(): (name: PhotoName) => DecodedImage {
  const loaded = new Map<PhotoName, DecodedImage>();
  beforeAll(async () => {
    for (const name of NAMES) loaded.set(name, await readImage(join(FIXTURES, 'images', `${name}.jpg`)));
  });
  return (name) => {
    const img = loaded.get(name);
    if (!img) throw new Error(`photo '${name}' asked for before the beforeAll of usePhotos() decoded it`);
    return img;
  };
}
