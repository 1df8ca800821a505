/**
 * Strict, lazy safetensors reader. Opening reads and validates only the header (see
 * `safetensors-header.ts` for the rules); tensor bytes are read on demand, as zero-copy views for
 * in-memory sources and through positioned reads for files and HTTP ranges. `upload` streams a tensor
 * to the GPU in chunks through one reused staging buffer, converting dtypes on the CPU when needed.
 *
 * Returned views share memory with the source (and with each other): treat them as read-only.
 * Safetensors data is little-endian; so is every host WebGPU runs on (checked at load).
 */
import type { GpuContext } from '../gpu/context.js';
import type { DType } from '../gpu/dtype.js';
import { fmtShape } from '../gpu/errors.js';
import type { Tensor } from '../gpu/tensor.js';
import {
  HOST_LITTLE_ENDIAN,
  narrowBF16ToF16,
  narrowF32BitsToF16,
  widenBF16,
  widenF16,
} from './safetensors-convert.js';
import {
  DTYPE_BITS,
  HeaderObjectCounter,
  type HeaderLimits,
  type ParsedHeader,
  SafetensorsError,
  type SafetensorsDType,
  type TensorEntry,
  parseHeader,
  readHeaderLength,
} from './safetensors-header.js';
import {
  type ByteSource,
  DEFAULT_MAX_UNRANGED_BYTES,
  type FetchLike,
  HttpRangeSource,
  MemorySource,
  NodeFileSource,
  discardBody,
  fetchOrThrow,
  parseContentRange,
  readBodyInto,
  readWholeSafetensors,
} from './safetensors-source.js';
import { BlobSource } from './blob-source.js';
import { fetchableUrl } from '../util/url.js';

export {
  SafetensorsError,
  SafetensorsLimitError,
  DEFAULT_HEADER_LIMITS,
  DTYPE_BITS,
  MAX_HEADER_BYTES,
  type HeaderLimits,
  type SafetensorsDType,
} from './safetensors-header.js';
export type { ByteSource, FetchLike } from './safetensors-source.js';

export interface SafetensorsTensorInfo {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** `data_offsets` as written: relative to the first byte after the header. */
  readonly dataOffsets: readonly [number, number];
}

export interface UploadOptions {
  /** Storage type on the GPU. Default 'f32'. 'i32' takes integer tensors (see `readI32`). */
  dtype?: 'f32' | 'f16' | 'i32';
  /** Fail unless the tensor has exactly this shape. */
  expectShape?: readonly number[];
  /** Bytes per staging chunk (default 16 MiB; rounded down to a multiple of 4, at least 4). */
  chunkBytes?: number;
}

export interface LoadStats {
  /** Bytes read from the source (file, memory or network) by reads and uploads. */
  bytesRead: number;
  /** Bytes written into GPU buffers. */
  bytesUploaded: number;
  tensorsUploaded: number;
  /** Wall-clock seconds spent inside the read and upload calls (host side: GPU copies may still be queued). */
  seconds: number;
  /** bytesRead / seconds, in GB/s (1e9 bytes). */
  readGBps: number;
  /** bytesUploaded / seconds, in GB/s. */
  uploadGBps: number;
}

export interface FromUrlOptions extends HeaderLimits {
  /** Defaults to `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Bytes asked for in the first range request; a longer header costs one more request. Default 256 KiB. */
  probeBytes?: number;
  /**
   * Largest file downloaded whole when the server ignores Range requests (default 256 MiB). The
   * file then lives in memory; raise this to load a larger checkpoint from such a server.
   */
  maxUnrangedBytes?: number;
}

/** Upload chunk: large enough to amortise per-call costs, small enough to keep host memory flat. */
const CHUNK_BYTES = 16 << 20;

const now = (): number => (globalThis.performance ?? Date).now();

/**
 * A checkpoint given as a path, a URL or an already open file (`owned`: opened here, so the caller
 * closes it). http(s) URLs are fetched with Range requests. Any other string is, in a browser (page
 * or worker), an address relative to the page's `document.baseURI` or the worker's `self.location`,
 * fetched the same way; on Node it is a file path.
 */
export async function openSafetensors(src: string | SafetensorsFile, opts: FromUrlOptions = {}): Promise<{ file: SafetensorsFile; owned: boolean }> {
  if (typeof src !== 'string') return { file: src, owned: false };
  let url: string | null;
  try {
    url = fetchableUrl(src);
  } catch (e) {
    throw new SafetensorsError(src, (e as Error).message);
  }
  return { file: url === null ? await SafetensorsFile.open(src, opts) : await SafetensorsFile.fromUrl(url, opts), owned: true };
}

export class SafetensorsFile {
  private source: ByteSource | null;
  private staging: Uint8Array | null = null;
  private convert: ArrayBuffer | null = null;
  private readonly stats = { bytesRead: 0, bytesUploaded: 0, tensorsUploaded: 0, ms: 0 };
  private uploadLock: Promise<void> = Promise.resolve();

  /** Path, URL or the name given to `fromBytes`; every error message starts with it. */
  readonly name: string;

  private constructor(
    source: ByteSource,
    private readonly header: ParsedHeader,
  ) {
    this.source = source;
    this.name = source.name;
  }

  // ---------------------------------------------------------------- opening

  /** Node: open a file by path; only the header is read now. */
  static async open(path: string, limits: HeaderLimits = {}): Promise<SafetensorsFile> {
    return SafetensorsFile.fromSource(await NodeFileSource.open(path), limits);
  }

  /** Parse an in-memory file; tensor reads return views into `bytes` where alignment allows. */
  static fromBytes(bytes: ArrayBuffer | Uint8Array, name = '<bytes>', limits: HeaderLimits = {}): SafetensorsFile {
    const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    checkHost(name);
    const n = readHeaderLength(u8.subarray(0, 8), u8.length, name);
    const header = parseHeader(u8.subarray(8, 8 + n), u8.length, name, limits);
    return new SafetensorsFile(new MemorySource(u8, name), header);
  }

  /**
   * Browser or Node: open a URL. The first request asks for the first `probeBytes` with a Range
   * header. A 206 answer whose Content-Range gives the total size (servers must list Content-Range in
   * Access-Control-Expose-Headers for cross-origin pages) makes the file lazy: the header is read
   * now (one more range request if it is longer than the probe) and every tensor read is one range
   * request. A 200 answer means the server ignored Range; the whole body is then downloaded once
   * (up to `maxUnrangedBytes`, never more than the header accounts for) and used from memory.
   */
  static async fromUrl(url: string, opts: FromUrlOptions = {}): Promise<SafetensorsFile> {
    const fetchFn = opts.fetch ?? (globalThis.fetch?.bind(globalThis) as FetchLike | undefined);
    if (!fetchFn) throw new SafetensorsError(url, 'no fetch function available; pass { fetch }');
    checkHost(url);
    const probe = Math.max(8, Math.floor(opts.probeBytes ?? 256 << 10));
    const maxWhole = opts.maxUnrangedBytes ?? DEFAULT_MAX_UNRANGED_BYTES;
    const res = await fetchOrThrow(fetchFn, url, { headers: { Range: `bytes=0-${probe - 1}` } });
    const cr = res.status === 206 ? parseContentRange(res.headers.get('content-range')) : null;
    if (!cr || cr.start !== 0) {
      // Range ignored or its answer unreadable: use the body when it is the whole file, else refetch.
      let whole = res;
      if (res.status !== 200) {
        await discardBody(res);
        whole = await fetchOrThrow(fetchFn, url);
      }
      if (whole.status !== 200) {
        await discardBody(whole);
        throw new SafetensorsError(url, `HTTP ${whole.status} for a full download`);
      }
      const { bytes, header } = await readWholeSafetensors(whole, url, maxWhole, opts);
      return new SafetensorsFile(new MemorySource(bytes, url), header);
    }
    const size = cr.total;
    const head = new Uint8Array(Math.min(probe, size));
    await readBodyInto(res, head, url, 'first range request');
    const source = new HttpRangeSource(url, size, fetchFn);
    const n = readHeaderLength(head.subarray(0, 8), size, url);
    const headerBytes = 8 + n <= head.length ? head.subarray(8, 8 + n) : await source.read(8, n);
    return new SafetensorsFile(source, parseHeader(headerBytes, size, url, opts));
  }

  /** A Blob or File (e.g. from a file picker), read lazily: only the header now, each tensor when uploaded. */
  static async fromBlob(blob: Blob, name = (blob as { name?: string }).name || '<blob>', limits: HeaderLimits = {}): Promise<SafetensorsFile> {
    if (blob.size === 0) throw new SafetensorsError(name, 'empty file (0 bytes), not a safetensors checkpoint');
    return SafetensorsFile.fromSource(new BlobSource(blob, name), limits);
  }

  /** Any byte source (custom storage, tests). Reads the header from it. */
  static async fromSource(source: ByteSource, limits: HeaderLimits = {}): Promise<SafetensorsFile> {
    try {
      checkHost(source.name);
      const first = await source.read(0, Math.min(8, source.size));
      const n = readHeaderLength(first, source.size, source.name);
      if (n > PRESCAN_BYTES) await prescanHeader(source, n, limits);
      const header = parseHeader(await source.read(8, n), source.size, source.name, limits);
      return new SafetensorsFile(source, header);
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  // ---------------------------------------------------------------- header

  /** `__metadata__` (empty when the file has none). */
  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  /** Tensor names in data order (ascending offsets). */
  keys(): string[] {
    return this.header.ordered.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.header.byName.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const t = this.entry(name);
    return { dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, dataOffsets: [t.begin, t.end] };
  }

  /** Size of the data section (sum of all tensors' bytes). */
  get dataBytes(): number {
    return this.header.dataLength;
  }

  // ---------------------------------------------------------------- reads

  /**
   * The tensor's bytes. In-memory sources give a view when its offset is a multiple of the element
   * size (so it can be reinterpreted as a typed array), a copy otherwise; other sources give a copy.
   */
  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.entry(name);
    const src = this.open_();
    const t0 = now();
    const abs = this.header.dataStart + t.begin;
    const v = src.view(abs, t.byteLength);
    // new Uint8Array(v) copies to offset 0 (a Node Buffer's slice() would stay misaligned).
    const out = v && v.byteOffset % elemAlign(t.dtype) === 0 ? v : v ? new Uint8Array(v) : await src.read(abs, t.byteLength);
    this.count(t.byteLength, t0);
    return out;
  }

  /** Float tensors as f32: F32 as is (a view when possible), F16 and BF16 widened exactly. */
  async readF32(name: string): Promise<Float32Array> {
    const t = this.entry(name);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      throw new SafetensorsError(
        this.name,
        `tensor '${name}' is ${t.dtype}; readF32 reads F32, F16 and BF16 tensors${isInt(t.dtype) ? ' (use readI32 for integers)' : ''}`,
        name,
      );
    }
    const raw = await this.readRaw(name);
    if (t.dtype === 'F32') return new Float32Array(raw.buffer, raw.byteOffset, t.numel);
    const halves = new Uint16Array(raw.buffer, raw.byteOffset, t.numel);
    const out = new Float32Array(t.numel);
    if (t.dtype === 'F16') widenF16(halves, out);
    else widenBF16(halves, out);
    return out;
  }

  /**
   * Integer tensors as i32: I32 as is (a view when possible); I8/U8/I16/U16/BOOL widened; I64, U64
   * and U32 narrowed when every value fits, refused (naming the first value that does not) otherwise.
   */
  async readI32(name: string): Promise<Int32Array> {
    const t = this.entry(name);
    if (!isInt(t.dtype)) {
      throw new SafetensorsError(this.name, `tensor '${name}' is ${t.dtype}; readI32 reads integer tensors (use readF32 for floats)`, name);
    }
    const raw = await this.readRaw(name);
    const n = t.numel;
    if (t.dtype === 'I32') return new Int32Array(raw.buffer, raw.byteOffset, n);
    const out = new Int32Array(n);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const bad = (i: number, v: bigint | number): never => {
      throw new SafetensorsError(this.name, `tensor '${name}' (${t.dtype}) element ${i} = ${v} does not fit in i32`, name);
    };
    switch (t.dtype) {
      case 'U8':
      case 'BOOL':
        out.set(raw);
        break;
      case 'I8':
        out.set(new Int8Array(raw.buffer, raw.byteOffset, n));
        break;
      case 'I16':
        out.set(new Int16Array(raw.buffer, raw.byteOffset, n));
        break;
      case 'U16':
        out.set(new Uint16Array(raw.buffer, raw.byteOffset, n));
        break;
      case 'U32':
        for (let i = 0; i < n; i++) {
          const v = dv.getUint32(4 * i, true);
          if (v > 0x7fffffff) bad(i, v);
          out[i] = v;
        }
        break;
      case 'I64':
      case 'U64':
        for (let i = 0; i < n; i++) {
          const lo = dv.getInt32(8 * i, true);
          const hi = dv.getInt32(8 * i + 4, true);
          // Fits iff the high word is the sign extension of the low word (and U64 is non-negative).
          if (hi !== lo >> 31 || (t.dtype === 'U64' && lo < 0)) {
            bad(i, t.dtype === 'I64' ? dv.getBigInt64(8 * i, true) : dv.getBigUint64(8 * i, true));
          }
          out[i] = lo;
        }
        break;
    }
    return out;
  }

  // ---------------------------------------------------------------- GPU upload

  /**
   * Upload one tensor into a new persistent GPU tensor. F32/F16/BF16 sources go to f32 or f16
   * storage (F16→f16 copies bytes; other pairs convert on the CPU, rounding like `GpuContext.write`);
   * integer sources go to i32. Large tensors stream through a reused 16 MiB staging buffer.
   */
  async upload(ctx: GpuContext, name: string, opts: UploadOptions = {}): Promise<Tensor> {
    const t = this.entry(name);
    const target: DType = opts.dtype ?? 'f32';
    if (opts.expectShape && !sameShape(opts.expectShape, t.shape)) {
      throw new SafetensorsError(
        this.name,
        `tensor '${name}' has shape ${fmtShape(t.shape)} but ${fmtShape(opts.expectShape)} was expected`,
        name,
      );
    }
    if (target === 'i32') {
      const data = await this.readI32(name);
      const t0 = now();
      const out = ctx.empty(t.shape, 'i32');
      out.persistent = true;
      try {
        if (data.length) ctx.writeBytes(out, data, 0);
      } catch (e) {
        out.dispose();
        throw e;
      }
      this.stats.bytesUploaded += data.byteLength;
      this.stats.tensorsUploaded++;
      this.stats.ms += now() - t0;
      return out;
    }
    if (target !== 'f32' && target !== 'f16') {
      throw new SafetensorsError(this.name, `upload of '${name}': target dtype '${String(target)}' is not f32, f16 or i32`, name);
    }
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      throw new SafetensorsError(
        this.name,
        `tensor '${name}' is ${t.dtype}; only F32, F16 and BF16 tensors upload to ${target}${isInt(t.dtype) ? " (use { dtype: 'i32' })" : ''}`,
        name,
      );
    }
    // Uploads share one staging buffer: run them one at a time, so `Promise.all(keys.map(upload))`
    // cannot have two reads land in the same buffer.
    const previous = this.uploadLock;
    let release!: () => void;
    this.uploadLock = new Promise<void>((r) => (release = r));
    await previous;
    let out: Tensor | null = null;
    try {
      out = ctx.empty(t.shape, target);
      out.persistent = true;
      await this.streamFloat(ctx, t, out, target, Math.max(4, Math.floor((opts.chunkBytes ?? CHUNK_BYTES) / 4) * 4));
    } catch (e) {
      out?.dispose();
      throw e;
    } finally {
      release();
    }
    this.stats.tensorsUploaded++;
    return out;
  }

  private async streamFloat(ctx: GpuContext, t: TensorEntry, out: Tensor, target: 'f32' | 'f16', chunkBytes: number): Promise<void> {
    const src = this.open_();
    const srcElem = DTYPE_BITS[t.dtype] / 8;
    const dstElem = target === 'f32' ? 4 : 2;
    const direct = (t.dtype === 'F32' && target === 'f32') || (t.dtype === 'F16' && target === 'f16');
    // An even element count per chunk keeps f16 destination offsets 4-byte aligned.
    const chunkElems = Math.max(2, Math.floor(chunkBytes / Math.max(srcElem, dstElem) / 2) * 2);
    const base = this.header.dataStart + t.begin;
    for (let e0 = 0; e0 < t.numel; e0 += chunkElems) {
      const t0 = now();
      const count = Math.min(chunkElems, t.numel - e0);
      const srcBytes = count * srcElem;
      let bytes = src.view(base + e0 * srcElem, srcBytes);
      // Typed-array views need element alignment; copy into the (offset-0) staging buffer otherwise.
      if (!bytes || (!direct && bytes.byteOffset % srcElem !== 0)) {
        const stage = this.stagingBuffer(srcBytes);
        bytes = bytes ? (stage.set(bytes), stage.subarray(0, srcBytes)) : await src.read(base + e0 * srcElem, srcBytes, stage);
      }
      let payload: Uint8Array;
      if (direct) {
        payload = bytes;
      } else {
        const conv = this.convertBuffer(count * 4 + 4);
        if (target === 'f32') {
          const f = new Float32Array(conv, 0, count);
          const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
          if (t.dtype === 'F16') widenF16(halves, f);
          else widenBF16(halves, f);
          payload = new Uint8Array(conv, 0, count * 4);
        } else {
          const h = new Uint16Array(conv, 0, count + (count & 1));
          if (t.dtype === 'F32') narrowF32BitsToF16(new Uint32Array(bytes.buffer, bytes.byteOffset, count), h);
          else narrowBF16ToF16(new Uint16Array(bytes.buffer, bytes.byteOffset, count), h, this.scratchU32(count));
          payload = new Uint8Array(conv, 0, count * 2);
        }
      }
      // writeBuffer wants a multiple of 4 bytes: an odd f16 tail is padded with a zero half (the GPU
      // buffer is rounded up to 4 bytes, so the pad lands inside it).
      if (payload.byteLength % 4 !== 0) {
        const padded = new Uint8Array(payload.byteLength + 2);
        padded.set(payload);
        payload = padded;
      }
      ctx.writeBytes(out, payload, e0 * dstElem);
      this.stats.bytesRead += srcBytes;
      this.stats.bytesUploaded += payload.byteLength;
      this.stats.ms += now() - t0;
    }
  }

  /** Throughput counters for everything read or uploaded through this file so far. */
  get loadStats(): LoadStats {
    const seconds = this.stats.ms / 1000;
    const rate = (b: number): number => (seconds > 0 ? b / seconds / 1e9 : 0);
    return {
      bytesRead: this.stats.bytesRead,
      bytesUploaded: this.stats.bytesUploaded,
      tensorsUploaded: this.stats.tensorsUploaded,
      seconds,
      readGBps: rate(this.stats.bytesRead),
      uploadGBps: rate(this.stats.bytesUploaded),
    };
  }

  /** Release the file handle and staging memory. Later reads throw. */
  async close(): Promise<void> {
    const s = this.source;
    this.source = null;
    this.staging = null;
    this.convert = null;
    this.u32Scratch = null;
    await s?.close();
  }

  // ---------------------------------------------------------------- internals

  private entry(name: string): TensorEntry {
    const t = this.header.byName.get(name);
    if (t) return t;
    const near = closest(name, [...this.header.byName.keys()], 3);
    const hint = near.length ? `; did you mean ${near.map((k) => `'${k}'`).join(', ')}?` : ' (the file has no tensors)';
    throw new SafetensorsError(this.name, `no tensor '${name}' in the file${hint}`, name);
  }

  private open_(): ByteSource {
    if (!this.source) throw new SafetensorsError(this.name, 'file is closed');
    return this.source;
  }

  private count(bytes: number, t0: number): void {
    this.stats.bytesRead += bytes;
    this.stats.ms += now() - t0;
  }

  private stagingBuffer(bytes: number): Uint8Array {
    if (!this.staging || this.staging.length < bytes) this.staging = new Uint8Array(Math.max(bytes, this.staging?.length ?? 0));
    return this.staging;
  }

  private convertBuffer(bytes: number): ArrayBuffer {
    if (!this.convert || this.convert.byteLength < bytes) this.convert = new ArrayBuffer(bytes);
    return this.convert;
  }

  private u32Scratch: Uint32Array | null = null;
  private scratchU32(n: number): Uint32Array {
    if (!this.u32Scratch || this.u32Scratch.length < n) this.u32Scratch = new Uint32Array(n);
    return this.u32Scratch;
  }
}

/** Headers longer than this are counted in pieces before being read whole. */
const PRESCAN_BYTES = 4 << 20;

/** Count a long header's entries piece by piece, so an absurd one is refused without holding it. */
async function prescanHeader(source: ByteSource, n: number, limits: HeaderLimits): Promise<void> {
  const counter = new HeaderObjectCounter();
  const piece = new Uint8Array(PRESCAN_BYTES);
  for (let at = 0; at < n; at += PRESCAN_BYTES) {
    const len = Math.min(PRESCAN_BYTES, n - at);
    counter.feed(await source.read(8 + at, len, piece));
    counter.check(source.name, n, limits, at + len === n);
  }
}

function checkHost(file: string): void {
  if (!HOST_LITTLE_ENDIAN) throw new SafetensorsError(file, 'big-endian hosts are not supported (safetensors data is little-endian)');
}

function isInt(d: SafetensorsDType): boolean {
  return d === 'BOOL' || d === 'U8' || d === 'I8' || d === 'I16' || d === 'U16' || d === 'I32' || d === 'U32' || d === 'I64' || d === 'U64';
}

/** Alignment a typed-array view of this dtype needs (sub-byte and 8-bit types: 1). */
function elemAlign(d: SafetensorsDType): number {
  const bytes = DTYPE_BITS[d] / 8;
  // Float64Array / BigInt64Array views need 8; C64 is read as pairs of f32.
  return d === 'C64' ? 4 : Number.isInteger(bytes) ? bytes : 1;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Up to `k` names closest to `name` (edit distance, ties by name), for "did you mean". */
function closest(name: string, names: string[], k: number): string[] {
  const scored = names.map((n) => ({ n, d: editDistance(name, n) }));
  scored.sort((a, b) => a.d - b.d || (a.n < b.n ? -1 : 1));
  return scored.slice(0, k).map((s) => s.n);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
