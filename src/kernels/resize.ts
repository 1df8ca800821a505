/**
 * Image resampling with PyTorch `F.interpolate` semantics (no antialias):
 *  - `resizeBilinear`: mode 'bilinear'. align_corners false maps output pixel d to the source
 *    coordinate (d + 0.5) * in/out - 0.5 and clamps negative coordinates to 0; the two taps are
 *    floor(s) and floor(s) + 1 limited to the last row.
 *  - `resizeBicubic`: mode 'bicubic', Keys kernel with a = -0.75; no clamp of the coordinate, the
 *    four taps floor(s) - 1 .. floor(s) + 2 are clamped into the image (border replicate).
 *  - `resizeLinear1d`: mode 'linear' on [N, C, L]; bilinear with a height of 1 is exactly that.
 *
 * Output size 1 follows PyTorch, which uses the same formula (source in/2 - 0.5): that is ONNX
 * `half_pixel`, not ONNX `pytorch_half_pixel` (which maps a size-1 output to source 0).
 *
 * The input is addressed through strides, so `crop` (SAM's mask post-processing crops the padded
 * 1024 frame before resizing to the original size) and `layout: 'nhwc'` (position tables stored
 * [1, H, W, C]) are zero-copy views; any other strided view works too.
 */
import type { GpuContext } from '../gpu/context.js';
import type { DType } from '../gpu/dtype.js';
import { check, fmtShape } from '../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { type ImageLayout, layoutStrides } from './conv2d.js';

export type ResizeMode = 'bilinear' | 'bicubic';

export interface ResizeCrop {
  top: number;
  left: number;
  height: number;
  width: number;
}

export interface ResizeOptions {
  alignCorners?: boolean;
  /** Only `false` (PyTorch's default) is implemented. */
  antialias?: false;
  /** Resize x[..., top:top+height, left:left+width] as if it had been sliced first. */
  crop?: ResizeCrop;
  /** Layout of input and output: 'nchw' (default) or 'nhwc'. */
  layout?: ImageLayout;
  outDtype?: DType;
}

const uniforms = defineUniforms({
  x_shape: 'vec4u', // N, C, H, W (after the crop)
  x_strides: 'vec4u', // n, c, h, w
  out_shape: 'vec4u', // N, C, OH, OW
  out_strides: 'vec4u', // n, c, oh, ow
  scale: 'vec4f', // h, w (input pixels per output pixel), -, -
  x_offset: 'u32',
  align_corners: 'u32',
  total: 'u32',
});

interface ResizeConfig {
  [k: string]: string | number | boolean;
  mode: ResizeMode;
  /** Output element order of the invocations (the output's memory order, for coalesced writes). */
  order: ImageLayout;
  x: DType;
  out: DType;
}

const kernel = defineKernel({
  name: 'resize',
  uniforms,
  bindings: (c: ResizeConfig) => [
    { name: 'x', type: c.x, access: 'read' as const },
    { name: 'out', type: c.out, access: 'read_write' as const },
  ],
  source: (c: ResizeConfig) => /* wgsl */ `
${FLAT_WG}
fn src_coord(d: u32, scale: f32) -> f32 {
  if (u.align_corners != 0u) { return scale * f32(d); }
  return scale * (f32(d) + 0.5) - 0.5;
}
fn at(n: u32, c: u32, y: u32, x_: u32) -> f32 {
  return f32(x[u.x_offset + n * u.x_strides.x + c * u.x_strides.y + y * u.x_strides.z + x_ * u.x_strides.w]);
}
${c.mode === 'bilinear' ? BILINEAR : BICUBIC}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat_wg(wid, nwg) * 256u + lid.x;
  if (e >= u.total) { return; }
  let C = u.out_shape.y;
  let OH = u.out_shape.z;
  let OW = u.out_shape.w;
${
  c.order === 'nchw'
    ? `  let ox = e % OW;
  let oy = (e / OW) % OH;
  let ch = (e / (OW * OH)) % C;
  let n = e / (OW * OH * C);`
    : `  let ch = e % C;
  let ox = (e / C) % OW;
  let oy = (e / (C * OW)) % OH;
  let n = e / (C * OW * OH);`
}
  let v = sample(n, ch, oy, ox);
  out[n * u.out_strides.x + ch * u.out_strides.y + oy * u.out_strides.z + ox * u.out_strides.w] = ${c.out}(v);
}
`,
});

const BILINEAR = /* wgsl */ `
struct Taps { i0: u32, i1: u32, w1: f32 }
// Lower tap, upper tap and the weight of the upper tap along one axis.
fn taps(d: u32, scale: f32, len: u32) -> Taps {
  let s = max(src_coord(d, scale), 0.0);
  let i0 = min(u32(floor(s)), len - 1u);
  return Taps(i0, min(i0 + 1u, len - 1u), clamp(s - f32(i0), 0.0, 1.0));
}
fn sample(n: u32, c: u32, oy: u32, ox: u32) -> f32 {
  let ty = taps(oy, u.scale.x, u.x_shape.z);
  let tx = taps(ox, u.scale.y, u.x_shape.w);
  let top = (1.0 - tx.w1) * at(n, c, ty.i0, tx.i0) + tx.w1 * at(n, c, ty.i0, tx.i1);
  let bottom = (1.0 - tx.w1) * at(n, c, ty.i1, tx.i0) + tx.w1 * at(n, c, ty.i1, tx.i1);
  return (1.0 - ty.w1) * top + ty.w1 * bottom;
}
`;

const BICUBIC = /* wgsl */ `
const A: f32 = -0.75;
// Keys cubic convolution weights of the taps at offsets -1, 0, 1, 2 from floor(s), t = s - floor(s).
fn cubic_weights(t: f32) -> vec4<f32> {
  let t1 = t + 1.0;   // in (1, 2]
  let t2 = 1.0 - t;   // in (0, 1]
  let t3 = 2.0 - t;   // in (1, 2]
  return vec4<f32>(
    ((A * t1 - 5.0 * A) * t1 + 8.0 * A) * t1 - 4.0 * A,
    ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0,
    ((A + 2.0) * t2 - (A + 3.0)) * t2 * t2 + 1.0,
    ((A * t3 - 5.0 * A) * t3 + 8.0 * A) * t3 - 4.0 * A);
}
fn sample(n: u32, c: u32, oy: u32, ox: u32) -> f32 {
  let sy = src_coord(oy, u.scale.x);
  let sx = src_coord(ox, u.scale.y);
  let fy = floor(sy);
  let fx = floor(sx);
  let wy = cubic_weights(sy - fy);
  let wx = cubic_weights(sx - fx);
  let last_y = i32(u.x_shape.z) - 1;
  let last_x = i32(u.x_shape.w) - 1;
  var xs: array<u32, 4>;
  for (var j = 0; j < 4; j++) { xs[j] = u32(clamp(i32(fx) - 1 + j, 0, last_x)); }
  var acc = 0.0;
  for (var i = 0; i < 4; i++) {
    let y = u32(clamp(i32(fy) - 1 + i, 0, last_y));
    let row = wx.x * at(n, c, y, xs[0]) + wx.y * at(n, c, y, xs[1]) + wx.z * at(n, c, y, xs[2]) + wx.w * at(n, c, y, xs[3]);
    acc += wy[i] * row;
  }
  return acc;
}
`;

/** Input pixels per output pixel along one axis, as PyTorch computes it for a given output size. */
function axisScale(inLen: number, outLen: number, alignCorners: boolean): number {
  if (alignCorners) return outLen > 1 ? (inLen - 1) / (outLen - 1) : 0;
  return inLen / outLen;
}

function resize(ctx: GpuContext, op: string, mode: ResizeMode, x: Tensor, outH: number, outW: number, opts: ResizeOptions): Tensor {
  const layout = opts.layout ?? 'nchw';
  check(x.ndim === 4, () => `${op}: input must be 4-D (${layout.toUpperCase()}), got ${fmtShape(x.shape)}`);
  check(x.dtype === 'f32' || x.dtype === 'f16', () => `${op}: input must be f32 or f16, got ${x}`);
  check(Number.isInteger(outH) && Number.isInteger(outW) && outH >= 1 && outW >= 1,
    () => `${op}: output size must be positive integers, got ${outH}x${outW}`);
  check(opts.antialias === undefined || opts.antialias === false, () => `${op}: antialias is not implemented (PIL-style resampling lives in src/image)`);
  const hDim = layout === 'nchw' ? 2 : 1;
  const wDim = hDim + 1;
  let view = x;
  const owned: Tensor[] = [];
  if (opts.crop) {
    const { top, left, height, width } = opts.crop;
    const H = x.dim(hDim);
    const W = x.dim(wDim);
    check([top, left, height, width].every((v) => Number.isInteger(v)) && top >= 0 && left >= 0 && height >= 1 && width >= 1 && top + height <= H && left + width <= W,
      () => `${op}: crop ${JSON.stringify(opts.crop)} is not inside the ${H}x${W} input ${fmtShape(x.shape)}`);
    const rows = x.slice(hDim, top, top + height);
    view = rows.slice(wDim, left, left + width);
    owned.push(rows, view);
  }
  const [N, C, H, W] = layout === 'nchw' ? view.shape : [view.shape[0]!, view.shape[3]!, view.shape[1]!, view.shape[2]!];
  const xs = layout === 'nchw' ? view.strides : [view.strides[0]!, view.strides[3]!, view.strides[1]!, view.strides[2]!];
  check(H >= 1 && W >= 1, () => `${op}: empty input ${fmtShape(x.shape)}`);
  const align = !!opts.alignCorners;
  const config: ResizeConfig = { mode, order: layout, x: x.dtype, out: opts.outDtype ?? x.dtype };
  const lay = layoutStrides(layout, N, C, outH, outW);
  const out = ctx.empty(lay.shape, config.out);
  const total = N * C * outH * outW;
  check(total < 2 ** 32, () => `${op}: output ${fmtShape(lay.shape)} has too many elements for one dispatch`);
  const values = {
    x_shape: [N, C, H, W],
    x_strides: xs,
    out_shape: [N, C, outH, outW],
    out_strides: lay.strides,
    scale: [axisScale(H, outH, align), axisScale(W, outW, align), 0, 0],
    x_offset: view.offset,
    align_corners: align ? 1 : 0,
    total,
  };
  const taps = mode === 'bilinear' ? 4 : 16;
  ctx.run(kernel, config, { x: view, out }, values, grid1d(Math.ceil(total / 256)), {
    flops: 2 * taps * total,
    bytes: view.byteSize + out.byteSize,
  });
  for (const t of owned) t.dispose();
  return out;
}

/** PyTorch `F.interpolate(x, size=(outH, outW), mode='bilinear')`. */
export function resizeBilinear(ctx: GpuContext, x: Tensor, outH: number, outW: number, opts: ResizeOptions = {}): Tensor {
  return resize(ctx, 'resizeBilinear', 'bilinear', x, outH, outW, opts);
}

/** PyTorch `F.interpolate(x, size=(outH, outW), mode='bicubic')` (a = -0.75, border replicate). */
export function resizeBicubic(ctx: GpuContext, x: Tensor, outH: number, outW: number, opts: ResizeOptions = {}): Tensor {
  return resize(ctx, 'resizeBicubic', 'bicubic', x, outH, outW, opts);
}

export interface ResizeLinear1dOptions {
  alignCorners?: boolean;
  /** 'ncl' (default): x is [N, C, L] or [C, L]; 'nlc': x is [N, L, C] or [L, C] (SAM's rel_pos tables). */
  layout?: 'ncl' | 'nlc';
  outDtype?: DType;
}

/**
 * PyTorch `F.interpolate(x, size=outL, mode='linear')` along L. With layout 'nlc' a SAM relative
 * position table [2S-1, C] is resized along its first axis without any permute.
 */
export function resizeLinear1d(ctx: GpuContext, x: Tensor, outL: number, opts: ResizeLinear1dOptions = {}): Tensor {
  const layout = opts.layout ?? 'ncl';
  check(x.ndim === 2 || x.ndim === 3, () => `resizeLinear1d: input must be [N, C, L] or [C, L] ([N, L, C] or [L, C] with layout 'nlc'), got ${fmtShape(x.shape)}`);
  const x3 = x.ndim === 2 ? x.unsqueeze(0) : x.ref();
  // A height of 1 makes the row taps exact (source row 0, weight 1), leaving plain linear along W.
  const x4 = layout === 'ncl' ? x3.unsqueeze(2) : x3.unsqueeze(1);
  x3.dispose();
  const y4 = resize(ctx, 'resizeLinear1d', 'bilinear', x4, 1, outL, {
    alignCorners: opts.alignCorners,
    layout: layout === 'ncl' ? 'nchw' : 'nhwc',
    outDtype: opts.outDtype,
  });
  x4.dispose();
  const [N, a, b, c] = y4.shape as [number, number, number, number];
  const shape3 = layout === 'ncl' ? [N, a, c] : [N, b, c];
  const y = y4.reshape(x.ndim === 2 ? shape3.slice(1) : shape3);
  y4.dispose();
  return y;
}
