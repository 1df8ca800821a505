/**
 * Antialiased bilinear resampling of float images, with PyTorch's
 * `F.interpolate(x, size, mode='bilinear', align_corners=False, antialias=True)` semantics (what
 * torchvision's `Resize` does to tensors since 0.17, and so what SAM 2's preprocessing computes:
 * sam2/utils/transforms.py). Upsampling is plain bilinear; downsampling widens the triangle filter
 * by the scale factor so every input pixel contributes (no aliasing), like Pillow's resampling.
 *
 * Per axis, for output index i with scale s = in / out:
 *   centre = s (i + 0.5), support = max(s, 1), invscale = min(1 / s, 1)
 *   taps j in [trunc(centre - support + 0.5) clamped at 0, trunc(centre + support + 0.5) clamped at in)
 *   w_j = max(0, 1 - |(j - centre + 0.5) invscale|), normalised to sum 1
 * all in f32, as PyTorch's CPU kernel computes them for f32 input. The two axes are separable and
 * run as two passes, width first then height (PyTorch's order), through an f32 intermediate.
 *
 * Input forms:
 *  - `resizeAntialias`: any strided 4-D float view (NCHW or NHWC);
 *  - `resizeAntialiasBytes`: an 8-bit HWC image as packed bytes (four per u32 word), each value
 *    divided by `divisor` on the way in, i.e. torchvision's ToTensor (`/ 255`) fused into the first
 *    pass. A 12-megapixel photo is 36 MB of bytes but 145 MB of floats, over a 128 MiB storage
 *    binding: the bytes never become a full-size float image.
 * The output is f32 (or `outDtype`), contiguous, in the input's layout (NCHW for bytes).
 */
import type { GpuContext } from '../gpu/context.js';
import type { DType } from '../gpu/dtype.js';
import { check, fmtShape } from '../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { type ImageLayout, layoutStrides } from './conv2d.js';

export interface ResizeAntialiasOptions {
  /** Layout of input and output: 'nchw' (default) or 'nhwc'. */
  layout?: ImageLayout;
  outDtype?: DType;
}

const uniforms = defineUniforms({
  x_strides: 'vec4u', // n, c, h, w (elements; bytes for packed u8)
  out_shape: 'vec4u', // N, C, OH, OW
  out_strides: 'vec4u', // n, c, oh, ow
  x_offset: 'u32',
  in_len: 'u32', // input length along the resampled axis
  total: 'u32',
  scale: 'f32', // in / out along the resampled axis
  support: 'f32',
  invscale: 'f32',
  divisor: 'f32',
});

interface PassConfig {
  [k: string]: string | number | boolean;
  /** Resampled axis. */
  axis: 'h' | 'w';
  /** Element order of the invocations (the output's memory order). */
  order: ImageLayout;
  /** 'u8': bytes packed four per u32 word. */
  x: DType | 'u8';
  out: DType;
}

const WG = 256;

/**
 * WGSL: the entry point of a kernel with one invocation per output element, opened up to its body:
 * element `e` (bounds-checked against `u.total`) of an [N, C, OH, OW] output (`u.out_shape`) ->
 * n, ch, oy, ox, enumerated in the output's memory order (`order`) so that neighbouring invocations
 * write neighbouring addresses. The caller writes the body and the closing brace.
 */
export function perOutputMainWgsl(order: ImageLayout, wg: number): string {
  const head = `@compute @workgroup_size(${wg}, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat_wg(wid, nwg) * ${wg}u + lid.x;
  if (e >= u.total) { return; }
  let C = u.out_shape.y;
  let OH = u.out_shape.z;
  let OW = u.out_shape.w;
`;
  return order === 'nchw'
    ? `${head}  let ox = e % OW;
  let oy = (e / OW) % OH;
  let ch = (e / (OW * OH)) % C;
  let n = e / (OW * OH * C);`
    : `${head}  let ch = e % C;
  let ox = (e / C) % OW;
  let oy = (e / (C * OW)) % OH;
  let n = e / (C * OW * OH);`;
}

const kernel = defineKernel({
  name: 'resize_antialias',
  uniforms,
  bindings: (c: PassConfig) => [
    { name: 'x', type: c.x === 'u8' ? 'u32' : c.x, access: 'read' as const },
    { name: 'out', type: c.out, access: 'read_write' as const },
  ],
  source: (c: PassConfig) => {
    const load =
      c.x === 'u8'
        ? `fn load(i: u32) -> f32 { return f32((x[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu) / u.divisor; }`
        : `fn load(i: u32) -> f32 { return f32(x[i]); }`;
    // The resampled axis' output index and input stride.
    const [pos, stride] = c.axis === 'w' ? ['ox', 'u.x_strides.w'] : ['oy', 'u.x_strides.z'];
    return /* wgsl */ `
${FLAT_WG}
${load}
fn tri(v: f32) -> f32 { return max(0.0, 1.0 - abs(v)); }
${perOutputMainWgsl(c.order, WG)}
  let centre = u.scale * (f32(${pos}) + 0.5);
  // i32() truncates toward zero, as PyTorch's int64 conversion does.
  let lo = u32(max(i32(centre - u.support + 0.5), 0));
  let hi = u32(min(i32(centre + u.support + 0.5), i32(u.in_len)));
  var total = 0.0;
  for (var j = lo; j < hi; j++) { total += tri((f32(j) - centre + 0.5) * u.invscale); }
${
  c.axis === 'w'
    ? `  let base = u.x_offset + n * u.x_strides.x + ch * u.x_strides.y + oy * u.x_strides.z;`
    : `  let base = u.x_offset + n * u.x_strides.x + ch * u.x_strides.y + ox * u.x_strides.w;`
}
  var acc = 0.0;
  for (var j = lo; j < hi; j++) {
    // Each weight is normalised before use (w / total, not acc / total), as PyTorch stores them.
    var w = tri((f32(j) - centre + 0.5) * u.invscale);
    if (total != 0.0) { w = w / total; }
    acc += load(base + j * ${stride}) * w;
  }
  out[n * u.out_strides.x + ch * u.out_strides.y + oy * u.out_strides.z + ox * u.out_strides.w] = ${c.out}(acc);
}
`;
  },
});

interface PassInput {
  tensor: Tensor;
  dtype: DType | 'u8';
  /** Logical (n, c, h, w) shape and strides. */
  shape: readonly [number, number, number, number];
  strides: readonly number[];
  offset: number;
  divisor: number;
}

/** One separable pass along `axis` to `outLen`; output contiguous in `layout`. */
function pass(ctx: GpuContext, inp: PassInput, axis: 'h' | 'w', outLen: number, layout: ImageLayout, outDtype: DType): Tensor {
  const [N, C, H, W] = inp.shape;
  const inLen = axis === 'w' ? W : H;
  const [OH, OW] = axis === 'w' ? [H, outLen] : [outLen, W];
  const lay = layoutStrides(layout, N, C, OH, OW);
  const out = ctx.empty(lay.shape, outDtype);
  const total = N * C * OH * OW;
  check(total < 2 ** 32, () => `resizeAntialias: output ${fmtShape(lay.shape)} has too many elements for one dispatch`);
  const scale = Math.fround(inLen / outLen);
  const support = scale >= 1 ? scale : 1;
  const invscale = scale >= 1 ? Math.fround(1 / scale) : 1;
  const taps = Math.ceil(2 * support) + 1;
  ctx.run(
    kernel,
    { axis, order: layout, x: inp.dtype, out: outDtype },
    { x: inp.tensor, out },
    { x_strides: inp.strides, out_shape: [N, C, OH, OW], out_strides: lay.strides, x_offset: inp.offset, in_len: inLen, total, scale, support, invscale, divisor: inp.divisor },
    grid1d(Math.ceil(total / WG)),
    { flops: 4 * taps * total, bytes: inp.tensor.byteSize + out.byteSize },
  );
  return out;
}

function checkSize(op: string, outH: number, outW: number): void {
  check(Number.isInteger(outH) && Number.isInteger(outW) && outH >= 1 && outW >= 1, () => `${op}: output size must be positive integers, got ${outH}x${outW}`);
}

/** Both passes: width first (from `inp`), then height (from the f32 intermediate). */
function twoPass(ctx: GpuContext, inp: PassInput, outH: number, outW: number, layout: ImageLayout, outDtype: DType): Tensor {
  const mid = pass(ctx, inp, 'w', outW, 'nchw', 'f32');
  try {
    const [N, C, H] = inp.shape;
    return pass(ctx, { tensor: mid, dtype: 'f32', shape: [N, C, H, outW], strides: mid.strides, offset: 0, divisor: 1 }, 'h', outH, layout, outDtype);
  } finally {
    mid.dispose();
  }
}

/** `F.interpolate(x, (outH, outW), mode='bilinear', antialias=True)` on a float 4-D view. */
export function resizeAntialias(ctx: GpuContext, x: Tensor, outH: number, outW: number, opts: ResizeAntialiasOptions = {}): Tensor {
  const op = 'resizeAntialias';
  const layout = opts.layout ?? 'nchw';
  check(x.ndim === 4, () => `${op}: input must be 4-D (${layout.toUpperCase()}), got ${fmtShape(x.shape)}`);
  check(x.dtype === 'f32' || x.dtype === 'f16', () => `${op}: input must be f32 or f16, got ${x}`);
  checkSize(op, outH, outW);
  const shape = (layout === 'nchw' ? x.shape : [x.shape[0]!, x.shape[3]!, x.shape[1]!, x.shape[2]!]) as [number, number, number, number];
  const strides = layout === 'nchw' ? x.strides : [x.strides[0]!, x.strides[3]!, x.strides[1]!, x.strides[2]!];
  check(shape[2] >= 1 && shape[3] >= 1, () => `${op}: empty input ${fmtShape(x.shape)}`);
  return twoPass(ctx, { tensor: x, dtype: x.dtype, shape, strides, offset: x.offset, divisor: 1 }, outH, outW, layout, opts.outDtype ?? 'f32');
}

/** An 8-bit HWC image packed four bytes per u32 word (`packBytes`), as the first pass reads it. */
export interface PackedImage {
  /** u32 words holding height x width x channels bytes, row-major HWC. */
  words: Tensor;
  height: number;
  width: number;
  channels: number;
}

/** Bytes -> u32 words (little-endian, zero padded to a whole word) for upload. */
export function packBytes(bytes: Uint8Array | Uint8ClampedArray): Uint32Array {
  const words = new Uint32Array(Math.ceil(bytes.length / 4));
  new Uint8Array(words.buffer).set(bytes);
  return words;
}

/**
 * `F.interpolate(ToTensor(image), (outH, outW), mode='bilinear', antialias=True)` for an 8-bit HWC
 * image: values are divided by `divisor` (255: ToTensor) as they are read. Output [1, C, outH, outW].
 */
export function resizeAntialiasBytes(ctx: GpuContext, img: PackedImage, outH: number, outW: number, opts: { divisor?: number; outDtype?: DType } = {}): Tensor {
  const op = 'resizeAntialiasBytes';
  const { words, height: H, width: W, channels: C } = img;
  check(words.dtype === 'u32' && words.isContiguous, () => `${op}: the image must be packed bytes in a contiguous u32 tensor, got ${words}`);
  check([H, W, C].every((v) => Number.isInteger(v) && v >= 1), () => `${op}: image size ${H}x${W}x${C} must be positive integers`);
  check(words.size * 4 >= H * W * C && words.size * 4 < H * W * C + 4,
    () => `${op}: ${words.size} words hold ${words.size * 4} bytes, a ${H}x${W}x${C} image has ${H * W * C}`);
  checkSize(op, outH, outW);
  const divisor = opts.divisor ?? 255;
  check(Number.isFinite(divisor) && divisor !== 0, () => `${op}: divisor must be a non-zero number, got ${divisor}`);
  const inp: PassInput = { tensor: words, dtype: 'u8', shape: [1, C, H, W], strides: [H * W * C, 1, W * C, C], offset: words.offset * 4, divisor };
  return twoPass(ctx, inp, outH, outW, 'nchw', opts.outDtype ?? 'f32');
}
