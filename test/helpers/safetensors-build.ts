/**
 * A tiny, independent builder of safetensors files for tests (deliberately not the library's writer,
 * so reader and writer cannot share a misunderstanding). Tensors are laid out in the order given.
 */
import { f32ToF16Bits } from '../../src/gpu/dtype.js';

export interface BuildTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

export interface BuildOptions {
  metadata?: Record<string, string>;
  /** Pad the header with spaces so the data starts at a multiple of this (default 8, like the reference writer). */
  align?: number;
  /** Replace the header JSON text entirely (offsets are then whatever the text says). */
  headerText?: string;
  /** Bytes appended after the data section. */
  trailing?: Uint8Array;
}

export function headerObject(tensors: BuildTensor[], metadata?: Record<string, string>): Record<string, unknown> {
  const h: Record<string, unknown> = {};
  if (metadata) h.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    h[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  return h;
}

export function buildSafetensors(tensors: BuildTensor[], opts: BuildOptions = {}): Uint8Array {
  let text = opts.headerText ?? JSON.stringify(headerObject(tensors, opts.metadata));
  const align = opts.align ?? 8;
  let json = new TextEncoder().encode(text);
  const pad = (align - ((8 + json.length) % align)) % align;
  if (pad) {
    text += ' '.repeat(pad);
    json = new TextEncoder().encode(text);
  }
  const dataLen = tensors.reduce((s, t) => s + t.data.length, 0);
  const trailing = opts.trailing ?? new Uint8Array(0);
  const out = new Uint8Array(8 + json.length + dataLen + trailing.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const t of tensors) {
    out.set(t.data, p);
    p += t.data.length;
  }
  out.set(trailing, p);
  return out;
}

/** Wrap raw header text (no validation) with a length field and `data` bytes. */
export function rawFile(headerText: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

export const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();

export function f32Tensor(name: string, shape: number[], values: ArrayLike<number>): BuildTensor {
  return { name, dtype: 'F32', shape, data: bytesOf(Float32Array.from(values)) };
}

export function f16Tensor(name: string, shape: number[], values: ArrayLike<number>): BuildTensor {
  return { name, dtype: 'F16', shape, data: bytesOf(Uint16Array.from(values, (v) => f32ToF16Bits(v))) };
}

/** bf16 by truncation of the f32 bits (any bit pattern is a valid bf16; exactness is what is tested). */
export function bf16Tensor(name: string, shape: number[], values: ArrayLike<number>): BuildTensor {
  const f = Float32Array.from(values);
  const u = new Uint32Array(f.buffer);
  return { name, dtype: 'BF16', shape, data: bytesOf(Uint16Array.from(u, (x) => x >>> 16)) };
}

export function i32Tensor(name: string, shape: number[], values: ArrayLike<number>): BuildTensor {
  return { name, dtype: 'I32', shape, data: bytesOf(Int32Array.from(values)) };
}

export function i64Tensor(name: string, shape: number[], values: ArrayLike<bigint>): BuildTensor {
  return { name, dtype: 'I64', shape, data: bytesOf(BigInt64Array.from(values)) };
}

export function u8Tensor(name: string, shape: number[], values: ArrayLike<number>): BuildTensor {
  return { name, dtype: 'U8', shape, data: Uint8Array.from(values) };
}

/** Deterministic PRNG for test data and fuzzing. */
export { mulberry32 as rng } from '../../src/util/mulberry32.js';

/**
 * A full-size safetensors file on disk whose data section is a hole (sparse zeros): the header is
 * real, so loaders can be checked against full-size layouts (SAM ViT-B, CLIP ViT-B/16) without
 * writing hundreds of megabytes. F32 tensors, in the order given.
 */
export async function writeSparseSafetensors(path: string, tensors: readonly { name: string; shape: readonly number[] }[], metadata?: Record<string, string>): Promise<number> {
  const { writeFileSync, truncateSync } = await import('node:fs');
  const h: Record<string, unknown> = {};
  if (metadata) h.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const bytes = 4 * t.shape.reduce((a, d) => a * d, 1);
    h[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(h));
  const head = new Uint8Array(8 + json.length);
  new DataView(head.buffer).setUint32(0, json.length, true);
  head.set(json, 8);
  writeFileSync(path, head);
  truncateSync(path, head.length + off);
  return head.length + off;
}
