/**
 * Calls overlapping on one context give the same results as the same calls made one after another,
 * never throw and leak nothing (DESIGN.md section 9): 100 predicts in flight on one embedding,
 * encodes of two photos interleaved with predicts on both, and every SAM-CLIP pipeline at once. The
 * pool's live bytes return to where they were; results are compared exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import { cropImage } from '../../src/image/image.js';
import { type SamImageEmbedding, SamPredictor, type SamPrediction, type SamPrompt } from '../../src/pipelines/sam-predictor.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { latestWins } from '../../src/util/latest-wins.js';
import { useGpu } from '../helpers/gpu.js';
import { BUNDLE, CLASSES } from '../model/samclip-fixture.js';
import { usePhotos } from '../helpers/photos.js';
import { TINY_WEIGHTS } from '../pipelines/sam-fixture.js';

/** The photos decoded from their .jpg files (test/helpers/photos.ts). */
const photoImage = usePhotos();

const gpu = useGpu();

/**
 * Small crops of the photos keep the post-processing (masks at the original size) cheap on a CPU
 * adapter; the model still sees its full 256-px input.
 */
const W = 180;
const H = 120;
const truckImage = () => cropImage(photoImage('truck'), 700, 500, W, H);
const dogImage = () => cropImage(photoImage('dog'), 250, 200, W, H);

/** A spread of prompt shapes over a W x H image. */
function prompts(n: number): { prompt: SamPrompt; multimask: boolean }[] {
  return Array.from({ length: n }, (_, i) => {
    const x = 6 + ((i * 37) % (W - 12));
    const y = 4 + ((i * 23) % (H - 8));
    if (i % 4 === 0) return { prompt: { box: [x * 0.5, y * 0.5, x, y] }, multimask: false };
    if (i % 4 === 1) return { prompt: { points: [[x, y], [W - x, H - y]], labels: [1, 0] }, multimask: true };
    return { prompt: { points: [[x, y]], labels: [1] }, multimask: i % 2 === 0 };
  });
}

function expectSamePrediction(a: SamPrediction, b: SamPrediction, what: string): void {
  expect(a.masks.length, what).toBe(b.masks.length);
  a.masks.forEach((m, i) => expect(Buffer.from(m).equals(Buffer.from(b.masks[i]!)), `${what}: mask ${i}`).toBe(true));
  expect(Array.from(a.iouPredictions), what).toEqual(Array.from(b.iouPredictions));
  expect(Buffer.from(a.lowResLogits.buffer).equals(Buffer.from(b.lowResLogits.buffer)), `${what}: low-res logits`).toBe(true);
}

async function settledPool(ctx: GpuContext): Promise<number> {
  await ctx.sync();
  return ctx.poolStats().liveBytes;
}

describe('SAM: overlapping calls on one context', () => {
  let predictor: SamPredictor;
  let truck: SamImageEmbedding;
  beforeAll(async () => {
    predictor = await SamPredictor.load(gpu(), TINY_WEIGHTS);
    truck = await predictor.encode(truckImage());
  });
  afterAll(() => {
    truck?.dispose();
    predictor?.dispose();
  });

  it('100 predicts in flight on one embedding equal the same predicts one by one, and leak nothing', async () => {
    const ctx = gpu();
    const cases = prompts(100);
    const sequential: SamPrediction[] = [];
    for (const c of cases) sequential.push(await predictor.predict(truck, c.prompt, { multimaskOutput: c.multimask }));
    const before = await settledPool(ctx);
    const concurrent = await Promise.all(cases.map((c) => predictor.predict(truck, c.prompt, { multimaskOutput: c.multimask })));
    concurrent.forEach((r, i) => expectSamePrediction(r, sequential[i]!, `predict ${i}`));
    expect(await settledPool(ctx)).toBe(before);
  });

  it('batched predicts and encodes of two photos interleaved with predicts on both', async () => {
    const ctx = gpu();
    const batch = prompts(12).filter((c) => c.prompt.points?.length === 1).map((c) => c.prompt);
    const dogPrompt: SamPrompt = { points: [[90, 60]], labels: [1] };
    // Sequential reference.
    const dogSeq = await predictor.encode(dogImage());
    const refDog = await predictor.predict(dogSeq, dogPrompt);
    const refBatch = await predictor.predictBatch(truck, batch, { multimaskOutput: false });
    dogSeq.dispose();
    const before = await settledPool(ctx);
    const [dog, truck2, batchNow, onTruck] = await Promise.all([
      predictor.encode(dogImage()),
      predictor.encode(truckImage()),
      predictor.predictBatch(truck, batch, { multimaskOutput: false }),
      Promise.all(prompts(10).map((c) => predictor.predict(truck, c.prompt))),
    ]);
    const [onDog, onTruck2] = await Promise.all([predictor.predict(dog, dogPrompt), predictor.predict(truck2, prompts(1)[0]!.prompt)]);
    expectSamePrediction(onDog, refDog, 'dog after a concurrent encode');
    batchNow.forEach((r, i) => expectSamePrediction(r, refBatch[i]!, `batch ${i}`));
    expectSamePrediction(onTruck2, onTruck[0]!, 'truck re-encoded concurrently');
    dog.dispose();
    truck2.dispose();
    expect(await settledPool(ctx)).toBe(before);
  });

  it('latestWins: of a burst of calls only the newest result is delivered, and it equals a direct call', async () => {
    const cases = prompts(20);
    let started = 0;
    const preview = latestWins(async (signal, i: number) => {
      started++;
      return predictor.predict(truck, cases[i]!.prompt, { multimaskOutput: false, signal });
    });
    const results = await Promise.all(cases.map((_, i) => preview(i)));
    const delivered = results.map((r, i) => (r ? i : -1)).filter((i) => i >= 0);
    expect(delivered).toEqual([19]);
    expect(started).toBeLessThanOrEqual(2); // the first call (then aborted) and the newest
    expectSamePrediction(results[19]!, await predictor.predict(truck, cases[19]!.prompt, { multimaskOutput: false }), 'newest');
  });
});

describe('SAM-CLIP: every pipeline at once', () => {
  let model: SamClip;
  beforeAll(async () => {
    model = await SamClip.load(gpu(), BUNDLE);
  });
  afterAll(() => model?.dispose());

  it('classify, head-only and refined segmentation, text masks and embed overlap and equal sequential calls', async () => {
    const ctx = gpu();
    const dog = dogImage();
    const truck = truckImage();
    const run = () => [
      model.classify(dog, CLASSES),
      model.segmentSemantic(truck, CLASSES),
      model.segmentSemantic(dog, CLASSES, { refine: true }),
      model.segmentText(truck, CLASSES[0]!),
      model.classify(truck, CLASSES, { templates: 'single' }),
    ];
    const sequential: unknown[] = [];
    for (const f of run.call(null).map((p, i) => () => p.then((r) => (sequential[i] = r)))) await f();
    // Warm caches are part of the state: run once more sequentially so both runs see warm text caches.
    const seq2: unknown[] = [];
    for (const p of run()) seq2.push(await p);
    const before = await settledPool(ctx);
    const [concurrent, emb] = await Promise.all([Promise.all(run()), model.embed(truck)]);
    emb.dispose();
    expect(concurrent).toEqual(seq2);
    expect(await settledPool(ctx)).toBe(before);
  });
});
