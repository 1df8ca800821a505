/**
 * Three small WGSL kernels specific to SAM's pre- and post-processing, kept beside the model
 * because nothing else needs them:
 *
 *  - `normalizePadU8`: the resized RGB image arrives as bytes (packed four to a u32, so the
 *    upload is a quarter of a float image) and leaves as Sam.preprocess's output: NCHW float32,
 *    (v - mean) / std per channel, zero padding bottom/right to the square input.
 *  - `thresholdBits`: masks -> one bit per pixel (x > threshold), 32 pixels per u32, each mask
 *    starting on a word boundary; reading back 1/32 of the logits is what makes full-resolution
 *    binary masks cheap.
 *  - `thresholdCounts`: per mask and per block of pixels, how many exceed each of two thresholds
 *    (the stability score's intersection and union). Partial counts per block, summed on the
 *    CPU: the engine's bindings carry plain u32, not atomics.
 *
 * Inputs are contiguous (a mask batch is [N, ...pixels] flattened), offsets honoured.
 */
import type { GpuContext } from '../../gpu/context.js';
import { check, fmtShape } from '../../gpu/errors.js';
import { FLAT_WG, defineKernel, grid1d } from '../../gpu/kernel.js';
import type { Tensor } from '../../gpu/tensor.js';
import { defineUniforms } from '../../gpu/uniforms.js';

const WG = 256;

// ------------------------------------------------------------------ normalise + pad

const normUniforms = defineUniforms({
  mean: 'vec4f',
  stdev: 'vec4f', // ('std' is a reserved word in WGSL)
  h: 'u32',
  w: 'u32',
  size: 'u32',
  total: 'u32',
});

const normalizeKernel = defineKernel({
  name: 'sam_normalize_pad_u8',
  uniforms: normUniforms,
  bindings: () => [
    { name: 'src', type: 'u32', access: 'read' as const },
    { name: 'out', type: 'f32', access: 'read_write' as const },
  ],
  source: () => /* wgsl */ `
${FLAT_WG}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flat_wg(wid, nwg) * ${WG}u + lid;
  if (i >= u.total) { return; }
  let plane = u.size * u.size;
  let c = i / plane;
  let p = i % plane;
  let y = p / u.size;
  let x = p % u.size;
  if (y >= u.h || x >= u.w) { out[i] = 0.0; return; }
  let b = (y * u.w + x) * 3u + c;
  let v = f32((src[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu);
  out[i] = (v - u.mean[c]) / u.stdev[c];
}
`,
});

/**
 * RGB bytes (HWC, h x w) -> [1, 3, size, size] float32: (v - mean) / std, zero padded
 * bottom/right, as segment_anything's Sam.preprocess computes it (float32 subtract, then divide).
 */
export function normalizePadU8(
  ctx: GpuContext,
  rgb: Uint8Array | Uint8ClampedArray,
  h: number,
  w: number,
  size: number,
  mean: readonly number[],
  std: readonly number[],
): Tensor {
  check(rgb.length === h * w * 3, () => `normalizePadU8: ${rgb.length} bytes for a ${h}x${w} RGB image (${h * w * 3} expected)`);
  check(h >= 1 && w >= 1 && h <= size && w <= size, () => `normalizePadU8: a ${h}x${w} image does not fit the ${size}x${size} input`);
  const words = Math.ceil(rgb.length / 4);
  const packed = new Uint8Array(words * 4);
  packed.set(rgb);
  const src = ctx.upload(new Uint32Array(packed.buffer), [words], 'u32');
  const out = ctx.empty([1, 3, size, size]);
  const total = 3 * size * size;
  ctx.run(normalizeKernel, {}, { src, out }, { mean: [...mean, 0], stdev: [...std, 1], h, w, size, total }, grid1d(Math.ceil(total / WG)), {
    flops: 2 * total,
    bytes: src.byteSize + out.byteSize,
  });
  src.dispose();
  return out;
}

// ------------------------------------------------------------------ threshold -> bits

const bitsUniforms = defineUniforms({
  pixels: 'u32',
  words: 'u32',
  total: 'u32',
  x_offset: 'u32',
  threshold: 'f32',
});

const bitsKernel = defineKernel({
  name: 'sam_threshold_bits',
  uniforms: bitsUniforms,
  bindings: () => [
    { name: 'x', type: 'f32', access: 'read' as const },
    { name: 'out', type: 'u32', access: 'read_write' as const },
  ],
  source: () => /* wgsl */ `
${FLAT_WG}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flat_wg(wid, nwg) * ${WG}u + lid;
  if (i >= u.total) { return; }
  let m = i / u.words;
  let k = i % u.words;
  let base = u.x_offset + m * u.pixels;
  let p0 = k * 32u;
  let n = min(32u, u.pixels - p0);
  var bits = 0u;
  for (var b = 0u; b < n; b++) {
    if (x[base + p0 + b] > u.threshold) { bits = bits | (1u << b); }
  }
  out[i] = bits;
}
`,
});

/**
 * x [N, ...] contiguous f32 -> u32 [N, ceil(P / 32)] with P the pixels per mask: bit b of word k
 * of mask n is x[n, 32k + b] > threshold.
 */
export function thresholdBits(ctx: GpuContext, x: Tensor, threshold: number): Tensor {
  check(x.dtype === 'f32' && x.isContiguous && x.ndim >= 2, () => `thresholdBits: expects contiguous f32 [N, ...pixels], got ${x}`);
  const N = x.dim(0);
  const pixels = x.size / N;
  const words = Math.ceil(pixels / 32);
  const out = ctx.empty([N, words], 'u32');
  const total = N * words;
  ctx.run(bitsKernel, {}, { x, out }, { pixels, words, total, x_offset: x.offset, threshold }, grid1d(Math.ceil(total / WG)), {
    bytes: x.byteSize + out.byteSize,
  });
  return out;
}

/** Unpack thresholdBits words of mask `n` into one byte (0/1) per pixel. */
export function unpackMaskBits(words: Uint32Array, n: number, pixels: number): Uint8Array {
  const per = Math.ceil(pixels / 32);
  const out = new Uint8Array(pixels);
  const base = n * per;
  for (let k = 0; k < per; k++) {
    const v = words[base + k]!;
    if (v === 0) continue;
    const p0 = k * 32;
    const m = Math.min(32, pixels - p0);
    for (let b = 0; b < m; b++) out[p0 + b] = (v >>> b) & 1;
  }
  return out;
}

// ------------------------------------------------------------------ counts above two thresholds

/** Pixels per partial count: one workgroup of 256 invocations x 64 pixels each. */
const COUNT_BLOCK = WG * 64;

const countUniforms = defineUniforms({
  pixels: 'u32',
  blocks: 'u32',
  total: 'u32',
  x_offset: 'u32',
  hi: 'f32',
  lo: 'f32',
});

const countKernel = defineKernel({
  name: 'sam_threshold_counts',
  uniforms: countUniforms,
  bindings: () => [
    { name: 'x', type: 'f32', access: 'read' as const },
    { name: 'out', type: 'u32', access: 'read_write' as const },
  ],
  source: () => /* wgsl */ `
var<workgroup> red_hi: array<u32, ${WG}>;
var<workgroup> red_lo: array<u32, ${WG}>;
${FLAT_WG}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let g = flat_wg(wid, nwg);
  let valid = g < u.total;
  let m = g / u.blocks;
  let blk = g % u.blocks;
  var hi = 0u;
  var lo = 0u;
  if (valid) {
    let base = u.x_offset + m * u.pixels;
    let end = min(u.pixels, (blk + 1u) * ${COUNT_BLOCK}u);
    for (var p = blk * ${COUNT_BLOCK}u + lid; p < end; p += ${WG}u) {
      let v = x[base + p];
      hi += select(0u, 1u, v > u.hi);
      lo += select(0u, 1u, v > u.lo);
    }
  }
  red_hi[lid] = hi;
  red_lo[lid] = lo;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      red_hi[lid] += red_hi[lid + s];
      red_lo[lid] += red_lo[lid + s];
    }
    workgroupBarrier();
  }
  if (lid == 0u && valid) {
    out[2u * g] = red_hi[0];
    out[2u * g + 1u] = red_lo[0];
  }
}
`,
});

/**
 * For each mask n of x [N, ...] (contiguous f32): [count(x > hi), count(x > lo)]. Dispatches one
 * kernel writing per-block partial counts and sums them after reading back.
 */
export async function thresholdCounts(ctx: GpuContext, x: Tensor, hi: number, lo: number): Promise<Uint32Array> {
  check(x.dtype === 'f32' && x.isContiguous && x.ndim >= 2, () => `thresholdCounts: expects contiguous f32 [N, ...pixels], got ${x}`);
  const N = x.dim(0);
  const pixels = x.size / N;
  check(pixels >= 1, () => `thresholdCounts: empty masks ${fmtShape(x.shape)}`);
  const blocks = Math.ceil(pixels / COUNT_BLOCK);
  const total = N * blocks;
  const partial = ctx.empty([total, 2], 'u32');
  ctx.run(countKernel, {}, { x, out: partial }, { pixels, blocks, total, x_offset: x.offset, hi, lo }, grid1d(total), { bytes: x.byteSize });
  let parts: Uint32Array;
  try {
    parts = (await ctx.read(partial)) as Uint32Array;
  } finally {
    partial.dispose();
  }
  const out = new Uint32Array(2 * N);
  for (let g = 0; g < total; g++) {
    const m = Math.floor(g / blocks);
    out[2 * m] += parts[2 * g]!;
    out[2 * m + 1] += parts[2 * g + 1]!;
  }
  return out;
}
