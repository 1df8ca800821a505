/**
 * Download one file into a model cache, resumably, and promote it to the entry only when it is
 * provably the right file:
 *
 * - its length equals every length that is known (the registry's size, `Content-Length` /
 *   `Content-Range`, the Hub's `X-Linked-Size`): a body cut short (chunked or `Connection: close`)
 *   is resumed, never stored;
 * - its SHA-256 equals the pinned digest (registry or caller), else the one the server declares
 *   (`X-Linked-Etag`, which the Hub sends for LFS files); with neither a length nor a digest known,
 *   nothing could tell a truncated body from a whole one, so the download is refused;
 * - HTML pages and empty bodies are refused; more bytes than declared, or than `maxBytes` when
 *   nothing is declared, stop the download (an endless body cannot fill the disk);
 * - a resume asks `Range` + `If-Range` (the ETag): a remote that changed answers 200 and the download
 *   starts over; a 206 whose size or ETag differ from the kept part restarts it, and a digest
 *   mismatch on bytes spliced from several answers restarts once from zero before it is an error.
 *
 * The cache's writer lock (cache.ts) makes concurrent pulls of one entry wait for one download.
 * An abort (AbortSignal) keeps the partial bytes for a later resume and never touches the entry.
 */
import { type CacheRecord, type CachedFile, type ModelCache, type PartWriter, type PartialInfo, sleep } from './cache.js';
import { throwIfAborted } from '../gpu/errors.js';
import type { Progress } from '../gpu/pacer.js';
import { ChecksumError, DownloadError, HubError, OfflineError, abortError } from './errors.js';
import { type Declared, type HubFetch, contentRange, declaredBy, looksLikeHtml, retryableStatus, statusHint, unsatisfiedTotal } from './http.js';
import { type Hasher, createSha256 } from './sha256.js';

/** Default cap on a body whose length nothing declares: above the largest registry file (2.6 GB). */
export const DEFAULT_MAX_BYTES = 4 * 1024 ** 3;

/** Progress of a download, shaped like the compute calls' `Progress` (stage, fraction) plus the bytes. */
export interface DownloadProgress extends Progress {
  name: string;
  file: string;
  /** 'download': bytes arriving; 'verify': hashing bytes already stored (resume, verification). */
  stage: 'download' | 'verify';
  loaded: number;
  /** Bytes in all, or null while no length is known. */
  total: number | null;
  /** loaded / total (0 while the total is unknown). */
  fraction: number;
}

export type DownloadEvent =
  | { type: 'wait' }
  | { type: 'start'; total: number | null; resumeFrom: number }
  | { type: 'restart'; reason: string }
  | { type: 'retry'; attempt: number; retries: number; error: Error; bytes: number }
  | { type: 'stale'; reason: string };

export interface Expected {
  sha256?: string | null;
  size?: number | null;
  /** Who pins them, for messages and the record: 'registry' or 'user' (a caller's value). */
  from: 'registry' | 'user';
  /** How to name the pin in messages ("the registry", "--sha256"). */
  label?: string;
}

export interface EnsureOptions {
  name: string;
  file: string;
  url: string;
  cache: ModelCache;
  fetch: HubFetch;
  /** Request headers (authorization). */
  headers?: Record<string, string>;
  expected?: Expected;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  onEvent?: (e: DownloadEvent) => void;
  /** Never use the network: a model not in the cache is an OfflineError. */
  offline?: boolean;
  /** Download again even if the entry is cached. */
  force?: boolean;
  /** Re-hash a cached entry against its record (and pin) before using it. */
  verify?: boolean;
  /** Cap when no length is declared (default 4 GiB). */
  maxBytes?: number;
  /** Extra attempts after failures that made no progress (default 3). */
  retries?: number;
  /** First retry delay in ms, doubling (default 500). */
  backoffMs?: number;
  /** Give up on an answer that sends nothing for this long (default 60 s). */
  idleTimeoutMs?: number;
  createHash?: () => Hasher;
}

export interface EnsureResult {
  entry: CachedFile;
  status: 'cached' | 'downloaded';
  /** Bytes kept from an earlier attempt when this call started downloading. */
  resumedFrom: number;
  attempts: number;
  /** What the digest was checked against. */
  verifiedAgainst: 'expected' | 'server' | 'record' | 'none';
  serverSha256: string | null;
}

const HEX64 = /^[0-9a-f]{64}$/;

export function normaliseSha256(s: string, what = 'SHA-256'): string {
  const v = s.trim().toLowerCase();
  if (!HEX64.test(v)) throw new HubError(`${what} must be 64 hexadecimal digits, got '${s}'`);
  return v;
}

/** The entry, downloading it first unless it is cached and agrees with what is expected. */
export async function ensureCached(o: EnsureOptions): Promise<EnsureResult> {
  const pinSha = o.expected?.sha256 ? normaliseSha256(o.expected.sha256, `${pinLabel(o)} SHA-256`) : null;
  const o2 = { ...o, pinSha };
  throwIfAborted(o.signal, `loading ${o.name}`);
  if (!o.force) {
    const hit = await usable(o2);
    if (hit) return hit;
  }
  if (o.offline) {
    throw new OfflineError(`${o.name} is not in the cache (${o.cache.describe(o.name, o.file)}) and offline mode is on (HF_HUB_OFFLINE / { offline: true }); it would be downloaded from ${o.url}`);
  }
  return o.cache.withWriter(
    o.name,
    o.file,
    async (part, { waited }) => {
      // Another writer may have finished it while this one waited.
      if (waited) {
        // (Not re-hashed: the other writer has just verified it; deleting here would need the lock held.)
        const hit = await usable({ ...o2, verify: false });
        if (hit) return hit;
      }
      if (o.force && !waited) await part.reset(null);
      return new Download(o2, part).run();
    },
    { signal: o.signal, onWait: () => o.onEvent?.({ type: 'wait' }) },
  );
}

type Resolved = EnsureOptions & { pinSha: string | null };

function pinLabel(o: EnsureOptions): string {
  return o.expected?.label ?? (o.expected?.from === 'user' ? 'the caller' : 'the registry');
}

/** The cached entry when it matches the pin; with `verify`, also its bytes. A corrupt one is deleted. */
async function usable(o: Resolved): Promise<EnsureResult | null> {
  const entry = await o.cache.get(o.name, o.file);
  if (!entry) return null;
  const stale = (reason: string) => {
    o.onEvent?.({ type: 'stale', reason });
    return null;
  };
  if (o.pinSha && entry.record.sha256 !== o.pinSha) {
    return stale(`the cached file's recorded SHA-256 ${entry.record.sha256} is not ${pinLabel(o)}'s ${o.pinSha}`);
  }
  const size = o.expected?.size;
  if (size != null && entry.size !== size) return stale(`the cached file has ${entry.size} bytes, ${pinLabel(o)} says ${size}`);
  if (o.verify) {
    const sha = await hashAll(entry.chunks(), entry.size, o, 'verify');
    if (sha !== entry.record.sha256) {
      await o.cache.delete(o.name, o.file);
      return stale(`${entry.location} is corrupt (SHA-256 ${sha}, its record says ${entry.record.sha256}); it was deleted`);
    }
  }
  return { entry, status: 'cached', resumedFrom: 0, attempts: 0, verifiedAgainst: o.verify ? 'record' : 'none', serverSha256: null };
}

async function hashAll(chunks: AsyncIterable<Uint8Array>, total: number | null, o: EnsureOptions, stage: 'verify' | 'download', h = (o.createHash ?? createSha256)()): Promise<string> {
  let loaded = 0;
  for await (const c of chunks) {
    throwIfAborted(o.signal, `verifying ${o.name}`);
    h.update(c);
    loaded += c.length;
    progress(o, stage, loaded, total);
  }
  return h.digestHex();
}

function progress(o: EnsureOptions, stage: DownloadProgress['stage'], loaded: number, total: number | null): void {
  o.onProgress?.({ name: o.name, file: o.file, stage, loaded, total, fraction: total ? Math.min(1, loaded / total) : 0 });
}

/** Failed in a way a later request may fix (network, short body, 5xx): resume from the kept bytes. */
class Retryable extends Error {
  constructor(
    message: string,
    /** No HTTP answer was received at all (DNS, refused connection, offline). */
    readonly unreachable = false,
  ) {
    super(message);
  }
}

/** The kept bytes cannot be continued (the remote changed, or the splice cannot be trusted). */
class Restart extends Error {}

class Download {
  private h: Hasher;
  private bytes: number;
  private info: PartialInfo | null;
  /** Answers whose bodies make up the kept bytes (more than one: a splice). */
  private pieces = 0;
  private serverSha: string | null = null;
  private total: number | null = null;
  private attempts = 0;
  private restarts = 0;
  private reachedServer = false;
  private readonly resumedFrom: number;
  private readonly newHash: () => Hasher;

  constructor(
    private readonly o: Resolved,
    private readonly part: PartWriter,
  ) {
    this.newHash = o.createHash ?? createSha256;
    this.h = this.newHash();
    this.bytes = part.bytes;
    this.info = part.info;
    this.resumedFrom = part.bytes;
    // The digest declared when the kept part was downloaded: a different one now means a new file.
    this.serverSha = part.info?.declaredSha256 ?? null;
  }

  async run(): Promise<EnsureResult> {
    const o = this.o;
    await this.rehashKept();
    const retries = o.retries ?? 3;
    let failures = 0;
    let backoff = o.backoffMs ?? 500;
    for (;;) {
      throwIfAborted(o.signal, `downloading ${o.name}`);
      this.attempts++;
      const before = this.bytes;
      try {
        await this.attempt();
        const done = await this.finish();
        if (done) return done;
        continue; // a splice failed its digest: restarted from zero
      } catch (e) {
        if (o.signal?.aborted) {
          await this.part.flush().catch(() => undefined);
          throw abortError(o.signal, `downloading ${o.name}`);
        }
        if (e instanceof Restart) {
          await this.restart(e.message);
          continue;
        }
        if (!(e instanceof Retryable)) throw e;
        if (e.unreachable && !this.reachedServer) {
          await this.part.flush().catch(() => undefined);
          throw new OfflineError(
            `cannot download ${o.url}: ${e.message} (offline, or the server is unreachable); ${o.name} is not in the cache (${o.cache.describe(o.name, o.file)})`,
          );
        }
        if (this.bytes > before) backoff = o.backoffMs ?? 500;
        failures = this.bytes > before ? 1 : failures + 1;
        if (failures > retries) {
          await this.part.flush();
          throw new DownloadError(`${o.url}: download interrupted (${e.message}); ${this.bytes} bytes kept for resuming, run the same command again to resume (or load the model again)`);
        }
        o.onEvent?.({ type: 'retry', attempt: failures, retries, error: e, bytes: this.bytes });
        await sleep(backoff, o.signal);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  /** Bytes kept by an earlier attempt: hash them again (the hash state is not stored). */
  private async rehashKept(): Promise<void> {
    if (this.bytes === 0) return;
    // Kept without a description (adopted) is fine: a resume then needs a digest to check it.
    if (this.info && this.info.url !== this.o.url) {
      await this.restart(`the kept part was downloaded from ${this.info.url}`);
      return;
    }
    let n = 0;
    for await (const c of this.part.chunks()) {
      throwIfAborted(this.o.signal, `verifying ${this.o.name}`);
      this.h.update(c);
      n += c.length;
      progress(this.o, 'verify', n, this.bytes);
    }
    if (n !== this.bytes) await this.restart(`the kept part reads back ${n} bytes, not ${this.bytes}`);
    else this.pieces = 1;
  }

  private async restart(reason: string): Promise<void> {
    if (++this.restarts > 3) throw new DownloadError(`${this.o.url}: the download had to start over ${this.restarts - 1} times (${reason}); giving up`);
    this.o.onEvent?.({ type: 'restart', reason });
    await this.part.reset(null);
    this.h = this.newHash();
    this.bytes = 0;
    this.info = null;
    this.pieces = 0;
    this.total = null;
    this.serverSha = null;
  }

  /** One request: append what the answer brings. Returns when its body ended cleanly. */
  private async attempt(): Promise<void> {
    const o = this.o;
    const headers: Record<string, string> = { ...o.headers };
    const offset = this.bytes;
    if (offset > 0) {
      headers.Range = `bytes=${offset}-`;
      if (this.info?.validator) headers['If-Range'] = this.info.validator;
    }
    let res: Response;
    try {
      // no-store: the model cache holds the file; the browser's HTTP cache would hold a second copy
      // (and answers ranges from its own partial copy).
      res = await o.fetch(o.url, { headers, signal: o.signal, cache: 'no-store' });
    } catch (e) {
      if (o.signal?.aborted) throw e;
      throw connectFailure(e, o.url);
    }
    this.reachedServer = true;
    const d = declaredBy(res);
    try {
      await this.accept(res, d, offset);
    } catch (e) {
      await res.body?.cancel().catch(() => undefined);
      throw e;
    }
  }

  private async accept(res: Response, d: Declared, offset: number): Promise<void> {
    const o = this.o;
    const status = res.status;
    if (d.sha256) {
      if (o.pinSha && d.sha256 !== o.pinSha) {
        throw new ChecksumError(
          `${o.url}: the server declares SHA-256 ${d.sha256}, but ${pinLabel(o)} pins ${o.pinSha} (the file changed upstream?); nothing was downloaded`,
        );
      }
      if (this.serverSha && this.serverSha !== d.sha256 && offset > 0) throw new Restart(`the server's declared SHA-256 changed from ${this.serverSha} to ${d.sha256}`);
      this.serverSha = d.sha256;
    }
    if (status === 416 && offset > 0) {
      // Nothing left to send: the kept part may already be the whole file.
      const total = unsatisfiedTotal(res.headers.get('content-range'));
      if (!this.info?.validator && !o.pinSha && !this.serverSha) throw new Restart('nothing could check the kept part (no validator, no digest)');
      if (total === offset && (!this.info?.total || this.info.total === total)) {
        this.total = total;
        return;
      }
      throw new Restart(`the server has ${total ?? 'an unknown number of'} bytes, the kept part ${offset}`);
    }
    if (status !== 200 && status !== 206) {
      const msg = `${o.url}: HTTP ${status}${res.statusText ? ` ${res.statusText}` : ''}${statusHint(status)}`;
      if (retryableStatus(status)) throw new Retryable(msg);
      throw new DownloadError(msg);
    }
    if (d.contentType.startsWith('text/html')) {
      throw new DownloadError(`${o.url}: the server sent an HTML page (content-type ${d.contentType}), not the file (an error, login or proxy page?); nothing was stored`);
    }
    let total: number | null;
    if (status === 200) {
      if (offset > 0) {
        // Range ignored, or If-Range saw a changed remote: this body is the whole (current) file.
        this.o.onEvent?.({ type: 'restart', reason: 'the server sent the whole file (it changed, or ignores Range)' });
        await this.dropKept();
        this.serverSha = d.sha256;
      }
      total = d.contentLength;
    } else {
      const cr = contentRange(res.headers.get('content-range'));
      if (!cr || cr.start !== offset) throw new Restart(`the server answered range ${res.headers.get('content-range') ?? '(none)'} for bytes=${offset}-`);
      if (offset > 0) {
        if (this.info?.total != null && cr.total != null && cr.total !== this.info.total) throw new Restart(`the remote file is now ${cr.total} bytes, the kept part was of ${this.info.total}`);
        if (this.info?.validator && d.validator && d.validator !== this.info.validator) throw new Restart(`the remote file changed (validator ${d.validator}, was ${this.info.validator})`);
        if (!this.info?.validator && !o.pinSha && !this.serverSha) throw new Restart('nothing could check a resumed download (no validator, no digest)');
      }
      total = cr.total;
    }
    total = this.agreeOnTotal(total, d.linkedSize);
    if (status === 200 && total === 0) throw new DownloadError(`${o.url}: the server sent an empty file (0 bytes); nothing was stored`);
    this.total = total;
    if (this.bytes === 0) {
      this.info = { url: o.url, validator: d.validator, total, declaredSha256: this.serverSha };
      await this.part.reset(this.info);
    }
    o.onEvent?.({ type: 'start', total, resumeFrom: this.bytes });
    await this.readBody(res, total);
  }

  /** A 200 answer to a resume: drop the kept bytes without counting a restart. */
  private async dropKept(): Promise<void> {
    await this.part.reset(null);
    this.h = this.newHash();
    this.bytes = 0;
    this.info = null;
    this.pieces = 0;
  }

  /** Every known length must agree; the result caps the body. */
  private agreeOnTotal(fromAnswer: number | null, linked: number | null): number | null {
    const o = this.o;
    const known: [string, number][] = [];
    if (fromAnswer !== null) known.push(['the answer (Content-Length / Content-Range)', fromAnswer]);
    if (linked !== null) known.push(['X-Linked-Size', linked]);
    if (o.expected?.size != null) known.push([pinLabel(o), o.expected.size]);
    if (this.info?.total != null) known.push(['the kept part', this.info.total]);
    const first = known[0];
    const other = known.find(([, n]) => n !== first?.[1]);
    if (first && other) throw new DownloadError(`${o.url}: the file's size disagrees: ${first[0]} says ${first[1]} bytes, ${other[0]} says ${other[1]}; nothing was stored`);
    return first?.[1] ?? null;
  }

  private async readBody(res: Response, total: number | null): Promise<void> {
    const o = this.o;
    if (!res.body) throw new Retryable('the answer has no body');
    const cap = total ?? o.maxBytes ?? DEFAULT_MAX_BYTES;
    const reader = res.body.getReader();
    const idle = o.idleTimeoutMs ?? 60_000;
    let first = this.bytes === 0;
    let got = false;
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await readWithTimeout(reader, idle);
        } catch (e) {
          if (o.signal?.aborted) throw e;
          throw new Retryable(`connection lost after ${this.bytes} bytes: ${describeNetworkError(e)}`);
        }
        if (chunk.done) break;
        const c = chunk.value;
        if (c.length === 0) continue;
        if (first) {
          first = false;
          if (looksLikeHtml(c)) throw new DownloadError(`${o.url}: the server sent an HTML page, not the file (an error, login or proxy page?); nothing was stored`);
        }
        if (this.bytes + c.length > cap) {
          await this.dropKept();
          throw new DownloadError(
            total !== null
              ? `${o.url}: the server sent more than the ${total} bytes it declared; the download was deleted`
              : `${o.url}: the body exceeds the ${cap}-byte cap (maxBytes / --max-bytes) and no length was declared; the download was deleted`,
          );
        }
        if (!got) {
          got = true;
          this.pieces++;
        }
        await this.part.append(c);
        this.h.update(c);
        this.bytes += c.length;
        progress(o, 'download', this.bytes, total);
      }
    } finally {
      reader.releaseLock();
    }
    if (total !== null && this.bytes < total) throw new Retryable(`connection closed after ${this.bytes} of ${total} bytes`);
  }

  /** Verify and promote; null when a splice failed its digest and the download restarted. */
  private async finish(): Promise<EnsureResult | null> {
    const o = this.o;
    const sha = this.h.digestHex();
    const against = o.pinSha ?? this.serverSha;
    const total = this.total ?? this.info?.total ?? null;
    if (total === null && !against) {
      await this.dropKept();
      throw new DownloadError(
        `${o.url}: the server declared neither the file's length nor its SHA-256, so a cut-short download could not be told from a whole one; nothing was stored (give the expected SHA-256: { sha256 } / --sha256)`,
      );
    }
    if (total !== null && this.bytes !== total) throw new Retryable(`have ${this.bytes} of ${total} bytes`);
    if (against && sha !== against) {
      if (this.pieces > 1) {
        await this.restart(`the bytes spliced from ${this.pieces} answers hash to ${sha}, not ${against}`);
        return null;
      }
      await this.dropKept();
      const from = o.pinSha ? pinLabel(o) : 'the server (X-Linked-Etag)';
      throw new ChecksumError(`${o.url}: SHA-256 mismatch: downloaded ${this.bytes} bytes hash to ${sha}, but ${from} says ${against}; the download was deleted`);
    }
    const verified: CacheRecord['verified'] = o.pinSha ? (o.expected?.from ?? 'registry') : this.serverSha ? 'server' : 'first-download';
    await this.part.flush();
    const entry = await this.part.commit({
      name: o.name,
      file: o.file,
      url: o.url,
      bytes: this.bytes,
      sha256: sha,
      verified,
      etag: this.info?.validator ?? null,
      downloadedAt: new Date().toISOString(),
    });
    return {
      entry,
      status: 'downloaded',
      resumedFrom: this.resumedFrom,
      attempts: this.attempts,
      verifiedAgainst: o.pinSha ? 'expected' : this.serverSha ? 'server' : 'none',
      serverSha256: this.serverSha,
    };
  }
}

async function readWithTimeout(reader: ReadableStreamDefaultReader<Uint8Array>, ms: number): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`no data for ${ms / 1000} s`));
      void reader.cancel().catch(() => undefined);
    }, ms);
  });
  try {
    return await Promise.race([reader.read(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Codes of a network that cannot be reached at all (as opposed to one that failed midway). */
const UNREACHABLE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** A request that got no answer: offline, a TLS or proxy refusal (final), or something transient. */
function connectFailure(e: unknown, url: string): Error {
  const err = e as Error & { code?: string; cause?: { code?: string } };
  const code = err?.code ?? err?.cause?.code ?? '';
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|PROXY/.test(code)) return new DownloadError(`${url}: ${describeNetworkError(e)}`);
  // Browsers say only "TypeError: Failed to fetch" for DNS, refused connections and CORS alike.
  const unreachable = UNREACHABLE.has(code) || (!code && err instanceof TypeError);
  return new Retryable(describeNetworkError(e), unreachable);
}

/** A network error's message with its cause (undici wraps the code in `cause`). */
export function describeNetworkError(e: unknown): string {
  const err = e as Error & { code?: string; cause?: { code?: string; message?: string } };
  const code = err?.code ?? err?.cause?.code;
  const msg = err?.cause?.message && err.cause.message !== err.message ? `${err.message}: ${err.cause.message}` : (err?.message ?? String(e));
  return code && !msg.includes(code) ? `${msg} (${code})` : msg;
}
