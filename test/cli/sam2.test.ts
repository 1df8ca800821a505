/**
 * `samclip segment` and `samclip everything` with SAM 2 (the real binary, the dog photo, the
 * reference tiny SAM 2.1 weights written with their `sam2` metadata so that the file alone says
 * what its shapes cannot): a SAM 2 checkpoint given as --weights is recognised by its keys, the
 * masks equal the library's, and `--model` errors are one line.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readImage } from '../../src/io/decode.js';
import { SamAutomaticMaskGenerator } from '../../src/pipelines/automatic-mask-generator.js';
import { Sam2Predictor } from '../../src/pipelines/sam2-predictor.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { useGpu } from '../helpers/gpu.js';
import { bytesOf, buildSafetensors } from '../helpers/safetensors-build.js';
import { SAM2_WEIGHTS, tinyOverrides } from '../model/sam2-fixture.js';
import { CLI_TIMEOUT, DOG, expectOk, expectOneLineError, expectSame, readMask as readMaskOf, samclip } from './helpers.js';

const gpu = useGpu();
const tmp = mkdtempSync(join(tmpdir(), 'samclip-sam2-'));
const WEIGHTS = join(tmp, 'sam2_tiny_with_metadata.safetensors');

beforeAll(async () => {
  const src = await SafetensorsFile.open(SAM2_WEIGHTS);
  const tensors = await Promise.all(src.keys().map(async (name) => ({ name, dtype: 'F32', shape: [...src.info(name).shape], data: bytesOf(await src.readF32(name)) })));
  await src.close();
  const o = tinyOverrides();
  const sam2 = JSON.stringify({ image_size: o.imageSize, num_heads: o.numHeads, window_spec: o.windowSpec, global_att_blocks: o.globalAttBlocks });
  writeFileSync(WEIGHTS, buildSafetensors(tensors, { metadata: { sam2 } }));
});

const readMask = (path: string) => readMaskOf(path, [800, 534]);

describe('segment / everything with SAM 2', { timeout: CLI_TIMEOUT }, () => {
  it('segment: a SAM 2 checkpoint as --weights runs SAM 2; the mask equals the library result', async () => {
    const out = join(tmp, 'mask.png');
    // The CLI (a child process) and the library run at the same time: each is mostly shader compiles.
    const cli = samclip(['segment', DOG, '--point', '400,300', '--point', '650,120:0', '--weights', WEIGHTS, '--out', out, '--json', '--quiet']);
    const predictor = await Sam2Predictor.load(gpu(), WEIGHTS);
    const emb = await predictor.encode(await readImage(DOG));
    const lib = await predictor.predict(emb, { points: [[400, 300], [650, 120]], labels: [1, 0] }, { multimaskOutput: false });
    const r = await cli;
    expectOk(r);
    const res = JSON.parse(r.stdout);
    expect(res).toMatchObject({ model: 'sam2', width: 800, height: 534, best: 0 });
    expectSame(readMask(out), lib.masks[0]!, 'SAM 2 mask');
    expect(res.iou).toBeCloseTo(lib.iouPredictions[0]!, 6);
    emb.dispose();
    predictor.dispose();
  });

  it('everything: SAM 2 automatic masks, the same count as the library', async () => {
    const out = join(tmp, 'everything');
    const args = ['--points-per-side', '4', '--pred-iou-thresh', '0.4', '--stability-thresh', '0.5'];
    const r = await samclip(['everything', DOG, '--weights', WEIGHTS, '--out', out, '--json', '--quiet', ...args]);
    expectOk(r);
    const res = JSON.parse(r.stdout);
    expect(res.model).toBe('sam2');
    expect(res.options.predIouThresh).toBe(0.4);
    const predictor = await Sam2Predictor.load(gpu(), WEIGHTS);
    const lib = await new SamAutomaticMaskGenerator(predictor, { pointsPerSide: 4, predIouThresh: 0.4, stabilityScoreThresh: 0.5 }).generate(await readImage(DOG));
    predictor.dispose();
    expect(res.count).toBe(lib.length);
    expect(res.count).toBeGreaterThan(0);
  });

  it('--model: an unknown name and a model that is not pulled are one-line errors', async () => {
    const nope = await samclip(['segment', DOG, '--point', '4,4', '--model', 'sam3-giant']);
    expectOneLineError(nope, 2, /--model: unknown segmenter 'sam3-giant'; use one of .*sam2\.1-hiera-t/);
    const missing = await samclip(['segment', DOG, '--point', '4,4', '--model', 'sam2.1-hiera-t', '--cache', join(tmp, 'empty-cache')]);
    expectOneLineError(missing, 1, /--model sam2\.1-hiera-t: not in the cache .*samclip weights pull sam2\.1-hiera-t/);
  });
});
