/**
 * Just enough ZIP to read torch.save archives: the central directory (with ZIP64), stored entries
 * read as byte ranges straight from the source, and deflated entries inflated whole.
 *
 * torch.save writes every entry *stored* (method 0) and pads local headers so each storage starts
 * on a 64-byte boundary, so a tensor is a plain byte range of the file: we read only that range and
 * never hold the archive (2.5 GB for SAM ViT-H) in memory. Deflated entries appear only if someone
 * re-zipped a checkpoint; they are inflated with the platform's own inflater
 * (`DecompressionStream('deflate-raw')`, or `node:zlib` where that is missing), so this module needs
 * no third-party package (fflate is not needed; tests use it only to build odd archives).
 */
import { nodeFs, inflateRaw as inflateRawSync } from '#platform';
import { PthError, PthLimitError } from './errors.js';

/** Default cap on one inflated (deflate-compressed) entry: larger than any single tensor storage of SAM / CLIP. */
export const DEFAULT_MAX_INFLATED_BYTES = 2 ** 30;

/**
 * Deflate cannot expand data by more than 1032:1 (zlib's documented maximum ratio); a directory
 * entry that declares more is lying about its size. The constant covers the stream's own overhead.
 */
const DEFLATE_MAX_RATIO = 1032;

/** Random-access bytes. Structurally compatible with the safetensors reader's `ByteSource`. */
export interface PthByteSource {
  /** Path, URL or given name, used in every error message. */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset` (a fresh array or a view the caller must not modify). */
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

export function memorySource(bytes: Uint8Array, name: string): PthByteSource {
  return {
    name,
    size: bytes.length,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new PthError(name, `read of ${length} bytes at ${offset} is outside the ${bytes.length}-byte input (truncated?)`);
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}

interface NodeFileHandle {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** Positioned reads from a file on disk (Node only: node:fs comes through the platform seam). */
export async function fileSource(path: string): Promise<PthByteSource> {
  const fs = nodeFs;
  if (!fs) throw new PthError(path, 'reading a file by path needs Node (node:fs); in a browser pass the bytes instead');
  let handle: NodeFileHandle;
  try {
    handle = await fs.open(path, 'r');
  } catch (e) {
    throw new PthError(path, `cannot open: ${(e as Error).message}`);
  }
  const size = (await handle.stat()).size;
  let closed = false;
  return {
    name: path,
    size,
    async read(offset, length) {
      if (closed) throw new PthError(path, 'file is closed');
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new PthError(path, `read of ${length} bytes at ${offset} is outside the ${size}-byte file (truncated?)`);
      }
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        // Chunked: a single read is capped near 2 GiB on some platforms.
        const want = Math.min(length - done, 1 << 30);
        const { bytesRead } = await handle.read(out, done, want, offset + done);
        if (bytesRead === 0) throw new PthError(path, `file ended at ${offset + done} while reading ${length} bytes at ${offset}`);
        done += bytesRead;
      }
      return out;
    },
    async close() {
      if (!closed) {
        closed = true;
        await handle.close();
      }
    },
  };
}

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated. */
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_LEN = 22;
const MAX_COMMENT = 0xffff;

function u64(dv: DataView, at: number, file: string, what: string): number {
  const lo = dv.getUint32(at, true);
  const hi = dv.getUint32(at + 4, true);
  if (hi >= 0x200000) throw new PthError(file, `${what} ${hi} * 2^32 + ${lo} is beyond 2^53 (corrupted archive)`);
  return hi * 0x100000000 + lo;
}

/** A zip archive's directory plus lazy access to entry bytes. */
export class ZipArchive {
  private readonly byName = new Map<string, ZipEntry>();
  private readonly dataStart = new Map<string, number>();

  private constructor(
    readonly source: PthByteSource,
    readonly entries: readonly ZipEntry[],
    /** Largest entry inflated into memory (see DEFAULT_MAX_INFLATED_BYTES). */
    readonly maxInflatedBytes: number,
  ) {
    for (const e of entries) this.byName.set(e.name, e);
  }

  get file(): string {
    return this.source.name;
  }

  static async open(source: PthByteSource, opts: { maxInflatedBytes?: number } = {}): Promise<ZipArchive> {
    const file = source.name;
    if (source.size < EOCD_LEN) {
      throw new PthError(file, `only ${source.size} bytes: too short to be a zip archive (truncated?)`);
    }
    const tailLen = Math.min(source.size, EOCD_LEN + MAX_COMMENT + 20);
    const tailStart = source.size - tailLen;
    const tail = await source.read(tailStart, tailLen);
    const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tailLen - EOCD_LEN; i >= 0; i--) {
      // The comment length must reach exactly to the end of the file, which rules out a stray
      // signature inside the comment or the data.
      if (tv.getUint32(i, true) === SIG_EOCD && i + EOCD_LEN + tv.getUint16(i + 20, true) === tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) {
      const head = await source.read(0, Math.min(source.size, 512));
      throw new PthError(file, describeNonZip(head) ?? 'no zip end-of-central-directory record: not a zip archive, or the file is truncated');
    }
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0) {
      throw new PthError(file, 'multi-disk (split) zip archives are not supported');
    }
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tv.getUint32(loc, true) !== SIG_ZIP64_LOCATOR) {
        throw new PthError(file, 'zip directory fields are saturated but the ZIP64 locator is missing (corrupted archive)');
      }
      const recOffset = u64(tv, loc + 8, file, 'ZIP64 record offset');
      if (recOffset + 56 > source.size) throw new PthError(file, `ZIP64 record offset ${recOffset} is past the end of the ${source.size}-byte file (truncated?)`);
      const rec = await source.read(recOffset, 56);
      const rv = new DataView(rec.buffer, rec.byteOffset, 56);
      if (rv.getUint32(0, true) !== SIG_ZIP64_EOCD) throw new PthError(file, `no ZIP64 end-of-directory record at ${recOffset} (corrupted archive)`);
      count = u64(rv, 32, file, 'ZIP64 entry count');
      cdSize = u64(rv, 40, file, 'ZIP64 directory size');
      cdOffset = u64(rv, 48, file, 'ZIP64 directory offset');
    }
    if (cdOffset + cdSize > source.size) {
      throw new PthError(file, `central directory (${cdSize} bytes at ${cdOffset}) runs past the end of the ${source.size}-byte file (truncated?)`);
    }
    const cd = await source.read(cdOffset, cdSize);
    const entries = parseCentralDirectory(cd, count, file, source.size);
    return new ZipArchive(source, entries, opts.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES);
  }

  entry(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /** File offset of an entry's first data byte (read from its local header, whose extra field
   * carries torch's alignment padding and can differ from the central copy). */
  async dataOffset(e: ZipEntry): Promise<number> {
    const cached = this.dataStart.get(e.name);
    if (cached !== undefined) return cached;
    const file = this.file;
    if (e.localHeaderOffset + 30 > this.source.size) {
      throw new PthError(file, `local header of ${e.name} at ${e.localHeaderOffset} is past the end of the file (truncated?)`, e.name);
    }
    const h = await this.source.read(e.localHeaderOffset, 30);
    const hv = new DataView(h.buffer, h.byteOffset, 30);
    if (hv.getUint32(0, true) !== SIG_LOCAL) {
      throw new PthError(file, `entry ${e.name}: no local file header at ${e.localHeaderOffset} (corrupted archive)`, e.name);
    }
    const start = e.localHeaderOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
    if (start + e.compressedSize > this.source.size) {
      throw new PthError(file, `entry ${e.name}: ${e.compressedSize} bytes at ${start} run past the end of the ${this.source.size}-byte file (truncated?)`, e.name);
    }
    this.dataStart.set(e.name, start);
    return start;
  }

  /**
   * `length` bytes at `offset` inside the (uncompressed) entry. Stored entries are read as a range
   * of the source; deflated ones are inflated whole (the last one is cached, since tensors that
   * share a storage are read one after the other).
   */
  async readRange(e: ZipEntry, offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > e.size) {
      throw new PthError(this.file, `entry ${e.name}: range ${offset}+${length} is outside its ${e.size} bytes`, e.name);
    }
    if (e.method === 0) return this.source.read((await this.dataOffset(e)) + offset, length);
    const all = await this.readInflated(e);
    return all.subarray(offset, offset + length);
  }

  /** The whole entry, CRC-checked. */
  async readAll(e: ZipEntry): Promise<Uint8Array> {
    const bytes = e.method === 0 ? await this.readRange(e, 0, e.size) : await this.readInflated(e);
    const crc = crc32(bytes);
    if (crc !== e.crc32) {
      throw new PthError(this.file, `entry ${e.name}: CRC-32 is ${hex8(crc)}, the directory says ${hex8(e.crc32)} (corrupted file)`, e.name);
    }
    return bytes;
  }

  private inflated: { name: string; bytes: Uint8Array } | null = null;

  private async readInflated(e: ZipEntry): Promise<Uint8Array> {
    if (this.inflated?.name === e.name) return this.inflated.bytes;
    if (e.size > this.maxInflatedBytes) {
      throw new PthLimitError(this.file, `entry ${e.name} (deflated, ${e.compressedSize} bytes)`, 'inflated size', e.size, this.maxInflatedBytes, 'maxInflatedBytes', e.name);
    }
    const raw = await this.source.read(await this.dataOffset(e), e.compressedSize);
    // Inflated into an array of the declared size: memory is what the directory promised, and a
    // stream that would run past it (a deflate bomb behind a small declared size) is cut off.
    this.inflated = null;
    const out = new Uint8Array(e.size);
    let got: number;
    try {
      got = await inflateRawInto(raw, out);
    } catch (err) {
      throw new PthError(this.file, `entry ${e.name}: deflate stream is damaged (${(err as Error).message})`, e.name);
    }
    if (got < 0) {
      throw new PthError(this.file, `entry ${e.name}: inflates to more than the ${e.size} bytes the directory declares (corrupted or hostile file)`, e.name);
    }
    if (got !== e.size) {
      throw new PthError(this.file, `entry ${e.name}: inflated to ${got} bytes, the directory says ${e.size} (corrupted file)`, e.name);
    }
    this.inflated = { name: e.name, bytes: out };
    return out;
  }
}

function parseCentralDirectory(cd: Uint8Array, count: number, file: string, fileSize: number): ZipEntry[] {
  const dv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || dv.getUint32(p, true) !== SIG_CENTRAL) {
      throw new PthError(file, `central directory entry ${i} of ${count} is missing or damaged (corrupted archive)`);
    }
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc = dv.getUint32(p + 16, true);
    let compressedSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let localHeaderOffset = dv.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cd.length) throw new PthError(file, `central directory entry ${i} runs past the directory (corrupted archive)`);
    const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information: only the fields saturated in the fixed header are present, in
    // the order uncompressed size, compressed size, local header offset.
    if (size === 0xffffffff || compressedSize === 0xffffffff || localHeaderOffset === 0xffffffff) {
      let q = p + 46 + nameLen;
      const qEnd = q + extraLen;
      let found = false;
      while (q + 4 <= qEnd) {
        const id = dv.getUint16(q, true);
        const len = dv.getUint16(q + 2, true);
        if (id === 0x0001) {
          let r = q + 4;
          const need = (size === 0xffffffff ? 8 : 0) + (compressedSize === 0xffffffff ? 8 : 0) + (localHeaderOffset === 0xffffffff ? 8 : 0);
          if (len < need || q + 4 + len > qEnd) throw new PthError(file, `entry ${name}: ZIP64 extra field too short (corrupted archive)`, name);
          if (size === 0xffffffff) (size = u64(dv, r, file, 'ZIP64 size')), (r += 8);
          if (compressedSize === 0xffffffff) (compressedSize = u64(dv, r, file, 'ZIP64 compressed size')), (r += 8);
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = u64(dv, r, file, 'ZIP64 offset');
          found = true;
          break;
        }
        q += 4 + len;
      }
      if (!found) throw new PthError(file, `entry ${name}: sizes are saturated but there is no ZIP64 extra field (corrupted archive)`, name);
    }
    if (flags & 1) throw new PthError(file, `entry ${name} is encrypted; encrypted archives are not supported`, name);
    if (method !== 0 && method !== 8) {
      throw new PthError(file, `entry ${name} uses compression method ${method}; only stored (0) and deflate (8) are supported`, name);
    }
    if (method === 0 && compressedSize !== size) {
      throw new PthError(file, `stored entry ${name} has compressed size ${compressedSize} != size ${size} (corrupted archive)`, name);
    }
    if (method === 8 && size > compressedSize * DEFLATE_MAX_RATIO + 1024) {
      throw new PthError(
        file,
        `deflated entry ${name} declares ${size} bytes from ${compressedSize} compressed bytes: more than deflate can expand (${DEFLATE_MAX_RATIO}:1); corrupted or hostile archive`,
        name,
      );
    }
    if (localHeaderOffset + 30 + compressedSize > fileSize) {
      throw new PthError(file, `entry ${name} (${compressedSize} bytes at ${localHeaderOffset}) runs past the end of the ${fileSize}-byte file (truncated?)`, name);
    }
    entries.push({ name, method, crc32: crc, compressedSize, size, localHeaderOffset });
    p = end;
  }
  return entries;
}

/** A hint for inputs that are not zips at all, from their first bytes (or null). */
export function describeNonZip(head: Uint8Array): string | null {
  if (head.length >= 2 && head[0] === 0x80 && head[1]! <= 5) {
    return 'this is a legacy (pre-1.6, non-zip) torch.save file; load and re-save it with torch>=1.6 (torch.save(torch.load(f), g)) to convert it';
  }
  if (head.length >= 262 && String.fromCharCode(...head.subarray(257, 262)) === 'ustar') {
    return 'this is a tar-format torch checkpoint (torch<0.4); re-save it with torch>=1.6';
  }
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 3 && head[3] === 4) {
    return 'starts like a zip archive but has no end-of-central-directory record: the file is truncated or damaged';
  }
  return null;
}

/**
 * Inflate a raw deflate stream into `out`; returns the bytes written, or -1 as soon as the stream
 * would produce more than `out.length` (it is then abandoned, never inflated whole).
 */
async function inflateRawInto(raw: Uint8Array, out: Uint8Array): Promise<number> {
  const DS = (globalThis as { DecompressionStream?: new (format: string) => TransformStream<Uint8Array, Uint8Array> }).DecompressionStream;
  let stream: ReadableStream<Uint8Array> | null = null;
  if (DS) {
    try {
      stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DS('deflate-raw'));
    } catch (e) {
      // Older runtimes reject the 'deflate-raw' format itself with a TypeError/RangeError at
      // construction; anything else is a damaged stream.
      if (!(e instanceof TypeError && /deflate-raw|format/i.test(e.message))) throw e;
    }
  }
  if (stream) {
    const reader = stream.getReader();
    let got = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return got;
        if (got + value.length > out.length) return -1;
        out.set(value, got);
        got += value.length;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }
  if (!inflateRawSync) throw new TypeError("cannot inflate: this runtime has neither DecompressionStream('deflate-raw') nor node:zlib");
  let res: Uint8Array;
  try {
    res = inflateRawSync(raw, Math.max(1, out.length));
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') return -1;
    throw e;
  }
  if (res.length > out.length) return -1;
  out.set(res);
  return res.length;
}

function hex8(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), slicing-by-8 for ~1 GB/s in JS.
const CRC_TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

export function crc32(data: Uint8Array, seed = 0): number {
  const t = CRC_TABLES;
  let c = ~seed;
  let i = 0;
  const n = data.length;
  // Bytewise up to a 4-byte boundary, then 8 bytes per step through an aligned 32-bit view
  // (little-endian host, as everywhere typed arrays are used in this project).
  while (i < n && (data.byteOffset + i) & 3) c = t[(c ^ data[i++]!) & 0xff]! ^ (c >>> 8);
  const words = Math.floor((n - i) / 8) * 2;
  if (words > 0) {
    const w = new Int32Array(data.buffer, data.byteOffset + i, words);
    for (let k = 0; k < words; k += 2) {
      const a = w[k]! ^ c;
      const b = w[k + 1]!;
      c =
        t[1792 + (a & 0xff)]! ^
        t[1536 + ((a >>> 8) & 0xff)]! ^
        t[1280 + ((a >>> 16) & 0xff)]! ^
        t[1024 + (a >>> 24)]! ^
        t[768 + (b & 0xff)]! ^
        t[512 + ((b >>> 8) & 0xff)]! ^
        t[256 + ((b >>> 16) & 0xff)]! ^
        t[b >>> 24]!;
    }
    i += words * 4;
  }
  for (; i < n; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
