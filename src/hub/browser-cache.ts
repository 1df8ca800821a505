/**
 * Browser model caches: the Origin Private File System (default where it exists) and the Cache API.
 * Both keep partial downloads as chunks (chunked-cache.ts) so a closed tab resumes where it
 * stopped; tabs and workers of one origin take turns on an entry through the Web Locks API.
 */
import type { CacheRecord, ModelCache, WriterOptions } from './cache.js';
import { type ChunkStore, type ChunkedCacheOptions, ChunkedModelCache, MemoryModelCache } from './chunked-cache.js';
import { HubError } from './errors.js';

const DEFAULT_NAME = 'samclip-webgpu';

/** navigator.locks when the page has it (the lock spans tabs and workers), else null. */
function webLocks(): LockManager | null {
  return typeof navigator !== 'undefined' && navigator.locks ? navigator.locks : null;
}

async function withWebLock<T>(key: string, fn: (waited: boolean) => Promise<T>, opts: WriterOptions): Promise<T> {
  const locks = webLocks()!;
  // Try without waiting first, so that a wait can be reported.
  let ran = false;
  const first = await locks.request(key, { ifAvailable: true }, async (lock) => {
    if (!lock) return null;
    ran = true;
    return { value: await fn(false) };
  });
  if (ran) return (first as { value: T }).value;
  opts.onWait?.();
  return locks.request(key, { signal: opts.signal }, () => fn(true)) as Promise<T>;
}

/** The Web Locks lock of a store, or undefined (in-process turns only) where the API is missing. */
function lockFor(location: string): ChunkStore['lock'] {
  if (!webLocks()) return undefined;
  return <T>(key: string, fn: (waited: boolean) => Promise<T>, opts: WriterOptions) => withWebLock(`${location}:${key}`, fn, opts);
}

function quota(e: unknown, what: string): Error {
  const err = e as Error;
  if (err?.name === 'QuotaExceededError') return new HubError(`${what}: the browser refused to store more (storage quota exceeded); free some site storage or pass another { cache }`);
  return err;
}

// ------------------------------------------------------------------------------ Cache API

export class CacheApiStore implements ChunkStore {
  readonly location: string;
  private cache: Promise<Cache> | null = null;

  readonly lock?: ChunkStore['lock'];

  constructor(readonly cacheName = DEFAULT_NAME) {
    this.location = `Cache API '${cacheName}'`;
    this.lock = lockFor(this.location);
  }

  describe(name: string, file: string): string {
    return `${this.location}: ${name}/${file}`;
  }

  private open(): Promise<Cache> {
    if (typeof caches === 'undefined') throw new HubError('the Cache API is not available here (it needs a secure context: https or localhost)');
    this.cache ??= caches.open(this.cacheName);
    return this.cache;
  }

  /** Cache keys must be http(s) URLs; these never reach the network. */
  private key(name: string, file: string, suffix = ''): string {
    return `https://cache.samclip-webgpu.invalid/${encodeURIComponent(name)}/${encodeURIComponent(file)}${suffix}`;
  }

  async readFinal(name: string, file: string): Promise<{ blob: Blob; record: string | null } | null> {
    const res = await (await this.open()).match(this.key(name, file));
    if (!res) return null;
    const rec = res.headers.get('x-samclip-record');
    return { blob: await res.blob(), record: rec ? decodeURIComponent(rec) : null };
  }

  async writeFinal(name: string, file: string, blob: Blob, record: CacheRecord): Promise<void> {
    // The record travels in a header of the same response: body and record are stored together.
    const headers = { 'content-type': 'application/octet-stream', 'x-samclip-record': encodeURIComponent(JSON.stringify(record)) };
    await (await this.open()).put(this.key(name, file), new Response(blob, { headers })).catch((e: unknown) => {
      throw quota(e, this.describe(name, file));
    });
  }

  async deleteFinal(name: string, file: string): Promise<void> {
    await (await this.open()).delete(this.key(name, file));
  }

  async readPartMeta(name: string, file: string): Promise<string | null> {
    const res = await (await this.open()).match(this.key(name, file, '.part.json'));
    return res ? res.text() : null;
  }

  async writePartMeta(name: string, file: string, text: string | null): Promise<void> {
    const c = await this.open();
    if (text === null) await c.delete(this.key(name, file, '.part.json'));
    else await c.put(this.key(name, file, '.part.json'), new Response(text));
  }

  async readChunk(name: string, file: string, index: number): Promise<Blob | null> {
    const res = await (await this.open()).match(this.key(name, file, `.part.${index}`));
    return res ? res.blob() : null;
  }

  async writeChunk(name: string, file: string, index: number, bytes: Uint8Array): Promise<void> {
    await (await this.open()).put(this.key(name, file, `.part.${index}`), new Response(bytes as Uint8Array<ArrayBuffer>)).catch((e: unknown) => {
      throw quota(e, this.describe(name, file));
    });
  }

  async deleteChunk(name: string, file: string, index: number): Promise<void> {
    await (await this.open()).delete(this.key(name, file, `.part.${index}`));
  }
}

/** Models in the Cache API (`caches.open(cacheName)`). */
export class CacheApiModelCache extends ChunkedModelCache {
  constructor(cacheName = DEFAULT_NAME, opts: ChunkedCacheOptions = {}) {
    super(new CacheApiStore(cacheName), opts);
  }
}

// ------------------------------------------------------------------------------ OPFS

export class OpfsStore implements ChunkStore {
  readonly location: string;
  private root: Promise<FileSystemDirectoryHandle> | null = null;

  readonly lock?: ChunkStore['lock'];

  constructor(readonly dirName = DEFAULT_NAME) {
    this.location = `OPFS ${dirName}/`;
    this.lock = lockFor(this.location);
  }

  describe(name: string, file: string): string {
    return `OPFS ${this.dirName}/${name}/${file}`;
  }

  private dir(name: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
    this.root ??= (async () => {
      if (typeof navigator === 'undefined' || !navigator.storage?.getDirectory) throw new HubError('the Origin Private File System is not available here');
      return (await navigator.storage.getDirectory()).getDirectoryHandle(this.dirName, { create: true });
    })();
    return this.root.then((r) => r.getDirectoryHandle(name, { create })).catch((e: unknown) => {
      if ((e as Error)?.name === 'NotFoundError') return null;
      throw e;
    });
  }

  private async fileOf(name: string, file: string): Promise<File | null> {
    const d = await this.dir(name, false);
    if (!d) return null;
    try {
      return await (await d.getFileHandle(file)).getFile();
    } catch (e) {
      if ((e as Error)?.name === 'NotFoundError') return null;
      throw e;
    }
  }

  private async write(name: string, file: string, data: Blob | Uint8Array | string): Promise<void> {
    const d = (await this.dir(name, true))!;
    const w = await (await d.getFileHandle(file, { create: true })).createWritable();
    try {
      await w.write(data as FileSystemWriteChunkType);
      // close() swaps the new contents in at once: a reader never sees a half-written file.
      await w.close();
    } catch (e) {
      await w.abort().catch(() => undefined);
      throw quota(e, this.describe(name, file));
    }
  }

  private async remove(name: string, file: string): Promise<void> {
    const d = await this.dir(name, false);
    await d?.removeEntry(file).catch((e: unknown) => {
      if ((e as Error)?.name !== 'NotFoundError') throw e;
    });
  }

  async readFinal(name: string, file: string): Promise<{ blob: Blob; record: string | null } | null> {
    const blob = await this.fileOf(name, file);
    if (!blob) return null;
    const rec = await this.fileOf(name, `${file}.json`);
    return { blob, record: rec ? await rec.text() : null };
  }

  async writeFinal(name: string, file: string, blob: Blob, record: CacheRecord): Promise<void> {
    // Record last: while the data is replaced there is no record, so nothing uses a mixed state.
    await this.remove(name, `${file}.json`);
    await this.write(name, file, blob);
    await this.write(name, `${file}.json`, JSON.stringify(record, null, 2));
  }

  async deleteFinal(name: string, file: string): Promise<void> {
    await this.remove(name, `${file}.json`);
    await this.remove(name, file);
  }

  async readPartMeta(name: string, file: string): Promise<string | null> {
    return (await this.fileOf(name, `${file}.part.json`))?.text() ?? null;
  }

  async writePartMeta(name: string, file: string, text: string | null): Promise<void> {
    if (text === null) await this.remove(name, `${file}.part.json`);
    else await this.write(name, `${file}.part.json`, text);
  }

  readChunk(name: string, file: string, index: number): Promise<Blob | null> {
    return this.fileOf(name, `${file}.part.${index}`);
  }

  writeChunk(name: string, file: string, index: number, bytes: Uint8Array): Promise<void> {
    return this.write(name, `${file}.part.${index}`, bytes);
  }

  deleteChunk(name: string, file: string, index: number): Promise<void> {
    return this.remove(name, `${file}.part.${index}`);
  }
}

/** Models in the Origin Private File System (`navigator.storage.getDirectory()`). */
export class OpfsModelCache extends ChunkedModelCache {
  constructor(dirName = DEFAULT_NAME, opts: ChunkedCacheOptions = {}) {
    super(new OpfsStore(dirName), opts);
  }
}

/**
 * The browser's default: OPFS where it works, else the Cache API, else memory (nothing persists;
 * e.g. an insecure context).
 */
export async function defaultBrowserCache(): Promise<ModelCache> {
  if (typeof navigator !== 'undefined' && navigator.storage?.getDirectory) {
    try {
      await navigator.storage.getDirectory();
      return new OpfsModelCache();
    } catch {
      // Private browsing and some embedded contexts refuse OPFS.
    }
  }
  if (typeof caches !== 'undefined') return new CacheApiModelCache();
  return new MemoryModelCache();
}
