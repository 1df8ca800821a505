/**
 * The packed package in a blank Node ESM app (npm ci of the tarball, offline): what it ships, a
 * SAM segmentation through both entries ('samclip-webgpu' and 'samclip-webgpu/node') that gives the
 * same mask as the library in this repository, and `npx samclip demo` from the installed package.
 */
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.js';
import { readImage } from '../../src/io/decode.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { pngSize } from '../cli/semseg-helpers.js';
import { DOG, SAM_TINY, installApp, ok, run, stamp, tarballFiles } from './helpers.js';

const NAME = 'node-app';
const POINT: [number, number] = [400, 300];

/** Every file under `dir`, relative to it. */
function walk(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name), base) : [relative(base, join(dir, e.name))]));
}

describe('a blank Node ESM app with the packed package installed', { timeout: 240_000 }, () => {
  let app: { dir: string; tarball: string };
  let pkgDir: string;

  beforeAll(async () => {
    app = await installApp('node', { webgpu: true });
    pkgDir = join(app.dir, 'node_modules', 'samclip-webgpu');
    stamp(NAME, `installed ${app.tarball} into ${app.dir}`);
  }, 600_000);

  afterAll(() => {
    if (app) rmSync(app.dir, { recursive: true, force: true });
  });

  it('the tarball holds the built library, the platform seam, the CLI and the assets it uses; no sources, tests or fixtures', () => {
    const files = tarballFiles(app.tarball).map((f) => f.replace(/^package\//, ''));
    const allowed = [/^lib\/.+\.(js|js\.map|d\.ts)$/, /^platform\/(node\.js|browser\.js|platform\.d\.ts)$/, /^types\/ts5\/(index|node|worker)\.d\.ts$/, /^bin\/samclip\.mjs$/, /^assets\/(README\.md|bpe_simple_vocab_16e6\.txt\.gz|dog\.jpg)$/, /^(package\.json|README\.md|LICENSE)$/];
    const unexpected = files.filter((f) => !allowed.some((re) => re.test(f)));
    expect(unexpected, 'files the package should not ship').toEqual([]);
    expect(files.filter((f) => /^lib\/cli\/.*\.d\.ts$/.test(f)), 'declarations of the CLI (nobody imports it)').toEqual([]);
    const size = readFileSync(app.tarball).length;
    console.log(`[consumers/${NAME}] ${app.tarball}: ${files.length} files, ${(size / 1e6).toFixed(2)} MB packed`);
    // Everything package.json points at is there.
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    const targets: string[] = [pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>)];
    const collect = (v: unknown): void => {
      if (typeof v === 'string') targets.push(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(collect);
    };
    collect(pkg.exports);
    collect(pkg.imports);
    const missing = targets.filter((t) => t.startsWith('./') || !t.includes(':')).filter((t) => !files.includes(t.replace(/^\.\//, '')));
    expect(missing, 'package.json targets missing from the tarball').toEqual([]);
    // Only the Node entry has an import-time effect (it installs the hub's Node defaults).
    expect(pkg.sideEffects).toEqual(['./lib/node/index.js']);
  });

  it('source maps carry their sources (the .ts files are not shipped)', () => {
    const maps = walk(join(pkgDir, 'lib')).filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(100);
    const bad = maps.filter((m) => {
      const j = JSON.parse(readFileSync(join(pkgDir, 'lib', m), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      return !j.sourcesContent || j.sourcesContent.length !== j.sources.length || j.sourcesContent.some((c) => typeof c !== 'string' || c.length === 0);
    });
    expect(bad, 'maps without their sources').toEqual([]);
  });

  it(`segments the tiny SAM (point ${POINT}): the same mask as the library in this repository`, async () => {
    const out = join(app.dir, 'dog.mask');
    // The app (a child process) and the library here run at the same time: each is mostly shader compiles.
    const appRun = run(process.execPath, ['segment.mjs', SAM_TINY, DOG, String(POINT[0]), String(POINT[1]), out], { cwd: app.dir });
    const ctx = await GpuContext.create();
    try {
      const predictor = await SamPredictor.load(ctx, SAM_TINY);
      const photo = await readImage(DOG);
      const emb = await predictor.encode(photo);
      const lib = await predictor.predict(emb, { points: [POINT], labels: [1] }, { multimaskOutput: false });
      emb.dispose();
      predictor.dispose();
      const r = ok(await appRun, 'node segment.mjs');
      const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { adapter: string; width: number; height: number; iouPredictions: number[] };
      stamp(NAME, `the app segmented dog.jpg on ${summary.adapter}`);
      const mask = new Uint8Array(readFileSync(out));
      expect([summary.width, summary.height]).toEqual([photo.width, photo.height]);
      expect(mask.length).toBe(photo.width * photo.height);
      const inside = mask.reduce((s, v) => s + v, 0);
      console.log(`[consumers/${NAME}] app mask: ${inside} of ${mask.length} pixels inside; IoU prediction ${summary.iouPredictions[0]} (library ${lib.iouPredictions[0]})`);
      expect(inside, 'a mask that is neither empty nor everything').toBeGreaterThan(0);
      expect(inside).toBeLessThan(mask.length);
      // Same code, same adapter, same input: identical.
      expect(Buffer.from(mask).equals(Buffer.from(lib.masks[0]!)), 'the app mask equals the library mask').toBe(true);
      expect(summary.iouPredictions).toEqual(Array.from(lib.iouPredictions));
      expect(pngSize(`${out}.png`)).toEqual([photo.width, photo.height]);
    } finally {
      ctx.destroy();
    }
  });

  it('npx samclip demo runs from the installed package (compiled CLI, shipped photo) with advice for npx', async () => {
    expect(walk(pkgDir).some((f) => f.startsWith('src/') || (f.endsWith('.ts') && !f.endsWith('.d.ts'))), 'sources in the installed package').toBe(false);
    const cache = join(app.dir, 'samclip-cache');
    const r = await run('npx', ['--no-install', 'samclip', 'demo', '--out-dir', 'out', '--cache', cache], { cwd: app.dir, env: { npm_config_offline: 'true' } });
    const ctx = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    expect(r.code, ctx).toBe(0);
    stamp(NAME, 'npx samclip demo finished');
    expect(r.stderr, ctx).toMatch(/Real weights are not in the cache/);
    expect(r.stderr, ctx).toMatch(/^ {4}npx samclip weights pull sam-vit-b$/m);
    expect(r.stderr, ctx).toMatch(/^ {4}npx samclip weights pull clip-vit-b-16$/m);
    expect(r.stderr + r.stdout, 'repository advice from an installed package').not.toMatch(/npm run|repository|clone/);
    expect(r.stdout, ctx).toMatch(/RANDOM weights and are meaningless/);
    expect(r.stdout, ctx).toMatch(/^dog\s+\d+\s+[\d.]+%\s+[\d.]+\s+#[0-9a-f]{6}$/m);
    expect(pngSize(join(app.dir, 'out', 'dog-labels.png'))).toEqual([800, 534]);
    expect(pngSize(join(app.dir, 'out', 'dog-overlay.png'))).toEqual([800, 534]);
    expect(r.stdout, 'the shipped photo').toContain(join('node_modules', 'samclip-webgpu', 'assets', 'dog.jpg'));
  });
});
