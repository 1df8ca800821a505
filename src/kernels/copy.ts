/**
 * Data movement on top of the generic strided elementwise kernel: materialise views, write a
 * view into a window of another tensor, concatenate, constant-pad, cast, and download any view.
 *
 * Every op here is one or two dispatches of `runElementwise` (op `copy` or `fill`); a same-dtype
 * copy moves stored values untouched, so copies are bit-exact (f16, i32 and u32 included).
 */
import type { GpuContext } from '../gpu/context.js';
import { type DType, isFloat } from '../gpu/dtype.js';
import { check, fmtShape } from '../gpu/errors.js';
import type { Tensor } from '../gpu/tensor.js';
import { broadcastShapes, runElementwise } from './elementwise.js';

/**
 * A contiguous tensor with the contents of `x`. When `x` already is contiguous this returns a new
 * handle to the same storage (no copy; its offset may be non-zero); otherwise it copies.
 * Either way the caller owns (and disposes) the result.
 */
export function contiguous(ctx: GpuContext, x: Tensor): Tensor {
  if (x.isContiguous) return x.ref();
  return copy(ctx, x);
}

/** Always a fresh contiguous copy with offset 0. */
export function copy(ctx: GpuContext, x: Tensor, dtype: DType = x.dtype): Tensor {
  const out = ctx.empty(x.shape, dtype);
  try {
    runElementwise(ctx, { op: 'copy', a: x, out });
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * Write `src` into `dst`, a (strided) view of another tensor: e.g. `grid.slice(1, 0, H)` to place
 * tokens into a padded grid. `src` broadcasts to `dst.shape`; f32 <-> f16 converts on the way.
 * `src` and `dst` must not share storage.
 */
export function copyInto(ctx: GpuContext, src: Tensor, dst: Tensor): void {
  const shape = broadcastShapes('copyInto', src.shape, dst.shape);
  check(fmtShape(shape) === fmtShape(dst.shape), () => `copyInto: source ${src} does not fit destination ${dst}`);
  checkCast('copyInto', src.dtype, dst.dtype);
  runElementwise(ctx, { op: 'copy', a: src, out: dst });
}

/** Concatenate along `dim` (negative counts from the end). Dtypes must agree. */
export function concat(ctx: GpuContext, tensors: readonly Tensor[], dim: number): Tensor {
  check(tensors.length > 0, 'concat: no tensors given');
  const first = tensors[0]!;
  const d = dim < 0 ? first.ndim + dim : dim;
  check(d >= 0 && d < first.ndim, () => `concat: dim ${dim} out of range for ${first}`);
  let total = 0;
  for (const t of tensors) {
    const same = t.ndim === first.ndim && t.shape.every((n, i) => i === d || n === first.shape[i]);
    check(same, () => `concat: shapes ${tensors.map((x) => fmtShape(x.shape)).join(', ')} differ outside dim ${dim}`);
    check(t.dtype === first.dtype, () => `concat: dtypes differ (${first} and ${t})`);
    total += t.shape[d]!;
  }
  const shape = [...first.shape];
  shape[d] = total;
  const out = ctx.empty(shape, first.dtype);
  let at = 0;
  try {
    for (const t of tensors) {
      const n = t.shape[d]!;
      if (n > 0) {
        const view = out.slice(d, at, at + n);
        try {
          runElementwise(ctx, { op: 'copy', a: t, out: view });
        } finally {
          view.dispose();
        }
      }
      at += n;
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

/**
 * Constant padding of the trailing dims, with torch.nn.functional.pad's argument order: `pads` is
 * (before, after) pairs starting from the LAST dim, e.g. [0, 0, 0, padW, 0, padH] pads W and H of
 * a [B, H, W, C] grid at the end (SAM's window padding). Pads are non-negative integers.
 */
export function pad(ctx: GpuContext, x: Tensor, pads: readonly number[], value = 0): Tensor {
  check(pads.length % 2 === 0 && pads.length <= 2 * x.ndim,
    () => `pad: pads [${pads.join(', ')}] must be (before, after) pairs for at most ${x.ndim} dims of ${x}`);
  check(pads.every((p) => Number.isInteger(p) && p >= 0), () => `pad: pads [${pads.join(', ')}] must be non-negative integers`);
  const shape = [...x.shape];
  const before = new Array<number>(x.ndim).fill(0);
  for (let k = 0; k < pads.length / 2; k++) {
    const d = x.ndim - 1 - k;
    before[d] = pads[2 * k]!;
    shape[d] = shape[d]! + pads[2 * k]! + pads[2 * k + 1]!;
  }
  if (!isFloat(x.dtype)) check(Number.isInteger(value), () => `pad: value ${value} is not an integer for ${x}`);
  const out = ctx.empty(shape, x.dtype);
  try {
    if (out.size !== x.size) runElementwise(ctx, { op: 'fill', out, beta: value });
    let view = out.ref();
    for (let d = 0; d < x.ndim; d++) {
      if (shape[d] === x.shape[d]) continue;
      const next = view.slice(d, before[d]!, before[d]! + x.shape[d]!);
      view.dispose();
      view = next;
    }
    try {
      runElementwise(ctx, { op: 'copy', a: x, out: view });
    } finally {
      view.dispose();
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}

const CASTS: Record<DType, readonly DType[]> = {
  f32: ['f32', 'f16'],
  f16: ['f32', 'f16'],
  // Integer ids / argmax results to float (exact below 2^24).
  i32: ['i32', 'f32', 'f16'],
  u32: ['u32', 'f32', 'f16'],
};

function checkCast(op: string, from: DType, to: DType): void {
  check(CASTS[from].includes(to), () => `${op}: cannot convert ${from} to ${to} (supported: ${from} -> ${CASTS[from].join(', ')})`);
}

/**
 * Convert to `dtype`: f32 <-> f16, i32/u32 -> f32/f16. f32 -> f16 uses WGSL's conversion, which the
 * spec lets round either way; on lavapipe it is round-to-nearest-even with Inf for overflow, bit
 * for bit equal to ONNX Cast (tested, ties and subnormals included). Always returns a new
 * contiguous tensor, even when the dtype is unchanged.
 */
export function cast(ctx: GpuContext, x: Tensor, dtype: DType): Tensor {
  checkCast('cast', x.dtype, dtype);
  return copy(ctx, x, dtype);
}

/** Download any view (strided views are made contiguous on the GPU first); f16 reads as f32. */
export async function readTensor(ctx: GpuContext, t: Tensor): Promise<Float32Array | Int32Array | Uint32Array> {
  if (t.isContiguous) return ctx.read(t);
  const c = copy(ctx, t);
  try {
    return await ctx.read(c);
  } finally {
    c.dispose();
  }
}
