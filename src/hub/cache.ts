/**
 * Where downloaded models are kept. One interface, several stores: files on Node (the CLI's cache,
 * src/node/hub-cache.ts), OPFS or the Cache API in browsers (browser-cache.ts), memory (tests, or no
 * persistence). The downloader (download.ts) is written once against it.
 *
 * An entry counts as cached only with its record (URL, size, SHA-256, how the digest was checked)
 * and only when the stored size equals the record's: a truncated or unrecorded file is never used.
 */
import type { ByteSource } from '../weights/safetensors-source.js';
import { abortError } from './errors.js';

/** What is stored beside each cached file. */
export interface CacheRecord {
  name: string;
  file: string;
  url: string;
  bytes: number;
  sha256: string;
  /** How the digest was established: a pin (registry / caller), the server's declaration, or only recorded. */
  verified: 'registry' | 'user' | 'server' | 'first-download';
  /** The server's validator when it was downloaded (ETag), for information. */
  etag?: string | null;
  downloadedAt: string;
}

/** A complete, recorded cache entry. */
export interface CachedFile {
  readonly record: CacheRecord;
  /** Bytes actually stored (equal to record.bytes, or the entry would not be returned). */
  readonly size: number;
  /** Where it lives, for messages: a path, or `OPFS samclip-webgpu/sam-vit-b/model.safetensors`. */
  readonly location: string;
  /** Node: the file's path (read lazily by SafetensorsFile.open). */
  readonly path?: string;
  /** A lazy byte source over the stored bytes. */
  source(): Promise<ByteSource>;
  /** The stored bytes in order (re-verification). */
  chunks(): AsyncIterable<Uint8Array>;
}

/** What a download leaves for a later resume. */
export interface PartialInfo {
  url: string;
  /** Strong ETag or Last-Modified of the remote file, sent as If-Range when resuming. */
  validator: string | null;
  /** Total size the server declared. */
  total: number | null;
  /** SHA-256 the server declared (X-Linked-Etag). */
  declaredSha256: string | null;
}

/**
 * The partial download of one entry, held exclusively by one writer. Bytes appended are kept across
 * runs (resume) until `commit` turns them into the entry or `reset` drops them.
 */
export interface PartWriter {
  readonly bytes: number;
  readonly info: PartialInfo | null;
  /** The bytes kept so far, in order (to rebuild the hash state when resuming). */
  chunks(): AsyncIterable<Uint8Array>;
  /** Drop the bytes kept and start a new partial described by `info` (null: nothing yet). */
  reset(info: PartialInfo | null): Promise<void>;
  append(chunk: Uint8Array): Promise<void>;
  /** Make what was appended durable (before pausing: abort, failure). */
  flush(): Promise<void>;
  /** Promote the partial to the entry, with its record, as atomically as the store allows. */
  commit(record: CacheRecord): Promise<CachedFile>;
}

export interface WriterOptions {
  signal?: AbortSignal;
  /** Called once when another writer (this process, another process, another tab) holds the entry. */
  onWait?: () => void;
}

export interface ModelCache {
  /** Where the cache is, for messages (a directory, `OPFS samclip-webgpu`, ...). */
  readonly location: string;
  /** The complete entry with its record, or null. */
  get(name: string, file: string): Promise<CachedFile | null>;
  /**
   * Exclusive write access to the entry: waits while another writer holds it. `fn` gets the partial
   * download earlier attempts left; `waited` says whether another writer held it first.
   */
  withWriter<T>(name: string, file: string, fn: (part: PartWriter, state: { waited: boolean }) => Promise<T>, opts?: WriterOptions): Promise<T>;
  /** Remove the entry (file, record and partial download). */
  delete(name: string, file: string): Promise<void>;
  /** Where the entry would live, for messages. */
  describe(name: string, file: string): string;
}

/** A record read back from storage, or null when it is not one. */
export function parseRecord(text: string | null | undefined, name: string, file: string): CacheRecord | null {
  if (!text) return null;
  let r: Partial<CacheRecord>;
  try {
    r = JSON.parse(text) as Partial<CacheRecord>;
  } catch {
    return null;
  }
  const ok =
    typeof r === 'object' && r !== null && typeof r.url === 'string' && Number.isSafeInteger(r.bytes) && (r.bytes ?? -1) >= 0 && typeof r.sha256 === 'string' && /^[0-9a-f]{64}$/.test(r.sha256);
  // Records written by earlier versions lack `file`; the name must match when present.
  if (!ok || (r.name !== undefined && r.name !== name)) return null;
  return { verified: 'first-download', downloadedAt: '', ...r, name, file } as CacheRecord;
}

/** Runs tasks for one key one at a time, in order (writers of one entry inside one process). */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: (waited: boolean) => Promise<T>, signal?: AbortSignal, onWait?: () => void): Promise<T> {
    const prev = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = (prev ?? Promise.resolve()).then(() => mine);
    this.tails.set(key, tail);
    try {
      if (prev) {
        onWait?.();
        await abortable(prev, signal);
      }
      return await fn(!!prev);
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** `p`, or a rejection with the signal's reason as soon as it aborts. */
export function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Sleep `ms`, ended early (rejecting) by the signal. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const p = new Promise<void>((r) => (timer = setTimeout(r, ms)));
  return abortable(p, signal).finally(() => clearTimeout(timer));
}
