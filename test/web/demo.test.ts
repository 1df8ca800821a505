/**
 * End-to-end test of the browser demo (examples/web): the page is built with Vite, served on
 * 127.0.0.1 by tools/serve-demo.ts, and driven in Debian's Chromium. Without a GPU, Chromium's
 * WebGPU adapter is SwiftShader, which has no shader-f16: the f32 path is what runs here.
 *
 * The page runs the engine in a web worker (src/worker, `createSamWorker`): the worker loads the
 * tiny random-weight SAM-CLIP bundle by URL (HTTP Range) and encodes the demo photo once, and a
 * click on the canvas must give the mask the library computes on Node (Dawn,
 * lavapipe here) for the same pixels and prompt; a drag gives the box prompt's mask; typed class
 * names give the library's semantic label map. Masks are compared pixel by pixel: two GPUs round
 * differently, so a few boundary pixels may flip; the agreement is printed and must be >= 99.9 %.
 *
 * The reference starts from Pillow's decode of the photo (test/fixtures/images/decoded_rgb.safetensors):
 * Chromium decodes JPEG with libjpeg-turbo and gives the same pixels (test/web/browser-api.test.ts
 * checks it), as does Node's readImage.
 * The page's long tasks (PerformanceObserver) while the photo is decoded and encoded are printed.
 *
 * Skipped, with a message, when /usr/bin/chromium is absent (tools/setup.sh installs it).
 * Screenshots go to test-results/: web-demo-mask.png after the click, web-demo.png after the semantic
 * segmentation (all timing rows filled; docs/images/web-demo.png is a copy).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.js';
import type { ImageU8 } from '../../src/image/image.js';
import { SamClip, type SamClipImageEmbedding } from '../../src/pipelines/samclip.js';
import type { SamPrompt } from '../../src/pipelines/sam-predictor.js';
import { type StaticServer, startStaticServer } from '../../tools/serve-demo.js';
import { mismatches } from '../helpers/compare.js';
import { readSafetensorsSimple } from '../helpers/read-safetensors-simple.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHROMIUM = process.env.SAMCLIP_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const BUNDLE_URL = '/fixtures/reference/samclip/samclip_tiny.safetensors';
const BUNDLE = join(ROOT, 'test', 'fixtures', 'reference', 'samclip', 'samclip_tiny.safetensors');
const PHOTO_PIXELS = join(ROOT, 'test', 'fixtures', 'images', 'decoded_rgb.safetensors');
const RESULTS = join(ROOT, 'test-results');
/** Per-pixel agreement required between the page's masks and the library's on Node. */
const MIN_AGREEMENT = 0.999;
/** The demo photo is 800x534; the click lands on the dog. */
const CLICK: [number, number] = [400, 300];
const DRAG: [number, number, number, number] = [150, 60, 560, 520];
const CLASSES = 'dog, grass, sky';

if (!HAVE_CHROMIUM) {
  console.warn(`test/web/demo.test.ts: skipped, ${CHROMIUM} not found (Debian: apt-get install chromium, or run tools/setup.sh)`);
}

/** What main.ts exposes as window.__samclipDemo (the parts read here). */
interface Hooks {
  pending: number;
  ready: boolean;
  previews: number;
  previewBusy: boolean;
  errors: string[];
  demo: { image: unknown; models: { role: string }[] };
  lastMask: { seq: number; width: number; height: number; multimaskOutput: boolean; maskIndex: number; iouPredictions: number[]; prompt: { points: [number, number][]; labels: number[]; box: [number, number, number, number] | null } } | null;
  lastSemantic: { seq: number; classes: string[]; refined: boolean; templates: string; result: { width: number; height: number; classes: string[] } } | null;
  adapter: { description: string; features: { f16: boolean; timestamps: boolean } } | null;
  maskBase64(): string | null;
  labelsBase64(): string | null;
}
type Win = { __samclipDemo?: Hooks };

/** Fraction of equal entries, with a readable summary. */
function agreement(page: Uint8Array, lib: ArrayLike<number>): { frac: number; diff: number; first: number } {
  expect(page.length, 'mask length').toBe(lib.length);
  const { diff, first } = mismatches(page, lib);
  return { frac: 1 - diff / lib.length, diff, first };
}

const b64 = (s: string | null, what: string): Uint8Array => {
  expect(s, `${what}: the page has none`).not.toBeNull();
  return new Uint8Array(Buffer.from(s!, 'base64'));
};

describe.skipIf(!HAVE_CHROMIUM)(`browser demo in Chromium (WebGPU; skipped without ${CHROMIUM})`, { timeout: 90_000 }, () => {
  let outDir: string;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  // The reference side (Node, Dawn): loaded while the page starts, embedded once the page's pixels are known.
  let ctx: GpuContext;
  let model: Promise<SamClip>;
  let embedding: Promise<SamClipImageEmbedding> | null = null;
  let pixels: ImageU8;
  const t0 = performance.now();
  const stamp = (what: string) => console.log(`[web] ${((performance.now() - t0) / 1000).toFixed(1)} s  ${what}`);

  const hooks = <T>(fn: (h: Hooks) => T): Promise<T> =>
    page.evaluate(`(${fn.toString()})(window.__samclipDemo)`) as Promise<T>;

  /** Wait until the page has nothing in flight and `cond` holds; page errors end the wait at once. */
  async function settle(what: string, cond: string, timeout = 80_000): Promise<void> {
    const started = performance.now();
    try {
      await page.waitForFunction(
        `(() => { const h = window.__samclipDemo; return h && (h.errors.length > 0 || (h.pending === 0 && !h.previewBusy && (${cond}))); })()`,
        null,
        { timeout, polling: 100 },
      );
    } catch (e) {
      const state = await page.evaluate(() => ({ status: document.getElementById('status')?.textContent, errors: (window as Win).__samclipDemo?.errors }));
      throw new Error(`${what}: not done after ${timeout} ms (page status '${state.status}', errors ${JSON.stringify(state.errors)}): ${(e as Error).message}`);
    }
    const errors = await hooks((h) => h.errors);
    expect(errors, `${what}: errors shown on the page`).toEqual([]);
    expect(pageErrors, `${what}: uncaught page errors`).toEqual([]);
    stamp(`${what} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  }

  /** A point of the photo (image pixels) -> page coordinates on the overlay canvas. */
  async function toPage(x: number, y: number): Promise<{ x: number; y: number }> {
    const r = await page.locator('#overlay-canvas').boundingBox();
    expect(r, 'overlay canvas has a box').not.toBeNull();
    return { x: r!.x + ((x + 0.5) / 800) * r!.width, y: r!.y + ((y + 0.5) / 534) * r!.height };
  }

  beforeAll(async () => {
    ctx = await GpuContext.create();
    model = SamClip.load(ctx, BUNDLE);
    model.catch(() => undefined); // reported where awaited
    mkdirSync(RESULTS, { recursive: true });
    // Build into a folder of our own: dist/web may be in use by a developer's server.
    outDir = mkdtempSync(join(tmpdir(), 'samclip-web-'));
    const { build } = await import('vite');
    await build({ configFile: join(ROOT, 'examples', 'web', 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true, sourcemap: false } });
    stamp('page built');
    server = await startStaticServer({ '/': outDir, '/fixtures/': join(ROOT, 'test', 'fixtures') });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') console.log(`[browser ${m.type()}] ${m.text()}`);
    });
    page.on('pageerror', (e) => {
      pageErrors.push(e.stack ?? e.message);
      console.log(`[browser pageerror] ${e.stack ?? e.message}`);
    });
    await page.goto(server.url);
    await settle('WebGPU started', 'h.ready', 20_000);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
    (await embedding?.catch(() => null))?.dispose();
    (await model?.catch(() => null))?.dispose();
    if (ctx) {
      await ctx.sync();
      ctx.destroy();
    }
  });

  it('runs on the f32 path when the adapter has no shader-f16', async () => {
    const a = await hooks((h) => h.adapter);
    console.log(`[web] adapter: ${a!.description}, shader-f16 ${a!.features.f16}, timestamp-query ${a!.features.timestamps}`);
    expect(a).not.toBeNull();
    if (!a!.features.f16) {
      expect(await page.locator('#dtype option[value="f16"]').isDisabled(), 'f16 offered without shader-f16').toBe(true);
    }
    expect(await page.locator('#dtype').inputValue()).toBe('f32');
  });

  it('loads the SAM-CLIP bundle by URL with HTTP Range, and encodes the demo photo once', async () => {
    await page.fill('#weights-url', BUNDLE_URL);
    await page.click('#weights-load');
    await settle('weights loaded', 'h.demo.models.length > 0');
    expect(await page.textContent('#models')).toContain('SAM-CLIP bundle (merged)');
    const reads = server.log.filter((r) => r.path === BUNDLE_URL);
    expect(reads.length, 'requests for the bundle').toBeGreaterThan(1);
    expect(reads.every((r) => r.status === 206 && r.range !== null), `bundle read by ranges: ${JSON.stringify(reads.slice(0, 3))}`).toBe(true);
    expect(await page.locator('#semantic').isDisabled(), 'semantic controls enabled by a SAM-CLIP bundle').toBe(false);

    // The reference embeds the same pixels while the page works.
    pixels = { width: 800, height: 534, channels: 3, data: readSafetensorsSimple(PHOTO_PIXELS).u8('dog') };
    embedding = model.then((m) => m.embed(pixels));
    embedding.catch(() => undefined);
    // Long tasks on the page thread from the click to the end of the encode (the engine is in the worker).
    const since = (await page.evaluate(`(() => {
      window.__longTasks = [];
      new PerformanceObserver((l) => window.__longTasks.push(...l.getEntries().map((e) => ({ start: e.startTime, ms: e.duration })))).observe({ type: 'longtask' });
      return performance.now();
    })()`)) as number;
    await page.click('#image-demo');
    await settle('photo encoded', 'h.demo.image !== null');
    await page.waitForTimeout(100); // long-task entries arrive after their task
    const longTasks = (await page.evaluate(`window.__longTasks.filter((e) => e.start >= ${since})`)) as { start: number; ms: number }[];
    const total = longTasks.reduce((s, e) => s + e.ms, 0);
    console.log(`[web] page long tasks while the photo was decoded and encoded: ${longTasks.length}, ${total.toFixed(0)} ms in all, longest ${Math.max(0, ...longTasks.map((e) => e.ms)).toFixed(0)} ms`);
    expect(server.log.some((r) => /\/assets\/worker-[\w-]+\.js$/.test(r.path) && r.status === 200), 'the engine worker script was loaded').toBe(true);
    expect(await page.textContent('#image-info')).toContain('800x534');
    const timings = await page.textContent('#timings');
    expect(timings).toContain('encode (image encoder)');
    expect(timings).toContain('image_encoder'); // a profiler stage row (timestamp-query)
  });

  it(`a click gives the library's mask (>= ${100 * MIN_AGREEMENT} % of pixels)`, async () => {
    const p = await toPage(...CLICK);
    await page.mouse.move(p.x, p.y); // hovering asks for a live preview of this point
    await settle('hover preview', 'h.previews > 0');
    await page.mouse.down();
    await page.mouse.up();
    await settle('click mask', 'h.lastMask !== null');
    const m = (await hooks((h) => h.lastMask))!;
    const [x, y] = m.prompt.points[0]!;
    expect(Math.abs(x - CLICK[0]) <= 1 && Math.abs(y - CLICK[1]) <= 1, `click landed at ${x},${y}`).toBe(true);
    expect(m.prompt.labels).toEqual([1]);
    expect(m.multimaskOutput, 'one click: three candidates').toBe(true);

    const lib = await (await model).predictor.predict((await embedding!).sam, { points: m.prompt.points, labels: [1] }, { multimaskOutput: true });
    const scores = Array.from(lib.iouPredictions);
    const best = scores.indexOf(Math.max(...scores));
    console.log(`[web] IoU predictions: page ${m.iouPredictions.map((v) => v.toFixed(4)).join(' ')}, library ${scores.map((v) => v.toFixed(4)).join(' ')}`);
    expect(m.maskIndex, 'best candidate').toBe(best);
    const a = agreement(b64(await hooks((h) => h.maskBase64()), 'mask'), lib.masks[best]!);
    console.log(`[web] click mask: ${(100 * a.frac).toFixed(4)} % of pixels agree with the library (${a.diff} differ)`);
    expect(a.frac, `${a.diff} pixels differ, first at index ${a.first}`).toBeGreaterThanOrEqual(MIN_AGREEMENT);
    expect(await page.textContent('#mask-info')).toMatch(/mask \d of 3, predicted IoU/);
    expect(await page.textContent('#timings')).toContain('decode + post-process');
    await page.screenshot({ path: join(RESULTS, 'web-demo-mask.png'), fullPage: true });
  });

  it(`a drag gives the library's mask for the box (with the point)`, async () => {
    const before = (await hooks((h) => h.lastMask!.seq))!;
    const a0 = await toPage(DRAG[0], DRAG[1]);
    const a1 = await toPage(DRAG[2], DRAG[3]);
    await page.mouse.move(a0.x, a0.y);
    await page.mouse.down();
    await page.mouse.move(a1.x, a1.y, { steps: 4 });
    await page.mouse.up();
    await settle('box mask', `h.lastMask !== null && h.lastMask.seq > ${before} && h.lastMask.prompt.box !== null`);
    const m = (await hooks((h) => h.lastMask))!;
    m.prompt.box!.forEach((v, i) => expect(Math.abs(v - DRAG[i]!), `box ${m.prompt.box}`).toBeLessThanOrEqual(1));
    expect(m.multimaskOutput, 'box: one mask').toBe(false);
    const prompt: SamPrompt = { points: m.prompt.points, labels: m.prompt.labels, box: m.prompt.box! };
    const lib = await (await model).predictor.predict((await embedding!).sam, prompt, { multimaskOutput: false });
    const a = agreement(b64(await hooks((h) => h.maskBase64()), 'mask'), lib.masks[0]!);
    console.log(`[web] box mask: ${(100 * a.frac).toFixed(4)} % of pixels agree with the library (${a.diff} differ)`);
    expect(a.frac, `${a.diff} pixels differ, first at index ${a.first}`).toBeGreaterThanOrEqual(MIN_AGREEMENT);
  });

  it(`typed class names give the library's semantic label map`, async () => {
    await page.fill('#classes', CLASSES);
    // One prompt template per class: the 80-template ensemble is 240 text-tower rows, ~7 s on SwiftShader.
    await page.selectOption('#templates', 'single');
    await page.click('#segment-semantic');
    await settle('semantic segmentation', 'h.lastSemantic !== null');
    const s = (await hooks((h) => h.lastSemantic))!;
    const classes = CLASSES.split(',').map((c) => c.trim());
    expect(s.classes).toEqual(classes);
    expect(s.refined).toBe(true);
    expect(s.templates).toBe('single');
    expect(await page.textContent('#legend')).toContain('grass');
    await page.screenshot({ path: join(RESULTS, 'web-demo.png'), fullPage: true });

    const lib = await (await model).segmentSemantic(await embedding!, classes, { refine: true, templates: 'single' });
    expect(s.result.classes).toEqual(lib.classes);
    const a = agreement(b64(await hooks((h) => h.labelsBase64()), 'label map'), lib.labelMap);
    console.log(`[web] semantic label map: ${(100 * a.frac).toFixed(4)} % of pixels agree with the library (${a.diff} differ)`);
    expect(a.frac, `${a.diff} pixels differ, first at index ${a.first}`).toBeGreaterThanOrEqual(MIN_AGREEMENT);
    const timings = await page.textContent('#timings');
    expect(timings).toContain('class text embeddings');
    expect(timings).toContain('semantic (refined)');
  });

  it('a picked file that is not a checkpoint gives an error naming it, and the loaded model stays', async () => {
    const name = 'not-weights.safetensors';
    await page.setInputFiles('#weights-file', { name, mimeType: 'application/octet-stream', buffer: Buffer.from('this is not a safetensors file') });
    await page.waitForFunction(`window.__samclipDemo.pending === 0 && window.__samclipDemo.errors.length > 0`, null, { timeout: 10_000 });
    const errors = await hooks((h) => h.errors);
    console.log(`[web] expected error on the page: ${errors[0]}`);
    expect(errors.length).toBe(1);
    expect(errors[0]).toContain(name);
    expect(await page.locator('#error').isVisible()).toBe(true);
    expect(await page.textContent('#models'), 'the bundle is still loaded').toContain('SAM-CLIP bundle (merged)');
    expect(pageErrors, 'uncaught page errors').toEqual([]);
  });
});
