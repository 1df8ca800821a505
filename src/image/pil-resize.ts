/**
 * Pillow-compatible antialiased resampling of 8-bit images (what `PIL.Image.resize` does for modes
 * L, LA, RGB and RGBA with the BOX, BILINEAR, HAMMING, BICUBIC and LANCZOS filters).
 *
 * SAM's and CLIP's official preprocessing run through Pillow, so matching it byte for byte is the
 * only way the engine sees the same pixels as the reference models. The behaviour reproduced here
 * was read from Pillow 9.4 (`src/libImaging/Resample.c`, `_imaging.c: _resize`, `Image.resize`,
 * `Convert.c`) and checked against Pillow 9.4 output (see tools/gen-pil-resize-fixtures.py):
 *
 * - Separable: one horizontal pass, then one vertical pass; each runs only when its axis changes.
 *   The horizontal pass only computes the source rows the vertical pass will read, and stores its
 *   result as clipped uint8 — the rounding between passes is part of the output.
 * - When shrinking by `scale`, the filter is stretched by `scale` (support × scale), which is what
 *   makes the resize antialiased; when enlarging, it is used as is.
 * - Per output sample: weights in float64, normalised to sum 1, then turned into signed 22-bit
 *   fixed point (round half away from zero); the integer sum starts at half a unit and is
 *   shifted back and clipped to [0, 255].
 * - The crop box is float32 (Pillow parses it with the `f` format), so its arithmetic is too.
 * - Images with alpha are premultiplied first and un-premultiplied afterwards (Pillow converts
 *   RGBA→RGBa and LA→La around the resize), with Pillow's own integer rounding.
 */
import { ImageError, checkImage, checkSize, type ImageU8 } from './image.js';

export type PilFilter = 'box' | 'bilinear' | 'hamming' | 'bicubic' | 'lanczos';

/** [left, top, right, bottom] in source pixels, like Pillow's `box` argument. */
export type PilBox = readonly [number, number, number, number];

export interface PilResizeOptions {
  /** Pillow's default for `Image.resize` on 8-bit images is BICUBIC; so is ours. */
  filter?: PilFilter;
  /** Source region to resample; defaults to the whole image. */
  box?: PilBox;
  /**
   * Premultiply colour by alpha around the resize for 2- and 4-channel images, as Pillow does
   * (default true). `false` treats alpha as one more independent channel.
   */
  premultiplyAlpha?: boolean;
}

interface FilterDef {
  readonly weight: (x: number) => number;
  readonly support: number;
}

/** Pillow stores `0.54f`/`0.46f` as floats inside a double expression; keep their float values. */
const HAMMING_A = Math.fround(0.54);
const HAMMING_B = Math.fround(0.46);

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

const FILTERS: Record<PilFilter, FilterDef> = {
  box: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: {
    support: 1,
    weight: (x) => {
      const ax = Math.abs(x);
      return ax < 1 ? 1 - ax : 0;
    },
  },
  hamming: {
    support: 1,
    weight: (x) => {
      let ax = Math.abs(x);
      if (ax === 0) return 1;
      if (ax >= 1) return 0;
      ax *= Math.PI;
      return (Math.sin(ax) / ax) * (HAMMING_A + HAMMING_B * Math.cos(ax));
    },
  },
  bicubic: {
    // Keys' cubic convolution with a = -0.5 (Pillow's choice; PyTorch's bicubic uses -0.75).
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const ax = Math.abs(x);
      if (ax < 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
      if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

/** Fractional bits of the fixed-point weights: 32 bits − 8 for the value − 2 for overshoot. */
export const PIL_PRECISION_BITS = 22;
const ONE = 1 << PIL_PRECISION_BITS;
const HALF = 1 << (PIL_PRECISION_BITS - 1);

/** Resampling weights of one axis, laid out like Pillow's (`ksize` slots per output sample). */
export interface PilCoefficients {
  /** Slots per output sample: 2·ceil(support) + 1. Only the first `count` of each are used. */
  readonly ksize: number;
  /** Per output sample i: first source index `bounds[2i]` and tap count `bounds[2i + 1]`. */
  readonly bounds: Int32Array;
  /** Normalised float64 weights, `ksize` per output sample (unused slots are 0). */
  readonly weights: Float64Array;
  /** The same weights in signed fixed point with PIL_PRECISION_BITS fractional bits. */
  readonly fixed: Int32Array;
}

/**
 * Weights for resampling the source interval [in0, in1) of an axis of `inSize` pixels onto
 * `outSize` samples. `in0`/`in1` are rounded to float32 first, as Pillow receives them.
 */
export function pilCoefficients(
  inSize: number,
  in0: number,
  in1: number,
  outSize: number,
  filter: PilFilter,
): PilCoefficients {
  const def = FILTERS[filter];
  if (!def) throw new ImageError(`unknown resampling filter '${String(filter)}'`);
  const f0 = Math.fround(in0);
  // Pillow subtracts in single precision, then widens to double.
  const scale = Math.fround(Math.fround(in1) - f0) / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = def.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const invScale = 1 / filterScale;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * ksize);
  const fixed = new Int32Array(outSize * ksize);
  for (let i = 0; i < outSize; i++) {
    const center = f0 + (i + 0.5) * scale;
    // C's (int) cast truncates toward zero; with the +0.5 it rounds the window ends.
    let lo = Math.trunc(center - support + 0.5);
    if (lo < 0) lo = 0;
    let hi = Math.trunc(center + support + 0.5);
    if (hi > inSize) hi = inSize;
    const count = hi - lo;
    const base = i * ksize;
    let sum = 0;
    for (let t = 0; t < count; t++) {
      const w = def.weight((t + lo - center + 0.5) * invScale);
      weights[base + t] = w;
      sum += w;
    }
    if (sum !== 0) for (let t = 0; t < count; t++) weights[base + t]! /= sum;
    for (let t = 0; t < count; t++) {
      const w = weights[base + t]!;
      fixed[base + t] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    bounds[2 * i] = lo;
    bounds[2 * i + 1] = count;
  }
  return { ksize, bounds, weights, fixed };
}

/** Shift the fixed-point sum back to 8 bits and clip (Pillow's clip8 lookup table). */
function clip8(sum: number): number {
  const v = sum >> PIL_PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over source rows [rowStart, rowStart + rows) into a (rows × outW) image. */
function resampleHorizontal(
  src: Uint8Array | Uint8ClampedArray,
  srcW: number,
  c: number,
  rowStart: number,
  rows: number,
  outW: number,
  co: PilCoefficients,
): Uint8Array {
  const out = new Uint8Array(rows * outW * c);
  const { ksize, bounds, fixed } = co;
  for (let y = 0; y < rows; y++) {
    const rowBase = (rowStart + y) * srcW * c;
    const outBase = y * outW * c;
    for (let x = 0; x < outW; x++) {
      const lo = bounds[2 * x]!;
      const count = bounds[2 * x + 1]!;
      const kBase = x * ksize;
      for (let ch = 0; ch < c; ch++) {
        let sum = HALF;
        let p = rowBase + lo * c + ch;
        for (let t = 0; t < count; t++, p += c) sum += src[p]! * fixed[kBase + t]!;
        out[outBase + x * c + ch] = clip8(sum);
      }
    }
  }
  return out;
}

/** Vertical pass: output row y reads source rows bounds[2y] − rowOffset onwards. */
function resampleVertical(
  src: Uint8Array | Uint8ClampedArray,
  w: number,
  c: number,
  rowOffset: number,
  outH: number,
  co: PilCoefficients,
): Uint8Array {
  const stride = w * c;
  const out = new Uint8Array(outH * stride);
  const { ksize, bounds, fixed } = co;
  for (let y = 0; y < outH; y++) {
    const lo = bounds[2 * y]! - rowOffset;
    const count = bounds[2 * y + 1]!;
    const kBase = y * ksize;
    const outBase = y * stride;
    for (let i = 0; i < stride; i++) {
      let sum = HALF;
      let p = lo * stride + i;
      for (let t = 0; t < count; t++, p += stride) sum += src[p]! * fixed[kBase + t]!;
      out[outBase + i] = clip8(sum);
    }
  }
  return out;
}

/** Pillow's `(a·b + 128 + ((a·b + 128) >> 8)) >> 8`: a·b/255 rounded, in integers. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/** RGBA→RGBa / LA→La: colour channels multiplied by alpha (the last channel). */
export function premultiplyAlpha(img: ImageU8): ImageU8 {
  const { channels: c, data } = img;
  const out = new Uint8Array(data.length);
  for (let p = 0; p < data.length; p += c) {
    const a = data[p + c - 1]!;
    for (let ch = 0; ch < c - 1; ch++) out[p + ch] = mulDiv255(data[p + ch]!, a);
    out[p + c - 1] = a;
  }
  return { ...img, data: out };
}

/** RGBa→RGBA / La→LA: Pillow divides with truncation and leaves alpha 0 and 255 untouched. */
export function unpremultiplyAlpha(img: ImageU8): ImageU8 {
  const { channels: c, data } = img;
  const out = new Uint8Array(data.length);
  for (let p = 0; p < data.length; p += c) {
    const a = data[p + c - 1]!;
    for (let ch = 0; ch < c - 1; ch++) {
      const v = data[p + ch]!;
      out[p + ch] = a === 0 || a === 255 ? v : Math.min(255, Math.floor((255 * v) / a));
    }
    out[p + c - 1] = a;
  }
  return { ...img, data: out };
}

/** Validates a box the way Pillow's `_resize` does, after rounding it to float32. */
function toFloatBox(img: ImageU8, box: PilBox | undefined): [number, number, number, number] {
  if (box === undefined) return [0, 0, img.width, img.height];
  if (!Array.isArray(box) || box.length !== 4 || !box.every((v) => Number.isFinite(v))) {
    throw new ImageError(`resize box must be 4 finite numbers [left, top, right, bottom], got ${JSON.stringify(box)}`);
  }
  const b = box.map((v) => Math.fround(v)) as [number, number, number, number];
  const shown = `[${box.join(', ')}]`;
  if (b[0] < 0 || b[1] < 0) throw new ImageError(`resize box ${shown}: offset can't be negative`);
  if (b[2] > img.width || b[3] > img.height) {
    throw new ImageError(`resize box ${shown} exceeds the ${img.width}×${img.height} image`);
  }
  if (Math.fround(b[2] - b[0]) < 0 || Math.fround(b[3] - b[1]) < 0) {
    throw new ImageError(`resize box ${shown} is empty (right < left or bottom < top)`);
  }
  return b;
}

/** `ImagingResampleInner` + the crop shortcut of `_resize`, on an image without alpha handling. */
function resampleSeparable(img: ImageU8, outW: number, outH: number, filter: PilFilter, b: number[]): ImageU8 {
  const { width: inW, height: inH, channels: c, data } = img;
  // An integer box whose size equals the output is a plain crop in Pillow: no filtering at all.
  if (
    b[0]! === Math.trunc(b[0]!) &&
    b[1]! === Math.trunc(b[1]!) &&
    Math.fround(b[2]! - b[0]!) === outW &&
    Math.fround(b[3]! - b[1]!) === outH
  ) {
    const out = new Uint8Array(outW * outH * c);
    for (let y = 0; y < outH; y++) {
      const s = ((b[1]! + y) * inW + b[0]!) * c;
      out.set(data.subarray(s, s + outW * c), y * outW * c);
    }
    return { width: outW, height: outH, channels: c, data: out };
  }
  // Pillow compares the box's right/bottom edge with the *output* size here; kept as is.
  const needH = outW !== inW || b[0] !== 0 || b[2] !== outW;
  const needV = outH !== inH || b[1] !== 0 || b[3] !== outH;
  const vert = pilCoefficients(inH, b[1]!, b[3]!, outH, filter);
  const firstRow = vert.bounds[0]!;
  const lastRow = vert.bounds[2 * outH - 2]! + vert.bounds[2 * outH - 1]!;
  let cur: Uint8Array | Uint8ClampedArray = data;
  let curW = inW;
  let rowOffset = 0;
  if (needH) {
    const horiz = pilCoefficients(inW, b[0]!, b[2]!, outW, filter);
    cur = resampleHorizontal(data, inW, c, firstRow, lastRow - firstRow, outW, horiz);
    curW = outW;
    rowOffset = firstRow;
  }
  if (needV) {
    cur = resampleVertical(cur, curW, c, rowOffset, outH, vert);
  } else if (needH) {
    // Only reachable when no rows were skipped (the vertical axis is the identity).
    return { width: curW, height: outH, channels: c, data: cur };
  }
  return { width: curW, height: outH, channels: c, data: cur === data ? new Uint8Array(data) : cur };
}

/**
 * Resize like `PIL.Image.fromarray(img).resize((width, height), filter, box)` for 8-bit L, LA, RGB
 * and RGBA images. Returns a new image; the input is never modified.
 */
export function pilResize(img: ImageU8, width: number, height: number, options: PilResizeOptions = {}): ImageU8 {
  checkImage(img, 'pilResize input');
  checkSize(width, height, 'pilResize');
  const filter = options.filter ?? 'bicubic';
  if (!(filter in FILTERS)) {
    throw new ImageError(`pilResize: unknown filter '${String(filter)}' (box, bilinear, hamming, bicubic, lanczos)`);
  }
  const b = toFloatBox(img, options.box);
  // Image.resize returns a copy when neither size nor box changes anything (no alpha round trip).
  if (width === img.width && height === img.height && b[0] === 0 && b[1] === 0 && b[2] === width && b[3] === height) {
    return { width, height, channels: img.channels, data: new Uint8Array(img.data) };
  }
  const hasAlpha = img.channels === 2 || img.channels === 4;
  if (hasAlpha && options.premultiplyAlpha !== false) {
    return unpremultiplyAlpha(resampleSeparable(premultiplyAlpha(img), width, height, filter, b));
  }
  return resampleSeparable(img, width, height, filter, b);
}
