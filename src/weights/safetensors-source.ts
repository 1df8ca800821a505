/**
 * Where safetensors bytes come from: memory (zero-copy views), a Node file handle (positioned reads
 * into caller-owned buffers, so a file is never held in the JS heap whole), or an HTTP server that
 * honours Range requests (browsers; the header and each tensor are fetched on their own). Blobs and
 * Files: blob-source.ts.
 */
import { nodeFs } from '#platform';
import {
  type HeaderLimits,
  type ParsedHeader,
  SafetensorsError,
  SafetensorsLimitError,
  parseHeader,
  readHeaderLength,
} from './safetensors-header.js';

export interface ByteSource {
  /** Path, URL or given name, used in every error message. */
  readonly name: string;
  /** Total length in bytes. */
  readonly size: number;
  /**
   * Read exactly `length` bytes at `offset`. With `into`, the bytes land at its start and `into`
   * (or its prefix) is returned; otherwise a fresh array is returned.
   */
  read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Zero-copy view of bytes already in memory, or null for sources that must be read. */
  view(offset: number, length: number): Uint8Array | null;
  close(): Promise<void>;
}

function checkRange(src: ByteSource, offset: number, length: number, into?: Uint8Array): void {
  if (offset < 0 || length < 0 || offset + length > src.size) {
    throw new SafetensorsError(src.name, `read of ${length} bytes at ${offset} is outside the ${src.size}-byte source`);
  }
  if (into && into.length < length) {
    throw new SafetensorsError(src.name, `read buffer of ${into.length} bytes is smaller than the ${length} requested`);
  }
}

export class MemorySource implements ByteSource {
  readonly size: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly name: string,
  ) {
    this.size = bytes.length;
  }

  view(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length);
    return this.bytes.subarray(offset, offset + length);
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const v = this.view(offset, length);
    // new Uint8Array(view) copies; a Node Buffer's slice() would only make another view.
    if (!into) return new Uint8Array(v);
    into.set(v);
    return into.subarray(0, length);
  }

  async close(): Promise<void> {}
}

/** The subset of `node:fs/promises` FileHandle used here. */
interface NodeFileHandle {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/** Positioned reads from a file on disk (Node; exported by `samclip-webgpu/node`). */
export class NodeFileSource implements ByteSource {
  private handle: NodeFileHandle | null;
  private constructor(
    handle: NodeFileHandle,
    readonly name: string,
    readonly size: number,
  ) {
    this.handle = handle;
  }

  static async open(path: string): Promise<NodeFileSource> {
    const fs = nodeFs;
    if (!fs) throw new SafetensorsError(path, 'reading files by path needs Node (node:fs); in a browser give the loaders a URL (a relative one resolves against the page) or use SafetensorsFile.fromUrl / fromBytes');
    let handle: NodeFileHandle;
    try {
      handle = await fs.open(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, `cannot open: ${(e as Error).message}`);
    }
    try {
      const st = await handle.stat();
      return new NodeFileSource(handle, path, st.size);
    } catch (e) {
      await handle.close();
      throw new SafetensorsError(path, `cannot stat: ${(e as Error).message}`);
    }
  }

  view(): null {
    return null;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (!this.handle) throw new SafetensorsError(this.name, 'file is closed');
    checkRange(this, offset, length, into);
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      let got: number;
      try {
        // Chunk each call: some platforms cap a single read near 2 GiB.
        const want = Math.min(length - done, 1 << 30);
        got = (await this.handle.read(out, done, want, offset + done)).bytesRead;
      } catch (e) {
        throw new SafetensorsError(this.name, `read of ${length} bytes at ${offset} failed: ${(e as Error).message}`);
      }
      if (got === 0) {
        throw new SafetensorsError(this.name, `file ended at ${offset + done} while reading ${length} bytes at ${offset} (changed since it was opened?)`);
      }
      done += got;
    }
    return out;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}

export type FetchLike = (input: string, init?: { headers?: Record<string, string>; method?: string }) => Promise<Response>;

/** Bytes fetched with HTTP Range requests; each `read` is one request. */
export class HttpRangeSource implements ByteSource {
  constructor(
    readonly name: string,
    readonly size: number,
    private readonly fetchFn: FetchLike,
  ) {}

  view(): null {
    return null;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    checkRange(this, offset, length, into);
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    if (length === 0) return out;
    const res = await fetchOrThrow(this.fetchFn, this.name, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
    if (res.status !== 206) {
      throw new SafetensorsError(this.name, `range request for bytes ${offset}-${offset + length - 1} answered HTTP ${res.status}, not 206`);
    }
    const cr = parseContentRange(res.headers.get('content-range'));
    if (cr && (cr.start !== offset || cr.total !== this.size)) {
      throw new SafetensorsError(this.name, `server sent bytes ${cr.start}-${cr.end}/${cr.total} for a request of ${offset}-${offset + length - 1} of ${this.size}`);
    }
    await readBodyInto(res, out, this.name, `range request for ${length} bytes at ${offset}`);
    return out;
  }

  async close(): Promise<void> {}
}

export async function fetchOrThrow(fetchFn: FetchLike, url: string, init?: { headers?: Record<string, string>; method?: string }): Promise<Response> {
  let res: Response;
  try {
    res = await fetchFn(url, init);
  } catch (e) {
    throw new SafetensorsError(url, `fetch failed: ${(e as Error).message}`);
  }
  if (!res.ok) {
    await discardBody(res);
    throw new SafetensorsError(url, `HTTP ${res.status} ${res.statusText}`.trim());
  }
  return res;
}

/** Stop a response body we will not read (frees the connection; errors do not matter here). */
export async function discardBody(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

/**
 * Read a response body into `out`, which must end up exactly full. Reading stops at the first byte
 * past `out.length`: a server that ignores the requested range and sends more is refused without
 * the rest of its body ever being held in memory.
 */
export async function readBodyInto(res: Response, out: Uint8Array, name: string, what: string): Promise<void> {
  const reader = res.body?.getReader();
  let got = 0;
  if (reader) {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (got + value.length > out.length) {
          throw new SafetensorsError(name, `${what}: the server sent more than the ${out.length} bytes asked for (it ignores the Range header?)`);
        }
        out.set(value, got);
        got += value.length;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }
  if (got !== out.length) throw new SafetensorsError(name, `${what} returned ${got} bytes, expected ${out.length}`);
}

/** Default cap on a whole-file download when a server does not honour Range (see readWholeSafetensors). */
export const DEFAULT_MAX_UNRANGED_BYTES = 256 * 2 ** 20;

/**
 * A whole safetensors file from a response that ignored the Range request (status 200), read as it
 * streams: the header is parsed as soon as its bytes are in, and from then on the file's size is
 * known (8 + N + what the tensors cover). Only that many bytes are ever kept; a longer body is
 * refused at the first extra byte, and a file over `maxBytes` (or a Content-Length over it) is
 * refused before its data is read.
 */
export async function readWholeSafetensors(
  res: Response,
  url: string,
  maxBytes: number,
  limits: HeaderLimits,
): Promise<{ bytes: Uint8Array; header: ParsedHeader }> {
  const tooBig = (n: number, why: string): SafetensorsLimitError =>
    new SafetensorsLimitError(url, `whole-file download (${why})`, n, maxBytes, 'maxUnrangedBytes', 'bytes', 'the server does not honour Range requests, so the file must be downloaded whole: ');
  const declared = res.headers.get('content-length');
  const length = declared !== null && /^\d+$/.test(declared.trim()) ? Number(declared) : null;
  if (length !== null && length > maxBytes) {
    await discardBody(res);
    throw tooBig(length, 'Content-Length');
  }
  const reader = res.body?.getReader();
  if (!reader) throw new SafetensorsError(url, 'the response has no body');
  const head: Uint8Array[] = [];
  let headBytes = 0;
  let file: Uint8Array | null = null;
  let header: ParsedHeader | null = null;
  let got = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (file) {
        if (got + value.length > file.length) {
          throw new SafetensorsError(url, `the server sent more than the ${file.length} bytes the file's header accounts for`);
        }
        file.set(value, got);
        got += value.length;
        continue;
      }
      head.push(value);
      headBytes += value.length;
      if (headBytes < 8) continue;
      const joined = concat(head, headBytes);
      head.splice(0, head.length, joined);
      const n = readHeaderLength(joined.subarray(0, 8), length ?? Number.MAX_SAFE_INTEGER, url);
      if (headBytes < 8 + n) continue;
      header = parseHeader(joined.subarray(8, 8 + n), null, url, limits);
      const total = header.dataStart + header.dataLength;
      if (length !== null && length !== total) {
        throw new SafetensorsError(url, `Content-Length is ${length} but the header accounts for ${total} bytes (truncated or padded download?)`);
      }
      if (total > maxBytes) throw tooBig(total, 'size from the header');
      if (joined.length > total) {
        throw new SafetensorsError(url, `the server sent more than the ${total} bytes the file's header accounts for`);
      }
      file = new Uint8Array(total);
      file.set(joined);
      got = joined.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  if (!file || !header) {
    // The body ended before the header did: let the usual checks name the problem.
    const bytes = concat(head, headBytes);
    const n = readHeaderLength(bytes.subarray(0, 8), bytes.length, url);
    return { bytes, header: parseHeader(bytes.subarray(8, 8 + n), bytes.length, url, limits) };
  }
  if (got !== file.length) throw new SafetensorsError(url, `download ended after ${got} of the ${file.length} bytes the header accounts for (truncated)`);
  return { bytes: file, header };
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `bytes a-b/total` → numbers; null when absent, unreadable, or the total is `*`. */
export function parseContentRange(h: string | null): { start: number; end: number; total: number } | null {
  const m = h ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+)\s*$/i.exec(h) : null;
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
}
