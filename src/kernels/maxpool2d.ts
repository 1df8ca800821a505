/**
 * 2-D max pooling with PyTorch `nn.MaxPool2d(kernel, stride)` semantics: no padding, no dilation,
 * floor mode (ceil_mode false: a trailing row or column that does not fill a whole window is
 * dropped). SAM 2's Hiera pools its queries and its shortcut 2x2 at every stage change
 * (hieradet.py `do_pool`), on channels-last tokens; `layout: 'nhwc'` reads those in place.
 *
 * The input is any strided 4-D view (a channel slice of a fused qkv projection, window-partitioned
 * tokens, ...); the output is contiguous in the same layout. One invocation per output element,
 * in the output's memory order. NaN propagates like PyTorch's kernel: once a NaN is seen it is
 * the result (an explicit check: `max` of WGSL leaves NaN operands unspecified).
 */
import type { GpuContext } from '../gpu/context.js';
import type { DType } from '../gpu/dtype.js';
import { check, fmtShape } from '../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { type ImageLayout, type Pair, layoutStrides, pair } from './conv2d.js';
import { perOutputMainWgsl } from './resize-antialias.js';

export interface MaxPool2dOptions {
  /** Window (kh, kw); default 2. */
  kernel?: Pair;
  /** Step (sh, sw); default = kernel. */
  stride?: Pair;
  /** Layout of input and output: 'nchw' (default) or 'nhwc'. */
  layout?: ImageLayout;
  outDtype?: DType;
}

const uniforms = defineUniforms({
  x_strides: 'vec4u', // n, c, h, w
  out_shape: 'vec4u', // N, C, OH, OW
  out_strides: 'vec4u', // n, c, oh, ow
  window: 'vec4u', // kh, kw, sh, sw
  x_offset: 'u32',
  total: 'u32',
});

interface MaxPoolConfig {
  [k: string]: string | number | boolean;
  /** Output element order of the invocations (the output's memory order, for coalesced writes). */
  order: ImageLayout;
  x: DType;
  out: DType;
}

const WG = 256;

const kernel = defineKernel({
  name: 'maxpool2d',
  uniforms,
  bindings: (c: MaxPoolConfig) => [
    { name: 'x', type: c.x, access: 'read' as const },
    { name: 'out', type: c.out, access: 'read_write' as const },
  ],
  source: (c: MaxPoolConfig) => /* wgsl */ `
${FLAT_WG}
${perOutputMainWgsl(c.order, WG)}
  let base = u.x_offset + n * u.x_strides.x + ch * u.x_strides.y + oy * u.window.z * u.x_strides.z + ox * u.window.w * u.x_strides.w;
  var m = f32(x[base]);
  for (var i = 0u; i < u.window.x; i++) {
    for (var j = 0u; j < u.window.y; j++) {
      let v = f32(x[base + i * u.x_strides.z + j * u.x_strides.w]);
      // Keep a NaN once seen; otherwise take the larger value.
      if (m == m && !(v <= m)) { m = v; }
    }
  }
  out[n * u.out_strides.x + ch * u.out_strides.y + oy * u.out_strides.z + ox * u.out_strides.w] = ${c.out}(m);
}
`,
});

/** Output side for a window `k` stepped by `s` over `len` (floor mode, no padding). */
export function pooledSize(len: number, k: number, s: number): number {
  return Math.floor((len - k) / s) + 1;
}

/** nn.MaxPool2d(kernel, stride) on a 4-D view; output contiguous in the same layout. */
export function maxPool2d(ctx: GpuContext, x: Tensor, opts: MaxPool2dOptions = {}): Tensor {
  const op = 'maxPool2d';
  const layout = opts.layout ?? 'nchw';
  check(x.ndim === 4, () => `${op}: input must be 4-D (${layout.toUpperCase()}), got ${fmtShape(x.shape)}`);
  check(x.dtype === 'f32' || x.dtype === 'f16', () => `${op}: input must be f32 or f16, got ${x}`);
  const [kh, kw] = pair(opts.kernel, 2, 'kernel', op);
  const [sh, sw] = pair(opts.stride ?? opts.kernel, 2, 'stride', op);
  check(kh >= 1 && kw >= 1 && sh >= 1 && sw >= 1, () => `${op}: kernel ${kh}x${kw} and stride ${sh}x${sw} must be positive`);
  const [N, C, H, W] = layout === 'nchw' ? x.shape : [x.shape[0]!, x.shape[3]!, x.shape[1]!, x.shape[2]!];
  const xs = layout === 'nchw' ? x.strides : [x.strides[0]!, x.strides[3]!, x.strides[1]!, x.strides[2]!];
  check(H! >= kh && W! >= kw, () => `${op}: a ${kh}x${kw} window does not fit the ${H}x${W} input ${fmtShape(x.shape)}`);
  const OH = pooledSize(H!, kh, sh);
  const OW = pooledSize(W!, kw, sw);
  const config: MaxPoolConfig = { order: layout, x: x.dtype, out: opts.outDtype ?? x.dtype };
  const lay = layoutStrides(layout, N!, C!, OH, OW);
  const out = ctx.empty(lay.shape, config.out);
  const total = N! * C! * OH * OW;
  if (total === 0) return out;
  check(total < 2 ** 32, () => `${op}: output ${fmtShape(lay.shape)} has too many elements for one dispatch`);
  ctx.run(
    kernel,
    config,
    { x, out },
    { x_strides: xs, out_shape: [N!, C!, OH, OW], out_strides: lay.strides, window: [kh, kw, sh, sw], x_offset: x.offset, total },
    grid1d(Math.ceil(total / WG)),
    { flops: total * kh * kw, bytes: x.byteSize + out.byteSize },
  );
  return out;
}
