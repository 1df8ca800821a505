/**
 * Long calls report progress and stop on an AbortSignal (issue 11, deliverable 6): the paced paths
 * give the very same results as the unpaced ones, fractions rise to 1, and a cancelled call rejects
 * with an AbortError and leaves the pool as it was.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AbortError } from '../../src/gpu/errors.js';
import type { Progress } from '../../src/gpu/pacer.js';
import { cropImage } from '../../src/image/image.js';
import { Block } from '../../src/model/sam/image-encoder.js';
import { readTensor } from '../../src/kernels/copy.js';
import { SamAutomaticMaskGenerator } from '../../src/pipelines/automatic-mask-generator.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { useGpu } from '../helpers/gpu.js';
import { BUNDLE, CLASSES } from '../model/samclip-fixture.js';
import { usePhotos } from '../helpers/photos.js';
import { TINY_WEIGHTS } from './sam-fixture.js';

/** The photos decoded from their .jpg files (test/helpers/photos.ts). */
const photoImage = usePhotos();

const gpu = useGpu();
const image = () => cropImage(photoImage('truck'), 600, 400, 240, 160);

function recorder() {
  const events: Progress[] = [];
  return {
    events,
    onProgress: (p: Progress) => events.push(p),
    check(what: string) {
      expect(events.length, `${what}: progress events`).toBeGreaterThan(2);
      for (let i = 1; i < events.length; i++) expect(events[i]!.fraction, `${what}: fractions never decrease`).toBeGreaterThanOrEqual(events[i - 1]!.fraction);
      expect(events.at(-1)!.fraction, `${what}: ends at 1`).toBeCloseTo(1, 6);
      for (const e of events) expect(e.stage.length).toBeGreaterThan(0);
    },
  };
}

/** Abort at the first progress event; the call must reject with an AbortError and free what it made. */
async function expectCancelled(run: (opts: { signal: AbortSignal; onProgress: (p: Progress) => void }) => Promise<unknown>, what: string) {
  const ctx = gpu();
  await ctx.sync();
  const before = ctx.poolStats().liveBytes;
  const ac = new AbortController();
  let seen = 0;
  await expect(run({ signal: ac.signal, onProgress: () => (++seen === 1 ? ac.abort(new Error('user pressed stop')) : undefined) }), what).rejects.toThrow(AbortError);
  await expect(run({ signal: AbortSignal.abort(), onProgress: () => undefined }), `${what} with an aborted signal`).rejects.toThrow(/cancelled \(/);
  await ctx.sync();
  expect(ctx.poolStats().liveBytes, `${what}: pool after the abort`).toBe(before);
}

describe('SAM', () => {
  let predictor: SamPredictor;
  beforeAll(async () => {
    predictor = await SamPredictor.load(gpu(), TINY_WEIGHTS);
  });
  afterAll(() => predictor?.dispose());

  it('encode: progress per block, same embedding as the unpaced encode, also when the blocks are replayed', async () => {
    const ctx = gpu();
    const plain = await predictor.encode(image());
    const a = await readTensor(ctx, plain.tensor);
    plain.dispose();
    // From the third paced encode of one size on, every block replays its recorded dispatches
    // (src/gpu/dispatch-plan.ts): the block code does not run, the embedding stays the same.
    for (let call = 1; call <= 4; call++) {
      const rec = recorder();
      const blockCode = vi.spyOn(Block.prototype, 'forward');
      const paced = await predictor.encode(image(), { onProgress: rec.onProgress });
      const ran = blockCode.mock.calls.length;
      blockCode.mockRestore();
      rec.check(`encode ${call}`);
      expect(rec.events.some((e) => /block/.test(e.stage))).toBe(true);
      if (call >= 3) expect(ran, `paced encode ${call}: block code ran`).toBe(0);
      else expect(ran).toBeGreaterThan(0);
      const b = await readTensor(ctx, paced.tensor);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `paced encode ${call}`).toBe(true);
      paced.dispose();
    }
  });

  it('encode: cancelled between blocks', async () => {
    await expectCancelled((o) => predictor.encode(image(), o), 'encode');
  });

  it('automatic masks: progress over the point batches, same masks; cancelled', async () => {
    const amg = new SamAutomaticMaskGenerator(predictor, { pointsPerSide: 4, pointsPerBatch: 4, predIouThresh: 0, stabilityScoreThresh: 0 });
    const plain = await amg.generate(image());
    const rec = recorder();
    const paced = await amg.generate(image(), { onProgress: rec.onProgress });
    rec.check('generate');
    expect(rec.events.some((e) => /points/.test(e.stage))).toBe(true);
    expect(paced).toEqual(plain);
    await expectCancelled((o) => amg.generate(image(), o), 'generate');
  });
});

describe('SAM-CLIP', () => {
  let model: SamClip;
  beforeAll(async () => {
    model = await SamClip.load(gpu(), BUNDLE);
  });
  afterAll(() => model?.dispose());

  it('refined segmentation and classification: progress, same results as without', async () => {
    const plain = await model.segmentSemantic(image(), CLASSES, { refine: true, templates: 'single' });
    model.backend.text.clearCache(); // so the paced call embeds the classes again, one by one
    const rec = recorder();
    const paced = await model.segmentSemantic(image(), CLASSES, { refine: true, templates: 'single', onProgress: rec.onProgress });
    rec.check('segmentSemantic');
    expect(rec.events.map((e) => e.stage)).toEqual(expect.arrayContaining([expect.stringMatching(/class embeddings/), expect.stringMatching(/block/)]));
    expect(paced).toEqual(plain);
    const recC = recorder();
    const cls = await model.classify(image(), CLASSES, { onProgress: recC.onProgress });
    recC.check('classify');
    expect(cls).toEqual(await model.classify(image(), CLASSES));
  });

  it('text masks and embed report progress to the end', async () => {
    for (const run of [(o: { onProgress: (p: Progress) => void }) => model.segmentText(image(), CLASSES[1]!, o), (o: { onProgress: (p: Progress) => void }) => model.embed(image(), o).then((e) => e.dispose())]) {
      const rec = recorder();
      await run({ onProgress: rec.onProgress });
      rec.check('segmentText / embed');
    }
  });

  it('head-only segmentation, text masks and embed are cancellable', async () => {
    model.backend.text.clearCache();
    await expectCancelled((o) => model.segmentSemantic(image(), CLASSES, o), 'segmentSemantic');
    await expectCancelled((o) => model.segmentText(image(), CLASSES[1]!, o), 'segmentText');
    await expectCancelled((o) => model.embed(image(), o), 'embed');
  });
});
