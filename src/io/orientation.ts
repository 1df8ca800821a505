/**
 * EXIF orientation (TIFF tag 0x0112): cameras store the sensor's pixel order and record how the
 * picture must be turned for display. Viewers (and Pillow's `ImageOps.exif_transpose`) apply it, so
 * a point a user picks on the displayed photo only lands on the right object if we do the same.
 *
 * For each value, where a display pixel (x, y) reads from in the stored W×H image:
 *   1 as stored              (x, y)
 *   2 mirrored left-right    (W-1-x, y)
 *   3 rotated 180°           (W-1-x, H-1-y)
 *   4 mirrored top-bottom    (x, H-1-y)
 *   5 transposed             (y, x)            display is H×W
 *   6 rotated 90° clockwise  (y, H-1-x)        display is H×W
 *   7 transversed            (W-1-y, H-1-x)    display is H×W
 *   8 rotated 90° counter-cw (W-1-y, x)        display is H×W
 */
import type { ImageU8 } from '../image/image.js';

export type ExifOrientation = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

export function isExifOrientation(v: unknown): v is ExifOrientation {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 8;
}

/** The display image for a stored image and its orientation tag (a copy; value 1 returns `img`). */
export function applyOrientation<T extends ImageU8>(img: T, orientation: ExifOrientation): ImageU8 {
  if (orientation === 1) return img;
  const { width: W, height: H, channels: C, data } = img;
  const swap = orientation >= 5;
  const w = swap ? H : W;
  const h = swap ? W : H;
  const out = new Uint8Array(W * H * C);
  // Source index = x0 + x * dx + y * dy (in pixels), chosen per orientation from the table above.
  let x0 = 0;
  let dx = 1;
  let dy = W;
  switch (orientation) {
    case 2: x0 = W - 1; dx = -1; dy = W; break;
    case 3: x0 = W * H - 1; dx = -1; dy = -W; break;
    case 4: x0 = (H - 1) * W; dx = 1; dy = -W; break;
    case 5: x0 = 0; dx = W; dy = 1; break;
    case 6: x0 = (H - 1) * W; dx = -W; dy = 1; break;
    case 7: x0 = W * H - 1; dx = -W; dy = -1; break;
    case 8: x0 = W - 1; dx = W; dy = -1; break;
  }
  let o = 0;
  for (let y = 0; y < h; y++) {
    let s = x0 + y * dy;
    for (let x = 0; x < w; x++, s += dx) {
      const si = s * C;
      for (let c = 0; c < C; c++) out[o++] = data[si + c]!;
    }
  }
  return { width: w, height: h, channels: C, data: out };
}
