/**
 * The model cache on Node: the CLI's cache directory (`samclip weights pull` and `fromPretrained`
 * share it). Layout, per entry, in `<dir>/<name>/`:
 *
 *   <file>                  the verified file
 *   <file>.json             its record (URL, size, SHA-256, how the digest was checked)
 *   <file>.part(.json)      a partial download kept for resuming, and what it was downloaded from
 *   <file>.part-<pid>-<id>  the partial a running writer appends to (its own file)
 *   <file>.lock             the writer lock
 *
 * One writer at a time per entry: an exclusive-create lock file whose holder refreshes its mtime;
 * a lock whose process is gone (same host) or whose mtime is older than `staleLockMs` is broken.
 * Each writer appends to a temp file of its own, adopted from the kept `.part` and renamed into
 * place only after verification, so even two writers (a lock broken too early) never write the
 * same file, and the final file is only ever a complete, verified one. A final file without a
 * record (a crash between the two renames, or an older cache) is not used: it becomes the partial.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { type CacheRecord, type CachedFile, KeyedMutex, type ModelCache, type PartWriter, type PartialInfo, type WriterOptions, parseRecord, sleep } from '../hub/cache.js';
import { throwIfAborted } from '../gpu/errors.js';
import { HubError } from '../hub/errors.js';
import type { Hasher } from '../hub/sha256.js';
import { NodeFileSource } from '../weights/safetensors-source.js';

/** `$SAMCLIP_CACHE`, else `$XDG_CACHE_HOME/samclip`, else `~/.cache/samclip` (what the CLI uses). */
export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env.SAMCLIP_CACHE) return env.SAMCLIP_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'samclip');
  return join(homedir(), '.cache', 'samclip');
}

/** node:crypto's SHA-256 behind the hub's Hasher interface. */
export function nodeSha256(): Hasher {
  const h = createHash('sha256');
  return { update: (b) => void h.update(b), digestHex: () => h.digest('hex') };
}

export interface FileCacheOptions {
  /** A lock older than this (no heartbeat) is broken (default 60 s; the holder refreshes it every 5 s). */
  staleLockMs?: number;
  /** How often a waiting writer looks at the lock again (default 100 ms). */
  pollMs?: number;
}

interface LockContent {
  pid: number;
  host: string;
  id: string;
}

const HOST = hostname();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (e) {
    if (errno(e) === 'ENOENT') return null;
    throw e;
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT') return null;
    throw e;
  }
}

async function* fileChunks(path: string): AsyncIterable<Uint8Array> {
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) yield c as Buffer;
}

/** A file written under a temp name and renamed into place (readers never see half of it). */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

/** Writers of one path inside this process take turns here (any number of FileModelCache objects). */
const WRITERS = new KeyedMutex();

export class FileModelCache implements ModelCache {
  private readonly staleLockMs: number;
  private readonly pollMs: number;

  constructor(
    readonly dir: string = defaultCacheDir(),
    opts: FileCacheOptions = {},
  ) {
    this.staleLockMs = opts.staleLockMs ?? 60_000;
    this.pollMs = opts.pollMs ?? 100;
  }

  get location(): string {
    return this.dir;
  }

  /** `<dir>/<name>/<file>`. */
  describe(name: string, file: string): string {
    return join(this.dir, name, file);
  }

  async get(name: string, file: string): Promise<CachedFile | null> {
    const path = this.describe(name, file);
    const size = await sizeOf(path);
    if (size === null) return null;
    const record = parseRecord(await readText(`${path}.json`), name, file);
    if (!record || record.bytes !== size) return null;
    return fileEntry(path, record);
  }

  /** Whether the entry is cached (file + matching record), synchronously: for picking defaults. */
  hasSync(name: string, file: string): boolean {
    const path = this.describe(name, file);
    try {
      const size = statSync(path).size;
      const record = parseRecord(readFileSync(`${path}.json`, 'utf8'), name, file);
      return !!record && record.bytes === size;
    } catch {
      return false;
    }
  }

  /** Every recorded entry and every unrecorded file in the cache (for `weights list`). */
  async list(): Promise<{ name: string; file: string; path: string; size: number; record: CacheRecord | null }[]> {
    const out: { name: string; file: string; path: string; size: number; record: CacheRecord | null }[] = [];
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (errno(e) === 'ENOENT') return out;
      throw e;
    }
    for (const name of names.sort()) {
      let files: string[];
      try {
        files = await readdir(join(this.dir, name));
      } catch {
        continue;
      }
      for (const file of files.sort()) {
        if (/\.(json|lock)$|\.part($|[-.])|\.(tmp|stale)-/.test(file)) continue;
        const path = join(this.dir, name, file);
        const size = await sizeOf(path);
        if (size === null) continue;
        out.push({ name, file, path, size, record: parseRecord(await readText(`${path}.json`), name, file) });
      }
    }
    return out;
  }

  async withWriter<T>(name: string, file: string, fn: (part: PartWriter, state: { waited: boolean }) => Promise<T>, opts: WriterOptions = {}): Promise<T> {
    const path = this.describe(name, file);
    await mkdir(dirname(path), { recursive: true });
    let told = false;
    const onWait = () => {
      if (!told) opts.onWait?.();
      told = true;
    };
    return WRITERS.run(
      path,
      async (waitedHere) => {
        const lock = await this.lock(path, opts.signal, onWait);
        try {
          const part = await FilePart.open(path, name, file, this.staleLockMs);
          try {
            return await fn(part, { waited: waitedHere || lock.waited });
          } finally {
            await part.close();
          }
        } finally {
          await lock.release();
        }
      },
      opts.signal,
      onWait,
    );
  }

  async delete(name: string, file: string): Promise<void> {
    const path = this.describe(name, file);
    await this.withWriter(name, file, async (part) => {
      await rm(`${path}.json`, { force: true });
      await rm(path, { force: true });
      await part.reset(null);
    });
  }

  /** Take `<path>.lock`, waiting (and breaking stale locks) while someone else holds it. */
  private async lock(path: string, signal: AbortSignal | undefined, onWait: () => void): Promise<{ waited: boolean; release: () => Promise<void> }> {
    const lockPath = `${path}.lock`;
    const mine: LockContent = { pid: process.pid, host: HOST, id: randomBytes(8).toString('hex') };
    let waited = false;
    for (;;) {
      throwIfAborted(signal, `waiting for ${lockPath}`);
      try {
        await writeFile(lockPath, JSON.stringify(mine), { flag: 'wx' });
        break;
      } catch (e) {
        if (errno(e) !== 'EEXIST') throw new HubError(`cannot create the lock ${lockPath}: ${(e as Error).message}`);
      }
      if (await this.breakIfStale(lockPath)) continue;
      waited = true;
      onWait();
      await sleep(this.pollMs * (0.5 + Math.random()), signal);
    }
    const beat = setInterval(() => {
      const now = new Date();
      utimes(lockPath, now, now).catch(() => undefined);
    }, 5_000);
    beat.unref();
    return {
      waited,
      release: async () => {
        clearInterval(beat);
        // Only our own lock: if it was broken and taken over meanwhile, leave the new one alone.
        const held = await readText(lockPath).catch(() => null);
        if (held && (JSON.parse(held) as LockContent).id === mine.id) await rm(lockPath, { force: true });
      },
    };
  }

  /** Remove the lock if its holder is gone; true when it was removed (by us or someone else). */
  private async breakIfStale(lockPath: string): Promise<boolean> {
    let text: string | null;
    let mtime: number;
    try {
      text = await readFile(lockPath, 'utf8');
      mtime = (await stat(lockPath)).mtimeMs;
    } catch (e) {
      if (errno(e) === 'ENOENT') return true;
      throw e;
    }
    let held: LockContent | null = null;
    try {
      held = JSON.parse(text) as LockContent;
    } catch {
      // Being written right now, or garbage: judged by its age alone.
    }
    const gone = held && held.host === HOST && !alive(held.pid);
    if (!gone && Date.now() - mtime < this.staleLockMs) return false;
    // Move it aside, then check that what moved is the lock judged stale (not a new one).
    const aside = `${lockPath}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await rename(lockPath, aside);
    } catch (e) {
      if (errno(e) === 'ENOENT') return true;
      throw e;
    }
    // Should a fresh lock have been taken between the read and the rename, it is gone now: its
    // holder still writes only its own temp file (no data can mix) and leaves the lock alone at
    // release, since the lock is no longer its own.
    await rm(aside, { force: true });
    return true;
  }
}

function fileEntry(path: string, record: CacheRecord): CachedFile {
  return {
    record,
    size: record.bytes,
    location: path,
    path,
    source: () => NodeFileSource.open(path),
    chunks: () => fileChunks(path),
  };
}

/** Which process owns a writer temp file `<file>.part-<pid>-<id>`. */
function tempOwner(name: string, base: string): number | null {
  const m = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.part-(\\d+)-[0-9a-f]+$`).exec(name);
  return m ? Number(m[1]) : null;
}

class FilePart implements PartWriter {
  private fh: FileHandle | null = null;
  private committed = false;

  private constructor(
    private readonly path: string,
    private readonly own: string,
    private size: number,
    private described: PartialInfo | null,
  ) {}

  /**
   * Adopt what earlier writers left: the kept `.part`, temp files of processes that are gone, or a
   * final file without a valid record. The largest becomes this writer's temp file; the rest go.
   */
  static async open(path: string, entryName: string, entryFile: string, staleMs: number): Promise<FilePart> {
    const dir = dirname(path);
    const base = path.slice(dir.length + 1);
    const own = `${path}.part-${process.pid}-${randomBytes(4).toString('hex')}`;
    const candidates: { data: string; info: string | null; size: number }[] = [];
    const kept = await sizeOf(`${path}.part`);
    if (kept !== null) candidates.push({ data: `${path}.part`, info: `${path}.part.json`, size: kept });
    for (const name of await readdir(dir)) {
      const pid = tempOwner(name, base);
      if (pid === null) continue;
      const p = join(dir, name);
      const st = await stat(p).catch(() => null);
      if (!st) continue;
      const orphan = (pid !== process.pid && !alive(pid)) || Date.now() - st.mtimeMs > Math.max(staleMs, 10 * 60_000);
      if (orphan) candidates.push({ data: p, info: `${p}.json`, size: st.size });
    }
    const finalSize = await sizeOf(path);
    if (finalSize !== null) {
      const record = parseRecord(await readText(`${path}.json`), entryName, entryFile);
      if (!record || record.bytes !== finalSize) {
        // A record that disagrees means the file is known bad; without one it may be a good prefix.
        if (record) await rm(path, { force: true });
        else candidates.push({ data: path, info: null, size: finalSize });
        await rm(`${path}.json`, { force: true });
      }
    }
    candidates.sort((a, b) => b.size - a.size);
    let size = 0;
    let info: PartialInfo | null = null;
    const best = candidates.find((c) => c.size > 0);
    if (best) {
      await rename(best.data, own);
      size = best.size;
      if (best.info) {
        info = parseInfo(await readText(best.info));
        if (info) await writeAtomic(`${own}.json`, JSON.stringify(info));
      }
    }
    for (const c of candidates) {
      if (c === best) continue;
      await rm(c.data, { force: true });
    }
    for (const c of candidates) if (c.info) await rm(c.info, { force: true });
    return new FilePart(path, own, size, info);
  }

  get bytes(): number {
    return this.size;
  }

  get info(): PartialInfo | null {
    return this.described;
  }

  async *chunks(): AsyncIterable<Uint8Array> {
    await this.fh?.datasync();
    if (this.size > 0) yield* fileChunks(this.own);
  }

  async reset(info: PartialInfo | null): Promise<void> {
    await this.fh?.close();
    this.fh = await open(this.own, 'w');
    this.size = 0;
    this.described = info;
    if (info) await writeAtomic(`${this.own}.json`, JSON.stringify(info));
    else await rm(`${this.own}.json`, { force: true });
  }

  async append(chunk: Uint8Array): Promise<void> {
    this.fh ??= await open(this.own, 'a');
    let done = 0;
    while (done < chunk.length) done += (await this.fh.write(chunk, done, chunk.length - done)).bytesWritten;
    this.size += chunk.length;
  }

  async flush(): Promise<void> {
    await this.fh?.datasync();
  }

  async commit(record: CacheRecord): Promise<CachedFile> {
    await this.fh?.datasync();
    await this.fh?.close();
    this.fh = null;
    const size = await sizeOf(this.own);
    if (size !== record.bytes) throw new HubError(`${this.own}: holds ${size ?? 0} bytes, not the ${record.bytes} downloaded (changed by another program?)`);
    // The old record goes first: while the file is replaced, no record vouches for it.
    await rm(`${this.path}.json`, { force: true });
    await rename(this.own, this.path);
    await writeAtomic(`${this.path}.json`, `${JSON.stringify(record, null, 2)}\n`);
    await rm(`${this.own}.json`, { force: true });
    this.committed = true;
    return fileEntry(this.path, record);
  }

  /** End of the writer's turn: keep unfinished bytes as `.part` for the next run, or clean up. */
  async close(): Promise<void> {
    await this.fh?.datasync().catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
    if (this.committed) return;
    if (this.size > 0) {
      await rm(`${this.path}.part.json`, { force: true });
      await rename(this.own, `${this.path}.part`);
      if (this.described) await rename(`${this.own}.json`, `${this.path}.part.json`).catch(() => undefined);
    } else {
      await rm(this.own, { force: true });
      await rm(`${this.own}.json`, { force: true });
    }
  }
}

function parseInfo(text: string | null): PartialInfo | null {
  if (!text) return null;
  try {
    const i = JSON.parse(text) as PartialInfo;
    return typeof i?.url === 'string' ? { url: i.url, validator: i.validator ?? null, total: i.total ?? null, declaredSha256: i.declaredSha256 ?? null } : null;
  } catch {
    return null;
  }
}
