/**
 * `samclip semseg` run as a user would (the real binary, a real photo, the reference tiny SAM-CLIP
 * bundle): the label map and overlay PNGs decode at the photo's size, and the label map holds
 * exactly the labels the library's `segmentSemantic` gives for the same photo and options in this
 * process (both are the same code, so pixel-exact); head-only, refined with a background prompt,
 * and composite mode on tiny public-format SAM + CLIP files. Bad input (empty or duplicate classes,
 * a bundle missing a head, images too small) is one line and a non-zero exit code.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DecodedImage, readImage } from '../../src/io/decode.js';
import { loadClip } from '../../src/model/clip/load.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { useGpu } from '../helpers/gpu.js';
import { CLIP_TINY, CLI_TIMEOUT, DOG, SAM_TINY, expectOk, expectOneLineError, samclip } from './helpers.js';
import { BUNDLE, bundleWithout, expectSame, greyPng, pngSize, readLabelMap, samclipInProcess } from './semseg-helpers.js';

const gpu = useGpu();
const tmp = mkdtempSync(join(tmpdir(), 'samclip-semseg-'));
const SIZE: [number, number] = [800, 534];
let model: SamClip;
let photo: DecodedImage;

beforeAll(async () => {
  model = await SamClip.load(gpu(), BUNDLE);
  photo = await readImage(DOG);
});
afterAll(() => model?.dispose());

interface ClassRow {
  name: string;
  color: string;
  pixels: number;
  score: number;
}

describe('semseg', { timeout: CLI_TIMEOUT }, () => {
  const classes = ['dog', 'person', 'metal bowl', 'floor'];

  it('head-only: the label map equals the library, the overlay decodes, JSON counts and scores', async () => {
    const head = { out: join(tmp, 'head.png'), overlay: join(tmp, 'head-overlay.png') };
    const r1 = await samclip(['semseg', DOG, '--classes', 'dog,person', '--classes', 'metal bowl,floor', '--bundle', BUNDLE, '--out', head.out, '--overlay', head.overlay, '--json']);
    expectOk(r1);
    const j = JSON.parse(r1.stdout);
    expect(j).toMatchObject({ width: 800, height: 534, refined: false, out: head.out, overlay: head.overlay, randomWeights: null, weights: { mode: 'merged', bundle: BUNDLE } });
    const rows = j.classes as ClassRow[];
    expect(rows.map((c) => c.name)).toEqual(classes);
    const lib = await model.segmentSemantic(photo, classes);
    expectSame(readLabelMap(head.out, rows.map((c) => c.color), SIZE), lib.labelMap, 'head-only label map');
    rows.forEach((c, i) => {
      expect(c.pixels, c.name).toBe(lib.pixelCounts[i]);
      expect(c.score, c.name).toBeCloseTo(lib.scores[i]!, 6);
    });
    expect(pngSize(head.overlay)).toEqual(SIZE);
    expect(r1.stderr).toMatch(/segmenting into 4 classes/);
    console.log(`semseg CLI = library, head-only counts ${rows.map((c) => c.pixels).join(' ')}`);
  });

  it('refined with a background prompt: the label map equals the library, the text table its counts', async () => {
    const ref = { out: join(tmp, 'refined.png') };
    const r2 = await samclip(['semseg', DOG, '--classes', classes.join(','), '--refine', '--background-prompt', '--bundle', BUNDLE, '--out', ref.out]);
    expectOk(r2);
    // Text output: the table and the files; the background label is the last one, drawn black.
    expect(r2.stdout).toMatch(new RegExp(`^${ref.out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 800x534 label map \\(refined with the SAM head\\)`));
    const libRef = await model.segmentSemantic(photo, classes, { refine: true, background: ['background'] });
    expect(libRef.classes).toEqual([...classes, 'background']);
    const { palette } = await import('../../src/io/draw.js');
    const hex = (c: readonly number[]) => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
    const colors = [...palette(classes.length).map(hex), '#000000'];
    expectSame(readLabelMap(ref.out, colors, SIZE), libRef.labelMap, 'refined label map with background');
    libRef.classes.forEach((name, i) => expect(r2.stdout).toMatch(new RegExp(`^${name}\\s+${libRef.pixelCounts[i]}\\s`, 'm')));
    console.log(`semseg CLI = library, refined counts ${Array.from(libRef.pixelCounts).join(' ')}`);
  });

  it('composite mode (--sam / --clip, tiny public-format files): label map equals the library composite', async () => {
    const out = join(tmp, 'composite.png');
    const classes = ['dog', 'floor', 'bowl'];
    const r = await samclip(['semseg', DOG, '--classes', classes.join(','), '--sam', SAM_TINY, '--clip', CLIP_TINY, '--text-heads', '4', '--act', 'quick_gelu', '--raw-labels', '--out', out, '--json']);
    expectOk(r);
    const j = JSON.parse(r.stdout);
    expect(j.weights).toMatchObject({ mode: 'composite', sam: SAM_TINY, clip: CLIP_TINY, bundle: null });
    const file = await SafetensorsFile.open(CLIP_TINY);
    const clip = await loadClip(gpu(), file, { textHeads: 4, act: 'quick_gelu' });
    await file.close();
    const comp = await SamClip.composite(gpu(), { sam: SAM_TINY, clip });
    try {
      const lib = await comp.segmentSemantic(photo, classes, { templates: 'name' });
      expectSame(readLabelMap(out, (j.classes as ClassRow[]).map((c) => c.color), SIZE), lib.labelMap, 'composite label map');
    } finally {
      comp.dispose();
      clip.dispose();
    }
  });

  it('bad input: one-line errors, exit 2 for bad classes / options, 1 for bad files and images', async () => {
    const noHead = join(tmp, 'no-clip-head.safetensors');
    const noSam = join(tmp, 'no-sam-head.safetensors');
    await Promise.all([bundleWithout(noHead, /^clip_head\./), bundleWithout(noSam, /^(prompt_encoder|mask_decoder)\./)]);
    const tiny = join(tmp, 'tiny.png');
    writeFileSync(tiny, greyPng(12, 40));
    const narrow = join(tmp, 'narrow.png');
    writeFileSync(narrow, greyPng(2000, 16));
    const b = ['--bundle', BUNDLE];
    const cases: [string[], number, RegExp][] = [
      [['semseg', DOG, ...b], 2, /give the class names with --classes/],
      [['semseg', DOG, '--classes', ' , ', ...b], 2, /--classes\[0\]: empty class name/],
      [['semseg', DOG, '--classes', 'dog,floor,Dog ', ...b], 2, /--classes: duplicate class 'Dog' at positions 0 and 2/],
      [['semseg', DOG, '--classes', 'dog,background', '--background-prompt', ...b], 2, /duplicate class 'background'/],
      [['semseg', DOG, '--classes', 'dog', '--background', '1.5', ...b], 2, /--background must be a number in \[0, 1\], got '1\.5'/],
      [['semseg', DOG, '--classes', 'dog', '--background', '0.3', '--background-prompt', ...b], 2, /either --background THRESHOLD or --background-prompt/],
      [['semseg', DOG, '--classes', 'dog', '--bundle', noHead], 1, /no-clip-head\.safetensors: the bundle is missing its CLIP head/],
      [['semseg', DOG, '--classes', 'dog', '--bundle', noSam], 1, /no-sam-head\.safetensors: the bundle is missing its SAM head/],
      [['semseg', DOG, '--classes', 'dog', '--bundle', SAM_TINY], 1, /sam_tiny\.weights\.safetensors: the bundle is missing its CLIP head/],
      [['semseg', tiny, '--classes', 'dog', ...b], 1, /tiny\.png: the image is too small \(12x40\); SAM-CLIP needs at least 16x16 pixels/],
      [['semseg', narrow, '--classes', 'dog', ...b], 1, /the 2000x16 image is too narrow/],
      [['semseg', DOG, '--classes', 'dog', '--cache', join(tmp, 'empty-cache')], 1, /no SAM-CLIP weights: .*`samclip weights pull sam-vit-b` and `samclip weights pull clip-vit-b-16`.*--random-weights/],
      [['semseg', DOG, '--classes', 'dog', '--random-weights', ...b], 2, /either weights files or --random-weights/],
      [['semseg', DOG, '--classes', 'dog', '--random-weights', 'vit-h'], 2, /--random-weights: 'vit-h' is not one of samclip-tiny, vit-b/],
    ];
    // The real binary for one usage and one runtime error (exit codes through the launcher), the
    // rest in this process through the same runCli (a process per case costs seconds of start-up).
    const spawned = [0, 6];
    const results = await Promise.all(cases.map(([args], i) => (spawned.includes(i) ? samclip(args) : samclipInProcess(args))));
    results.forEach((r, i) => expectOneLineError(r, cases[i]![1], cases[i]![2]));
  });
});
