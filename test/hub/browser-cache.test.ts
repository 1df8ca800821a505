/**
 * The browser model caches (OPFS, Cache API) in Chromium: the hub is bundled by Vite into a page
 * served on 127.0.0.1 (a secure context) next to a slow model file. In each store a download is
 * aborted part-way, the page is reloaded (a closed tab), and the download resumes from the stored
 * chunks to a file whose SHA-256 (the TypeScript one) and bytes are right; two downloads of one
 * entry in one page make one request (Web Locks); the default store is OPFS.
 *
 * Skipped, with a message, when /usr/bin/chromium is absent (tools/setup.sh installs it).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Loopback } from './loopback.js';

const CHROMIUM = process.env.SAMCLIP_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`test/hub/browser-cache.test.ts: skipped, ${CHROMIUM} not found (Debian: apt-get install chromium, or run tools/setup.sh)`);

const BODY = randomBytes(3 * 1024 * 1024 + 1234);
const SHA = createHash('sha256').update(BODY).digest('hex');

describe.skipIf(!HAVE_CHROMIUM)('browser model caches in Chromium', { timeout: 120_000 }, () => {
  let srv: Loopback;
  let outDir: string;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'samclip-hub-web-'));
    const { build } = await import('vite');
    await build({
      configFile: false,
      logLevel: 'warn',
      // One file (the hub loads its downloader lazily, which would otherwise be a chunk of its own).
      build: { outDir, emptyOutDir: true, minify: false, lib: { entry: join(import.meta.dirname, '..', '..', 'src', 'hub', 'index.ts'), formats: ['es'], fileName: () => 'hub.js' }, rollupOptions: { output: { inlineDynamicImports: true } } },
    });
    srv = await Loopback.start();
    srv.serve('/', { body: Buffer.from('<!doctype html><title>hub</title>'), contentType: 'text/html' });
    srv.serve('/hub.js', { body: readFileSync(join(outDir, 'hub.js')), contentType: 'text/javascript' });
    // ~1.5 MB/s: slow enough to abort part-way.
    srv.serve('/model.safetensors', { body: BODY, pieceBytes: 64 * 1024, delayMs: 40 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless=new', '--no-sandbox', '--disable-background-networking', '--no-first-run'] });
    page = await browser.newPage();
    page.on('pageerror', (e) => console.log(`[browser pageerror] ${e.message}`));
    await page.goto(srv.url('/'));
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await srv?.close();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  /** Run `body` in the page with `hub` (the bundled src/hub) and `opts` (download options) in scope. */
  function inPage<T>(store: string, body: string): Promise<T> {
    return page.evaluate(`(async () => {
      const hub = await import('/hub.js');
      const cache = ${store === 'opfs' ? "new hub.OpfsModelCache('t', { chunkBytes: 256 * 1024 })" : "new hub.CacheApiModelCache('t', { chunkBytes: 256 * 1024 })"};
      const opts = { name: 'm', file: 'model.safetensors', url: location.origin + '/model.safetensors', cache, fetch: (u, i) => fetch(u, i), backoffMs: 10 };
      ${body}
    })()`) as Promise<T>;
  }

  for (const store of ['opfs', 'cache-api']) {
    it(`${store}: an aborted download resumes after a reload and is stored verified; then it is served from the cache`, async () => {
      srv.log.length = 0;
      const aborted = await inPage<{ name: string; bytes: number; cached: boolean }>(
        store,
        `const ac = new AbortController();
         const err = await hub.ensureCached({ ...opts, signal: ac.signal, onProgress: (p) => { if (p.loaded > 1_200_000) ac.abort(); } }).then(() => null, (e) => e);
         return { name: err && err.name, bytes: 0, cached: (await cache.get('m', 'model.safetensors')) !== null };`,
      );
      expect(aborted).toMatchObject({ name: 'AbortError', cached: false });
      await page.reload();
      const done = await inPage<{ status: string; resumedFrom: number; sha: string; size: number; head: number[]; tail: number[] }>(
        store,
        `const r = await hub.ensureCached({ ...opts, expected: { sha256: '${SHA}', from: 'user' } });
         const src = await r.entry.source();
         const size = src.size;
         // Re-hash the stored bytes with the TypeScript SHA-256.
         const h = new hub.Sha256();
         for await (const c of r.entry.chunks()) h.update(c);
         return { status: r.status, resumedFrom: r.resumedFrom, sha: h.digestHex(), size, head: [...await src.read(0, 8)], tail: [...await src.read(size - 8, 8)] };`,
      );
      expect(done.status).toBe('downloaded');
      expect(done.resumedFrom).toBeGreaterThan(1_000_000);
      expect(done.sha).toBe(SHA);
      expect(done.size).toBe(BODY.length);
      expect(done.head).toEqual([...BODY.subarray(0, 8)]);
      expect(done.tail).toEqual([...BODY.subarray(BODY.length - 8)]);
      const ranges = srv.log.filter((l) => l.path === '/model.safetensors').map((l) => l.range);
      expect(ranges).toEqual([null, `bytes=${done.resumedFrom}-`]);
      const again = await inPage<string>(store, `return (await hub.ensureCached(opts)).status;`);
      expect(again).toBe('cached');
      expect(srv.log.filter((l) => l.path === '/model.safetensors').length).toBe(2);
    });
  }

  it('two loads of one entry at once make one download (Web Locks); the default store is OPFS', async () => {
    srv.log.length = 0;
    const r = await inPage<{ statuses: string[]; location: string }>(
      'opfs',
      `const c2 = new hub.OpfsModelCache('t2');
       const o2 = { ...opts, cache: c2 };
       const rs = await Promise.all([hub.ensureCached(o2), hub.ensureCached({ ...o2, cache: new hub.OpfsModelCache('t2') })]);
       return { statuses: rs.map((x) => x.status).sort(), location: (await hub.defaultBrowserCache()).location };`,
    );
    expect(r.statuses).toEqual(['cached', 'downloaded']);
    expect(r.location).toBe('OPFS samclip-webgpu/');
    expect(srv.log.filter((l) => l.path === '/model.safetensors').length).toBe(1);
  });
});
