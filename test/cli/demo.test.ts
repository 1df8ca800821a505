/**
 * `npm run demo` (= `samclip demo`), the README's first command: without real weights in the cache
 * it says exactly how to get them, runs on the tiny seeded-random SAM-CLIP bundle while saying so,
 * and writes a label map and an overlay at the photo's size; with (stand-in) pulled SAM + CLIP
 * checkpoints in the cache it runs composite mode on them instead.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addCacheEntry } from '../helpers/model-cache.js';
import { CLIP_TINY, CLI_TIMEOUT, ROOT, SAM_TINY, expectOk, samclip } from './helpers.js';
import { pngSize } from './semseg-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'samclip-demo-'));

describe('demo', { timeout: CLI_TIMEOUT }, () => {
  it('npm run demo is `samclip demo`', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.demo).toMatch(/^node bin\/samclip\.mjs demo\b/);
  });

  it('no weights in the cache: says how to get them, runs on random weights saying so, writes out/ pictures; cached weights: composite mode', async () => {
    const out = join(tmp, 'out');
    // Stand-ins for pulled checkpoints: the tiny public-format SAM and CLIP under the registry's names.
    const cache = join(tmp, 'cache');
    addCacheEntry(cache, 'sam-vit-b', SAM_TINY);
    addCacheEntry(cache, 'clip-vit-b-16', CLIP_TINY);
    const [r, c] = await Promise.all([
      samclip(['demo', '--out-dir', out, '--cache', join(tmp, 'empty-cache')]),
      samclip(['demo', '--out-dir', join(tmp, 'out-cached'), '--cache', cache, '--no-refine', '--json']),
    ]);
    expectOk(r);
    expect(r.stderr).toMatch(/Real weights are not in the cache/);
    expect(r.stderr).toMatch(/^ {4}npm run samclip -- weights pull sam-vit-b$/m);
    expect(r.stderr).toMatch(/^ {4}npm run samclip -- weights pull clip-vit-b-16$/m);
    expect(r.stderr).toMatch(/SEEDED RANDOM WEIGHTS/);
    expect(r.stderr).toMatch(/10 minutes or more on a CPU adapter/);
    expect(r.stdout).toMatch(/RANDOM weights and are meaningless/);
    const labels = join(out, 'dog-labels.png');
    const overlay = join(out, 'dog-overlay.png');
    expect(r.stdout).toContain(`${labels}      label map`);
    expect(r.stdout).toContain(`${overlay}     the photo with the classes and a legend`);
    expect(r.stdout).toMatch(/^dog\s+\d+\s+[\d.]+%\s+[\d.]+\s+#[0-9a-f]{6}$/m);
    expect(pngSize(labels)).toEqual([800, 534]);
    expect(pngSize(overlay)).toEqual([800, 534]);

    expectOk(c);
    const j = JSON.parse(c.stdout);
    expect(j.weights).toMatchObject({ mode: 'composite', source: 'cache', randomWeights: null });
    expect(j.weights.sam).toBe(join(cache, 'sam-vit-b', 'model.safetensors'));
    expect(c.stderr).not.toMatch(/RANDOM/);
    expect(c.stderr).toMatch(/composite mode: sam-vit-b \+ clip-vit-b-16 from the cache/);
    expect(pngSize(j.out)).toEqual([800, 534]);
    expect(pngSize(j.overlay)).toEqual([800, 534]);
  });
});
