/**
 * `samclip everything` with the tiny reference SAM on the dog photo: one PNG per mask at the photo's
 * size, equal to the library's automatic masks for the same options, an overlay and masks.json; with
 * `--format coco`, COCO annotation JSON whose RLE masks decode to the same masks.
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
import { type AmgMask, SamAutomaticMaskGenerator } from '../../src/pipelines/automatic-mask-generator.js';
import { type CocoDataset, cocoRleToMask } from '../../src/pipelines/coco-rle.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { mismatches } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { DOG, SAM_TINY, expectOk, expectOneLineError, samclip, CLI_TIMEOUT } from './helpers.js';

const gpu = useGpu();
const tmp = mkdtempSync(join(tmpdir(), 'samclip-everything-'));
const OPTS = ['--points-per-side', '3', '--pred-iou-thresh', '0', '--stability-thresh', '0', '--box-nms-thresh', '1'];

let libMasks: Promise<AmgMask[]> | undefined;
/** The library's automatic masks for OPTS (computed once per file). */
function library(): Promise<AmgMask[]> {
  libMasks ??= (async () => {
    const predictor = await SamPredictor.load(gpu(), SAM_TINY);
    const amg = new SamAutomaticMaskGenerator(predictor, { pointsPerSide: 3, predIouThresh: 0, stabilityScoreThresh: 0, boxNmsThresh: 1 });
    const masks = await amg.generate(await readImage(DOG));
    predictor.dispose();
    return masks;
  })();
  return libMasks;
}

/** Mask indices largest first, as the CLI writes them. */
function largestFirst(masks: AmgMask[]): number[] {
  return masks.map((_, i) => i).sort((a, b) => masks[b]!.area - masks[a]!.area || a - b);
}

describe('everything', { timeout: CLI_TIMEOUT }, () => {
  it('writes the library masks (largest first), an overlay and masks.json', async () => {
    const out = join(tmp, 'masks');
    // The library's masks are computed while the CLI (a child process) runs: each is mostly shader compiles.
    const libRun = library();
    libRun.catch(() => undefined); // a failure surfaces at the await below, not as an unhandled rejection
    const r = await samclip(['everything', DOG, '--out', out, '--weights', SAM_TINY, ...OPTS, '--json']);
    expectOk(r);
    const res = JSON.parse(r.stdout);

    const lib = await libRun;
    expect(lib.length).toBeGreaterThan(1);
    expect(res.count).toBe(lib.length);
    const order = largestFirst(lib);

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

  it('--format coco: annotations.json (COCO, compressed RLE) with the library masks, and the overlay', async () => {
    const out = join(tmp, 'coco');
    const r = await samclip(['everything', DOG, '--out', out, '--weights', SAM_TINY, ...OPTS, '--format', 'coco', '--json']);
    expectOk(r);
    expect(JSON.parse(r.stdout)).toMatchObject({ format: 'coco', width: 800, height: 534 });
    expect(readdirSync(out).sort()).toEqual(['annotations.json', 'overlay.png']);
    const coco = JSON.parse(readFileSync(join(out, 'annotations.json'), 'utf8')) as CocoDataset;
    expect(coco.images).toEqual([{ id: 1, file_name: 'dog.jpg', width: 800, height: 534 }]);
    expect(coco.categories).toEqual([{ id: 1, name: 'object' }]);
    const lib = await library();
    const order = largestFirst(lib);
    expect(coco.annotations).toHaveLength(lib.length);
    coco.annotations.forEach((a, k) => {
      const m = lib[order[k]!]!;
      expect([a.id, a.image_id, a.category_id, a.iscrowd]).toEqual([k + 1, 1, 1, 0]);
      expect(a.segmentation.size).toEqual([534, 800]);
      expect(typeof a.segmentation.counts).toBe('string');
      expect(mismatches(cocoRleToMask(a.segmentation), m.segmentation as Uint8Array).diff, `annotation ${k + 1}: pixels differing from the library's mask`).toBe(0);
      expect(a.area).toBe(m.area);
      // pycocotools' bbox: segment-anything's (w = x1 - x0) plus one pixel in width and height.
      const [x, y, w, h] = m.bbox;
      expect(a.bbox).toEqual([x, y, w + 1, h + 1]);
      expect(a.predicted_iou).toBeCloseTo(m.predictedIou, 6);
      expect(a.stability_score).toBeCloseTo(m.stabilityScore, 6);
      expect(a.point_coords).toEqual(m.pointCoords);
      expect(a.crop_box).toEqual(m.cropBox);
    });
  });

  it('refuses an unknown --format', async () => {
    const r = await samclip(['everything', DOG, '--out', join(tmp, 'fmt'), '--weights', SAM_TINY, '--format', 'yolo']);
    expectOneLineError(r, 2, /--format must be png or coco, got 'yolo'/);
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
