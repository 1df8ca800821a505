/**
 * The packed package in a blank Vite app (npm ci of the tarball, offline; Vite driven through its
 * API with no config file, as `vite build` / `vite` would run in that folder):
 *  - `vite build` prints no warning about Node modules, and the SAM-only and whole-entry bundle
 *    sizes (minified, gzip -9) are reported;
 *  - the dev server answers HTTP 200 for every module of the app's graph (crawled from its pages:
 *    imports, dynamic imports and `new URL(..., import.meta.url)` assets);
 *  - Debian's Chromium (SwiftShader WebGPU) runs the built SAM page to the mask the library
 *    computes on Node for the same pixels, and the default CLIP tokenizer (the vocabulary shipped in
 *    the package) to the ids the library gives on Node, from the build and from the dev server.
 * The Chromium parts skip, saying so, without /usr/bin/chromium (tools/setup.sh installs it).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InlineConfig, Logger, ViteDevServer } from 'vite';
import { GpuContext } from '../../src/gpu/context.js';
import { readImage } from '../../src/io/decode.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { loadClipTokenizer } from '../../src/text/clip-vocabulary.js';
import { type StaticServer, startStaticServer } from '../../tools/serve-demo.js';
import { mismatches } from '../helpers/compare.js';
import { DOG, SAM_TINY, installApp, stamp } from './helpers.js';

const NAME = 'vite-app';
const CHROMIUM = process.env.SAMCLIP_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const POINT: [number, number] = [400, 300];
const TEXTS = ['a photo of a dog', 'Ünïcode, naïve café!'];
/** Two GPUs (lavapipe on Node, SwiftShader in Chromium) round differently: a few boundary pixels may flip. */
const MIN_AGREEMENT = 0.999;
/**
 * A regression guard on what an app that only segments with SAM loads at start. The goal (DESIGN.md
 * section 9, issue 11) is 60 kB gzip; it is not met since the per-adapter kernel variants (tiled and
 * subgroup matmuls, flash attention) landed: 64.3 kB at that point (see the test's printed sizes),
 * 66.6 kB once the CPU-adapter paths of issue 13 (the subgroup-shuffle matmul, windowed attention
 * as matmuls, conv2d as im2col + matmul: 2.7x the speed of a SAM encode on lavapipe) joined them,
 * 67.1 kB with the host-path work of the next session (timer polling set up through a lazy chunk,
 * pipeline lookup by config JSON, reused uniform staging, oldest-first buffer reuse, packed f16
 * loads: decoder host time per call 6.3 -> 5.0 ms, 1.4x faster waits on lavapipe), 69.0 kB with
 * dispatch plans (src/gpu/dispatch-plan.ts, ~1.9 kB gzip on its own: recorded decoder and encoder
 * calls replayed, decoder host time per call 5.5 -> 1.3 ms), 69.7 kB with the decoder's dispatches
 * cut from 99 to 82 (hypernetworks as one batched MLP with per-batch bias, stacked self-attention
 * projections). This guard catches growth beyond that, it does not claim the goal.
 */
const SAM_ONLY_GZIP_GOAL = 60_000;
const SAM_ONLY_GZIP_BUDGET = 70_000;

if (!HAVE_CHROMIUM) console.warn(`test/consumers/vite-app.test.ts: the Chromium parts skip, ${CHROMIUM} not found (tools/setup.sh installs it)`);

/** A Vite logger that keeps every warning and error (and prints them). */
function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const loggedErrors = new WeakSet<object>();
  const logger: Logger = {
    info: () => undefined,
    warn: (msg) => {
      warnings.push(msg);
      console.log(`[vite warn] ${msg}`);
    },
    warnOnce: (msg) => {
      if (!warnings.includes(msg)) logger.warn(msg);
    },
    error: (msg, opts) => {
      warnings.push(msg);
      if (opts?.error) loggedErrors.add(opts.error);
      console.log(`[vite error] ${msg}`);
    },
    clearScreen: () => undefined,
    hasErrorLogged: (e) => loggedErrors.has(e),
    hasWarned: false,
  };
  return { logger, warnings };
}

interface ChunkSizes {
  min: number;
  gzip: number;
  files: string[];
}

/**
 * Minified and gzip -9 sizes of a build's JavaScript: what the page loads at start (the entry chunk
 * and what it imports statically, from Vite's manifest) and the chunks it loads only when a lazy
 * import runs; plus the other files the build wrote.
 */
function bundleSize(outDir: string): { initial: ChunkSizes; lazy: ChunkSizes; assets: string[] } {
  const manifest = JSON.parse(readFileSync(join(outDir, '.vite', 'manifest.json'), 'utf8')) as Record<string, { file: string; isEntry?: boolean; imports?: string[] }>;
  const initial = new Set<string>();
  const visit = (key: string) => {
    const m = manifest[key]!;
    if (initial.has(m.file)) return;
    initial.add(m.file);
    for (const k of m.imports ?? []) visit(k);
  };
  for (const [key, m] of Object.entries(manifest)) if (m.isEntry) visit(key);
  const files = readdirSync(join(outDir, 'assets'));
  const sizes = (chunks: string[]): ChunkSizes => {
    let min = 0;
    let gzip = 0;
    for (const c of chunks) {
      const bytes = readFileSync(join(outDir, 'assets', c));
      min += bytes.length;
      gzip += gzipSync(bytes, { level: 9 }).length;
    }
    return { min, gzip, files: chunks };
  };
  const js = files.filter((f) => f.endsWith('.js'));
  return { initial: sizes(js.filter((f) => initial.has(`assets/${f}`))), lazy: sizes(js.filter((f) => !initial.has(`assets/${f}`))), assets: files.filter((f) => !f.endsWith('.js')) };
}

const kB = (n: number) => `${(n / 1000).toFixed(1)} kB`;

/** Same-origin URLs a page or module refers to: scripts, stylesheets, imports, dynamic imports, `new URL(..., import.meta.url)`. */
function references(text: string, from: string, html: boolean): string[] {
  const out: string[] = [];
  const patterns = html
    ? [/<script[^>]*\ssrc="([^"]+)"/g, /<link[^>]*\shref="([^"]+)"/g]
    : // Statements at line starts (Vite serves modules unminified, one import per line), so that an
      // import written inside a string (an error message's advice) is not taken for one.
      [/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']/gm, /^\s*import\s*["']([^"']+)["']/gm, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g, /new URL\(\s*["'`]([^"'`]+)["'`]\s*,[^)]*import\.meta\.url/g];
  for (const re of patterns) {
    for (const m of text.matchAll(re)) {
      const u = new URL(m[1]!, from);
      if (u.origin === new URL(from).origin) out.push(u.href.replace(/#.*$/, ''));
    }
  }
  return out;
}

describe('a blank Vite app with the packed package installed', { timeout: 240_000 }, () => {
  let app: { dir: string; tarball: string };
  let reference: { mask: Uint8Array; iouPredictions: number[] };
  let referenceIds: number[];
  let dev: ViteDevServer | null = null;
  let devUrl = '';
  let built: StaticServer | null = null;
  let browser: Browser | null = null;
  const outDir = () => join(app.dir, 'dist');

  beforeAll(async () => {
    app = await installApp('vite');
    stamp(NAME, `installed into ${app.dir}`);
    // What the pages load, and what the library on Node (this repository) makes of it.
    const pub = join(app.dir, 'public');
    mkdirSync(pub, { recursive: true });
    copyFileSync(SAM_TINY, join(pub, 'sam_tiny.weights.safetensors'));
    const photo = await readImage(DOG);
    expect(photo.channels).toBe(3);
    writeFileSync(join(pub, 'dog.rgb'), photo.data);
    writeFileSync(join(pub, 'dog.json'), JSON.stringify({ width: photo.width, height: photo.height, point: POINT }));
    const ctx = await GpuContext.create();
    try {
      const predictor = await SamPredictor.load(ctx, SAM_TINY);
      const emb = await predictor.encode(photo);
      const r = await predictor.predict(emb, { points: [POINT], labels: [1] }, { multimaskOutput: false });
      reference = { mask: r.masks[0]!, iouPredictions: Array.from(r.iouPredictions) };
      emb.dispose();
      predictor.dispose();
    } finally {
      ctx.destroy();
    }
    referenceIds = Array.from((await loadClipTokenizer()).tokenize(TEXTS).ids);
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await built?.close();
    await dev?.close();
    if (app) rmSync(app.dir, { recursive: true, force: true });
  });

  const config = (extra: InlineConfig, logger: Logger): InlineConfig => ({ root: app.dir, configFile: false, logLevel: 'warn', customLogger: logger, ...extra });

  it('vite build: no warning about Node modules; the SAM-only and whole-entry bundles (sizes reported)', async () => {
    const { build } = await import('vite');
    const { logger, warnings } = recordingLogger();
    await build(config({ build: { outDir: outDir(), emptyOutDir: true, rollupOptions: { input: { sam: join(app.dir, 'index.html'), tokenizer: join(app.dir, 'tokenizer.html') } } } }, logger));
    stamp(NAME, 'vite build of the pages');
    const sizes: Record<string, ReturnType<typeof bundleSize>> = {};
    for (const entry of ['sam', 'whole'] as const) {
      const dir = join(app.dir, `size-${entry}`);
      await build(config({ publicDir: false, build: { outDir: dir, emptyOutDir: true, manifest: true, rollupOptions: { input: join(app.dir, `${entry}.js`) } } }, logger));
      const s = (sizes[entry] = bundleSize(dir));
      expect(s.initial.files.length, `${entry}: the entry chunk`).toBeGreaterThan(0);
      console.log(
        `[consumers/${NAME}] bundle ${entry === 'sam' ? 'SAM-only (GpuContext + SamPredictor)' : 'whole entry (import *)'}: ` +
          `${kB(s.initial.min)} minified, ${kB(s.initial.gzip)} gzip -9 loaded at start (${s.initial.files.length} chunk${s.initial.files.length > 1 ? 's' : ''}); ` +
          `${kB(s.lazy.min)} minified, ${kB(s.lazy.gzip)} gzip -9 in ${s.lazy.files.length} lazy chunk${s.lazy.files.length === 1 ? '' : 's'} (fromPretrained's downloader and caches); other files: ${s.assets.join(', ') || 'none'}`,
      );
    }
    expect(warnings.filter((w) => /externali[sz]ed|node:|built-?in|browser compatibility|Failed to resolve/i.test(w)), 'warnings about Node modules').toEqual([]);
    // Tree-shaking: the SAM-only code leaves the tokenizer out (Vite still copies the vocabulary file
    // into the build, as it does for every new URL(..., import.meta.url) of a module it loads, but
    // nothing refers to it); the whole entry's code refers to it.
    const refersToVocabulary = (entry: 'sam' | 'whole') =>
      [...sizes[entry]!.initial.files, ...sizes[entry]!.lazy.files].some((c) => readFileSync(join(app.dir, `size-${entry}`, 'assets', c), 'utf8').includes('bpe_simple_vocab'));
    expect(refersToVocabulary('sam'), 'the SAM-only code refers to the CLIP vocabulary').toBe(false);
    expect(refersToVocabulary('whole'), 'the whole entry refers to the CLIP vocabulary').toBe(true);
    const samGzip = sizes.sam!.initial.gzip;
    console.log(`[consumers/${NAME}] SAM-only goal ${kB(SAM_ONLY_GZIP_GOAL)} gzip: ${samGzip <= SAM_ONLY_GZIP_GOAL ? 'met' : `NOT met (${kB(samGzip)})`}`);
    expect(samGzip, 'SAM-only bundle loaded at start, gzip bytes (regression guard)').toBeLessThanOrEqual(SAM_ONLY_GZIP_BUDGET);
    expect(sizes.sam!.initial.min).toBeLessThan(sizes.whole!.initial.min);
  });

  it('samclip-webgpu/node in a browser build: refused at build time, naming the subpath', async () => {
    const { build } = await import('vite');
    const { logger } = recordingLogger();
    const entry = join(app.dir, 'wrong-node-import.js');
    writeFileSync(entry, "import { readImage } from 'samclip-webgpu/node';\nconsole.log(readImage);\n");
    const e = await build(config({ publicDir: false, build: { outDir: join(app.dir, 'size-wrong'), emptyOutDir: true, rollupOptions: { input: entry } } }, logger)).then(
      () => null,
      (x: unknown) => x as Error,
    );
    expect(e, 'the build of a page importing samclip-webgpu/node').not.toBeNull();
    expect(e!.message).toMatch(/samclip-webgpu\/node|"\.\/node"/);
  });

  it('the dev server answers HTTP 200 for every module of the app (all three pages crawled)', async () => {
    const { createServer } = await import('vite');
    const { logger, warnings } = recordingLogger();
    dev = await createServer(config({ server: { host: '127.0.0.1', port: 0, strictPort: false } }, logger));
    await dev.listen();
    devUrl = dev.resolvedUrls!.local[0]!;
    const statuses = new Map<string, number>();
    const queue = ['index.html', 'tokenizer.html', 'whole.html'].map((p) => new URL(p, devUrl).href);
    while (queue.length) {
      const url = queue.shift()!;
      if (statuses.has(url)) continue;
      const res = await fetch(url);
      statuses.set(url, res.status);
      const type = res.headers.get('content-type') ?? '';
      if (/javascript|html/.test(type)) queue.push(...references(await res.text(), url, type.includes('html')));
      else await res.arrayBuffer();
    }
    const bad = [...statuses].filter(([, s]) => s !== 200).map(([u, s]) => `${s} ${u}`);
    const paths = [...statuses.keys()].map((u) => new URL(u).pathname);
    stamp(NAME, `dev server: ${statuses.size} URLs crawled`);
    expect(bad, 'URLs not answered 200').toEqual([]);
    expect(paths.some((p) => p.includes('/.vite/deps/samclip-webgpu')), `the pre-bundled package among ${paths.join(' ')}`).toBe(true);
    expect(paths.some((p) => p.endsWith('/bpe_simple_vocab_16e6.txt.gz')), 'the vocabulary asset').toBe(true);
    expect(warnings.filter((w) => /externali[sz]ed|node:|Failed to resolve/i.test(w)), 'dev server warnings about Node modules').toEqual([]);
  });

  describe.skipIf(!HAVE_CHROMIUM)(`in Chromium (SwiftShader WebGPU; skipped without ${CHROMIUM})`, () => {
    /** Open `url`, wait for window.__samclip.done, return it. */
    async function runPage<T>(url: string): Promise<T & { error?: string }> {
      browser ??= await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--no-first-run'],
      });
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.stack ?? e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') console.log(`[browser error] ${m.text()}`);
      });
      await page.goto(url);
      await page.waitForFunction('window.__samclip && window.__samclip.done', null, { timeout: 120_000, polling: 100 });
      const result = (await page.evaluate('window.__samclip')) as T & { error?: string };
      await page.close();
      expect(errors, `uncaught errors on ${url}`).toEqual([]);
      return result;
    }

    it("the built SAM page gives the library's mask on Node for the same pixels", async () => {
      built = await startStaticServer({ '/': outDir() });
      const r = await runPage<{ adapter: string; mask: string; iouPredictions: number[] }>(built.url);
      expect(r.error, 'error on the page').toBeUndefined();
      const mask = new Uint8Array(Buffer.from(r.mask, 'base64'));
      expect(mask.length).toBe(reference.mask.length);
      const { diff, first } = mismatches(mask, reference.mask);
      const agreement = 1 - diff / mask.length;
      stamp(NAME, `Chromium (${r.adapter}): mask ${(100 * agreement).toFixed(4)} % equal to the library's on Node (${diff} of ${mask.length} pixels differ); IoU prediction ${r.iouPredictions[0]} vs ${reference.iouPredictions[0]}`);
      expect(agreement, `${diff} pixels differ, the first at ${first}`).toBeGreaterThanOrEqual(MIN_AGREEMENT);
      expect(Math.abs(r.iouPredictions[0]! - reference.iouPredictions[0]!)).toBeLessThan(1e-3);
      const weights = built.log.filter((l) => l.path === '/sam_tiny.weights.safetensors');
      expect(weights.length, 'the weights were fetched by the page').toBeGreaterThan(0);
    });

    it("the default CLIP tokenizer gives the library's ids, in the build and under the dev server", async () => {
      built ??= await startStaticServer({ '/': outDir() });
      for (const url of [new URL('tokenizer.html', built.url).href, ...(devUrl ? [new URL('tokenizer.html', devUrl).href] : [])]) {
        const r = await runPage<{ ids: number[]; shape: number[] }>(url);
        expect(r.error, `error on ${url}`).toBeUndefined();
        expect(r.shape).toEqual([TEXTS.length, 77]);
        expect(r.ids, url).toEqual(referenceIds);
        stamp(NAME, `tokenizer ids equal on ${url}`);
      }
      expect(devUrl, 'the dev-server test ran first').not.toBe('');
    });
  });
});
