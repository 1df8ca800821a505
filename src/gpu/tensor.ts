/**
 * GPU tensors: a shape, a dtype, element strides and an element offset over shared storage.
 * Views (permute, slice, reshape of contiguous data) share storage without copying; storage goes
 * back to the pool when its last tensor is disposed.
 */
import { BYTES, type DType } from './dtype.js';
import { ShapeError, fmtShape } from './errors.js';

export interface StorageOwner {
  releaseStorage(s: Storage): void;
  track(t: Tensor): void;
}

export class Storage {
  refs = 1;
  constructor(
    readonly buffer: GPUBuffer,
    /** Bytes the elements occupy, exactly (the buffer is larger: 4-byte words, pool size classes). */
    readonly byteLength: number,
    readonly owner: StorageOwner,
  ) {}
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class Tensor {
  private disposed = false;
  /** Tensors created with `persistent` (weights) are never freed by a scope. */
  persistent = false;

  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly strides: readonly number[] = contiguousStrides(shape),
    readonly offset = 0,
  ) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new ShapeError(`invalid tensor shape ${fmtShape(shape)}`);
    }
    storage.owner.track(this);
  }

  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  get byteSize(): number {
    return this.size * BYTES[this.dtype];
  }
  get buffer(): GPUBuffer {
    this.assertAlive();
    return this.storage.buffer;
  }
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** True when elements are laid out densely in row-major order (offset may be non-zero). */
  get isContiguous(): boolean {
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) return false;
      acc *= this.shape[i]!;
    }
    return true;
  }

  dim(i: number): number {
    const d = this.shape[i < 0 ? this.shape.length + i : i];
    if (d === undefined) throw new ShapeError(`dim ${i} out of range for shape ${fmtShape(this.shape)}`);
    return d;
  }

  private derive(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    this.assertAlive();
    this.storage.refs++;
    return new Tensor(this.storage, shape, this.dtype, strides, offset);
  }

  /** Same data, new shape (contiguous tensors only); one dim may be -1. */
  reshape(shape: readonly number[]): Tensor {
    const known = shape.filter((d) => d !== -1);
    const inferred = shape.length - known.length;
    if (inferred > 1) throw new ShapeError(`reshape: at most one -1 in ${fmtShape(shape)}`);
    const rest = numel(known);
    const full = inferred ? shape.map((d) => (d === -1 ? this.size / rest : d)) : [...shape];
    if (numel(full) !== this.size || full.some((d) => !Number.isInteger(d))) {
      throw new ShapeError(`reshape: cannot view ${fmtShape(this.shape)} as ${fmtShape(shape)}`);
    }
    if (!this.isContiguous) {
      throw new ShapeError(`reshape: ${fmtShape(this.shape)} is a strided view; make it contiguous first`);
    }
    return this.derive(full, contiguousStrides(full), this.offset);
  }

  /** Reorder dims without copying. */
  permute(dims: readonly number[]): Tensor {
    if (dims.length !== this.ndim || [...dims].sort().some((d, i) => d !== i)) {
      throw new ShapeError(`permute: ${fmtShape(dims)} is not a permutation of ${this.ndim} dims`);
    }
    return this.derive(
      dims.map((d) => this.shape[d]!),
      dims.map((d) => this.strides[d]!),
      this.offset,
    );
  }

  transpose(a: number, b: number): Tensor {
    const dims = this.shape.map((_, i) => i);
    const n = this.ndim;
    const aa = a < 0 ? n + a : a;
    const bb = b < 0 ? n + b : b;
    dims[aa] = bb;
    dims[bb] = aa;
    return this.permute(dims);
  }

  /** Elements [start, end) along one dim, without copying. */
  slice(dim: number, start: number, end: number): Tensor {
    const d = dim < 0 ? this.ndim + dim : dim;
    const n = this.shape[d];
    if (n === undefined || start < 0 || end > n || start > end) {
      throw new ShapeError(`slice: [${start}, ${end}) out of range on dim ${dim} of ${fmtShape(this.shape)}`);
    }
    const shape = [...this.shape];
    shape[d] = end - start;
    return this.derive(shape, this.strides, this.offset + start * this.strides[d]!);
  }

  /** Insert a size-1 dim. */
  unsqueeze(dim: number): Tensor {
    const d = dim < 0 ? this.ndim + 1 + dim : dim;
    const shape = [...this.shape];
    const strides = [...this.strides];
    shape.splice(d, 0, 1);
    strides.splice(d, 0, (this.strides[d] ?? 1) * (this.shape[d] ?? 1));
    return this.derive(shape, strides, this.offset);
  }

  /** A view with explicit shape, element strides and element offset over the same storage. */
  asStrided(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    if (shape.length !== strides.length) throw new ShapeError(`asStrided: shape ${fmtShape(shape)} and strides ${fmtShape(strides)} differ in rank`);
    let last = offset;
    for (let i = 0; i < shape.length; i++) last += (shape[i]! - 1) * strides[i]!;
    if (offset < 0 || (numel(shape) > 0 && (last + 1) * BYTES[this.dtype] > this.storage.byteLength)) {
      throw new ShapeError(`asStrided: view ${fmtShape(shape)} strides ${fmtShape(strides)} offset ${offset} runs past the storage`);
    }
    return this.derive(shape, strides, offset);
  }

  /** Another handle to the same view (the caller owns it and must dispose it). */
  ref(): Tensor {
    return this.derive(this.shape, this.strides, this.offset);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (--this.storage.refs === 0) this.storage.owner.releaseStorage(this.storage);
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}${this.isContiguous ? '' : ', strided'})`;
  }

  private assertAlive(): void {
    if (this.disposed) throw new ShapeError(`use of a disposed tensor ${fmtShape(this.shape)}`);
  }
}
