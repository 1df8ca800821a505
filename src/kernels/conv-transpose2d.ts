/**
 * Transposed 2-D convolution (PyTorch `nn.ConvTranspose2d` / ONNX `ConvTranspose`, groups 1,
 * dilation 1): out = act(convT(x, w) + bias), x [N, C_in, H, W], w [C_in, C_out, kh, kw],
 * output (H - 1) * stride - 2 * padding + kh + outputPadding.
 *
 * Computed as a gather, never a scatter: output row oy receives input row iy through tap ky exactly
 * when oy + padding = iy * stride + ky. Rows with the same phase a = (oy + padding) mod stride use
 * the same taps (ky = a, a + stride, ...), so per phase the op is a plain GEMM: pixels of that phase
 * x C_out, reduced over (c_in, taps). With kernel = stride (SAM's 2x2/2 upscaling) every phase has
 * exactly one tap and the reduction is over C_in alone.
 *
 * Like conv2d, x and w are addressed through strides in logical order, so an NHWC input (SAM's
 * decoder hands over tokens [N, H*W, C]) is a view, and the output may be written NCHW or NHWC.
 *
 * Variants (`selectConvTranspose2d` picks; tests force each):
 *  - `tiled`: one GEMM per phase (workgroup z), 64x64 tiles of pixels x output channels, 16x16
 *    invocations owning 4x4 each, reduction staged through workgroup memory.
 *  - `direct`: one invocation per output element; few output channels.
 */
import type { GpuContext } from '../gpu/context.js';
import type { DType } from '../gpu/dtype.js';
import { check, fmtShape } from '../gpu/errors.js';
import { type BindingDecl, FLAT_WG, defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { ACTIVATION_WGSL, type Activation, applyActivation } from './activation.js';
import { type ImageLayout, type Pair, layoutStrides, pair } from './conv2d.js';

export type ConvTranspose2dVariant = 'tiled' | 'direct';

export interface ConvTranspose2dOptions {
  stride?: Pair;
  /** Rows/columns removed from both sides of the full output (PyTorch `padding`). */
  padding?: Pair;
  /** Extra rows/columns at the bottom/right (PyTorch `output_padding`); smaller than the stride. */
  outputPadding?: Pair;
  act?: Activation;
  inLayout?: ImageLayout;
  outLayout?: ImageLayout;
  outDtype?: DType;
  variant?: ConvTranspose2dVariant;
}

const uniforms = defineUniforms({
  x_shape: 'vec4u', // N, C_in, H, W
  x_strides: 'vec4u', // n, c, h, w
  w_strides: 'vec4u', // c_in, c_out, ky, kx
  out_shape: 'vec4u', // N, C_out, OH, OW
  out_strides: 'vec4u', // n, o, oh, ow
  window: 'vec4u', // kh, kw, stride h, stride w
  pad: 'vec4u', // h, w, -, -
  x_offset: 'u32',
  w_offset: 'u32',
});

interface ConvTConfig {
  [k: string]: string | number | boolean;
  variant: ConvTranspose2dVariant;
  x: DType;
  w: DType;
  out: DType;
  bias: DType | 'none';
  act: Activation;
}

const TILE = 64;
const TK = 16;

function bindings(c: ConvTConfig): BindingDecl[] {
  const list: BindingDecl[] = [
    { name: 'x', type: c.x, access: 'read' },
    { name: 'w', type: c.w, access: 'read' },
  ];
  if (c.bias !== 'none') list.push({ name: 'bias', type: c.bias, access: 'read' });
  list.push({ name: 'out', type: c.out, access: 'read_write' });
  return list;
}

function store(c: ConvTConfig, acc: string, o: string, index: string): string {
  const bias = c.bias === 'none' ? '' : ` + f32(bias[${o}])`;
  return `out[${index}] = ${c.out}(${applyActivation(c.act, `${acc}${bias}`)});`;
}

const HELPERS = /* wgsl */ `
fn out_index(n: u32, o: u32, oy: u32, ox: u32) -> u32 {
  return n * u.out_strides.x + o * u.out_strides.y + oy * u.out_strides.z + ox * u.out_strides.w;
}
fn x_index(n: u32, c: u32, iy: u32, ix: u32) -> u32 {
  return u.x_offset + n * u.x_strides.x + c * u.x_strides.y + iy * u.x_strides.z + ix * u.x_strides.w;
}
// Taps of phase a along one axis: ceil((k - a) / s), 0 when a >= k.
fn taps(k: u32, s: u32, a: u32) -> u32 {
  return select(0u, (k - a + s - 1u) / s, a < k);
}
// First input-grid index j (oy = j * s + a - pad) that lands inside the output, and the count.
fn phase_range(out_len: u32, s: u32, pad: u32, a: u32) -> vec2<u32> {
  let first = select(0u, (pad - a + s - 1u) / s, pad > a);
  // out_len + pad may be below a (tiny outputs, large strides): the subtraction then wraps and
  // the select discards it.
  let end = (out_len + pad - a + s - 1u) / s;
  return vec2<u32>(first, select(0u, end - first, out_len + pad > a && end > first));
}
`;

const tiledKernel = defineKernel({
  name: 'conv_transpose2d',
  uniforms,
  bindings,
  source: (c: ConvTConfig) => /* wgsl */ `
${ACTIVATION_WGSL}
${HELPERS}
const TILE: u32 = ${TILE}u;
const TK: u32 = ${TK}u;
var<workgroup> tile_a: array<f32, ${TILE * TK}>; // [k][pixel]
var<workgroup> tile_b: array<f32, ${TILE * TK}>; // [k][out channel]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let sh = u.window.z;
  let sw = u.window.w;
  let pa = wid.z / sw; // phase along h
  let pb = wid.z % sw; // phase along w
  let ry = phase_range(u.out_shape.z, sh, u.pad.x, pa);
  let rx = phase_range(u.out_shape.w, sw, u.pad.y, pb);
  let ty_n = taps(u.window.x, sh, pa);
  let tx_n = taps(u.window.y, sw, pb);
  let plane = ry.y * rx.y;
  let M = u.x_shape.x * plane;
  let K = u.x_shape.y * ty_n * tx_n;
  let row0 = wid.y * TILE;
  if (row0 >= M) { return; }
  let col0 = wid.x * TILE;
  let O = u.out_shape.y;
  let flat = lid.y * 16u + lid.x;
  let lk = flat % TK;
  // Pixel (n, jy, jx) of each of this invocation's 4 A rows, and the weight row of its 4 B rows.
  var a_n: array<u32, 4>;
  var a_jy: array<i32, 4>;
  var a_jx: array<i32, 4>;
  var a_ok: array<bool, 4>;
  var b_base: array<u32, 4>;
  var b_ok: array<bool, 4>;
  for (var i = 0u; i < 4u; i++) {
    let lm = flat / TK + i * 16u;
    let m = min(row0 + lm, M - 1u);
    a_ok[i] = row0 + lm < M;
    let n = m / plane;
    let r = m - n * plane;
    a_n[i] = n;
    a_jy[i] = i32(ry.x + r / rx.y);
    a_jx[i] = i32(rx.x + r % rx.y);
    let o = col0 + lm;
    b_ok[i] = o < O;
    b_base[i] = u.w_offset + min(o, O - 1u) * u.w_strides.y + pa * u.w_strides.z + pb * u.w_strides.w;
  }
  var acc: array<vec4<f32>, 4>;
  let tt = ty_n * tx_n;
  for (var k0 = 0u; k0 < K; k0 += TK) {
    let k = min(k0 + lk, K - 1u);
    let k_ok = k0 + lk < K;
    let ci = k / tt;
    let r = k - ci * tt;
    let ty = r / tx_n;
    let tx = r - ty * tx_n;
    let w_off = ci * u.w_strides.x + ty * sh * u.w_strides.z + tx * sw * u.w_strides.w;
    for (var i = 0u; i < 4u; i++) {
      let lm = flat / TK + i * 16u;
      let iy = a_jy[i] - i32(ty);
      let ix = a_jx[i] - i32(tx);
      var av = 0.0;
      if (a_ok[i] && k_ok && iy >= 0 && iy < i32(u.x_shape.z) && ix >= 0 && ix < i32(u.x_shape.w)) {
        av = f32(x[x_index(a_n[i], ci, u32(iy), u32(ix))]);
      }
      tile_a[lk * TILE + lm] = av;
      var bv = 0.0;
      if (b_ok[i] && k_ok) { bv = f32(w[b_base[i] + w_off]); }
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
    if (m >= M) { continue; }
    let n = m / plane;
    let r = m - n * plane;
    let oy = (ry.x + r / rx.y) * sh + pa - u.pad.x;
    let ox = (rx.x + r % rx.y) * sw + pb - u.pad.y;
    for (var j = 0u; j < 4u; j++) {
      let o = col0 + lid.x * 4u + j;
      if (o >= O) { continue; }
      let idx = out_index(n, o, oy, ox);
      ${store(c, 'acc[i][j]', 'o', 'idx')}
    }
  }
}
`,
});

const directKernel = defineKernel({
  name: 'conv_transpose2d',
  uniforms,
  bindings,
  source: (c: ConvTConfig) => /* wgsl */ `
${ACTIVATION_WGSL}
${HELPERS}
${FLAT_WG}
// One invocation per output element, (n, o, oy, ox) order with ox fastest.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat_wg(wid, nwg) * 256u + lid.x;
  let O = u.out_shape.y;
  let OH = u.out_shape.z;
  let OW = u.out_shape.w;
  if (e >= u.out_shape.x * O * OH * OW) { return; }
  let ox = e % OW;
  let oy = (e / OW) % OH;
  let o = (e / (OW * OH)) % O;
  let n = e / (OW * OH * O);
  let sh = u.window.z;
  let sw = u.window.w;
  let py = oy + u.pad.x;
  let px = ox + u.pad.y;
  var acc = 0.0;
  // Taps ky = py mod s, + s, ... with input row iy = (py - ky) / s.
  for (var ky = py % sh; ky < u.window.x && ky <= py; ky += sh) {
    let iy = (py - ky) / sh;
    if (iy >= u.x_shape.z) { continue; }
    for (var kx = px % sw; kx < u.window.y && kx <= px; kx += sw) {
      let ix = (px - kx) / sw;
      if (ix >= u.x_shape.w) { continue; }
      let xo = x_index(n, 0u, iy, ix);
      let wo = u.w_offset + o * u.w_strides.y + ky * u.w_strides.z + kx * u.w_strides.w;
      for (var ci = 0u; ci < u.x_shape.y; ci++) {
        acc += f32(x[xo + ci * u.x_strides.y]) * f32(w[wo + ci * u.w_strides.x]);
      }
    }
  }
  let idx = out_index(n, o, oy, ox);
  ${store(c, 'acc', 'o', 'idx')}
}
`,
});

export function selectConvTranspose2d(outChannels: number): ConvTranspose2dVariant {
  return outChannels >= 32 ? 'tiled' : 'direct';
}

/** Host mirror of the shader's phase_range: [first grid index, count] of phase a. */
function phaseRange(outLen: number, s: number, pad: number, a: number): [number, number] {
  const first = pad > a ? Math.ceil((pad - a) / s) : 0;
  const end = Math.ceil((outLen + pad - a) / s);
  return [first, Math.max(0, end - first)];
}

export function convTranspose2d(ctx: GpuContext, x: Tensor, w: Tensor, bias: Tensor | undefined, opts: ConvTranspose2dOptions = {}): Tensor {
  const op = 'convTranspose2d';
  const inLayout = opts.inLayout ?? 'nchw';
  const outLayout = opts.outLayout ?? 'nchw';
  check(x.ndim === 4, () => `${op}: input must be 4-D (${inLayout.toUpperCase()}), got ${fmtShape(x.shape)}`);
  check(w.ndim === 4, () => `${op}: weight must be [C_in, C_out, kh, kw], got ${fmtShape(w.shape)}`);
  check(x.dtype === 'f32' || x.dtype === 'f16', () => `${op}: input must be f32 or f16, got ${x}`);
  check(w.dtype === 'f32' || w.dtype === 'f16', () => `${op}: weight must be f32 or f16, got ${w}`);
  const [N, C, H, W] = inLayout === 'nchw' ? x.shape : [x.shape[0]!, x.shape[3]!, x.shape[1]!, x.shape[2]!];
  const xs = inLayout === 'nchw' ? x.strides : [x.strides[0]!, x.strides[3]!, x.strides[1]!, x.strides[2]!];
  const [Cw, O, kh, kw] = w.shape as [number, number, number, number];
  check(Cw === C, () => `${op}: input ${fmtShape(x.shape)} (${inLayout}) has ${C} channels, weight ${fmtShape(w.shape)} expects ${Cw}`);
  const [sh, sw] = pair(opts.stride, 1, 'stride', op);
  const [ph, pw] = pair(opts.padding, 0, 'padding', op);
  const [oph, opw] = pair(opts.outputPadding, 0, 'outputPadding', op);
  check(sh > 0 && sw > 0, () => `${op}: stride must be >= 1, got ${JSON.stringify(opts.stride)}`);
  check(oph < sh && opw < sw, () => `${op}: outputPadding ${JSON.stringify(opts.outputPadding)} must be smaller than the stride ${JSON.stringify(opts.stride)}`);
  check(kh >= 1 && kw >= 1 && H >= 1 && W >= 1 && O >= 1 && C >= 1, () => `${op}: empty input ${fmtShape(x.shape)} or weight ${fmtShape(w.shape)}`);
  const OH = (H - 1) * sh - 2 * ph + kh + oph;
  const OW = (W - 1) * sw - 2 * pw + kw + opw;
  check(OH >= 1 && OW >= 1, () => `${op}: padding ${JSON.stringify(opts.padding)} leaves no output for input ${fmtShape(x.shape)} and kernel ${kh}x${kw}`);
  if (bias) {
    check(bias.ndim === 1 && bias.dim(0) === O, () => `${op}: bias must be [${O}], got ${bias}`);
    check(bias.isContiguous && bias.offset === 0, () => `${op}: bias must be a contiguous tensor at offset 0, got ${bias}`);
    check(bias.dtype === 'f32' || bias.dtype === 'f16', () => `${op}: bias must be f32 or f16, got ${bias}`);
  }
  const variant = opts.variant ?? selectConvTranspose2d(O);
  const config: ConvTConfig = {
    variant,
    x: x.dtype,
    w: w.dtype,
    out: opts.outDtype ?? x.dtype,
    bias: bias?.dtype ?? 'none',
    act: opts.act ?? 'none',
  };
  const lay = layoutStrides(outLayout, N, O, OH, OW);
  const out = ctx.empty(lay.shape, config.out);
  const b: Record<string, Tensor> = { x, w, out };
  if (bias) b.bias = bias;
  const values = {
    x_shape: [N, C, H, W],
    x_strides: xs,
    w_strides: w.strides,
    out_shape: [N, O, OH, OW],
    out_strides: lay.strides,
    window: [kh, kw, sh, sw],
    pad: [ph, pw, 0, 0],
    x_offset: x.offset,
    w_offset: w.offset,
  };
  const cost = { flops: 2 * N * H * W * C * O * kh * kw, bytes: x.byteSize + w.byteSize + out.byteSize };
  if (variant === 'tiled') {
    let maxRows = 0;
    for (let a = 0; a < sh; a++) maxRows = Math.max(maxRows, phaseRange(OH, sh, ph, a)[1]);
    let maxCols = 0;
    for (let a = 0; a < sw; a++) maxCols = Math.max(maxCols, phaseRange(OW, sw, pw, a)[1]);
    const rows = Math.ceil((N * maxRows * maxCols) / TILE);
    check(rows <= ctx.limits.maxWorkgroupsPerDim && sh * sw <= ctx.limits.maxWorkgroupsPerDim,
      () => `${op}: output ${fmtShape(lay.shape)} exceeds one dispatch; split the batch`);
    ctx.run(tiledKernel, config, b, values, [Math.ceil(O / TILE), Math.max(1, rows), sh * sw], cost);
  } else {
    ctx.run(directKernel, config, b, values, grid1d(Math.ceil((N * O * OH * OW) / 256)), cost);
  }
  return out;
}
