/** Reference data movement over row-major arrays: strided reads, permute, pad, concat. */

/** Materialise the view (shape, element strides, element offset) of flat storage `data`. */
export function stridedReadCpu(
  data: ArrayLike<number>,
  shape: readonly number[],
  strides: readonly number[],
  offset = 0,
): Float64Array {
  const n = shape.reduce((p, d) => p * d, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let r = i;
    let at = offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      at += (r % shape[d]!) * strides[d]!;
      r = Math.floor(r / shape[d]!);
    }
    out[i] = data[at]!;
  }
  return out;
}

/** out = x.permute(perm), contiguous. */
export function permuteCpu(x: ArrayLike<number>, shape: readonly number[], perm: readonly number[]): Float64Array {
  const strides: number[] = [];
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = acc;
    acc *= shape[d]!;
  }
  return stridedReadCpu(x, perm.map((p) => shape[p]!), perm.map((p) => strides[p]!));
}

/** Constant padding with (before, after) pairs per dim, in dim order (not torch's reversed order). */
export function padCpu(x: ArrayLike<number>, shape: readonly number[], pads: readonly [number, number][], value: number): { data: Float64Array; shape: number[] } {
  const outShape = shape.map((n, d) => n + pads[d]![0] + pads[d]![1]);
  const n = outShape.reduce((p, d) => p * d, 1);
  const out = new Float64Array(n).fill(value);
  const m = shape.reduce((p, d) => p * d, 1);
  for (let i = 0; i < m; i++) {
    let r = i;
    let o = 0;
    let mul = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      o += ((r % shape[d]!) + pads[d]![0]) * mul;
      mul *= outShape[d]!;
      r = Math.floor(r / shape[d]!);
    }
    out[o] = x[i]!;
  }
  return { data: out, shape: outShape };
}

/** Concatenate row-major arrays along `dim`. */
export function concatCpu(parts: { data: ArrayLike<number>; shape: readonly number[] }[], dim: number): { data: Float64Array; shape: number[] } {
  const shape = [...parts[0]!.shape];
  shape[dim] = parts.reduce((s, p) => s + p.shape[dim]!, 0);
  const outer = shape.slice(0, dim).reduce((p, d) => p * d, 1);
  const inner = shape.slice(dim + 1).reduce((p, d) => p * d, 1);
  const out = new Float64Array(shape.reduce((p, d) => p * d, 1));
  let o = 0;
  for (let i = 0; i < outer; i++) {
    for (const p of parts) {
      const len = p.shape[dim]! * inner;
      for (let k = 0; k < len; k++) out[o++] = p.data[i * len + k]!;
    }
  }
  return { data: out, shape };
}
