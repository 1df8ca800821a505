/**
 * The library's downloader (src/hub/download.ts) against a loopback server, into the Node file
 * cache and the memory cache: a verified download and its record, a second call served from the
 * cache, offline errors naming the URL and the cache, an abort that leaves nothing corrupt and
 * resumes, a pinned digest the server contradicts, the token sent to the Hub only, HF_ENDPOINT, and
 * both kinds of proxy (an HTTP forward proxy, a CONNECT tunnel to an HTTPS server).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { type Server, createServer, request } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryModelCache } from '../../src/hub/chunked-cache.js';
import { type DownloadProgress, ensureCached } from '../../src/hub/download.js';
import { ChecksumError, OfflineError } from '../../src/hub/errors.js';
import { fetchPretrained } from '../../src/hub/pretrained.js';
import { FileModelCache, nodeSha256 } from '../../src/node/hub-cache.js';
import { createNodeFetch, nodeFetch, proxyFor } from '../../src/node/hub-fetch.js';
import '../../src/node/index.js';
import { Loopback } from './loopback.js';

const BODY = randomBytes(2 * 1024 * 1024 + 77);
const SHA = createHash('sha256').update(BODY).digest('hex');
let srv: Loopback;

beforeAll(async () => {
  srv = await Loopback.start();
});
afterAll(() => srv.close());

const tmp = () => mkdtempSync(join(tmpdir(), 'samclip-hub-'));
const files = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).sort() : []);

function base(path: string, cache = new FileModelCache(tmp())) {
  return { name: 'm', file: 'model.safetensors', url: srv.url(path), cache, fetch: nodeFetch, createHash: nodeSha256, backoffMs: 10 };
}

describe('ensureCached', () => {
  it('downloads, verifies the declared digest, records it; the next call is served from the cache', async () => {
    srv.serve('/a/model.safetensors', { body: BODY }).redirect('/a/resolve', { to: '/a/model.safetensors', linkedSha: SHA, linkedSize: BODY.length });
    const dir = tmp();
    const seen: DownloadProgress[] = [];
    const o = { ...base('/a/resolve', new FileModelCache(dir)), onProgress: (p: DownloadProgress) => seen.push(p) };
    const r = await ensureCached(o);
    expect(r).toMatchObject({ status: 'downloaded', verifiedAgainst: 'server', serverSha256: SHA });
    expect(readFileSync(join(dir, 'm', 'model.safetensors')).equals(BODY)).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'm', 'model.safetensors.json'), 'utf8'))).toMatchObject({ sha256: SHA, bytes: BODY.length, verified: 'server' });
    expect(seen.at(-1)).toMatchObject({ stage: 'download', loaded: BODY.length, total: BODY.length, fraction: 1 });
    expect(files(dir)).toEqual(['m', 'm/model.safetensors', 'm/model.safetensors.json']);
    const n = srv.log.length;
    const again = await ensureCached(o);
    expect(again.status).toBe('cached');
    expect(srv.log.length).toBe(n);
  });

  it('works the same into the memory cache (the browser stores share its chunked code)', async () => {
    srv.serve('/mem', { body: BODY, pieceBytes: 300_000 });
    const cache = new MemoryModelCache();
    const r = await ensureCached({ ...base('/mem', cache as never), cache, expected: { sha256: SHA, from: 'user' } });
    expect(r.status).toBe('downloaded');
    const src = await r.entry.source();
    expect(Buffer.from(await src.read(0, BODY.length)).equals(BODY)).toBe(true);
    expect((await ensureCached({ ...base('/mem'), cache })).status).toBe('cached');
  });

  it('offline: one error naming the URL and the cache, nothing left behind', async () => {
    // A port nobody listens on.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const dir = tmp();
    const url = `http://127.0.0.1:${port}/model.safetensors`;
    const err = await ensureCached({ ...base('/x', new FileModelCache(dir)), url }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(OfflineError);
    expect((err as Error).message).toContain(url);
    expect((err as Error).message).toContain(join(dir, 'm', 'model.safetensors'));
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
    const off = await ensureCached({ ...base('/a/resolve', new FileModelCache(dir)), offline: true }).catch((e: Error) => e);
    expect(off).toBeInstanceOf(OfflineError);
    expect((off as Error).message).toMatch(/not in the cache .* offline mode is on .* would be downloaded from http/);
    expect(files(dir).filter((f) => f.includes('.'))).toEqual([]);
  });

  it('an abort stops at once, keeps a valid partial and never touches the entry; the next call resumes', async () => {
    srv.serve('/slow', { body: BODY, pieceBytes: 64 * 1024, delayMs: 5 });
    const dir = tmp();
    const ac = new AbortController();
    const o = { ...base('/slow', new FileModelCache(dir)), expected: { sha256: SHA, from: 'user' as const } };
    const err = await ensureCached({
      ...o,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.loaded > BODY.length / 3) ac.abort();
      },
    }).catch((e: Error) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(existsSync(join(dir, 'm', 'model.safetensors'))).toBe(false);
    const part = readFileSync(join(dir, 'm', 'model.safetensors.part'));
    expect(part.length).toBeGreaterThan(BODY.length / 3);
    expect(part.equals(BODY.subarray(0, part.length))).toBe(true);
    expect(files(dir)).toEqual(['m', 'm/model.safetensors.part', 'm/model.safetensors.part.json']);
    srv.log.length = 0;
    const r = await ensureCached(o);
    expect(r).toMatchObject({ status: 'downloaded', resumedFrom: part.length });
    expect(srv.log.map((l) => [l.range, l.ifRange])).toEqual([[`bytes=${part.length}-`, '"v1"']]);
    expect(readFileSync(join(dir, 'm', 'model.safetensors')).equals(BODY)).toBe(true);
  });

  it('a pinned digest the server contradicts fails before any byte is stored', async () => {
    srv.serve('/b/file', { body: BODY }).redirect('/b/resolve', { to: '/b/file', linkedSha: 'ab'.repeat(32) });
    const dir = tmp();
    const err = await ensureCached({ ...base('/b/resolve', new FileModelCache(dir)), expected: { sha256: SHA, from: 'registry' } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    expect((err as Error).message).toMatch(/declares SHA-256 abab.*the registry pins/);
    expect(files(dir).filter((f) => f.includes('.'))).toEqual([]);
  });

  it('a wrong pin on a stored download: ChecksumError, and the bytes are deleted', async () => {
    srv.serve('/c', { body: BODY });
    const dir = tmp();
    const err = await ensureCached({ ...base('/c', new FileModelCache(dir)), expected: { sha256: 'cd'.repeat(32), from: 'user', label: '--sha256' } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    expect((err as Error).message).toMatch(new RegExp(`hash to ${SHA}, but --sha256 says cdcd`));
    expect(files(dir).filter((f) => f.includes('.'))).toEqual([]);
  });
});

describe('fetchPretrained on a Hub-like server (HF_ENDPOINT, HF_TOKEN)', () => {
  it('builds the resolve URL on HF_ENDPOINT, sends the token to the Hub and not to the CDN it redirects to', async () => {
    const cdn = await Loopback.start();
    try {
      cdn.serve('/blob', { body: BODY });
      srv.redirect('/org/repo/resolve/main/weights.safetensors', { to: cdn.url('/blob'), linkedSha: SHA, linkedSize: BODY.length });
      const entry = { name: 'org-repo', kind: 'sam' as const, description: 'test', repo: 'org/repo', file: 'weights.safetensors', sha256: null, size: null, family: 'sam-hf' as const };
      const dir = tmp();
      process.env.HF_ENDPOINT = srv.base;
      process.env.HF_TOKEN = 'hf_secret';
      srv.log.length = 0;
      const r = await fetchPretrained(entry, 'sam', { cache: new FileModelCache(dir) });
      expect(r.url).toBe(`${srv.base}/org/repo/resolve/main/weights.safetensors`);
      expect(r.result).toMatchObject({ status: 'downloaded', verifiedAgainst: 'server' });
      expect(srv.log.map((l) => l.authorization)).toEqual(['Bearer hf_secret']);
      expect(cdn.log.map((l) => l.authorization)).toEqual([null]);
      const wrongKind = await fetchPretrained(entry, 'clip', { cache: new FileModelCache(dir) }).catch((e: Error) => e);
      expect((wrongKind as Error).message).toMatch(/'org-repo' is a SAM model, not a CLIP one; CLIP models are clip-vit-b-16, /);
      expect(((await fetchPretrained('sam-vit-q', 'sam').catch((e: Error) => e)) as Error).message).toMatch(/unknown model 'sam-vit-q'; known SAM models are sam-vit-b, sam-vit-l, sam-vit-h/);
      process.env.HF_HUB_OFFLINE = '1';
      const off = await fetchPretrained({ ...entry, name: 'other' }, 'sam', { cache: new FileModelCache(dir) }).catch((e: Error) => e);
      expect(off).toBeInstanceOf(OfflineError);
    } finally {
      delete process.env.HF_ENDPOINT;
      delete process.env.HF_TOKEN;
      delete process.env.HF_HUB_OFFLINE;
      await cdn.close();
    }
  });
});

/** A proxy on loopback: forwards absolute-URI requests and tunnels CONNECT; logs what it was asked. */
async function startProxy(): Promise<{ server: Server; url: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const up = request(req.url!, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req, client: Socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = req.url!.split(':');
    const up = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('proxies (Node fetch ignores them; the hub fetch does not)', () => {
  it('NO_PROXY and the proxy variables pick the proxy per URL', () => {
    const env = { HTTPS_PROXY: 'http://p:3128', HTTP_PROXY: 'http://q:8080', NO_PROXY: 'localhost,.internal.example,10.0.0.1:8443' };
    expect(proxyFor(new URL('https://huggingface.co/x'), env)?.host).toBe('p:3128');
    expect(proxyFor(new URL('http://example.org/x'), env)?.host).toBe('q:8080');
    expect(proxyFor(new URL('https://localhost/x'), env)).toBeNull();
    expect(proxyFor(new URL('https://cdn.internal.example/x'), env)).toBeNull();
    expect(proxyFor(new URL('https://10.0.0.1:8443/x'), env)).toBeNull();
    expect(proxyFor(new URL('https://10.0.0.1/x'), env)?.host).toBe('p:3128');
    expect(proxyFor(new URL('https://huggingface.co/x'), {})).toBeNull();
  });

  it('HTTP_PROXY: an http download goes through the forward proxy', async () => {
    const proxy = await startProxy();
    try {
      srv.serve('/via-proxy', { body: BODY });
      const fetch = createNodeFetch({ env: () => ({ HTTP_PROXY: proxy.url }) });
      const r = await ensureCached({ ...base('/via-proxy'), fetch, expected: { sha256: SHA, from: 'user' } });
      expect(r.status).toBe('downloaded');
      expect(proxy.seen).toEqual([`GET ${srv.url('/via-proxy')}`]);
    } finally {
      proxy.server.closeAllConnections();
      proxy.server.close();
    }
  });

  it.skipIf(!haveOpenssl())('HTTPS_PROXY: an https download goes through a CONNECT tunnel', async () => {
    const dir = tmp();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const cert = readFileSync(join(dir, 'cert.pem'));
    const tlsServer = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
      res.writeHead(200, { 'content-length': BODY.length, etag: '"t"' });
      res.end(BODY);
    });
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    const proxy = await startProxy();
    try {
      const port = (tlsServer.address() as AddressInfo).port;
      const fetch = createNodeFetch({ env: () => ({ HTTPS_PROXY: proxy.url }), ca: cert });
      const r = await ensureCached({ ...base('/x'), url: `https://127.0.0.1:${port}/model.safetensors`, fetch, expected: { sha256: SHA, from: 'user' } });
      expect(r.status).toBe('downloaded');
      expect(proxy.seen).toEqual([`CONNECT 127.0.0.1:${port}`]);
      // Without the proxy's CA the TLS handshake fails: the tunnel really carried TLS.
      const bad = await ensureCached({ ...base('/x'), url: `https://127.0.0.1:${port}/model.safetensors`, fetch: createNodeFetch({ env: () => ({ HTTPS_PROXY: proxy.url }) }), retries: 0 }).catch(
        (e: Error) => e,
      );
      expect((bad as Error).message).toMatch(/self.signed|certificate/i);
    } finally {
      proxy.server.closeAllConnections();
      proxy.server.close();
      tlsServer.closeAllConnections();
      tlsServer.close();
    }
  });

  it('a proxy that refuses CONNECT is a clear error', async () => {
    const refusing = createServer();
    refusing.on('connect', (_req, socket: Socket) => socket.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n'));
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    try {
      const fetch = createNodeFetch({ env: () => ({ HTTPS_PROXY: `http://127.0.0.1:${(refusing.address() as AddressInfo).port}` }) });
      const err = await ensureCached({ ...base('/x'), url: 'https://huggingface.co/x/resolve/main/m', fetch, retries: 0 }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/refused CONNECT huggingface\.co:443: HTTP 407/);
    } finally {
      refusing.close();
    }
  });
});

describe('FileModelCache', () => {
  it('a file without a record is not an entry; a stale lock of a dead process is broken', async () => {
    const dir = tmp();
    const cache = new FileModelCache(dir, { pollMs: 20 });
    const mk = (await import('node:fs')).mkdirSync;
    mk(join(dir, 'm'), { recursive: true });
    writeFileSync(join(dir, 'm', 'model.safetensors'), BODY.subarray(0, 1000));
    expect(await cache.get('m', 'model.safetensors')).toBeNull();
    expect(cache.hasSync('m', 'model.safetensors')).toBe(false);
    // A lock left by a process that no longer exists (pid 2^22 + 1 is above Linux's pid_max default).
    writeFileSync(join(dir, 'm', 'model.safetensors.lock'), JSON.stringify({ pid: 4194305, host: (await import('node:os')).hostname(), id: 'x' }));
    srv.serve('/d', { body: BODY });
    const r = await ensureCached({ ...base('/d', cache), expected: { sha256: SHA, from: 'user' } });
    expect(r.status).toBe('downloaded');
    expect(files(dir)).toEqual(['m', 'm/model.safetensors', 'm/model.safetensors.json']);
  });
});
