/**
 * Bulk element conversions used while loading weights. Bit-level, so widening is exact (NaN payloads
 * and signed zeros included) and narrowing to f16 rounds exactly like `f32ToF16Bits` in
 * `src/gpu/dtype.ts` (round to nearest even; NaN → quiet NaN 0x7e00 with the sign), which is what
 * `GpuContext.write` uses for f16 tensors — so a weight uploaded here is bit-identical to one uploaded
 * through the context. These loops avoid per-element function calls: loading a ViT-H converts
 * hundreds of millions of elements.
 */

let f16Table: Uint32Array | null = null;

/** f32 bit patterns of all 65,536 halves. */
function halfToFloatBits(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) {
      t[h] = sign | 0x7f800000 | (mant << 13);
    } else if (exp !== 0) {
      t[h] = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant === 0) {
      t[h] = sign;
    } else {
      // Subnormal half: normalise into an f32 exponent.
      let e = 113;
      while ((mant & 0x400) === 0) {
        mant <<= 1;
        e--;
      }
      t[h] = sign | (e << 23) | ((mant & 0x3ff) << 13);
    }
  }
  return (f16Table = t);
}

/** Widen IEEE halves to f32 (exact). */
export function widenF16(src: Uint16Array, dst: Float32Array): void {
  const t = halfToFloatBits();
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
}

/** Widen bfloat16 to f32 (exact: bf16 is the top half of an f32). */
export function widenBF16(src: Uint16Array, dst: Float32Array): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
}

/** Round f32 bit patterns to IEEE half bits (nearest even), matching `f32ToF16Bits`. */
export function narrowF32BitsToF16(src: Uint32Array, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) {
    const x = src[i]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      dst[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 112;
    if (e >= 0x1f) {
      dst[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        dst[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && half & 1)) half++;
      dst[i] = sign | half;
      continue;
    }
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    let half = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
    dst[i] = sign | half;
  }
}

/** bfloat16 → IEEE half, through the exact f32 value (one rounding). */
export function narrowBF16ToF16(src: Uint16Array, dst: Uint16Array, scratch: Uint32Array): void {
  const bits = scratch.subarray(0, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  narrowF32BitsToF16(bits, dst);
}

/** True on little-endian hosts (every platform WebGPU ships on); safetensors data is little-endian. */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
