/**
 * Where safetensors bytes come from: memory (zero-copy views), a Node file handle (positioned reads
 * into caller-owned buffers, so a file is never held in the JS heap whole), or an HTTP server that
 * honours Range requests (browsers; the header and each tensor are fetched on their own). Blobs and
 * Files: blob-source.ts.
 */
import { nodeFs } from '#platform';
import { SafetensorsError } from './safetensors-header.js';

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
    if (!into) return v.slice();
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
    const body = new Uint8Array(await res.arrayBuffer());
    if (body.length !== length) {
      throw new SafetensorsError(this.name, `range request for ${length} bytes at ${offset} returned ${body.length}`);
    }
    out.set(body);
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
  if (!res.ok) throw new SafetensorsError(url, `HTTP ${res.status} ${res.statusText}`.trim());
  return res;
}

/** `bytes a-b/total` → numbers; null when absent, unreadable, or the total is `*`. */
export function parseContentRange(h: string | null): { start: number; end: number; total: number } | null {
  const m = h ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+)\s*$/i.exec(h) : null;
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
}
