/**
 * Minimal safetensors reader for tests only (the engine's real loader lives in src/weights).
 * Reads the whole file, parses the JSON header and hands out typed copies by name.
 */
import { readFileSync } from 'node:fs';

export interface SimpleTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export interface SimpleSafetensors {
  metadata: Record<string, string>;
  names: string[];
  get(name: string): SimpleTensor;
  u8(name: string): Uint8Array;
  f32(name: string): Float32Array;
  i32(name: string): Int32Array;
}

export function readSafetensorsSimple(path: string): SimpleSafetensors {
  const file = readFileSync(path);
  const buf = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length < 8) throw new Error(`${path}: too short for a safetensors header`);
  const headerLen = Number(new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true));
  if (8 + headerLen > buf.length) throw new Error(`${path}: header length ${headerLen} exceeds the file`);
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  const dataStart = 8 + headerLen;
  const metadata = (header['__metadata__'] ?? {}) as Record<string, string>;
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const get = (name: string): SimpleTensor => {
    const e = header[name] as { dtype: string; shape: number[]; data_offsets: [number, number] } | undefined;
    if (!e) throw new Error(`${path}: no tensor '${name}' (have: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', …' : ''})`);
    const [a, b] = e.data_offsets;
    // Copy, so typed views are always aligned.
    return { dtype: e.dtype, shape: e.shape, bytes: buf.slice(dataStart + a, dataStart + b) };
  };
  const typed = <T>(name: string, dtype: string, make: (b: ArrayBuffer) => T): T => {
    const t = get(name);
    if (t.dtype !== dtype) throw new Error(`${path}: tensor '${name}' is ${t.dtype}, expected ${dtype}`);
    return make(t.bytes.buffer as ArrayBuffer);
  };
  return {
    metadata,
    names,
    get,
    u8: (n) => typed(n, 'U8', (b) => new Uint8Array(b)),
    f32: (n) => typed(n, 'F32', (b) => new Float32Array(b)),
    i32: (n) => typed(n, 'I32', (b) => new Int32Array(b)),
  };
}
