/**
 * `.pth` → safetensors conversion, optionally changing the float dtype, one tensor at a time.
 *
 * Names are kept exactly as in the checkpoint (so an official SAM file yields the "SAM official"
 * key style of DESIGN.md §3). Float conversions are bit-exact with torch's `.float()` / `.half()`:
 * widening is exact; narrowing to f16 rounds to nearest even, NaN becomes the quiet NaN 0x7E00
 * (with its sign), and a finite value that rounds past f16's range (|x| ≥ 65520) is an error naming
 * the tensor and value rather than a silent ±Inf in the weights. F64 narrows through f32 (one extra
 * rounding step; no SAM/CLIP checkpoint stores F64). Integer and bool tensors are never converted.
 */
import { writeSafetensorsFile, encodeSafetensors, type SafetensorsDType, type SafetensorsTensor } from '../safetensors-writer.js';
import { PthError } from './errors.js';
import { openPth, openPthFile, PTH_DTYPE_BYTES, type PthCheckpoint, type PthDType, type PthOpenOptions, type PthSkipped, type PthTensorInfo } from './reader.js';

export type PthConvertDType = 'keep' | 'f32' | 'f16';

export interface ConvertPthOptions extends PthOpenOptions {
  /** Float dtype of the output: as stored (default), all floats to F32, or all floats to F16. */
  dtype?: PthConvertDType;
  /** Replace an existing output file (default false). */
  overwrite?: boolean;
  /** Extra `__metadata__` entries (strings). `format: 'pt'` is always written, as Hugging Face does. */
  metadata?: Readonly<Record<string, string>>;
  onTensor?: (name: string, bytes: number, index: number, count: number) => void;
}

export interface ConvertPthResult {
  readonly input: string;
  readonly output: string;
  readonly tensors: number;
  readonly skipped: readonly PthSkipped[];
  /** 'state_dict' / 'model' when the tensors were nested under that key. */
  readonly stateDictKey: string | null;
  readonly inputBytes: number;
  readonly outputBytes: number;
  readonly seconds: number;
  /** Output megabytes (10^6 bytes) per second, wall clock, including open and fsync. */
  readonly mbPerSecond: number;
  /** Tensor count per output dtype. */
  readonly dtypes: Readonly<Record<string, number>>;
}

const FLOATS = new Set<PthDType>(['F64', 'F32', 'F16', 'BF16']);

export function outputDType(d: PthDType, target: PthConvertDType): PthDType {
  if (target === 'keep' || !FLOATS.has(d)) return d;
  return target === 'f32' ? 'F32' : 'F16';
}

/** Convert a file on disk; reads and writes one tensor at a time (Node only). */
export async function convertPthToSafetensors(inPath: string, outPath: string, options: ConvertPthOptions = {}): Promise<ConvertPthResult> {
  const t0 = performance.now();
  const target = checkTarget(options.dtype);
  const ckpt = await openPthFile(inPath, options);
  try {
    const entries = ckpt.tensors.map((t) => ({
      name: t.name,
      dtype: outputDType(t.dtype, target) as SafetensorsDType,
      shape: t.shape,
      read: async () => convertTensorBytes(await ckpt.readTensor(t), t, outputDType(t.dtype, target), ckpt.file),
    }));
    const written = await writeSafetensorsFile(outPath, entries, {
      metadata: { format: 'pt', ...options.metadata },
      overwrite: options.overwrite ?? false,
      ...(options.onTensor ? { onTensor: options.onTensor } : {}),
    });
    const seconds = (performance.now() - t0) / 1000;
    return summary(ckpt, inPath, outPath, entries, written.bytes, seconds);
  } finally {
    await ckpt.close();
  }
}

/** Convert in memory (browsers, tests): the whole output is built in one array. */
export async function convertPthBytes(input: Uint8Array, options: Omit<ConvertPthOptions, 'overwrite' | 'onTensor'> & { name?: string } = {}): Promise<Uint8Array> {
  const target = checkTarget(options.dtype);
  const ckpt = await openPth(input, options.name ?? 'checkpoint.pth', options);
  const tensors: SafetensorsTensor[] = [];
  for (const t of ckpt.tensors) {
    const dtype = outputDType(t.dtype, target);
    tensors.push({ name: t.name, dtype, shape: t.shape, data: convertTensorBytes(await ckpt.readTensor(t), t, dtype, ckpt.file) });
  }
  return encodeSafetensors(tensors, { format: 'pt', ...options.metadata });
}

function checkTarget(d: PthConvertDType | undefined): PthConvertDType {
  const target = d ?? 'keep';
  if (target !== 'keep' && target !== 'f32' && target !== 'f16') throw new PthError('(options)', `dtype must be 'keep', 'f32' or 'f16', got '${String(d)}'`);
  return target;
}

function summary(ckpt: PthCheckpoint, input: string, output: string, entries: readonly { dtype: string }[], outputBytes: number, seconds: number): ConvertPthResult {
  const dtypes: Record<string, number> = {};
  for (const e of entries) dtypes[e.dtype] = (dtypes[e.dtype] ?? 0) + 1;
  return {
    input,
    output,
    tensors: entries.length,
    skipped: ckpt.skipped,
    stateDictKey: ckpt.stateDictKey,
    inputBytes: ckpt.sourceBytes,
    outputBytes,
    seconds,
    mbPerSecond: outputBytes / 1e6 / seconds,
    dtypes,
  };
}

/** Re-encode one tensor's contiguous bytes from `t.dtype` to `to`. */
export function convertTensorBytes(bytes: Uint8Array, t: Pick<PthTensorInfo, 'name' | 'dtype'>, to: PthDType, file = '(memory)'): Uint8Array {
  const from = t.dtype;
  if (from === to) return bytes;
  const n = bytes.length / PTH_DTYPE_BYTES[from];
  // Typed views need an aligned start; file reads are fresh arrays, memory inputs may not be
  // (new Uint8Array copies to offset 0; a Node Buffer's slice() would only make another view).
  const src = bytes.byteOffset % PTH_DTYPE_BYTES[from] === 0 ? bytes : new Uint8Array(bytes);
  const out = new Uint8Array(n * PTH_DTYPE_BYTES[to]);
  if (to === 'F32') {
    const o = new Uint32Array(out.buffer);
    if (from === 'F16') {
      const s = new Uint16Array(src.buffer, src.byteOffset, n);
      const table = f16ToF32Table();
      for (let i = 0; i < n; i++) o[i] = table[s[i]!]!;
    } else if (from === 'BF16') {
      const s = new Uint16Array(src.buffer, src.byteOffset, n);
      for (let i = 0; i < n; i++) o[i] = s[i]! << 16;
    } else if (from === 'F64') {
      new Float32Array(out.buffer).set(new Float64Array(src.buffer, src.byteOffset, n));
    } else {
      throw unsupported(file, t.name, from, to);
    }
    return out;
  }
  if (to === 'F16') {
    let bits: Uint32Array;
    if (from === 'F32') bits = new Uint32Array(src.buffer, src.byteOffset, n);
    else if (from === 'BF16' || from === 'F64') bits = new Uint32Array(convertTensorBytes(src, t, 'F32', file).buffer);
    else throw unsupported(file, t.name, from, to);
    const o = new Uint16Array(out.buffer);
    for (let i = 0; i < n; i++) {
      const x = bits[i]!;
      const abs = x & 0x7fffffff;
      if (abs >= 0x38800000 && abs < 0x477ff000) {
        // Fast path, |x| in [2^-14, 65520): the result is a normal f16. Rebias the exponent,
        // add the round-to-nearest-even increment, drop 13 mantissa bits; a carry bumps the
        // exponent as it should. Same bits as f32BitsToF16Bits (checked by the tests).
        o[i] = ((x >>> 16) & 0x8000) | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13);
        continue;
      }
      const h = f32BitsToF16Bits(x);
      if ((h & 0x7fff) === 0x7c00 && (x & 0x7f800000) !== 0x7f800000) {
        const f = new Float32Array(bits.buffer, bits.byteOffset + i * 4, 1)[0];
        throw new PthError(file, `tensor '${t.name}': element ${i} = ${f} is outside the f16 range (±65504); keep this checkpoint in f32`, t.name);
      }
      o[i] = h;
    }
    return out;
  }
  throw unsupported(file, t.name, from, to);
}

function unsupported(file: string, name: string, from: PthDType, to: PthDType): PthError {
  return new PthError(file, `tensor '${name}': no conversion from ${from} to ${to}`, name);
}

/** IEEE binary32 bits → binary16 bits, round to nearest even (integer-only, so it is bulk-fast). */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 : sign | 0x7c00;
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  return sign | (half + (rem > 0x1000 || (rem === 0x1000 && half & 1) ? 1 : 0));
}

let F16_TABLE: Uint32Array | null = null;

/** binary16 bits → binary32 bits for all 65536 values (exact; NaN payloads kept, like torch). */
function f16ToF32Table(): Uint32Array {
  if (F16_TABLE) return F16_TABLE;
  const t = new Uint32Array(65536);
  const f = new Float32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) t[h] = ((h & 0x8000) << 16) | 0x7f800000 | (mant << 13);
    else if (exp === 0) f[h] = sign * mant * 2 ** -24;
    else f[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  F16_TABLE = t;
  return t;
}
