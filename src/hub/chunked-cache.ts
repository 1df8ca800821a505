/**
 * A model cache over a store that cannot append to a file in place (the browser's Cache API and
 * OPFS from the page thread, or memory): a partial download is kept as numbered chunks of up to
 * 16 MiB plus a small description, so an interrupted download resumes from its last whole chunk;
 * `commit` joins the chunks (as Blobs, without copying them into JS memory) into the entry.
 */
import { BlobSource } from '../weights/blob-source.js';
import { type CacheRecord, type CachedFile, KeyedMutex, type ModelCache, type PartWriter, type PartialInfo, type WriterOptions, parseRecord } from './cache.js';
import { HubError } from './errors.js';

/** Size of one stored chunk of a partial download. */
export const CHUNK_BYTES = 16 << 20;

/** The storage operations a chunked cache needs. */
export interface ChunkStore {
  readonly location: string;
  describe(name: string, file: string): string;
  /** The stored entry and the text of its record, or null. */
  readFinal(name: string, file: string): Promise<{ blob: Blob; record: string | null } | null>;
  writeFinal(name: string, file: string, blob: Blob, record: CacheRecord): Promise<void>;
  deleteFinal(name: string, file: string): Promise<void>;
  readPartMeta(name: string, file: string): Promise<string | null>;
  writePartMeta(name: string, file: string, text: string | null): Promise<void>;
  readChunk(name: string, file: string, index: number): Promise<Blob | null>;
  writeChunk(name: string, file: string, index: number, bytes: Uint8Array): Promise<void>;
  deleteChunk(name: string, file: string, index: number): Promise<void>;
  /** Exclusive access across everything sharing the store (tabs, workers); in-process by default. */
  lock?<T>(key: string, fn: (waited: boolean) => Promise<T>, opts: WriterOptions): Promise<T>;
}

interface PartMeta {
  info: PartialInfo | null;
  /** Byte length of each stored chunk. */
  chunks: number[];
}

export interface ChunkedCacheOptions {
  /** Bytes per stored chunk of a partial download (default 16 MiB): what a resume may lose at most. */
  chunkBytes?: number;
}

export class ChunkedModelCache implements ModelCache {
  private readonly mutex = new KeyedMutex();
  private readonly chunkBytes: number;

  constructor(
    private readonly store: ChunkStore,
    opts: ChunkedCacheOptions = {},
  ) {
    this.chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  }

  get location(): string {
    return this.store.location;
  }

  describe(name: string, file: string): string {
    return this.store.describe(name, file);
  }

  async get(name: string, file: string): Promise<CachedFile | null> {
    const found = await this.store.readFinal(name, file);
    const record = parseRecord(found?.record, name, file);
    if (!found || !record || found.blob.size !== record.bytes) return null;
    return blobEntry(found.blob, record, this.store.describe(name, file));
  }

  async withWriter<T>(name: string, file: string, fn: (part: PartWriter, state: { waited: boolean }) => Promise<T>, opts: WriterOptions = {}): Promise<T> {
    const key = `${name}/${file}`;
    const locked = (waited: boolean) => ChunkedPart.open(this.store, name, file, this.chunkBytes).then((part) => fn(part, { waited }));
    if (this.store.lock) return this.store.lock(key, locked, opts);
    return this.mutex.run(key, locked, opts.signal, opts.onWait);
  }

  async delete(name: string, file: string): Promise<void> {
    await this.withWriter(name, file, async (part) => {
      await part.reset(null);
      await this.store.writePartMeta(name, file, null);
      await this.store.deleteFinal(name, file);
    });
  }
}

function blobEntry(blob: Blob, record: CacheRecord, location: string): CachedFile {
  return {
    record,
    size: blob.size,
    location,
    source: async () => new BlobSource(blob, location),
    chunks: () => blobChunks(blob),
  };
}

async function* blobChunks(blob: Blob): AsyncIterable<Uint8Array> {
  for (let o = 0; o < blob.size; o += CHUNK_BYTES) yield new Uint8Array(await blob.slice(o, Math.min(blob.size, o + CHUNK_BYTES)).arrayBuffer());
}

class ChunkedPart implements PartWriter {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  private constructor(
    private readonly store: ChunkStore,
    private readonly name: string,
    private readonly file: string,
    private meta: PartMeta,
    private readonly chunkBytes: number,
  ) {}

  static async open(store: ChunkStore, name: string, file: string, chunkBytes: number): Promise<ChunkedPart> {
    let meta: PartMeta = { info: null, chunks: [] };
    try {
      const m = JSON.parse((await store.readPartMeta(name, file)) ?? 'null') as PartMeta | null;
      if (m && Array.isArray(m.chunks) && m.chunks.every((n) => Number.isSafeInteger(n) && n > 0)) meta = m;
    } catch {
      // An unreadable description: start over.
    }
    const part = new ChunkedPart(store, name, file, meta, chunkBytes);
    // Keep only the chunks that are really there, with the lengths described.
    let kept = 0;
    for (; kept < meta.chunks.length; kept++) {
      const b = await store.readChunk(name, file, kept);
      if (!b || b.size !== meta.chunks[kept]) break;
    }
    if (kept < meta.chunks.length) {
      meta.chunks = meta.chunks.slice(0, kept);
      await store.writePartMeta(name, file, JSON.stringify(meta));
    }
    return part;
  }

  get bytes(): number {
    return this.meta.chunks.reduce((a, b) => a + b, 0) + this.pendingBytes;
  }

  get info(): PartialInfo | null {
    return this.meta.info;
  }

  async *chunks(): AsyncIterable<Uint8Array> {
    for (let i = 0; i < this.meta.chunks.length; i++) {
      const b = await this.store.readChunk(this.name, this.file, i);
      if (!b) throw new HubError(`${this.store.describe(this.name, this.file)}: chunk ${i} of the partial download disappeared`);
      yield new Uint8Array(await b.arrayBuffer());
    }
    for (const p of this.pending) yield p;
  }

  async reset(info: PartialInfo | null): Promise<void> {
    const n = this.meta.chunks.length;
    this.meta = { info, chunks: [] };
    this.pending = [];
    this.pendingBytes = 0;
    await this.store.writePartMeta(this.name, this.file, JSON.stringify(this.meta));
    for (let i = 0; i < n; i++) await this.store.deleteChunk(this.name, this.file, i);
  }

  async append(chunk: Uint8Array): Promise<void> {
    // Copy: the caller may reuse its buffer.
    this.pending.push(chunk.slice());
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= this.chunkBytes) await this.writeChunk(this.chunkBytes);
  }

  async flush(): Promise<void> {
    if (this.pendingBytes > 0) await this.writeChunk(this.pendingBytes);
  }

  /** Store the first `n` pending bytes as the next chunk, then describe it. */
  private async writeChunk(n: number): Promise<void> {
    const out = new Uint8Array(n);
    let o = 0;
    while (o < n) {
      const p = this.pending[0]!;
      const take = Math.min(p.length, n - o);
      out.set(p.subarray(0, take), o);
      o += take;
      if (take === p.length) this.pending.shift();
      else this.pending[0] = p.subarray(take);
    }
    this.pendingBytes -= n;
    const index = this.meta.chunks.length;
    await this.store.writeChunk(this.name, this.file, index, out);
    this.meta.chunks.push(n);
    await this.store.writePartMeta(this.name, this.file, JSON.stringify(this.meta));
  }

  async commit(record: CacheRecord): Promise<CachedFile> {
    await this.flush();
    const blobs: Blob[] = [];
    for (let i = 0; i < this.meta.chunks.length; i++) {
      const b = await this.store.readChunk(this.name, this.file, i);
      if (!b) throw new HubError(`${this.store.describe(this.name, this.file)}: chunk ${i} of the download disappeared before it was stored`);
      blobs.push(b);
    }
    const blob = new Blob(blobs);
    if (blob.size !== record.bytes) throw new HubError(`${this.store.describe(this.name, this.file)}: the stored chunks hold ${blob.size} bytes, not ${record.bytes}`);
    await this.store.writeFinal(this.name, this.file, blob, record);
    await this.reset(null);
    await this.store.writePartMeta(this.name, this.file, null);
    const stored = await this.store.readFinal(this.name, this.file);
    return blobEntry(stored?.blob ?? blob, record, this.store.describe(this.name, this.file));
  }
}

/** Everything in memory: no persistence (tests, or a page that must not store anything). */
export class MemoryChunkStore implements ChunkStore {
  readonly location = 'memory';
  private readonly finals = new Map<string, { blob: Blob; record: string }>();
  private readonly metas = new Map<string, string>();
  private readonly parts = new Map<string, Blob>();

  describe(name: string, file: string): string {
    return `memory:${name}/${file}`;
  }

  async readFinal(name: string, file: string): Promise<{ blob: Blob; record: string | null } | null> {
    return this.finals.get(`${name}/${file}`) ?? null;
  }

  async writeFinal(name: string, file: string, blob: Blob, record: CacheRecord): Promise<void> {
    this.finals.set(`${name}/${file}`, { blob, record: JSON.stringify(record) });
  }

  async deleteFinal(name: string, file: string): Promise<void> {
    this.finals.delete(`${name}/${file}`);
  }

  async readPartMeta(name: string, file: string): Promise<string | null> {
    return this.metas.get(`${name}/${file}`) ?? null;
  }

  async writePartMeta(name: string, file: string, text: string | null): Promise<void> {
    if (text === null) this.metas.delete(`${name}/${file}`);
    else this.metas.set(`${name}/${file}`, text);
  }

  async readChunk(name: string, file: string, index: number): Promise<Blob | null> {
    return this.parts.get(`${name}/${file}#${index}`) ?? null;
  }

  async writeChunk(name: string, file: string, index: number, bytes: Uint8Array): Promise<void> {
    this.parts.set(`${name}/${file}#${index}`, new Blob([bytes as Uint8Array<ArrayBuffer>]));
  }

  async deleteChunk(name: string, file: string, index: number): Promise<void> {
    this.parts.delete(`${name}/${file}#${index}`);
  }
}

/** A cache that keeps models in memory only (nothing persists across page loads or processes). */
export class MemoryModelCache extends ChunkedModelCache {
  constructor(opts: ChunkedCacheOptions = {}) {
    super(new MemoryChunkStore(), opts);
  }
}
