/**
 * `samclip segment` run as a user would (the real binary, a real photo, the reference tiny SAM
 * weights): the PNGs decode, have the photo's size, and hold exactly the masks the library computes
 * for the same photo and prompts in this process. Bad input gives one-line errors and the right
 * exit code.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { readImage } from '../../src/io/decode.js';
import { SamPredictor, type SamImageEmbedding, type SamPrompt } from '../../src/pipelines/sam-predictor.js';
import { useGpu } from '../helpers/gpu.js';
import { CLIP_TINY, DOG, SAM_TINY, expectOk, expectOneLineError, expectSame, readMask as readMaskOf, samclip, CLI_TIMEOUT } from './helpers.js';

const gpu = useGpu();
const tmp = mkdtempSync(join(tmpdir(), 'samclip-segment-'));
let predictor: SamPredictor;
let emb: SamImageEmbedding;

beforeAll(async () => {
  predictor = await SamPredictor.load(gpu(), SAM_TINY);
  emb = await predictor.encode(await readImage(DOG));
});

/** A grey PNG as 0/1 per pixel, after checking its format and size. */
const readMask = (path: string) => readMaskOf(path, [800, 534]);

describe('segment', { timeout: CLI_TIMEOUT }, () => {
  it('points: mask and overlay PNGs at the photo size, mask equal to the library result', async () => {
    const out = join(tmp, 'mask.png');
    const overlay = join(tmp, 'overlay.png');
    const r = await samclip(['segment', DOG, '--point', '400,300', '--point', '650,120:0', '--weights', SAM_TINY, '--out', out, '--overlay', overlay, '--json']);
    expectOk(r);
    const res = JSON.parse(r.stdout);
    expect(res).toMatchObject({ width: 800, height: 534, out, best: 0, multimask: false, randomWeights: null });
    const prompt: SamPrompt = { points: [[400, 300], [650, 120]], labels: [1, 0] };
    const lib = await predictor.predict(emb, prompt, { multimaskOutput: false });
    expectSame(readMask(out), lib.masks[0]!, 'single mask');
    expect(res.iou).toBeCloseTo(lib.iouPredictions[0]!, 6);
    const ov = PNG.sync.read(readFileSync(overlay));
    expect([ov.width, ov.height, ov.colorType]).toEqual([800, 534, 2]);
    // Progress went to stderr, stdout is one JSON document.
    expect(r.stderr).toMatch(/encoding the image/);
  });

  it('--multimask with a box: three masks plus the best one, each equal to the library result', async () => {
    const out = join(tmp, 'multi.png');
    const r = await samclip(['segment', DOG, '--box', '150,60,560,520', '--point', '330,260', '--multimask', '--weights', SAM_TINY, '--out', out, '--json', '--quiet']);
    expectOk(r);
    expect(r.stderr).not.toMatch(/encoding/);
    const res = JSON.parse(r.stdout);
    const lib = await predictor.predict(emb, { box: [150, 60, 560, 520], points: [[330, 260]], labels: [1] }, { multimaskOutput: true });
    const scores = Array.from(lib.iouPredictions);
    const best = scores.indexOf(Math.max(...scores));
    expect(res.best).toBe(best);
    expect(res.masks.map((m: { path: string }) => m.path)).toEqual([0, 1, 2].map((i) => join(tmp, `multi-${i}.png`)));
    for (let i = 0; i < 3; i++) {
      expectSame(readMask(join(tmp, `multi-${i}.png`)), lib.masks[i]!, `mask ${i}`);
      expect(res.masks[i].iou).toBeCloseTo(scores[i]!, 6);
    }
    expectSame(readMask(out), lib.masks[best]!, 'best mask');
  });

  it('--random-weights runs on seeded random weights and says so', async () => {
    const cache = join(tmp, 'cache');
    const out = join(tmp, 'random.png');
    const r = await samclip(['segment', DOG, '--point', '400,300', '--random-weights', 'sam-tiny', '--seed', '3', '--cache', cache, '--out', out]);
    expectOk(r);
    expect(r.stderr).toMatch(/running on seeded random weights \(sam-tiny, seed 3\); the output is meaningless\. For real results: samclip weights pull sam-vit-b/);
    expect(r.stdout).toMatch(/random weights sam-tiny: the mask is meaningless/);
    readMask(out);
  });

  it('bad input: one-line errors naming the problem, exit 1 (runtime) or 2 (usage), stack only with --verbose', async () => {
    const half = join(tmp, 'half.jpg');
    writeFileSync(half, readFileSync(DOG).subarray(0, 40_000));
    const gif = join(tmp, 'anim.gif');
    writeFileSync(gif, Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'));
    const w = ['--weights', SAM_TINY];
    const cases: [string[], number, RegExp][] = [
      [['segment', join(tmp, 'missing.jpg'), '--point', '1,1', ...w], 1, /missing\.jpg: cannot read image: no such file/],
      [['segment', half, '--point', '1,1', ...w], 1, /half\.jpg: truncated JPEG/],
      [['segment', gif, '--point', '1,1', ...w], 1, /anim\.gif: unsupported image format \(looks like GIF\)/],
      [['segment', DOG, '--point', '801,10', ...w], 2, /--point 801,10 lies outside .*dog\.jpg \(800x534/],
      [['segment', DOG, '--box', '10,10,900,100', ...w], 2, /--box 10,10,900,100 lies outside/],
      [['segment', DOG, '--point', '4O0,300', ...w], 2, /--point '4O0,300': expected x,y/],
      [['segment', DOG, ...w], 2, /give at least one --point/],
      [['segment', DOG, '--point', '1,1', '--weights', join(tmp, 'nope.safetensors')], 1, /weights file .*nope\.safetensors: no such file/],
      [['segment', DOG, '--point', '1,1', '--weights', CLIP_TINY], 1, /clip_tiny\.weights\.safetensors: this checkpoint is .*CLIP, not SAM/],
      [['segment', DOG, '--point', '1,1', '--cache', join(tmp, 'empty-cache')], 1, /no SAM weights: download them with `samclip weights pull sam-vit-b`/],
    ];
    const results = await Promise.all(cases.map(([args]) => samclip(args)));
    results.forEach((r, i) => expectOneLineError(r, cases[i]![1], cases[i]![2]));

    const verbose = await samclip(['segment', half, '--point', '1,1', ...w, '--verbose']);
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(/^\s+at .+/m);
  });
});
