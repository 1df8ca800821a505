/**
 * `samclip weights pull` against a local HTTP server on 127.0.0.1: an interrupted download resumes
 * with a Range request (in a later run, and by retrying within one run), a server that ignores
 * Range restarts cleanly, and a checksum mismatch (given or server-declared) is an error that
 * leaves nothing in the cache.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, expectOneLineError, samclip, CLI_TIMEOUT } from './helpers.js';

const BODY = randomBytes(3 * 1024 * 1024 + 123);
const SHA = createHash('sha256').update(BODY).digest('hex');
const ETAG = '"v1"';

interface Behaviour {
  /** Drop the connection after this many bytes, on the next `drops` full-body requests. */
  dropAt: number;
  drops: number;
  ignoreRange: boolean;
  /** X-Linked-Etag sent on the /redirect hop. */
  etag: string | null;
}

let server: Server;
let base = '';
const log: { url: string; range: string | null; status: number }[] = [];
const behaviour: Behaviour = { dropAt: 0, drops: 0, ignoreRange: false, etag: null };

function reset(b: Partial<Behaviour> = {}): void {
  Object.assign(behaviour, { dropAt: 0, drops: 0, ignoreRange: false, etag: null }, b);
  log.length = 0;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const range = req.headers.range ?? null;
    if (req.url === '/redirect') {
      const headers: Record<string, string> = { location: '/model.safetensors' };
      if (behaviour.etag) headers['x-linked-etag'] = `"${behaviour.etag}"`;
      res.writeHead(302, headers).end();
      log.push({ url: req.url, range, status: 302 });
      return;
    }
    if (req.url !== '/model.safetensors') {
      res.writeHead(404).end('not found');
      log.push({ url: req.url ?? '', range, status: 404 });
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    // If-Range with another validator than the current one: the whole (current) file, as RFC 9110 says.
    const ifRange = req.headers['if-range'];
    if (m && !behaviour.ignoreRange && (!ifRange || ifRange === ETAG)) start = Number(m[1]);
    if (start >= BODY.length && m && !behaviour.ignoreRange) {
      res.writeHead(416, { 'content-range': `bytes */${BODY.length}` }).end();
      log.push({ url: req.url, range, status: 416 });
      return;
    }
    const status = start > 0 ? 206 : 200;
    const headers: Record<string, string | number> = { 'content-length': BODY.length - start, 'accept-ranges': 'bytes', etag: ETAG };
    if (status === 206) headers['content-range'] = `bytes ${start}-${BODY.length - 1}/${BODY.length}`;
    res.writeHead(status, headers);
    log.push({ url: req.url, range, status });
    if (behaviour.drops > 0 && start < behaviour.dropAt) {
      behaviour.drops--;
      res.write(BODY.subarray(start, behaviour.dropAt), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(BODY.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

function freshCache(): string {
  return mkdtempSync(join(tmpdir(), 'samclip-cache-'));
}

function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
}

describe('weights pull', { timeout: CLI_TIMEOUT }, () => {
  it('an interrupted download keeps its part file and the next run resumes it with a Range request', async () => {
    const cache = freshCache();
    const url = `${base}/model.safetensors`;
    reset({ dropAt: 1_000_000, drops: 1 });
    const first = await samclip(['weights', 'pull', 'test-model', '--url', url, '--cache', cache, '--retries', '0']);
    expectOneLineError(first, 1, /download interrupted .*run the same command again to resume/);
    const part = join(cache, 'test-model', 'model.safetensors.part');
    const kept = statSync(part).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(BODY.length);
    expect(existsSync(join(cache, 'test-model', 'model.safetensors'))).toBe(false);

    reset();
    const second = await samclip(['weights', 'pull', 'test-model', '--url', url, '--cache', cache, '--json']);
    expectOk(second);
    expect(log.map((l) => l.range)).toEqual([`bytes=${kept}-`]);
    const out = JSON.parse(second.stdout);
    expect(out).toMatchObject({ status: 'downloaded', bytes: BODY.length, sha256: SHA, resumedFrom: kept, verified: 'none' });
    const file = join(cache, 'test-model', 'model.safetensors');
    expect(readFileSync(file).equals(BODY)).toBe(true);
    expect(existsSync(part)).toBe(false);
    // The digest of the first download is recorded and checks the cached file later.
    expect(JSON.parse(readFileSync(`${file}.json`, 'utf8'))).toMatchObject({ sha256: SHA, verified: 'first-download', url });
    expect(second.stderr).toMatch(/resuming test-model/);

    reset();
    const third = await samclip(['weights', 'pull', 'test-model', '--url', url, '--cache', cache, '--json']);
    expectOk(third);
    expect(JSON.parse(third.stdout)).toMatchObject({ status: 'cached', sha256: SHA, verified: true });
    expect(log).toEqual([]);
  });

  it('retries within one run after a dropped connection, continuing where it stopped', async () => {
    const cache = freshCache();
    reset({ dropAt: 2_000_000, drops: 1 });
    const r = await samclip(['weights', 'pull', 'test-model', '--url', `${base}/model.safetensors`, '--cache', cache, '--json', '--sha256', SHA.toUpperCase()]);
    expectOk(r);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ sha256: SHA, attempts: 2, verified: 'expected' });
    expect(log[0]!.range).toBeNull();
    expect(log[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(log[1]!.range!)![0])).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/retry 1\/3/);
    expect(readFileSync(join(cache, 'test-model', 'model.safetensors')).equals(BODY)).toBe(true);
  });

  it('a server that ignores Range makes the download start over, and the result is still right', async () => {
    const cache = freshCache();
    reset({ dropAt: 500_000, drops: 1 });
    await samclip(['weights', 'pull', 'm', '--url', `${base}/model.safetensors`, '--cache', cache, '--retries', '0', '--quiet']);
    reset({ ignoreRange: true });
    const r = await samclip(['weights', 'pull', 'm', '--url', `${base}/model.safetensors`, '--cache', cache, '--json']);
    expectOk(r);
    expect(log.map((l) => l.status)).toEqual([200]);
    expect(JSON.parse(r.stdout).sha256).toBe(SHA);
    expect(readFileSync(join(cache, 'm', 'model.safetensors')).equals(BODY)).toBe(true);
  });

  it('a wrong --sha256 is an error and leaves no file (final or partial) in the cache', async () => {
    const cache = freshCache();
    reset();
    const wrong = SHA.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const r = await samclip(['weights', 'pull', 'test-model', '--url', `${base}/model.safetensors`, '--cache', cache, '--sha256', wrong]);
    expectOneLineError(r, 1, new RegExp(`SHA-256 mismatch: .*${SHA}.*--sha256 says ${wrong}; the download was deleted`));
    expect(filesIn(cache)).toEqual([]);
  });

  it('the digest a server declares (X-Linked-Etag on the redirect, as Hugging Face does) is checked', async () => {
    const cache = freshCache();
    reset({ etag: 'ab'.repeat(32) });
    const bad = await samclip(['weights', 'pull', 'hf-like', '--url', `${base}/redirect`, '--cache', cache]);
    expectOneLineError(bad, 1, /SHA-256 mismatch: .*the server \(X-Linked-Etag\) says abab/);
    expect(filesIn(cache)).toEqual([]);
    reset({ etag: SHA });
    const good = await samclip(['weights', 'pull', 'hf-like', '--url', `${base}/redirect`, '--cache', cache, '--json']);
    expectOk(good);
    expect(JSON.parse(good.stdout)).toMatchObject({ verified: 'server', sha256: SHA });
    expect(filesIn(cache).sort()).toEqual(['redirect', 'redirect.json']);
  });

  it('a cached file that no longer matches its record is reported and replaced by a verified download', async () => {
    const cache = freshCache();
    reset();
    expectOk(await samclip(['weights', 'pull', 'x', '--url', `${base}/model.safetensors`, '--cache', cache, '--quiet']));
    const file = join(cache, 'x', 'model.safetensors');
    // Same length, one byte changed: only the digest can tell.
    const flipped = Buffer.from(BODY);
    flipped[1000] ^= 0xff;
    writeFileSync(file, flipped);
    const r = await samclip(['weights', 'pull', 'x', '--url', `${base}/model.safetensors`, '--cache', cache, '--json']);
    expectOk(r);
    expect(r.stderr).toMatch(/x: .*model\.safetensors is corrupt \(SHA-256 [0-9a-f]{64}, its record says [0-9a-f]{64}\); it was deleted; downloading it again/);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'downloaded', sha256: SHA });
    expect(readFileSync(file).equals(BODY)).toBe(true);
    // Cut short: the record's length no longer matches, so it is not used.
    writeFileSync(file, BODY.subarray(0, 1000));
    const t = await samclip(['weights', 'pull', 'x', '--url', `${base}/model.safetensors`, '--cache', cache, '--json']);
    expectOk(t);
    expect(JSON.parse(t.stdout)).toMatchObject({ status: 'downloaded', sha256: SHA });
    expect(readFileSync(file).equals(BODY)).toBe(true);
  });

  it('HTTP errors and unknown names are one-line errors (404 exit 1, unknown name exit 2)', async () => {
    const cache = freshCache();
    reset();
    expectOneLineError(await samclip(['weights', 'pull', 'y', '--url', `${base}/nope.safetensors`, '--cache', cache]), 1, /HTTP 404 .*not found/);
    expectOneLineError(await samclip(['weights', 'pull', 'sam-vit-q', '--cache', cache]), 2, /unknown weights 'sam-vit-q': known names are sam-vit-b, /);
  });
});
