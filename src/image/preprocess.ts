/**
 * CPU preprocessing that reproduces the official pipelines bit for bit where float32 allows:
 *
 * - SAM (`SamPredictor.set_image` + `Sam.preprocess`): resize the longest side with Pillow
 *   bilinear on uint8, `(x − mean) / std` in float32, zero pad bottom/right to a square.
 * - CLIP (`clip._transform`): Pillow bicubic on the shorter side, centre crop, RGB, `/255`,
 *   `(x − mean) / std` in float32.
 * - SAM-CLIP head inputs (DESIGN.md §5): a fixed square resize (aspect not kept) with the same
 *   Pillow bilinear, then SAM normalisation, no padding.
 *
 * Every float op is rounded to float32 in the same order as PyTorch performs it, so the outputs
 * equal the reference tensors exactly when the resized bytes do.
 */
import { ImageError, checkImage, cropImage, toRgb, type ImageU8 } from './image.js';
import { pilResize, type PilFilter } from './pil-resize.js';
import { centerCropOffsets, samResizeShape, shortSideResizeShape } from './transforms.js';

export const SAM_PIXEL_MEAN: readonly [number, number, number] = [123.675, 116.28, 103.53];
export const SAM_PIXEL_STD: readonly [number, number, number] = [58.395, 57.12, 57.375];
export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

type Triple = readonly [number, number, number];

export interface NormalizeOptions {
  mean: Triple;
  std: Triple;
  /** Divide the bytes by 255 first (torchvision ToTensor), as CLIP does; SAM works on 0–255. */
  divide255?: boolean;
  /** Zero-pad to this [H, W] (bottom/right), after normalisation, like `Sam.preprocess`. */
  padTo?: readonly [number, number];
}

/**
 * An RGB uint8 image (HWC) to a (1, 3, H', W') float32 tensor. Each step is rounded to float32
 * in PyTorch's order: [v / 255], then − mean, then / std (mean and std are float32 tensors there).
 */
export function normalizeToChw(img: ImageU8, opts: NormalizeOptions): Float32Array {
  checkImage(img, 'normalizeToChw input');
  if (img.channels !== 3) {
    throw new ImageError(`normalizeToChw: expected an RGB image (3 channels), got ${img.channels}; use toRgb() first`);
  }
  const { width: w, height: h, data } = img;
  const [outH, outW] = opts.padTo ?? [h, w];
  if (outH < h || outW < w) {
    throw new ImageError(`normalizeToChw: cannot pad a ${h}×${w} image to the smaller ${outH}×${outW}`);
  }
  const fr = Math.fround;
  const mean = opts.mean.map(fr);
  const std = opts.std.map(fr);
  for (const s of std) if (!(s !== 0 && Number.isFinite(s))) throw new ImageError(`normalizeToChw: std ${opts.std.join(', ')} must be finite and non-zero`);
  const plane = outH * outW;
  const out = new Float32Array(3 * plane);
  const div = opts.divide255 === true;
  for (let c = 0; c < 3; c++) {
    const m = mean[c]!;
    const s = std[c]!;
    // A lookup table per channel: 256 values cover every pixel and keep the rounding identical.
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = fr(fr((div ? fr(v / 255) : v) - m) / s);
    const base = c * plane;
    for (let y = 0; y < h; y++) {
      const row = base + y * outW;
      let p = y * w * 3 + c;
      for (let x = 0; x < w; x++, p += 3) out[row + x] = lut[data[p]!]!;
    }
  }
  return out;
}

export interface SamPreprocessOptions {
  /** Longest side after resizing and the side of the padded square (1024 for SAM ViT-B/L/H). */
  size?: number;
  pixelMean?: Triple;
  pixelStd?: Triple;
}

export interface SamPreprocessed {
  /** (1, 3, size, size) float32: normalised, zero-padded bottom/right. */
  readonly input: Float32Array;
  readonly shape: readonly [1, 3, number, number];
  /** The uint8 image after the resize (before normalisation and padding). */
  readonly resized: ImageU8;
  /** [h, w] of the resized image inside the padded square. */
  readonly inputSize: readonly [number, number];
  /** [H, W] of the image that was passed in. */
  readonly originalSize: readonly [number, number];
}

/** `SamPredictor.set_image` preprocessing for an RGB image (HWC uint8). */
export function samPreprocess(img: ImageU8, opts: SamPreprocessOptions = {}): SamPreprocessed {
  checkImage(img, 'samPreprocess input');
  if (img.channels !== 3) {
    throw new ImageError(
      `samPreprocess: SAM takes RGB images (3 channels), got ${img.channels}; convert with toRgb() first`,
    );
  }
  const size = opts.size ?? 1024;
  const [h, w] = samResizeShape(img.height, img.width, size);
  if (h < 1 || w < 1) {
    throw new ImageError(
      `samPreprocess: a ${img.height}×${img.width} image resized to longest side ${size} would be ${h}×${w}; the aspect ratio is too extreme`,
    );
  }
  const resized = pilResize(img, w, h, { filter: 'bilinear' });
  const input = normalizeToChw(resized, {
    mean: opts.pixelMean ?? SAM_PIXEL_MEAN,
    std: opts.pixelStd ?? SAM_PIXEL_STD,
    padTo: [size, size],
  });
  return { input, shape: [1, 3, size, size], resized, inputSize: [h, w], originalSize: [img.height, img.width] };
}

export interface ClipPreprocessOptions {
  /** The model's input size (224 for ViT-B/16); shorter side target and crop size. */
  size?: number;
  mean?: Triple;
  std?: Triple;
}

export interface ClipPreprocessed {
  /** (1, 3, size, size) float32. */
  readonly input: Float32Array;
  readonly shape: readonly [1, 3, number, number];
  /** The uint8 RGB image after resize and centre crop (size × size). */
  readonly resized: ImageU8;
}

/**
 * `clip._transform(size)`: Resize(size, BICUBIC) on the shorter side, CenterCrop(size), RGB,
 * ToTensor, Normalize. Any 1–4 channel image is accepted; alpha takes part in the resize as in
 * Pillow (premultiplied) and is dropped afterwards, as `convert('RGB')` does.
 */
export function clipPreprocess(img: ImageU8, opts: ClipPreprocessOptions = {}): ClipPreprocessed {
  checkImage(img, 'clipPreprocess input');
  const size = opts.size ?? 224;
  const [h, w] = shortSideResizeShape(img.height, img.width, size);
  const resized = pilResize(img, w, h, { filter: 'bicubic' });
  const [top, left] = centerCropOffsets(h, w, size, size);
  const cropped = toRgb(cropImage(resized, left, top, size, size));
  const input = normalizeToChw(cropped, { mean: opts.mean ?? CLIP_MEAN, std: opts.std ?? CLIP_STD, divide255: true });
  return { input, shape: [1, 3, size, size], resized: cropped };
}

/** Resize to exactly width × height (aspect not kept) with Pillow's antialiased filter. */
export function fixedResize(img: ImageU8, width: number, height: number, filter: PilFilter = 'bilinear'): ImageU8 {
  return pilResize(img, width, height, { filter });
}

export interface SamclipPreprocessed {
  /** (1, 3, size, size) float32, SAM normalisation, no padding. */
  readonly input: Float32Array;
  readonly shape: readonly [1, 3, number, number];
  readonly resized: ImageU8;
}

/**
 * SAM-CLIP head-only / classification input (DESIGN.md §5): the RGB image resized to
 * size × size with Pillow bilinear (448 for segmentation, 224 or 336 for classification),
 * normalised with SAM's mean and std.
 */
export function samclipPreprocess(
  img: ImageU8,
  size: number,
  opts: { pixelMean?: Triple; pixelStd?: Triple } = {},
): SamclipPreprocessed {
  checkImage(img, 'samclipPreprocess input');
  if (img.channels !== 3) {
    throw new ImageError(
      `samclipPreprocess: expects RGB images (3 channels), got ${img.channels}; convert with toRgb() first`,
    );
  }
  const resized = fixedResize(img, size, size, 'bilinear');
  const input = normalizeToChw(resized, { mean: opts.pixelMean ?? SAM_PIXEL_MEAN, std: opts.pixelStd ?? SAM_PIXEL_STD });
  return { input, shape: [1, 3, size, size], resized };
}
