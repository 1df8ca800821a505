/**
 * 2-D convolution (PyTorch `nn.Conv2d` / ONNX `Conv`): out = act(conv(x, w) + bias).
 *
 * x is [N, C, H, W] (or [N, H, W, C] with `inLayout: 'nhwc'`), w is [O, C/groups, kh, kw]; both
 * may be arbitrary strided views, because the kernels address them through four strides in the
 * logical (n, c, h, w) order. An NHWC input is therefore just a permuted view, and the output can
 * be written in either layout (`outLayout`) by the same shader: SAM's patch embedding wants
 * tokens [N, H/16, W/16, C] and its neck consumes them, so neither side needs a permute copy.
 *
 * Variants (`selectConv2d` picks; tests force each):
 *  - `tiled`: implicit GEMM. Rows are output pixels (M = N*OH*OW), columns the output channels of
 *    one group, the reduction runs over (c, ky, kx). Patches are gathered straight from x into
 *    workgroup memory (no im2col buffer), 64x64 output tile, 16x16 invocations owning 4x4 each.
 *    Patch embedding (16x16 stride 16) is exactly a matmul of non-overlapping patches, so this is
 *    the fast path for it and for the 1x1 / 3x3 neck convs.
 *  - `direct`: one invocation per output element looping over its window. For a handful of output
 *    channels (SAM's mask downscaling 1->4->16) a 64-channel tile would mostly idle.
 *  - `gemm` (CPU adapters, groups 1; conv2d-gemm.ts): the patches copied out as an im2col matrix,
 *    then the nn.Linear matmul, whose CPU-adapter kernels run 3-5x the tiled conv's GFLOP/s there.
 */
import type { GpuContext } from '../gpu/context.js';
import type { DType } from '../gpu/dtype.js';
import { check, fmtShape } from '../gpu/errors.js';
import { type BindingDecl, FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import { type Tensor, contiguousStrides } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { ACTIVATION_BY_CODE_WGSL, ACTIVATION_WGSL, type Activation, activationCode } from './activation.js';
import { conv2dGemm, gemmFits } from './conv2d-gemm.js';

export type Conv2dVariant = 'tiled' | 'direct' | 'gemm';
export type ImageLayout = 'nchw' | 'nhwc';
/** One value for both axes, or [h, w]. */
export type Pair = number | readonly [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  /** Zero padding: one value, [h, w] (both sides), or [top, left, bottom, right] like ONNX `pads`. */
  padding?: number | readonly [number, number] | readonly [number, number, number, number];
  dilation?: Pair;
  groups?: number;
  act?: Activation;
  /** Layout of `x`: 'nchw' (default) or 'nhwc' ([N, H, W, C]). */
  inLayout?: ImageLayout;
  /** Layout of the output: 'nchw' (default) or 'nhwc' ([N, OH, OW, O]). */
  outLayout?: ImageLayout;
  outDtype?: DType;
  /** Force an algorithm (tests, benchmarks). */
  variant?: Conv2dVariant;
}

const uniforms = defineUniforms({
  x_shape: 'vec4u', // N, C, H, W
  x_strides: 'vec4u', // n, c, h, w
  w_strides: 'vec4u', // o, c, ky, kx
  out_shape: 'vec4u', // N, O, OH, OW
  out_strides: 'vec4u', // n, o, oh, ow
  window: 'vec4u', // kh, kw, channels per group (in), channels per group (out)
  stride_dil: 'vec4u', // stride h, stride w, dilation h, dilation w
  pad: 'vec4i', // top, left, -, -
  x_offset: 'u32',
  w_offset: 'u32',
  M: 'u32', // N * OH * OW
  K: 'u32', // C/groups * kh * kw
  // Chosen at run time, not compiled in (one pipeline for every bias / activation, as matmul does):
  act: 'u32', // activation code (activation.ts)
  has_bias: 'u32', // 0: the bias binding is x, never read
});

interface Conv2dConfig {
  [k: string]: string | number | boolean;
  variant: Conv2dVariant;
  x: DType;
  w: DType;
  out: DType;
  /** The bias binding's element type (always bound; `has_bias` says whether it is real). */
  bias: DType;
}

const TILE = 64;
const TK = 16;

function bindings(c: Conv2dConfig): BindingDecl[] {
  const list: BindingDecl[] = [
    { name: 'x', type: c.x, access: 'read' },
    { name: 'w', type: c.w, access: 'read' },
  ];
  list.push({ name: 'bias', type: c.bias, access: 'read' });
  list.push({ name: 'out', type: c.out, access: 'read_write' });
  return list;
}

function store(c: Conv2dConfig, acc: string, o: string, index: string): string {
  return `out[${index}] = ${c.out}(conv_epilogue(${acc}, ${o}));`;
}

// The epilogue, act(acc + bias), with both chosen by uniforms: one pipeline serves every bias and
// activation (each conv2d pipeline is about half a second of LLVM compile on lavapipe).
const EPILOGUE = /* wgsl */ `${ACTIVATION_WGSL}
${ACTIVATION_BY_CODE_WGSL}
fn conv_epilogue(acc: f32, o: u32) -> f32 {
  var y = acc;
  if (u.has_bias != 0u) { y += f32(bias[o]); }
  return act_by_code(u.act, y);
}
`;

// Shared WGSL: decode a reduction index into (c, ky, kx) and an output pixel into (n, oh, ow).
const HELPERS = /* wgsl */ `
fn decode_k(k: u32) -> vec3<u32> {
  let khw = u.window.x * u.window.y;
  let c = k / khw;
  let r = k - c * khw;
  let ky = r / u.window.y;
  return vec3<u32>(c, ky, r - ky * u.window.y);
}
fn decode_m(m: u32) -> vec3<u32> {
  let hw = u.out_shape.z * u.out_shape.w;
  let n = m / hw;
  let r = m - n * hw;
  let oh = r / u.out_shape.w;
  return vec3<u32>(n, oh, r - oh * u.out_shape.w);
}
fn out_index(p: vec3<u32>, o: u32) -> u32 {
  return p.x * u.out_strides.x + o * u.out_strides.y + p.y * u.out_strides.z + p.z * u.out_strides.w;
}
`;

const tiledKernel = defineKernel({
  name: 'conv2d',
  uniforms,
  bindings,
  source: (c: Conv2dConfig) => /* wgsl */ `
${EPILOGUE}
${HELPERS}
const TILE: u32 = ${TILE}u;
const TK: u32 = ${TK}u;
var<workgroup> tile_a: array<f32, ${TILE * TK}>; // [k][pixel]
var<workgroup> tile_b: array<f32, ${TILE * TK}>; // [k][out channel]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let group = wid.z;
  let row0 = wid.y * TILE;
  let col0 = wid.x * TILE;
  let flat = lid.y * 16u + lid.x;
  let og = u.window.w;
  let c0 = group * u.window.z;
  // Each invocation loads the same 4 pixels and 4 weight rows for every K step: decode their
  // window origins once. Consecutive invocations walk k (kx is the contiguous direction of an
  // NCHW image and of the weights).
  let lk = flat % TK;
  var a_base: array<u32, 4>;
  var a_y0: array<i32, 4>;
  var a_x0: array<i32, 4>;
  var a_ok: array<bool, 4>;
  var b_base: array<u32, 4>;
  var b_ok: array<bool, 4>;
  for (var i = 0u; i < 4u; i++) {
    let lm = flat / TK + i * 16u;
    let m = row0 + lm;
    a_ok[i] = m < u.M;
    let p = decode_m(min(m, u.M - 1u));
    a_base[i] = u.x_offset + p.x * u.x_strides.x + c0 * u.x_strides.y;
    a_y0[i] = i32(p.y * u.stride_dil.x) - u.pad.x;
    a_x0[i] = i32(p.z * u.stride_dil.y) - u.pad.y;
    let o = col0 + lm;
    b_ok[i] = o < og;
    b_base[i] = u.w_offset + (group * og + min(o, og - 1u)) * u.w_strides.x;
  }
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < u.K; k0 += TK) {
    let k = k0 + lk;
    let kd = decode_k(min(k, u.K - 1u));
    let dy = i32(kd.y * u.stride_dil.z);
    let dx = i32(kd.z * u.stride_dil.w);
    let w_off = kd.x * u.w_strides.y + kd.y * u.w_strides.z + kd.z * u.w_strides.w;
    for (var i = 0u; i < 4u; i++) {
      let lm = flat / TK + i * 16u;
      let iy = a_y0[i] + dy;
      let ix = a_x0[i] + dx;
      var av = 0.0;
      if (a_ok[i] && k < u.K && iy >= 0 && iy < i32(u.x_shape.z) && ix >= 0 && ix < i32(u.x_shape.w)) {
        av = f32(x[a_base[i] + kd.x * u.x_strides.y + u32(iy) * u.x_strides.z + u32(ix) * u.x_strides.w]);
      }
      tile_a[lk * TILE + lm] = av;
      var bv = 0.0;
      if (b_ok[i] && k < u.K) { bv = f32(w[b_base[i] + w_off]); }
      tile_b[lk * TILE + lm] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      let av = vec4<f32>(tile_a[kk * TILE + lid.y * 4u], tile_a[kk * TILE + lid.y * 4u + 1u],
                         tile_a[kk * TILE + lid.y * 4u + 2u], tile_a[kk * TILE + lid.y * 4u + 3u]);
      let bv = vec4<f32>(tile_b[kk * TILE + lid.x * 4u], tile_b[kk * TILE + lid.x * 4u + 1u],
                         tile_b[kk * TILE + lid.x * 4u + 2u], tile_b[kk * TILE + lid.x * 4u + 3u]);
      acc[0] += av.x * bv;
      acc[1] += av.y * bv;
      acc[2] += av.z * bv;
      acc[3] += av.w * bv;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = row0 + lid.y * 4u + i;
    if (m >= u.M) { continue; }
    let p = decode_m(m);
    for (var j = 0u; j < 4u; j++) {
      let oc = col0 + lid.x * 4u + j;
      if (oc >= og) { continue; }
      let o = group * og + oc;
      let idx = out_index(p, o);
      ${store(c, 'acc[i][j]', 'o', 'idx')}
    }
  }
}
`,
});

const directKernel = defineKernel({
  name: 'conv2d',
  uniforms,
  bindings,
  source: (c: Conv2dConfig) => /* wgsl */ `
${EPILOGUE}
${HELPERS}
${FLAT_WG}
// One invocation per output element, in (n, o, oh, ow) order with ow fastest.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat_wg(wid, nwg) * 256u + lid.x;
  let O = u.out_shape.y;
  if (e >= u.M * O) { return; }
  let hw = u.out_shape.z * u.out_shape.w;
  let n = e / (O * hw);
  let r = e - n * O * hw;
  let o = r / hw;
  let m = n * hw + (r - o * hw);
  let p = decode_m(m);
  let group = o / u.window.w;
  let xb = u.x_offset + n * u.x_strides.x + group * u.window.z * u.x_strides.y;
  let wb = u.w_offset + o * u.w_strides.x;
  let y0 = i32(p.y * u.stride_dil.x) - u.pad.x;
  let x0 = i32(p.z * u.stride_dil.y) - u.pad.y;
  var acc = 0.0;
  for (var ky = 0u; ky < u.window.x; ky++) {
    let iy = y0 + i32(ky * u.stride_dil.z);
    if (iy < 0 || iy >= i32(u.x_shape.z)) { continue; }
    for (var kx = 0u; kx < u.window.y; kx++) {
      let ix = x0 + i32(kx * u.stride_dil.w);
      if (ix < 0 || ix >= i32(u.x_shape.w)) { continue; }
      let xo = xb + u32(iy) * u.x_strides.z + u32(ix) * u.x_strides.w;
      let wo = wb + ky * u.w_strides.z + kx * u.w_strides.w;
      for (var ci = 0u; ci < u.window.z; ci++) {
        acc += f32(x[xo + ci * u.x_strides.y]) * f32(w[wo + ci * u.w_strides.y]);
      }
    }
  }
  let idx = out_index(p, o);
  ${store(c, 'acc', 'o', 'idx')}
}
`,
});

/** Which algorithm suits a problem: the GEMM tile needs enough output channels and pixels. */
export function selectConv2d(outChannelsPerGroup: number, pixels: number): Conv2dVariant {
  return outChannelsPerGroup >= 32 && pixels >= 16 ? 'tiled' : 'direct';
}

export function pair(v: Pair | undefined, dflt: number, what: string, op: string): [number, number] {
  const p: [number, number] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  check(p.every((d) => Number.isInteger(d) && d >= 0), () => `${op}: ${what} must be non-negative integers, got ${JSON.stringify(v)}`);
  return p;
}

/** [top, left, bottom, right] from the accepted padding forms. */
function pads(p: Conv2dOptions['padding']): [number, number, number, number] {
  const v = p === undefined ? [0] : typeof p === 'number' ? [p] : [...p];
  check(v.length === 1 || v.length === 2 || v.length === 4, () => `conv2d: padding must be a number, [h, w] or [top, left, bottom, right], got ${JSON.stringify(p)}`);
  check(v.every((d) => Number.isInteger(d) && d >= 0), () => `conv2d: padding must be non-negative integers, got ${JSON.stringify(p)}`);
  if (v.length === 1) return [v[0]!, v[0]!, v[0]!, v[0]!];
  if (v.length === 2) return [v[0]!, v[1]!, v[0]!, v[1]!];
  return [v[0]!, v[1]!, v[2]!, v[3]!];
}

/** Output strides in logical (n, c, h, w) order for a contiguous tensor of the given layout. */
export function layoutStrides(layout: ImageLayout, n: number, c: number, h: number, w: number): { shape: number[]; strides: number[] } {
  if (layout === 'nchw') return { shape: [n, c, h, w], strides: contiguousStrides([n, c, h, w]) };
  const s = contiguousStrides([n, h, w, c]);
  return { shape: [n, h, w, c], strides: [s[0]!, s[3]!, s[1]!, s[2]!] };
}

export function conv2d(ctx: GpuContext, x: Tensor, w: Tensor, bias: Tensor | undefined, opts: Conv2dOptions = {}): Tensor {
  const inLayout = opts.inLayout ?? 'nchw';
  const outLayout = opts.outLayout ?? 'nchw';
  check(x.ndim === 4, () => `conv2d: input must be 4-D (${inLayout.toUpperCase()}), got ${fmtShape(x.shape)}`);
  check(w.ndim === 4, () => `conv2d: weight must be [O, C/groups, kh, kw], got ${fmtShape(w.shape)}`);
  check(x.dtype === 'f32' || x.dtype === 'f16', () => `conv2d: input must be f32 or f16, got ${x}`);
  check(w.dtype === 'f32' || w.dtype === 'f16', () => `conv2d: weight must be f32 or f16, got ${w}`);
  // Logical NCHW view of x: shape and strides in (n, c, h, w) order.
  const [N, C, H, W] = inLayout === 'nchw' ? x.shape : [x.shape[0]!, x.shape[3]!, x.shape[1]!, x.shape[2]!];
  const xs = inLayout === 'nchw' ? x.strides : [x.strides[0]!, x.strides[3]!, x.strides[1]!, x.strides[2]!];
  const [O, Cg, kh, kw] = w.shape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  const [sh, sw] = pair(opts.stride, 1, 'stride', 'conv2d');
  const [dh, dw] = pair(opts.dilation, 1, 'dilation', 'conv2d');
  const [pt, pl, pb, pr] = pads(opts.padding);
  check(sh > 0 && sw > 0 && dh > 0 && dw > 0, () => `conv2d: stride and dilation must be >= 1, got stride ${JSON.stringify(opts.stride)}, dilation ${JSON.stringify(opts.dilation)}`);
  check(Number.isInteger(groups) && groups >= 1 && C % groups === 0 && O % groups === 0,
    () => `conv2d: groups ${groups} must divide input channels ${C} and output channels ${O}`);
  check(Cg * groups === C,
    () => `conv2d: input ${fmtShape(x.shape)} (${inLayout}) has ${C} channels, weight ${fmtShape(w.shape)} with groups ${groups} expects ${Cg * groups}`);
  check(kh >= 1 && kw >= 1, () => `conv2d: empty kernel ${fmtShape(w.shape)}`);
  const OH = Math.floor((H + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  check(OH >= 1 && OW >= 1,
    () => `conv2d: input ${fmtShape(x.shape)} (${inLayout}) is smaller than the dilated kernel ${kh}x${kw} (dilation ${dh}x${dw}, padding ${[pt, pl, pb, pr].join(',')})`);
  if (bias) {
    check(bias.ndim === 1 && bias.dim(0) === O, () => `conv2d: bias must be [${O}], got ${bias}`);
    check(bias.isContiguous && bias.offset === 0, () => `conv2d: bias must be a contiguous tensor at offset 0, got ${bias}`);
    check(bias.dtype === 'f32' || bias.dtype === 'f16', () => `conv2d: bias must be f32 or f16, got ${bias}`);
  }
  const M = N * OH * OW;
  const Og = O / groups;
  const K = Cg * kh * kw;
  const geometry = { N, C, H, W, O, kh, kw, OH, OW, stride: [sh, sw], dilation: [dh, dw], pads: [pt, pl, pb, pr] } as const;
  let variant = opts.variant ?? selectConv2d(Og, M);
  if (!opts.variant && variant === 'tiled' && ctx.tuning.cpuAdapter && groups === 1 && gemmFits(ctx, geometry, x.dtype)) variant = 'gemm';
  if (variant === 'gemm') {
    check(groups === 1, () => `conv2d: the gemm variant takes groups 1, got ${groups}`);
    // The logical NCHW view of x.
    const xv = x.asStrided([N, C, H, W], xs, x.offset);
    try {
      return conv2dGemm(ctx, xv, w, bias, geometry, { act: opts.act, outLayout, outDtype: opts.outDtype ?? x.dtype });
    } finally {
      xv.dispose();
    }
  }
  const config: Conv2dConfig = {
    variant,
    x: x.dtype,
    w: w.dtype,
    out: opts.outDtype ?? x.dtype,
    bias: bias?.dtype ?? x.dtype,
  };
  const lay = layoutStrides(outLayout, N, O, OH, OW);
  const out = ctx.empty(lay.shape, config.out);
  const b: Record<string, Tensor> = { x, w, bias: bias ?? x, out };
  const values = {
    x_shape: [N, C, H, W],
    x_strides: xs,
    w_strides: w.strides,
    out_shape: [N, O, OH, OW],
    out_strides: lay.strides,
    window: [kh, kw, Cg, Og],
    stride_dil: [sh, sw, dh, dw],
    pad: [pt, pl, 0, 0],
    x_offset: x.offset,
    w_offset: w.offset,
    M,
    K,
    act: activationCode(opts.act ?? 'none'),
    has_bias: bias ? 1 : 0,
  };
  const cost = { flops: 2 * M * O * K, bytes: x.byteSize + w.byteSize + out.byteSize };
  if (variant === 'tiled') {
    const rows = Math.ceil(M / TILE);
    check(rows <= ctx.limits.maxWorkgroupsPerDim, () => `conv2d: ${M} output pixels exceed one dispatch (${fmtShape(x.shape)}); split the batch`);
    ctx.run(tiledKernel, config, b, values, [Math.ceil(Og / TILE), rows, groups], cost);
  } else {
    ctx.run(directKernel, config, b, values, grid1d(Math.ceil((M * O) / 256)), cost);
  }
  return out;
}
