/** Test images built in memory: JPEGs with an EXIF orientation tag, and a four-colour test card. */
import jpeg from 'jpeg-js';

/**
 * A JPEG whose four quadrants are red (top-left), green (top-right), blue (bottom-left) and white
 * (bottom-right); width != height so a transposition is visible in the size too.
 */
export function quadrantImage(width = 48, height = 32): { width: number; height: number; data: Uint8Array } {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const top = y < height / 2;
      const left = x < width / 2;
      const c = top && left ? [255, 0, 0] : top ? [0, 255, 0] : left ? [0, 0, 255] : [255, 255, 255];
      data.set([c[0]!, c[1]!, c[2]!, 255], 4 * (y * width + x));
    }
  }
  return { width, height, data };
}

export function encodeJpeg(img: { width: number; height: number; data: Uint8Array }, quality = 95): Uint8Array {
  return new Uint8Array(jpeg.encode({ width: img.width, height: img.height, data: img.data }, quality).data);
}

/** An APP1 "Exif" segment (big-endian TIFF) holding only IFD0 with the Orientation tag. */
export function exifSegment(orientation: number, littleEndian = false): Uint8Array {
  const tiff = new Uint8Array(8 + 2 + 12 + 4);
  const dv = new DataView(tiff.buffer);
  const le = littleEndian;
  tiff.set(le ? [0x49, 0x49] : [0x4d, 0x4d], 0);
  dv.setUint16(2, 42, le);
  dv.setUint32(4, 8, le); // IFD0 right after the header
  dv.setUint16(8, 1, le); // one entry
  dv.setUint16(10, 0x0112, le); // Orientation
  dv.setUint16(12, 3, le); // SHORT
  dv.setUint32(14, 1, le); // count
  dv.setUint16(18, orientation, le); // value, left-justified in the 4-byte field
  dv.setUint32(22, 0, le); // no next IFD
  const payload = new Uint8Array([...'Exif'].map((c) => c.charCodeAt(0)).concat([0, 0]).concat([...tiff]));
  const seg = new Uint8Array(4 + payload.length);
  seg[0] = 0xff;
  seg[1] = 0xe1;
  new DataView(seg.buffer).setUint16(2, payload.length + 2);
  seg.set(payload, 4);
  return seg;
}

/** Insert an EXIF segment right after the JPEG's start-of-image marker. */
export function withExif(jpegBytes: Uint8Array, orientation: number, littleEndian = false): Uint8Array {
  const seg = exifSegment(orientation, littleEndian);
  const out = new Uint8Array(jpegBytes.length + seg.length);
  out.set(jpegBytes.subarray(0, 2), 0);
  out.set(seg, 2);
  out.set(jpegBytes.subarray(2), 2 + seg.length);
  return out;
}
