/**
 * Issue 12's download scenarios against a loopback server: nothing but a complete, verified file
 * ever gets the final cache name. A short chunked body, a short body ended by `Connection: close`,
 * an empty 200 and an HTML 200 are refused (or resumed to completion); a resume onto a remote that
 * changed never splices two versions; a truncated cached file without a record is not accepted; an
 * endless body stops at the cap; concurrent pulls of one file (separate `samclip weights pull`
 * processes) wait for one download and never leave a corrupt file or die renaming.
 *
 * `npm run soak` (SAMCLIP_SOAK=1) runs 20 concurrent-pull rounds instead of 3.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EnsureOptions, ensureCached } from '../../src/hub/download.js';
import { ChecksumError, DownloadError } from '../../src/hub/errors.js';
import { FileModelCache, nodeSha256 } from '../../src/node/hub-cache.js';
import { nodeFetch } from '../../src/node/hub-fetch.js';
import { CLI_TIMEOUT, expectOk, expectOneLineError, samclip } from '../cli/helpers.js';
import { Loopback, type Served } from '../hub/loopback.js';

const SOAK = !!process.env.SAMCLIP_SOAK;
const ROUNDS = SOAK ? 20 : 3;
const V1 = randomBytes(1024 * 1024 + 321);
const V2 = Buffer.from(V1.map((b, i) => (i % 4096 === 0 ? b ^ 0x5a : b)));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let srv: Loopback;
beforeAll(async () => {
  srv = await Loopback.start();
});
afterAll(() => srv.close());

const tmp = () => mkdtempSync(join(tmpdir(), 'samclip-dl-'));

/** Everything under a cache directory (relative paths). */
function listing(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).sort() : [];
}

let seq = 0;
/** A fresh path on the server for `s`, and options to download it into a fresh file cache. */
function setup(s: Served, extra: Partial<EnsureOptions> = {}): { o: EnsureOptions; dir: string; path: string; final: string } {
  const path = `/f${++seq}`;
  srv.serve(path, s);
  const dir = tmp();
  const o: EnsureOptions = { name: 'm', file: 'model.safetensors', url: srv.url(path), cache: new FileModelCache(dir), fetch: nodeFetch, createHash: nodeSha256, backoffMs: 5, ...extra };
  return { o, dir, path, final: join(dir, 'm', 'model.safetensors') };
}

async function fails(p: Promise<unknown>): Promise<Error> {
  const r = await p.then(
    () => null,
    (e: unknown) => e as Error,
  );
  expect(r, 'expected the download to fail').not.toBeNull();
  return r!;
}

describe('short bodies are never stored under the final name', () => {
  it('a short chunked body (the length declared by X-Linked-Size): refused, then resumed to the right file', async () => {
    const { o, dir, path, final } = setup({ body: V1, chunked: true, cutAt: 400_000, cutMode: 'end' });
    srv.redirect(`${path}/resolve`, { to: path, linkedSize: V1.length });
    const url = srv.url(`${path}/resolve`);
    const err = await fails(ensureCached({ ...o, url, retries: 0 }));
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.message).toMatch(/download interrupted \(connection closed after 400000 of 1048897 bytes\)/);
    expect(existsSync(final)).toBe(false);
    expect(listing(dir)).toEqual(['m', 'm/model.safetensors.part', 'm/model.safetensors.part.json']);
    const r = await ensureCached({ ...o, url });
    expect(r).toMatchObject({ status: 'downloaded', resumedFrom: 400_000 });
    expect(readFileSync(final).equals(V1)).toBe(true);
  });

  it('a short chunked body with only a declared digest: the digest catches it, nothing is stored', async () => {
    const { o, dir, path, final } = setup({ body: V1, chunked: true, cutAt: 400_000, cutMode: 'end' });
    srv.redirect(`${path}/resolve`, { to: path, linkedSha: sha(V1) });
    const err = await fails(ensureCached({ ...o, url: srv.url(`${path}/resolve`), retries: 0 }));
    expect(err).toBeInstanceOf(ChecksumError);
    expect(existsSync(final)).toBe(false);
    expect(listing(dir)).toEqual(['m']);
  });

  it('a chunked body with neither a length nor a digest declared is refused (a cut could not be seen)', async () => {
    const { o, dir } = setup({ body: V1, chunked: true });
    const err = await fails(ensureCached(o));
    expect(err.message).toMatch(/declared neither the file's length nor its SHA-256.*nothing was stored/);
    expect(listing(dir)).toEqual(['m']);
  });

  it('a short body ended by Connection: close: refused without retries, completed with them', async () => {
    const { o, dir, final } = setup({ body: V1, cutAt: 300_000, cutMode: 'close', cuts: 2 });
    const err = await fails(ensureCached({ ...o, retries: 0 }));
    expect(err.message).toMatch(/download interrupted/);
    expect(existsSync(final)).toBe(false);
    expect(listing(dir)).toContain('m/model.safetensors.part');
    // One more cut, then a whole answer: the retries resume twice.
    const r = await ensureCached({ ...o, retries: 2 });
    expect(r.status).toBe('downloaded');
    expect(readFileSync(final).equals(V1)).toBe(true);
  });
});

describe('bodies that are not the file', () => {
  it('an empty 200 is refused', async () => {
    const { o, dir } = setup({ body: Buffer.alloc(0) });
    expect((await fails(ensureCached(o))).message).toMatch(/sent an empty file \(0 bytes\); nothing was stored/);
    expect(listing(dir)).toEqual(['m']);
  });

  it('an HTML 200 is refused, by its content type or by its first bytes', async () => {
    const page = Buffer.from('<!DOCTYPE html><html><body>Sign in to continue</body></html>');
    const typed = setup({ body: page, contentType: 'text/html; charset=utf-8' });
    expect((await fails(ensureCached(typed.o))).message).toMatch(/sent an HTML page \(content-type text\/html; charset=utf-8\), not the file/);
    expect(listing(typed.dir)).toEqual(['m']);
    const sniffed = setup({ body: Buffer.concat([Buffer.from('\n  '), page]) });
    expect((await fails(ensureCached(sniffed.o))).message).toMatch(/sent an HTML page, not the file/);
    expect(listing(sniffed.dir)).toEqual(['m']);
  });

  it('an endless body stops at the cap, quickly, and leaves nothing', async () => {
    const { o, dir } = setup({ body: randomBytes(64 * 1024), endless: true });
    const t0 = performance.now();
    const err = await fails(ensureCached({ ...o, maxBytes: 2 * 1024 * 1024 }));
    expect(err.message).toMatch(/exceeds the 2097152-byte cap .*no length was declared; the download was deleted/);
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(listing(dir)).toEqual(['m']);
  });

  it('more bytes than the declared length stop the download', async () => {
    const { o, dir, path } = setup({ body: V1, chunked: true });
    srv.redirect(`${path}/resolve`, { to: path, linkedSize: 1000 });
    expect((await fails(ensureCached({ ...o, url: srv.url(`${path}/resolve`) }))).message).toMatch(/sent more than the 1000 bytes it declared/);
    expect(listing(dir)).toEqual(['m']);
  });
});

describe('a resume onto a remote file that changed never splices two versions', () => {
  /**
   * A partial of V1 in the cache (a download of V1, through a Hub-like redirect, cut at 500 000
   * bytes), then V2 on the server. `sha1` / `sha2`: the digest the redirect declares before / after.
   */
  async function keptV1(s: Partial<Served>, declared: { sha1?: string; sha2?: string } = {}) {
    const t = setup({ body: V1, cutAt: 500_000, cutMode: 'close', ...s });
    const resolve = `${t.path}/resolve`;
    srv.redirect(resolve, { to: t.path, linkedSha: declared.sha1 ?? null });
    const o = { ...t.o, url: srv.url(resolve) };
    await fails(ensureCached({ ...o, retries: 0 }));
    // What reached the part file: up to the cut (bytes still in flight when the connection closed are lost).
    const kept = readFileSync(`${t.final}.part`);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThanOrEqual(500_000);
    expect(kept.equals(V1.subarray(0, kept.length))).toBe(true);
    srv.serve(t.path, { body: V2, ...s, cutAt: undefined, etag: s.etag === null ? null : '"v2"' });
    srv.redirect(resolve, { to: t.path, linkedSha: declared.sha2 ?? null });
    srv.log.length = 0;
    return { ...t, o, range: `bytes=${kept.length}-` };
  }

  it('If-Range with the old ETag: the server sends the new file whole (200), which is what is stored', async () => {
    const { o, final, path, range } = await keptV1({});
    const r = await ensureCached(o);
    expect(srv.log.filter((l) => l.path === path).map((l) => [l.range, l.ifRange, l.status])).toEqual([[range, '"v1"', 200]]);
    expect(r.status).toBe('downloaded');
    expect(readFileSync(final).equals(V2)).toBe(true);
  });

  it('a server that ignores If-Range but sends the new ETag: the kept part is dropped and the download restarts', async () => {
    const { o, final, path, range } = await keptV1({ ignoreIfRange: true });
    const r = await ensureCached(o);
    expect(srv.log.filter((l) => l.path === path).map((l) => [l.range, l.status])).toEqual([
      [range, 206],
      [null, 200],
    ]);
    expect(r.status).toBe('downloaded');
    expect(readFileSync(final).equals(V2)).toBe(true);
  });

  it('no ETag, a digest declared only now: the splice fails the digest and the download restarts from zero', async () => {
    const t = await keptV1({ etag: null }, { sha2: sha(V2) });
    const restarts: string[] = [];
    const r = await ensureCached({ ...t.o, onEvent: (e) => e.type === 'restart' && restarts.push(e.reason) });
    expect(restarts).toEqual([expect.stringMatching(/^the bytes spliced from 2 answers hash to [0-9a-f]{64}, not [0-9a-f]{64}$/)]);
    expect(srv.bodies(t.path).map((l) => l.range)).toEqual([t.range, null]);
    expect(r).toMatchObject({ status: 'downloaded', verifiedAgainst: 'server' });
    expect(readFileSync(t.final).equals(V2)).toBe(true);
  });

  it('no ETag, a declared digest that changed: the kept part is dropped before anything is spliced', async () => {
    const t = await keptV1({ etag: null }, { sha1: sha(V1), sha2: sha(V2) });
    const restarts: string[] = [];
    const r = await ensureCached({ ...t.o, onEvent: (e) => e.type === 'restart' && restarts.push(e.reason) });
    // The resumed answer is dropped unread as soon as its declaration is seen.
    expect(restarts).toEqual([`the server's declared SHA-256 changed from ${sha(V1)} to ${sha(V2)}`]);
    expect(srv.bodies(t.path).map((l) => l.range)).toEqual([t.range, null]);
    expect(r).toMatchObject({ status: 'downloaded', verifiedAgainst: 'server' });
    expect(readFileSync(t.final).equals(V2)).toBe(true);
  });

  it('no ETag and no digest: a resume cannot be checked, so the download starts over', async () => {
    const { o, final, path, range } = await keptV1({ etag: null });
    const r = await ensureCached(o);
    expect(srv.log.filter((l) => l.path === path).map((l) => l.range)).toEqual([range, null]);
    expect(r.status).toBe('downloaded');
    expect(readFileSync(final).equals(V2)).toBe(true);
  });
});

describe('the cache', () => {
  it('a truncated cached file without a record is not accepted: it is completed and verified first', async () => {
    const { o, dir, final, path } = setup({ body: V1 }, { expected: { sha256: sha(V1), from: 'registry' } });
    mkdirSync(join(dir, 'm'), { recursive: true });
    writeFileSync(final, V1.subarray(0, 700_000));
    expect(await o.cache.get('m', 'model.safetensors')).toBeNull();
    expect(new FileModelCache(dir).hasSync('m', 'model.safetensors')).toBe(false);
    const r = await ensureCached(o);
    expect(r).toMatchObject({ status: 'downloaded', resumedFrom: 700_000, verifiedAgainst: 'expected' });
    expect(srv.bodies(path).at(-1)?.range).toBe('bytes=700000-');
    expect(readFileSync(final).equals(V1)).toBe(true);
    expect(JSON.parse(readFileSync(`${final}.json`, 'utf8'))).toMatchObject({ sha256: sha(V1), bytes: V1.length, verified: 'registry' });
  });

  it('a cached file that disagrees with its record is not used; `weights list --verify` names it', { timeout: CLI_TIMEOUT }, async () => {
    const { o, dir, final } = setup({ body: V1 }, { expected: { sha256: sha(V1), from: 'user' } });
    await ensureCached(o);
    const bad = Buffer.from(V1);
    bad[12345] ^= 1;
    writeFileSync(final, bad);
    // The size still matches, so only a re-hash can tell; `pull` and `list --verify` re-hash.
    const r = await samclip(['weights', 'list', '--cache', dir, '--verify']);
    expectOneLineError(r, 1, /1 cached file\(s\) failed verification: m \(SHA-256 [0-9a-f]{64}, its record says [0-9a-f]{64}\)/);
    const again = await ensureCached({ ...o, verify: true });
    expect(again.status).toBe('downloaded');
    expect(readFileSync(final).equals(V1)).toBe(true);
  });
});

describe('concurrent pulls of one file', { timeout: 60_000 + ROUNDS * 30_000 }, () => {
  it(`${ROUNDS} rounds of 3 \`samclip weights pull\` processes: one download each round, never a corrupt file`, async () => {
    srv.serve('/shared', { body: V1, pieceBytes: 128 * 1024, delayMs: 20 });
    const url = srv.url('/shared');
    for (let round = 0; round < ROUNDS; round++) {
      const dir = tmp();
      srv.log.length = 0;
      const runs = await Promise.all([0, 1, 2].map(() => samclip(['weights', 'pull', 'shared', '--url', url, '--cache', dir, '--sha256', sha(V1), '--json'])));
      for (const r of runs) {
        expectOk(r);
        expect(r.stderr).not.toMatch(/ENOENT|internal error/);
      }
      const statuses = runs.map((r) => JSON.parse(r.stdout).status).sort();
      expect(statuses, `round ${round}: ${runs.map((r) => r.stderr).join('\n---\n')}`).toEqual(['cached', 'cached', 'downloaded']);
      expect(srv.bodies('/shared').length, `round ${round}: downloads`).toBe(1);
      const file = join(dir, 'shared', 'shared');
      expect(readFileSync(file).equals(V1), `round ${round}: file`).toBe(true);
      expect(listing(dir)).toEqual(['shared', 'shared/shared', 'shared/shared.json']);
    }
  });

  it('inside one process: five concurrent loads share one download', async () => {
    const { o, path } = setup({ body: V1, pieceBytes: 256 * 1024, delayMs: 5 }, { expected: { sha256: sha(V1), from: 'user' } });
    const results = await Promise.all([0, 1, 2, 3, 4].map(() => ensureCached({ ...o, cache: new FileModelCache((o.cache as FileModelCache).dir) })));
    expect(results.map((r) => r.status).sort()).toEqual(['cached', 'cached', 'cached', 'cached', 'downloaded']);
    expect(srv.bodies(path).length).toBe(1);
  });
});
