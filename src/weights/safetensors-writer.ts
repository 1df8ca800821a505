/**
 * Writes safetensors files: in memory (`encodeSafetensors`) or streamed to disk tensor by tensor
 * (`writeSafetensorsFile`, Node only), so converting a 2.5 GB checkpoint never holds it whole.
 *
 * Layout (the format): u64 little-endian header length N, N bytes of JSON, then the tensors' bytes
 * back to back. The JSON maps each name to `{"dtype","shape","data_offsets":[begin,end]}` (offsets
 * relative to the data section) plus an optional `"__metadata__"` map of strings. N is padded with
 * spaces to a multiple of 8.
 *
 * Order, chosen to match the reference Rust library (huggingface/safetensors `serialize`): tensors
 * sorted by decreasing dtype alignment (its `Dtype` enum order, 8-byte types first), then by name
 * in byte order; `__metadata__` first in the JSON. Because the data section starts 8-aligned and
 * each dtype group's sizes are multiples of the next group's element size, every tensor then begins
 * on a multiple of its own element size — readers can hand out typed-array views without copying.
 * The header keys are written in data order (the JSON is built by hand: `JSON.stringify` of an
 * object would move integer-like names such as "0" to the front).
 */
import { nodeFs } from '#platform';
import { SamclipError, fmtShape } from '../gpu/errors.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL' | 'U16' | 'U32' | 'U64';

export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
};

/** Rank in the reference library's `Dtype` enum (declared in increasing alignment). */
const DTYPE_RANK: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 0, U8: 1, I8: 2, I16: 3, U16: 4, F16: 5, BF16: 6, I32: 7, U32: 8, F32: 9, F64: 10, I64: 11, U64: 12,
};

export class SafetensorsWriteError extends SamclipError {
  override name = 'SafetensorsWriteError';
}

export interface SafetensorsTensorSpec {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
}

export interface SafetensorsTensor extends SafetensorsTensorSpec {
  /** Row-major little-endian element bytes (any typed array; its bytes are used as they are). */
  readonly data: ArrayBufferView;
}

export interface SafetensorsStreamEntry extends SafetensorsTensorSpec {
  /** Produce the tensor's bytes. Called once per entry, one at a time, in file order. */
  read(): Uint8Array | Promise<Uint8Array>;
}

export interface SafetensorsLayout {
  /** The 8-byte length plus the padded JSON header: the file's first bytes. */
  readonly header: Uint8Array;
  /** Indices into the input entries, in the order their bytes follow the header. */
  readonly order: readonly number[];
  /** [begin, end) of each input entry inside the data section, by input index. */
  readonly offsets: readonly (readonly [number, number])[];
  /** Length of the data section. */
  readonly dataBytes: number;
  /** header.length + dataBytes. */
  readonly totalBytes: number;
}

function compareBytes(a: string, b: string): number {
  // Code-point order equals UTF-8 byte order (UTF-16 code-unit order does not, above U+FFFF).
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d) return d;
  }
}

/** Validate specs and compute the header and data layout. */
export function planSafetensors(specs: readonly SafetensorsTensorSpec[], metadata?: Readonly<Record<string, string>>): SafetensorsLayout {
  const seen = new Set<string>();
  const sizes: number[] = [];
  specs.forEach((s, i) => {
    if (typeof s.name !== 'string' || s.name.length === 0) throw new SafetensorsWriteError(`tensor #${i}: name must be a non-empty string`);
    if (s.name === '__metadata__') throw new SafetensorsWriteError(`tensor #${i}: '__metadata__' is reserved and cannot name a tensor`);
    if (seen.has(s.name)) throw new SafetensorsWriteError(`tensor '${s.name}' appears twice`);
    seen.add(s.name);
    const bytes = SAFETENSORS_DTYPE_BYTES[s.dtype];
    if (!bytes) throw new SafetensorsWriteError(`tensor '${s.name}': unsupported dtype '${String(s.dtype)}' (supported: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`);
    let numel = 1;
    for (const d of s.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new SafetensorsWriteError(`tensor '${s.name}': shape ${fmtShape(s.shape)} has a dimension that is not a non-negative integer`);
      numel *= d;
    }
    if (!Number.isSafeInteger(numel * bytes)) throw new SafetensorsWriteError(`tensor '${s.name}': shape ${fmtShape(s.shape)} is too large`);
    sizes.push(numel * bytes);
  });
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object') throw new SafetensorsWriteError('metadata must be an object of strings');
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsWriteError(`metadata '${k}' must be a string, got ${typeof v}`);
    }
  }

  const order = specs.map((_, i) => i);
  order.sort((a, b) => DTYPE_RANK[specs[b]!.dtype] - DTYPE_RANK[specs[a]!.dtype] || compareBytes(specs[a]!.name, specs[b]!.name));

  const offsets: [number, number][] = new Array(specs.length);
  const parts: string[] = [];
  if (metadata !== undefined) {
    const m = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`"__metadata__":{${m.join(',')}}`);
  }
  let at = 0;
  for (const i of order) {
    const s = specs[i]!;
    offsets[i] = [at, at + sizes[i]!];
    parts.push(`${JSON.stringify(s.name)}:{"dtype":"${s.dtype}","shape":[${s.shape.join(',')}],"data_offsets":[${at},${at + sizes[i]!}]}`);
    at += sizes[i]!;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const header = new Uint8Array(8 + padded);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  header.fill(0x20, 8 + json.length);
  return { header, order, offsets, dataBytes: at, totalBytes: header.length + at };
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function checkLength(spec: SafetensorsTensorSpec, got: number, want: number): void {
  if (got !== want) {
    throw new SafetensorsWriteError(`tensor '${spec.name}' (${spec.dtype} ${fmtShape(spec.shape)}) needs ${want} bytes, got ${got}`);
  }
}

/** The whole file in memory. */
export function encodeSafetensors(entries: readonly SafetensorsTensor[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const plan = planSafetensors(entries, metadata);
  const out = new Uint8Array(plan.totalBytes);
  out.set(plan.header, 0);
  for (const i of plan.order) {
    const e = entries[i]!;
    const [b, end] = plan.offsets[i]!;
    const data = bytesOf(e.data);
    checkLength(e, data.length, end - b);
    out.set(data, plan.header.length + b);
  }
  return out;
}

export interface WriteSafetensorsOptions {
  metadata?: Readonly<Record<string, string>>;
  /** Replace an existing file (default false: an existing target is an error, before any work). */
  overwrite?: boolean;
  /** Called after each tensor is written, in file order. */
  onTensor?: (name: string, bytes: number, index: number, count: number) => void;
}

export interface WriteSafetensorsResult {
  readonly path: string;
  readonly bytes: number;
  readonly headerBytes: number;
  readonly tensors: number;
  readonly seconds: number;
}

interface NodeFs {
  open(p: string, flags: string): Promise<{
    write(b: Uint8Array, off: number, len: number, pos: number): Promise<{ bytesWritten: number }>;
    sync(): Promise<void>;
    close(): Promise<void>;
  }>;
  rename(a: string, b: string): Promise<void>;
  link(a: string, b: string): Promise<void>;
  unlink(p: string): Promise<void>;
  lstat(p: string): Promise<unknown>;
}

async function exists(fs: NodeFs, p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * Stream a safetensors file to disk (Node only). Bytes go to `<path>.tmp-<pid>-<random>` in the same
 * folder, which is fsynced and then moved into place, so `path` is either absent/unchanged or
 * complete: an error (or a crash) never leaves a half-written target. Without `overwrite`, the
 * final move is a hard link, which fails atomically if `path` appeared meanwhile.
 */
export async function writeSafetensorsFile(path: string, entries: readonly SafetensorsStreamEntry[], options: WriteSafetensorsOptions = {}): Promise<WriteSafetensorsResult> {
  const t0 = performance.now();
  const fs: NodeFs | null = nodeFs;
  if (!fs) throw new SafetensorsWriteError(`${path}: writing files needs Node (node:fs); in a browser use encodeSafetensors`);
  const overwrite = options.overwrite ?? false;
  if (!overwrite && (await exists(fs, path))) {
    throw new SafetensorsWriteError(`${path} already exists; pass overwrite: true to replace it`);
  }
  const plan = planSafetensors(entries, options.metadata);
  const tmp = `${path}.tmp-${typeof process !== 'undefined' ? process.pid : 0}-${Math.random().toString(36).slice(2, 10)}`;
  let fh: Awaited<ReturnType<NodeFs['open']>> | null = null;
  let moved = false;
  try {
    try {
      fh = await fs.open(tmp, 'wx');
    } catch (e) {
      throw new SafetensorsWriteError(`${path}: cannot create temporary file ${tmp}: ${(e as Error).message}`);
    }
    let pos = 0;
    const writeAll = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) {
        const n = Math.min(b.length - done, 1 << 30);
        const { bytesWritten } = await fh!.write(b, done, n, pos + done);
        if (bytesWritten <= 0) throw new SafetensorsWriteError(`${tmp}: write returned ${bytesWritten}`);
        done += bytesWritten;
      }
      pos += b.length;
    };
    await writeAll(plan.header);
    let k = 0;
    for (const i of plan.order) {
      const e = entries[i]!;
      const [b, end] = plan.offsets[i]!;
      let data: Uint8Array;
      try {
        data = await e.read();
      } catch (err) {
        if (err instanceof SamclipError) throw err;
        throw new SafetensorsWriteError(`${path}: reading tensor '${e.name}' failed: ${(err as Error).message}`);
      }
      checkLength(e, data.byteLength, end - b);
      await writeAll(data instanceof Uint8Array ? data : bytesOf(data));
      options.onTensor?.(e.name, end - b, k++, entries.length);
    }
    if (pos !== plan.totalBytes) throw new SafetensorsWriteError(`${tmp}: wrote ${pos} bytes, planned ${plan.totalBytes}`);
    await fh.sync();
    await fh.close();
    fh = null;
    if (overwrite) {
      await fs.rename(tmp, path);
      moved = true;
    } else {
      try {
        await fs.link(tmp, path);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'EEXIST') throw new SafetensorsWriteError(`${path} appeared while writing; not overwriting it (pass overwrite: true)`);
        // Filesystems without hard links: fall back to check-then-rename (a narrow race window).
        if (await exists(fs, path)) throw new SafetensorsWriteError(`${path} appeared while writing; not overwriting it (pass overwrite: true)`);
        await fs.rename(tmp, path);
        moved = true;
      }
    }
  } catch (e) {
    // Never leave the temporary file behind; the target was not touched.
    await fh?.close().catch(() => {});
    if (!moved) await fs.unlink(tmp).catch(() => {});
    throw e;
  }
  if (!moved) await fs.unlink(tmp).catch(() => {});
  return {
    path,
    bytes: plan.totalBytes,
    headerBytes: plan.header.length,
    tensors: entries.length,
    seconds: (performance.now() - t0) / 1000,
  };
}
