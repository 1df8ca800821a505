/**
 * `samclip text` run as a user would (the real binary, a real photo, the reference tiny SAM-CLIP
 * bundle): every mask PNG decodes at the photo's size and equals the library's `segmentText` mask
 * for the same photo and text in this process; predicted IoUs and point prompts agree; bad input is
 * one line and a non-zero exit code.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readImage } from '../../src/io/decode.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { useGpu } from '../helpers/gpu.js';
import { CLI_TIMEOUT, DOG, expectOk, expectOneLineError, samclip } from './helpers.js';
import { BUNDLE, expectSame, greyPng, pngSize, readMask, samclipInProcess } from './semseg-helpers.js';

const gpu = useGpu();
const tmp = mkdtempSync(join(tmpdir(), 'samclip-text-'));
const SIZE: [number, number] = [800, 534];
let model: SamClip;

beforeAll(async () => {
  model = await SamClip.load(gpu(), BUNDLE);
});
afterAll(() => model?.dispose());

describe('text', { timeout: CLI_TIMEOUT }, () => {
  it('"the dog": best mask, every candidate (--all) and the overlay; masks equal the library result', async () => {
    const out = join(tmp, 'dog.png');
    const overlay = join(tmp, 'dog-overlay.png');
    // The library's result is computed while the CLI runs in its own process.
    const [r, lib] = await Promise.all([
      samclip(['text', DOG, 'the dog', '--bundle', BUNDLE, '--all', '--out', out, '--overlay', overlay, '--json']),
      readImage(DOG).then((img) => model.segmentText(img, 'the dog')),
    ]);
    expectOk(r);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ text: 'the dog', width: 800, height: 534, out, overlay, confident: lib.confident, weights: { mode: 'merged' } });
    expectSame(readMask(out, SIZE), lib.best, 'best mask');
    expect(j.masks.length).toBe(lib.masks.length);
    j.masks.forEach((m: { path: string; iou: number; area: number }, i: number) => {
      expect(m.path).toBe(join(tmp, `dog-${i}.png`));
      expectSame(readMask(m.path, SIZE), lib.masks[i]!, `candidate ${i}`);
      expect(m.iou).toBeCloseTo(lib.iouPredictions[i]!, 6);
      expect(m.area).toBe(lib.masks[i]!.reduce((s, v) => s + v, 0));
    });
    expect(j.iou).toBeCloseTo(lib.iouPredictions[0]!, 6);
    j.points.forEach((p: [number, number], i: number) => {
      expect(p[0]).toBeCloseTo(lib.points[i]![0], 6);
      expect(p[1]).toBeCloseTo(lib.points[i]![1], 6);
    });
    expect(pngSize(overlay)).toEqual(SIZE);
    console.log(`text CLI = library: ${lib.masks.length} masks, IoU ${Array.from(lib.iouPredictions, (v) => v.toFixed(4)).join(' ')}, points ${JSON.stringify(lib.points)}`);
  });

  it('bad input: one-line errors, exit 2 for a bad prompt, 1 for an image too small', async () => {
    const tiny = join(tmp, 'tiny.png');
    writeFileSync(tiny, greyPng(15, 15));
    const b = ['--bundle', BUNDLE];
    const cases: [string[], number, RegExp][] = [
      [['text', DOG, '  ', ...b], 2, /the text prompt is empty/],
      [['text', DOG, 'Background', ...b], 2, /default negative 'background': duplicate class 'background'/],
      [['text', DOG, 'the dog', '--negatives', 'floor,,wall', ...b], 2, /--negatives 'floor,,wall': empty prompt/],
      [['text', DOG, 'the dog', '--negatives', 'the  dog', ...b], 2, /duplicate class 'the  dog'/],
      [['text', tiny, 'the dog', ...b], 1, /tiny\.png: the image is too small \(15x15\)/],
      [['text', DOG, 'the dog', '--bundle', join(tmp, 'missing.safetensors')], 1, /bundle .*missing\.safetensors: no such file/],
    ];
    const results = await Promise.all(cases.map(([args]) => samclipInProcess(args)));
    results.forEach((r, i) => expectOneLineError(r, cases[i]![1], cases[i]![2]));
  });
});
