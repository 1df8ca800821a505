/**
 * Resumable HTTP(S) download into a cache file, with SHA-256 verification.
 *
 * Bytes go to `<dest>.part`. A later run (or a retry after a dropped connection) asks for the rest
 * with an HTTP Range request and appends; a server that ignores Range (200) restarts the file. When
 * the body is complete its SHA-256 is compared with the expected one; a mismatch deletes the part
 * file and throws, so the cache never holds a corrupt file under the final name. Success renames the
 * part file into place (atomic on one file system).
 *
 * Hugging Face answers a `resolve` URL of a large (LFS) file with its SHA-256 in the
 * `X-Linked-Etag` header (on the redirect); that is used as the expected digest when nothing more
 * trusted (the caller's) is given.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { dirname } from 'node:path';
import { CliError } from '../errors.js';

export class DownloadError extends CliError {
  override name = 'DownloadError';
}

export class ChecksumError extends DownloadError {
  override name = 'ChecksumError';
}

export interface DownloadOptions {
  url: string;
  dest: string;
  /** Lower-case hex SHA-256 the file must have; null = none known. */
  expectedSha256?: string | null;
  /** Where `expectedSha256` comes from, for messages ("the registry", "--sha256"). */
  expectedFrom?: string;
  /** Extra attempts after a dropped connection or a network error (default 3). */
  retries?: number;
  /** Idle socket timeout in ms (default 60 s). */
  timeoutMs?: number;
  /** Milliseconds before the first retry; doubles each time (default 500). */
  backoffMs?: number;
  onStart?: (info: { total: number | null; resumeFrom: number }) => void;
  onProgress?: (bytesOnDisk: number, total: number | null) => void;
  /** Called before each retry. */
  onRetry?: (attempt: number, error: Error, bytesOnDisk: number) => void;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** Bytes already in the part file when this call started. */
  resumedFrom: number;
  attempts: number;
  /** The digest the server declared (X-Linked-Etag), if any. */
  serverSha256: string | null;
  /** What the digest was checked against: the given one, the server's, or nothing. */
  verifiedAgainst: 'expected' | 'server' | 'none';
}

const HEX64 = /^[0-9a-f]{64}$/;

export function normaliseSha256(s: string, what = 'SHA-256'): string {
  const v = s.trim().toLowerCase();
  if (!HEX64.test(v)) throw new DownloadError(`${what} must be 64 hexadecimal digits, got '${s}'`);
  return v;
}

/** SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await hashInto(h, path);
  return h.digest('hex');
}

async function hashInto(h: Hash, path: string): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
}

interface Opened {
  res: http.IncomingMessage;
  finalUrl: string;
  serverSha: string | null;
}

/** Follow up to 10 redirects; collect an `X-Linked-Etag` digest on the way. */
function request(url: string, headers: Record<string, string>, timeoutMs: number, hops = 0, serverSha: string | null = null): Promise<Opened> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      reject(new DownloadError(`not a valid URL: ${url}`));
      return;
    }
    const lib = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : null;
    if (!lib) {
      reject(new DownloadError(`${url}: only http and https URLs can be downloaded`));
      return;
    }
    const req = lib.get(u, { headers: { 'user-agent': 'samclip-webgpu', ...headers } }, (res) => {
      const etag = String(res.headers['x-linked-etag'] ?? '').replace(/^W\//, '').replace(/"/g, '').toLowerCase();
      const sha = HEX64.test(etag) ? etag : serverSha;
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (hops >= 10) {
          reject(new DownloadError(`${url}: too many redirects`));
          return;
        }
        const next = new URL(res.headers.location, u).toString();
        request(next, headers, timeoutMs, hops + 1, sha).then(resolve, reject);
        return;
      }
      resolve({ res, finalUrl: url, serverSha: sha });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no data for ${timeoutMs / 1000} s`)));
    req.on('error', (e) => reject(e));
  });
}

function parseContentRange(v: string | undefined): { start: number; end: number; total: number | null } | null {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(v ?? '');
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

/** A failure worth retrying from where the part file now ends. */
class Retryable extends Error {}

/**
 * One request: append what the server sends to the part file. Returns the total size when the
 * server said it, and whether the file is complete.
 */
async function attempt(opts: DownloadOptions, part: string, hash: { h: Hash; bytes: number }, timeoutMs: number): Promise<{ total: number | null; serverSha: string | null }> {
  const offset = hash.bytes;
  let opened: Opened;
  try {
    opened = await request(opts.url, offset > 0 ? { range: `bytes=${offset}-` } : {}, timeoutMs);
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    throw new Retryable(`${opts.url}: ${(e as Error).message}`);
  }
  const { res, serverSha } = opened;
  const status = res.statusCode ?? 0;
  let total: number | null = null;
  let truncate = false;
  if (status === 416 && offset > 0) {
    // Nothing left to send: the part file may already hold everything.
    res.resume();
    const cr = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
    if (cr && Number(cr[1]) === offset) return { total: offset, serverSha };
    throw new RestartNeeded();
  }
  if (status === 200) {
    const len = Number(res.headers['content-length']);
    total = Number.isFinite(len) && res.headers['content-length'] !== undefined ? len : null;
    truncate = offset > 0; // Range ignored: start over.
  } else if (status === 206) {
    const cr = parseContentRange(res.headers['content-range'] as string | undefined);
    if (!cr || cr.start !== offset) {
      res.resume();
      throw new RestartNeeded();
    }
    total = cr.total;
  } else {
    res.resume();
    const hint = status === 404 ? ' (not found: check the name or --url)' : status === 401 || status === 403 ? ' (access denied: the repository may be gated or private)' : '';
    throw new DownloadError(`${opts.url}: HTTP ${status} ${res.statusMessage ?? ''}${hint}`.trimEnd());
  }
  if (truncate) {
    hash.h = createHash('sha256');
    hash.bytes = 0;
  }
  opts.onStart?.({ total, resumeFrom: hash.bytes });
  const fh = await open(part, truncate || hash.bytes === 0 ? 'w' : 'a');
  try {
    res.setTimeout(timeoutMs, () => res.destroy(new Error(`no data for ${timeoutMs / 1000} s`)));
    try {
      for await (const chunk of res) {
        const b = chunk as Buffer;
        await fh.write(b);
        // Hash only what reached the file, so the digest state always matches the part file.
        hash.h.update(b);
        hash.bytes += b.length;
        opts.onProgress?.(hash.bytes, total);
      }
    } catch (e) {
      throw new Retryable(`connection lost after ${hash.bytes} bytes: ${(e as Error).message}`);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (total !== null && hash.bytes < total) throw new Retryable(`connection closed after ${hash.bytes} of ${total} bytes`);
  if (total !== null && hash.bytes > total) throw new RestartNeeded();
  return { total, serverSha };
}

class RestartNeeded extends Error {}

/** Download `url` to `dest` (resuming `dest.part`), verify, and move into place. */
export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const part = `${opts.dest}.part`;
  const retries = opts.retries ?? 3;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const expected = opts.expectedSha256 ? normaliseSha256(opts.expectedSha256, `${opts.expectedFrom ?? 'expected'} SHA-256`) : null;
  await mkdir(dirname(opts.dest), { recursive: true });
  const hash = { h: createHash('sha256'), bytes: 0 };
  const resumedFrom = await sizeOf(part);
  if (resumedFrom > 0) {
    await hashInto(hash.h, part);
    hash.bytes = resumedFrom;
  }
  let serverSha: string | null = null;
  let attempts = 0;
  let restarts = 0;
  let backoff = opts.backoffMs ?? 500;
  for (;;) {
    attempts++;
    try {
      const r = await attempt(opts, part, hash, timeoutMs);
      serverSha = r.serverSha ?? serverSha;
      break;
    } catch (e) {
      if (e instanceof RestartNeeded && restarts++ < 1) {
        // The part file does not line up with what the server has (changed file?): start over once.
        await rm(part, { force: true });
        hash.h = createHash('sha256');
        hash.bytes = 0;
        continue;
      }
      if (e instanceof RestartNeeded) throw new DownloadError(`${opts.url}: the server's answers to range requests do not match the file; delete ${part} and retry`);
      if (!(e instanceof Retryable)) throw e;
      if (attempts > retries) {
        throw new DownloadError(
          `${opts.url}: download interrupted (${e.message}); ${hash.bytes} bytes kept in ${part}, run the same command again to resume`,
        );
      }
      opts.onRetry?.(attempts, e, hash.bytes);
      await new Promise((r) => setTimeout(r, backoff));
      backoff *= 2;
    }
  }
  const sha = hash.h.digest('hex');
  const against = expected ?? serverSha;
  if (against && sha !== against) {
    await rm(part, { force: true });
    const from = expected ? (opts.expectedFrom ?? 'the expected value') : 'the server (X-Linked-Etag)';
    throw new ChecksumError(
      `${opts.url}: SHA-256 mismatch: downloaded ${hash.bytes} bytes hash to ${sha}, but ${from} says ${against}; the download was deleted`,
    );
  }
  await rename(part, opts.dest);
  return {
    path: opts.dest,
    bytes: hash.bytes,
    sha256: sha,
    resumedFrom,
    attempts,
    serverSha256: serverSha,
    verifiedAgainst: expected ? 'expected' : serverSha ? 'server' : 'none',
  };
}
