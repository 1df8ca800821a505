/**
 * Label maps at the original image size without materialising K full-size score maps: one WGSL
 * kernel samples every class's low-resolution map at each output pixel with PyTorch's bilinear
 * (align_corners false) and keeps the argmax (ties -> the first class), as
 * `F.interpolate(...).argmax(1)` would, in one pass. K x H x W floats (hundreds of MB for many
 * classes on a 12 MP photo) never exist; the output is one u32 per pixel.
 *
 * Sampling ("stages"):
 *  - 1: one bilinear resize h0 x w0 -> H x W (head-only segmentation: S on the square-input grid).
 *  - 2: SAM's mask post-processing, Sam.postprocess_masks: bilinear h0 x w0 -> F x F (the padded
 *       model input), crop the top-left ih x iw (the resized image), bilinear -> H x W. Each of the
 *       four stage-2 taps is itself a stage-1 bilinear sample, rounded to f32 like the intermediate
 *       tensor PyTorch writes.
 *
 * Modes:
 *  - 'argmax': out = argmax_k v_k; with a background threshold, out = BACKGROUND (0xffff) where the
 *    largest softmax probability over the upsampled scores is below it.
 *  - 'refine': v_k are decoded mask logits; out = argmax_k v_k where max_k v_k >= 0, else
 *    FALLBACK_BIT | fallback[pixel] (the head-only label computed by an 'argmax' pass).
 * Class indices are mapped to user labels on the CPU while converting to Uint8/Uint16.
 */
import type { GpuContext } from '../../gpu/context.js';
import { check, fmtShape } from '../../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../../gpu/kernel.js';
import type { Tensor } from '../../gpu/tensor.js';
import { defineUniforms } from '../../gpu/uniforms.js';

/** Output value of a pixel whose best class probability is below the background threshold. */
export const BACKGROUND_INDEX = 0xffff;
/** Set on 'refine' outputs that fell back to the head-only label (low 16 bits). */
export const FALLBACK_BIT = 0x10000;

const WG = 256;

const uniforms = defineUniforms({
  k: 'u32',
  h0: 'u32',
  w0: 'u32',
  frame: 'u32',
  ih: 'u32',
  iw: 'u32',
  H: 'u32',
  W: 'u32',
  total: 'u32',
  x_offset: 'u32',
  threshold: 'f32',
  // input pixels per output pixel: stage 1 (y, x), stage 2 (y, x)
  scale: 'vec4f',
});

interface LabelConfig {
  [k: string]: string | number | boolean;
  stages: 1 | 2;
  mode: 'argmax' | 'refine';
  threshold: boolean;
}

const kernel = defineKernel({
  name: 'samclip_label_map',
  uniforms,
  bindings: (c: LabelConfig) => [
    { name: 'x', type: 'f32', access: 'read' as const },
    ...(c.mode === 'refine' ? [{ name: 'fallback', type: 'u32', access: 'read' as const }] : []),
    { name: 'out', type: 'u32', access: 'read_write' as const },
  ],
  source: (c: LabelConfig) => /* wgsl */ `
${FLAT_WG}
struct Taps { i0: u32, i1: u32, w1: f32 }
// PyTorch upsample_bilinear2d (align_corners false): source = scale * (d + 0.5) - 0.5, clamped at 0.
fn taps(d: u32, scale: f32, len: u32) -> Taps {
  let s = max(scale * (f32(d) + 0.5) - 0.5, 0.0);
  let i0 = min(u32(floor(s)), len - 1u);
  return Taps(i0, min(i0 + 1u, len - 1u), clamp(s - f32(i0), 0.0, 1.0));
}
fn at(k: u32, y: u32, x_: u32) -> f32 {
  return x[u.x_offset + (k * u.h0 + y) * u.w0 + x_];
}
// Stage 1: bilinear sample of class k's low-res map at output pixel (oy, ox) of the stage-1 frame.
fn s1(k: u32, oy: u32, ox: u32) -> f32 {
  let ty = taps(oy, u.scale.x, u.h0);
  let tx = taps(ox, u.scale.y, u.w0);
  let top = (1.0 - tx.w1) * at(k, ty.i0, tx.i0) + tx.w1 * at(k, ty.i0, tx.i1);
  let bottom = (1.0 - tx.w1) * at(k, ty.i1, tx.i0) + tx.w1 * at(k, ty.i1, tx.i1);
  return (1.0 - ty.w1) * top + ty.w1 * bottom;
}
${
  c.stages === 1
    ? `fn value(k: u32, y: u32, x_: u32) -> f32 { return s1(k, y, x_); }`
    : `// Stage 2: bilinear over the cropped ih x iw corner of the F x F stage-1 frame.
fn value(k: u32, y: u32, x_: u32) -> f32 {
  let ty = taps(y, u.scale.z, u.ih);
  let tx = taps(x_, u.scale.w, u.iw);
  let top = (1.0 - tx.w1) * s1(k, ty.i0, tx.i0) + tx.w1 * s1(k, ty.i0, tx.i1);
  let bottom = (1.0 - tx.w1) * s1(k, ty.i1, tx.i0) + tx.w1 * s1(k, ty.i1, tx.i1);
  return (1.0 - ty.w1) * top + ty.w1 * bottom;
}`
}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let p = flat_wg(wid, nwg) * ${WG}u + lid;
  if (p >= u.total) { return; }
  let y = p / u.W;
  let x_ = p % u.W;
  var best = value(0u, y, x_);
  var arg = 0u;
  for (var k = 1u; k < u.k; k++) {
    let v = value(k, y, x_);
    if (v > best) { best = v; arg = k; }
  }
${
  c.mode === 'refine'
    ? `  if (best < 0.0) { out[p] = ${FALLBACK_BIT}u | fallback[p]; return; }`
    : c.threshold
      ? `  // Largest softmax probability = 1 / sum_k exp(v_k - max).
  var z = 0.0;
  for (var k = 0u; k < u.k; k++) { z += exp(value(k, y, x_) - best); }
  if (1.0 / z < u.threshold) { out[p] = ${BACKGROUND_INDEX}u; return; }`
      : ''
}
  out[p] = arg;
}
`,
});

export interface LabelMapOptions {
  /** Output size [H, W]. */
  outSize: readonly [number, number];
  /**
   * Two-stage sampling (SAM post-processing): the padded input side F and the resized image
   * [ih, iw] inside it. Without it, one bilinear resize to outSize.
   */
  frame?: { size: number; inputSize: readonly [number, number] };
  /** 'argmax' only: pixels whose best softmax probability is below this become BACKGROUND_INDEX. */
  threshold?: number;
  /** 'refine' mode: the head-only labels [H * W] (u32) used where every logit is < 0. */
  fallback?: Tensor;
}

/**
 * x: [K, h0, w0] contiguous f32 maps (scores or mask logits) -> u32 [H * W] labels (see the
 * module comment for the encoding).
 */
export function labelMap(ctx: GpuContext, x: Tensor, opts: LabelMapOptions): Tensor {
  return ctx.stage('label_map', () => labelMapUnstaged(ctx, x, opts));
}

function labelMapUnstaged(ctx: GpuContext, x: Tensor, opts: LabelMapOptions): Tensor {
  const op = 'labelMap';
  check(x.dtype === 'f32' && x.isContiguous && x.ndim === 3 && x.dim(0) >= 1,
    () => `${op}: expects contiguous f32 [K, h, w] maps with K >= 1, got ${x}`);
  const [K, h0, w0] = x.shape as [number, number, number];
  check(K < BACKGROUND_INDEX, () => `${op}: ${K} classes; at most ${BACKGROUND_INDEX - 1}`);
  const [H, W] = opts.outSize;
  check(Number.isInteger(H) && Number.isInteger(W) && H >= 1 && W >= 1, () => `${op}: output size ${H}x${W} must be positive integers`);
  const f = opts.frame;
  let frame = 0;
  let ih = 0;
  let iw = 0;
  if (f) {
    [ih, iw] = f.inputSize as [number, number];
    frame = f.size;
    check(Number.isInteger(frame) && frame >= 1 && Number.isInteger(ih) && Number.isInteger(iw) && ih >= 1 && iw >= 1 && ih <= frame && iw <= frame,
      () => `${op}: input size ${ih}x${iw} does not fit the ${frame}x${frame} frame`);
  }
  const mode = opts.fallback ? 'refine' : 'argmax';
  if (opts.fallback) {
    check(f, () => `${op}: the refine mode samples like SAM's post-processing; give 'frame'`);
    check(opts.fallback.dtype === 'u32' && opts.fallback.isContiguous && opts.fallback.size === H * W,
      () => `${op}: fallback labels must be contiguous u32 [${H * W}], got ${opts.fallback}`);
    check(opts.threshold === undefined, () => `${op}: a background threshold applies to the head-only labels, not the refine pass`);
  }
  if (opts.threshold !== undefined) {
    check(Number.isFinite(opts.threshold) && opts.threshold >= 0 && opts.threshold <= 1, () => `${op}: threshold ${opts.threshold} must be a probability in [0, 1]`);
  }
  const config: LabelConfig = { stages: f ? 2 : 1, mode, threshold: opts.threshold !== undefined };
  const total = H * W;
  check(total < 2 ** 32, () => `${op}: output ${H}x${W} too large`);
  const out = ctx.empty([total], 'u32');
  const scale = f ? [h0 / frame, w0 / frame, ih / H, iw / W] : [h0 / H, w0 / W, 0, 0];
  const bindings: Record<string, Tensor> = { x, out };
  if (opts.fallback) bindings.fallback = opts.fallback;
  const taps = f ? 16 : 4;
  ctx.run(
    kernel,
    config,
    bindings,
    { k: K, h0, w0, frame, ih, iw, H, W, total, x_offset: x.offset, threshold: opts.threshold ?? 0, scale },
    grid1d(Math.ceil(total / WG)),
    { flops: 2 * taps * K * total * (config.threshold ? 2 : 1), bytes: x.byteSize + out.byteSize * (opts.fallback ? 2 : 1) },
  );
  return out;
}

/** Check a [K, h, w] map tensor against the expected grid (message names the stage). */
export function checkMaps(what: string, x: Tensor, K: number, h: number, w: number): void {
  check(x.ndim === 3 && x.dim(0) === K && x.dim(1) === h && x.dim(2) === w, () => `${what}: expected [${K}, ${h}, ${w}] maps, got ${fmtShape(x.shape)}`);
}
