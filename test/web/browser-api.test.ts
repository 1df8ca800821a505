/**
 * The library's browser-only parts, in Debian's Chromium (WebGPU on SwiftShader here, f32 path):
 *
 *  - Image inputs (test/web/pages/image-inputs.ts): every browser form of one picture (a lossless
 *    PNG of the dog photo as Pillow decodes it) must give the same pixels through toImageU8, and the
 *    same embedding and masks through SamPredictor as the ImageU8 made from the reference bytes;
 *    every other facade's image-taking call is checked with one browser form. The JPEG itself,
 *    decoded by Chromium (Blob, URL, <img>, ImageBitmap), is compared with Pillow 9.4's decode
 *    (test/fixtures/images/decoded_rgb.safetensors, libjpeg-turbo).
 *  - Relative weight URLs: the pages load the tiny models by URLs relative to the page.
 *  - The web-worker wrapper (test/web/pages/worker-page.ts): the worker's answers equal the page
 *    thread's for the same bundle and pixels; errors keep their name and message; cancellation;
 *    ImageBitmap transfer; and the page's long tasks during an encode on each side (printed, not
 *    asserted: timings depend on the machine).
 *  - Every kernel variant forced (test/web/pages/kernel-variants.ts: matmul, row reductions,
 *    attention algorithms global and windowed, conv2d) against double-precision CPU references, on a
 *    second CPU adapter with its own subgroup size and shader compiler.
 *
 * One page does both (test/web/pages/main.ts, so the page thread compiles its kernels once), built
 * with Vite (test/web/pages/vite.config.ts) and served on 127.0.0.1 by tools/serve-demo.ts. Most of
 * the time is SwiftShader compiling WGSL, on the page and again in the worker. Skipped, with a
 * message, when /usr/bin/chromium is absent.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../../src/io/encode.js';
import { type StaticServer, startStaticServer } from '../../tools/serve-demo.js';
import { readSafetensorsSimple } from '../helpers/read-safetensors-simple.js';
import type { PipelineReport, PixelReport } from './pages/image-inputs.js';
import type { KernelVariantsReport } from './pages/kernel-variants.js';
import type { LongTasks } from './pages/worker-page.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHROMIUM = process.env.SAMCLIP_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IMAGES = join(ROOT, 'test', 'fixtures', 'images');

if (!HAVE_CHROMIUM) console.warn(`test/web/browser-api.test.ts: skipped, ${CHROMIUM} not found (Debian: apt-get install chromium)`);

/** The test pictures: the dog photo as Pillow decodes it (raw and as PNG), the photos, and an RGBA picture with every alpha level. */
function writeAssets(dir: string): void {
  const dog = readSafetensorsSimple(join(IMAGES, 'decoded_rgb.safetensors')).u8('dog');
  expect(dog.length).toBe(534 * 800 * 3);
  writeFileSync(join(dir, 'dog.rgb'), dog);
  writeFileSync(join(dir, 'dog.png'), encodePng({ width: 800, height: 534, channels: 3, data: dog }));
  copyFileSync(join(IMAGES, 'dog.jpg'), join(dir, 'dog.jpg'));
  copyFileSync(join(IMAGES, 'truck.jpg'), join(dir, 'truck.jpg'));
  const [w, h] = [64, 48];
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      rgba.set([(x * 4) & 255, (y * 5) & 255, (x * y) & 255, (x + y * w) & 255], i);
    }
  }
  writeFileSync(join(dir, 'alpha.rgba'), rgba);
  writeFileSync(join(dir, 'alpha.png'), encodePng({ width: w, height: h, channels: 4, data: rgba }));
}

function table(rows: Record<string, unknown>[]): string {
  const keys = Object.keys(rows[0] ?? {});
  const fmt = (v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : String(v));
  return [keys.join(' | '), ...rows.map((r) => keys.map((k) => fmt(r[k])).join(' | '))].join('\n');
}

describe.skipIf(!HAVE_CHROMIUM)(`browser API in Chromium (skipped without ${CHROMIUM})`, { timeout: 30_000 }, () => {
  let outDir: string;
  let assets: string;
  let server: StaticServer;
  let browser: Browser;
  const pageErrors: string[] = [];
  let results: { imageInputs: any; worker: any; kernels: KernelVariantsReport };

  async function open(path: string): Promise<Page> {
    const page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning' || m.text().startsWith('[page]')) console.log(m.text().startsWith('[page]') ? `${path} ${m.text()}` : `[browser ${m.type()}] ${m.text()}`);
    });
    page.on('pageerror', (e) => {
      pageErrors.push(e.stack ?? e.message);
      console.log(`[browser pageerror] ${e.stack ?? e.message}`);
    });
    await page.goto(server.url + path);
    await page.waitForFunction(`document.getElementById('status')?.textContent === 'ready'`, null, { timeout: 20_000 });
    return page;
  }

  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'samclip-pages-'));
    assets = mkdtempSync(join(tmpdir(), 'samclip-assets-'));
    writeAssets(assets);
    const { build } = await import('vite');
    await build({ configFile: join(ROOT, 'test', 'web', 'pages', 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true, sourcemap: false } });
    server = await startStaticServer({
      '/': outDir,
      '/fixtures/': join(ROOT, 'test', 'fixtures'),
      '/pictures/': assets,
      '/repo-assets/': join(ROOT, 'assets'),
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--no-first-run'],
    });
    const page = await open('index.html');
    results = (await page.evaluate('window.__browserApi.run()')) as typeof results;
    await page.close();
  }, 400_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    for (const d of [outDir, assets]) if (d) rmSync(d, { recursive: true, force: true });
  });

  describe('image inputs', () => {
    type Report = {
      pngPixels: PixelReport[];
      alphaPixels: PixelReport[];
      alphaDetail: { alphaMax: number; opaqueMax: number; translucentMax: number };
      jpeg: PixelReport[];
      video: PixelReport | { error: string };
      pipeline: PipelineReport[];
      facades: Record<string, number>;
      errors: Record<string, string>;
      adapter: string;
    };
    let r: Report;

    beforeAll(() => {
      r = results.imageInputs as Report;
      console.log(`[image inputs] adapter: ${r.adapter}`);
      console.log(`[image inputs] PNG (lossless) through toImageU8, vs the reference bytes:\n${table(r.pngPixels as never)}`);
      console.log(`[image inputs] RGBA PNG (every alpha level):\n${table(r.alphaPixels as never)}\n${JSON.stringify(r.alphaDetail)}`);
      console.log(`[image inputs] dog.jpg decoded by Chromium vs Pillow 9.4 (libjpeg-turbo):\n${table(r.jpeg as never)}`);
      console.log(`[image inputs] HTMLVideoElement: ${JSON.stringify(r.video)}`);
      console.log(`[image inputs] SamPredictor.encode + predict vs the ImageU8 path:\n${table(r.pipeline as never)}`);
      console.log(`[image inputs] facades: ${JSON.stringify(r.facades, null, 1)}`);
      console.log(`[image inputs] errors: ${JSON.stringify(r.errors, null, 1)}`);
    });

    it('every browser form of a lossless picture gives exactly its pixels', () => {
      expect(r.pngPixels.map((p) => p.form)).toHaveLength(10);
      for (const p of r.pngPixels) {
        expect(p.error, p.form).toBeUndefined();
        expect([p.width, p.height, p.channels], p.form).toEqual([800, 534, 4]);
        expect(p.maxDelta, `${p.form}: ${p.differing} values differ`).toBe(0);
        expect(p.alphaMin, p.form).toBe(255);
      }
    });

    it('alpha: straight alpha is kept exactly, colour is exact where opaque', () => {
      const blob = r.alphaPixels.find((p) => p.form === 'Blob')!;
      expect(blob.error).toBeUndefined();
      expect([blob.width, blob.height]).toEqual([64, 48]);
      expect(r.alphaDetail.alphaMax, 'alpha channel').toBe(0);
      expect(r.alphaDetail.opaqueMax, 'colour of opaque pixels').toBe(0);
    });

    it('a JPEG decoded by Chromium gives Pillow\'s (libjpeg-turbo) pixels', () => {
      for (const p of r.jpeg) {
        expect([p.width, p.height], p.form).toEqual([800, 534]);
        expect(p.maxDelta, `${p.form}: max |Chromium - Pillow| (mean ${p.meanDelta}, ${p.differing} values differ)`).toBe(0);
      }
    });

    it('the video element form reads the current frame', () => {
      expect('error' in r.video ? r.video.error : undefined).toBeUndefined();
      const v = r.video as PixelReport;
      expect([v.width, v.height]).toEqual([800, 534]);
      // Exact here (Chromium hands the captured canvas frame over as RGB); a capture that goes
      // through YUV 4:2:0 elsewhere would be close to, not equal to, the picture.
      expect(v.meanDelta).toBeLessThan(4);
    });

    it('SamPredictor.encode / predict give the ImageU8 path\'s embedding and masks for every form', () => {
      expect(r.pipeline).toHaveLength(10);
      for (const p of r.pipeline) {
        expect(p.error, p.form).toBeUndefined();
        expect(p.embeddingMaxDiff, p.form).toBe(0);
        expect(p.maskDiff, p.form).toBe(0);
        expect(p.iouMaxDiff, p.form).toBe(0);
      }
    });

    it('AMG, ClipClassifier and SamClip take browser images too, with the same results', () => {
      expect(r.facades['SamAutomaticMaskGenerator: masks']).toBeGreaterThan(0);
      for (const [k, v] of Object.entries(r.facades)) {
        if (k === 'SamAutomaticMaskGenerator: masks') continue;
        expect(v, k).toBe(0);
      }
      expect(Object.keys(r.facades)).toHaveLength(8);
    });

    it('bad inputs give errors that say what is wrong', () => {
      expect(r.errors['missing URL']).toMatch(/^ImageError: SamPredictor\.encode: http:\/\/127\.0\.0\.1:\d+\/pictures\/no-such\.png: HTTP 404/);
      expect(r.errors['not an image']).toMatch(/^ImageError: SamPredictor\.encode: Blob: the browser cannot decode it as an image \(type 'text\/plain', 5 bytes\)/);
      expect(r.errors['closed ImageBitmap']).toMatch(/^ImageError: SamPredictor\.encode: the ImageBitmap is closed/);
      expect(r.errors['a plain object']).toMatch(/^ImageError: SamPredictor\.encode: expected an ImageU8 .* got an object with \{width, height, data\}/);
      expect(pageErrors).toEqual([]);
    });
  });

  describe('web worker', () => {
    let r: Record<string, any>;

    beforeAll(() => {
      r = results.worker;
      const { longTasks, ...rest } = r;
      console.log(`[worker] ${JSON.stringify(rest, null, 1)}`);
      const rows = (side: string, l: LongTasks[]) => l.map((x, i) => ({ side, run: i + 1, longTasks: x.count, totalMs: x.totalMs, maxMs: x.maxMs, maxGapMs: x.maxGapMs, wallMs: x.wallMs }));
      console.log(`[worker] page long tasks during an encode of truck.jpg (1800x1200, decode included):\n${table([...rows('page thread', longTasks.pageThread), ...rows('worker', longTasks.worker)])}`);
    });

    it('loads the bundle by a page-relative URL and transfers the ImageBitmap', () => {
      expect(r.model).toMatchObject({ family: 'samclip', role: 'samclip' });
      expect(r.model.name).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/fixtures\/reference\/samclip\/samclip_tiny\.safetensors$/);
      expect(r.embedding).toMatchObject({ originalSize: [534, 800] });
      expect(r.bitmapTransferred).toBe(true);
    });

    it('answers like the page thread: masks, semantic label maps, text masks, classes', () => {
      expect(r.predict).toMatchObject({ masks: 3, maskDiff: 0, iouMaxDiff: 0, lowResMaxDiff: 0, isUint8Array: true });
      expect(r.semantic).toMatchObject({ refinedLabelDiff: 0, headLabelDiff: 0, classes: ['dog', 'grass', 'sky'] });
      expect(r.others.textMaskDiff).toBe(0);
      expect(r.others.classifyProbMaxDiff).toBe(0);
      expect(r.others.classEmbeddingsMaxDiff).toBe(0);
    });

    it('re-throws worker errors with their name and message', () => {
      expect(r.errors.page).not.toBeNull();
      expect(r.errors.page.fromWorker).toBe(false);
      expect(r.errors.worker).toEqual({ ...r.errors.page, fromWorker: true });
      expect(r.errors.missingImage.name).toBe('ImageError');
      expect(r.errors.missingImage.message).toMatch(/pictures\/no-such\.png: HTTP 404/);
      expect(r.errors.unknownEmbedding.message).toMatch(/embedding 9999 is not in the worker/);
      expect(r.errors.plainObject.name).toBe('ImageError');
    });

    it('cancels: a queued call rejects at once, a running one stops, and nothing is left in the worker', () => {
      const a = r.abort;
      expect(a.secondErr).toMatchObject({ name: 'AbortError' });
      expect(a.thirdErr).toMatchObject({ name: 'AbortError' });
      expect(a.preAborted).toMatchObject({ name: 'AbortError' });
      expect(a.afterCancel.embeddings, 'the first encode is kept, the cancelled ones are not').toBe(a.before.embeddings + 1);
      expect(a.after).toEqual(a.before);
    });

    it('a terminated worker says so', () => {
      expect(r.afterTerminate).toMatchObject({ name: 'SamWorkerError', message: 'the worker was terminated' });
      expect(pageErrors).toEqual([]);
    });
  });

  describe('kernel variants, forced, on the browser adapter', () => {
    let r: KernelVariantsReport;
    beforeAll(() => {
      r = results.kernels;
      const rows = r.reports.map((v) => ({ op: v.op, variant: v.variant, 'rel L2': v.relL2?.toExponential(1) ?? '-', 'max abs': v.maxAbs?.toExponential(1) ?? '-', note: v.skipped ? `skipped: needs ${v.skipped}` : (v.error ?? '') }));
      console.log(`[kernel variants] ${r.adapter}; subgroups ${r.subgroups} (sizes ${JSON.stringify(r.subgroupSizes)})\n${table(rows)}`);
    });

    it('every variant the adapter can run matches the double-precision reference (rel L2 <= 1e-5)', () => {
      expect(r.reports.length).toBe(8 + 6 + 6 + 3);
      for (const v of r.reports) {
        const name = `${v.op} ${v.variant}`;
        expect(v.error, name).toBeUndefined();
        if (v.skipped) {
          // Only the subgroup variants may be missing, and only where the adapter lacks the feature.
          expect(v.skipped, name).toBe('subgroups');
          expect(r.subgroups, name).toBe(false);
          continue;
        }
        expect(v.relL2, name).toBeLessThanOrEqual(1e-5);
      }
    });
  });
});
