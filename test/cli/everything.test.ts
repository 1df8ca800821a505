/**
 * `samclip everything` with the tiny reference SAM on the dog photo: one PNG per mask at the photo's
 * size, equal to the library's automatic masks for the same options, an overlay and masks.json.
 * (Random tiny weights make few confident, mostly image-wide masks, so the filters and the box NMS
 * are opened up and the grid kept small; the CLI passes every option through, so what is compared
 * is the wiring and the files.)
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { readImage } from '../../src/io/decode.js';
import { SamAutomaticMaskGenerator } from '../../src/pipelines/automatic-mask-generator.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { useGpu } from '../helpers/gpu.js';
import { DOG, SAM_TINY, expectOk, expectOneLineError, samclip, CLI_TIMEOUT } from './helpers.js';

const gpu = useGpu();
const tmp = mkdtempSync(join(tmpdir(), 'samclip-everything-'));
const OPTS = ['--points-per-side', '3', '--pred-iou-thresh', '0', '--stability-thresh', '0', '--box-nms-thresh', '1'];

describe('everything', { timeout: CLI_TIMEOUT }, () => {
  it('writes the library masks (largest first), an overlay and masks.json', async () => {
    const out = join(tmp, 'masks');
    const r = await samclip(['everything', DOG, '--out', out, '--weights', SAM_TINY, ...OPTS, '--json']);
    expectOk(r);
    const res = JSON.parse(r.stdout);

    const predictor = await SamPredictor.load(gpu(), SAM_TINY);
    const amg = new SamAutomaticMaskGenerator(predictor, { pointsPerSide: 3, predIouThresh: 0, stabilityScoreThresh: 0, boxNmsThresh: 1 });
    const lib = await amg.generate(await readImage(DOG));
    predictor.dispose();
    expect(lib.length).toBeGreaterThan(1);
    expect(res.count).toBe(lib.length);
    const order = lib.map((_, i) => i).sort((a, b) => lib[b]!.area - lib[a]!.area || a - b);

    const files = readdirSync(out).sort();
    expect(files).toEqual([...order.map((_, k) => `mask-${String(k).padStart(3, '0')}.png`), 'masks.json', 'overlay.png'].sort());
    order.forEach((i, k) => {
      const png = PNG.sync.read(readFileSync(join(out, `mask-${String(k).padStart(3, '0')}.png`)));
      expect([png.width, png.height, png.colorType]).toEqual([800, 534, 0]);
      const seg = lib[i]!.segmentation as Uint8Array;
      let diff = 0;
      for (let p = 0; p < seg.length; p++) if ((png.data[4 * p]! === 255 ? 1 : 0) !== seg[p]) diff++;
      expect(diff, `mask ${k}: pixels differing from the library's mask ${i}`).toBe(0);
      expect(res.masks[k]).toMatchObject({ area: lib[i]!.area, bbox: lib[i]!.bbox });
      expect(res.masks[k].predictedIou).toBeCloseTo(lib[i]!.predictedIou, 6);
    });
    const ov = PNG.sync.read(readFileSync(join(out, 'overlay.png')));
    expect([ov.width, ov.height]).toEqual([800, 534]);
    expect(JSON.parse(readFileSync(join(out, 'masks.json'), 'utf8')).count).toBe(lib.length);
  });

  it('refuses a non-empty output directory without --force, and a bad image', async () => {
    const out = join(tmp, 'busy');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(out);
    writeFileSync(join(out, 'other.txt'), 'x');
    const txt = join(tmp, 'x.jpg');
    writeFileSync(txt, 'plain text');
    const [busy, bad] = await Promise.all([
      samclip(['everything', DOG, '--out', out, '--weights', SAM_TINY]),
      samclip(['everything', txt, '--out', join(tmp, 'o2'), '--weights', SAM_TINY]),
    ]);
    expectOneLineError(busy, 1, /--out .*busy is not empty; pass --force/);
    expectOneLineError(bad, 1, /x\.jpg: unsupported image format/);
  });
});
