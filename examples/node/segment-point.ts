/**
 * Promptable segmentation with SAM: encode a photo once, then decode several prompts against the
 * same GPU-resident embedding (a point, a box, a point + the previous mask, a batch of prompt sets),
 * and finally "segment everything".
 *
 *   npx tsx examples/node/segment-point.ts [weights.safetensors] [photo.jpg]
 *
 * Defaults: the repository's tiny seeded SAM (test/fixtures/reference/sam_tiny.weights.safetensors,
 * a 256-px model with random weights: the masks are meaningless but every call is real) and
 * test/fixtures/images/dog.jpg. Pass a real checkpoint (e.g. from `samclip weights pull sam-vit-b`)
 * for real masks. Writes out/examples/segment-*.png.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GpuContext, SamAutomaticMaskGenerator, SamPredictor, lowResMask } from '../../src/index.js';
// Node-only image I/O (JPEG/PNG decoding, PNG writing); not part of the browser library.
import { maskToGrey, readImage, writePng } from '../../src/io/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const weights = process.argv[2] ?? join(ROOT, 'test/fixtures/reference/sam_tiny.weights.safetensors');
const photo = process.argv[3] ?? join(ROOT, 'test/fixtures/images/dog.jpg');
const OUT = join(ROOT, 'out', 'examples');

const ctx = await GpuContext.create();
console.log(`adapter: ${ctx.description}`);
const predictor = await SamPredictor.load(ctx, weights); // official, Hugging Face or SAM-CLIP names
const image = await readImage(photo); // {width, height, channels, data}, EXIF orientation applied
console.log(`image ${image.width}x${image.height}; model input ${predictor.model.imgSize} px`);

const emb = await predictor.encode(image); // the image encoder runs once here
try {
  // 1. One foreground point, three candidate masks (the default multimaskOutput: true).
  const x = Math.round(image.width / 2);
  const y = Math.round(image.height / 2);
  const r1 = await predictor.predict(emb, { points: [[x, y]], labels: [1] });
  const best = r1.iouPredictions.indexOf(Math.max(...r1.iouPredictions));
  console.log(`point (${x}, ${y}): ${r1.masks.length} masks, predicted IoU ${fmt(r1.iouPredictions)}, best #${best}`);

  // 2. A box, single mask output.
  const box = [image.width * 0.2, image.height * 0.2, image.width * 0.8, image.height * 0.9] as const;
  const r2 = await predictor.predict(emb, { box }, { multimaskOutput: false });
  console.log(`box [${box.map(Math.round).join(', ')}]: IoU ${fmt(r2.iouPredictions)}, area ${area(r2.masks[0]!)} px`);

  // 3. Refine: a foreground + a background point, with the best low-res mask of step 1 as mask input.
  const r3 = await predictor.predict(
    emb,
    { points: [[x, y], [10, 10]], labels: [1, 0], maskInput: lowResMask(r1, best) },
    { multimaskOutput: false, returnLogits: true },
  );
  console.log(`point + background point + mask input: IoU ${fmt(r3.iouPredictions)}, logits at ${r3.width}x${r3.height}: ${r3.logits![0]!.length} values`);

  // 4. Several prompt sets in one batched decoder pass (same structure: one point each here).
  const sets = [[0.25, 0.5], [0.5, 0.5], [0.75, 0.5]].map(([fx, fy]) => ({
    points: [[Math.round(fx! * image.width), Math.round(fy! * image.height)]] as [number, number][],
    labels: [1],
  }));
  const batch = await predictor.predictBatch(emb, sets, { multimaskOutput: false });
  console.log(`batch of ${batch.length} prompt sets: IoU ${batch.map((b) => b.iouPredictions[0]!.toFixed(3)).join(', ')}`);

  await mkdir(OUT, { recursive: true });
  await writePng(join(OUT, 'segment-point.png'), maskToGrey(r1.masks[best]!, r1.width, r1.height));
  await writePng(join(OUT, 'segment-box.png'), maskToGrey(r2.masks[0]!, r2.width, r2.height));
  console.log(`wrote ${join('out', 'examples', 'segment-point.png')} and segment-box.png`);
} finally {
  emb.dispose(); // frees the embedding's GPU buffer
}

// 5. "Segment everything": a grid of point prompts, IoU / stability filters, box NMS. The loose
// thresholds and the 4 x 4 grid suit the tiny random model; SAM's defaults are 32, 0.88 and 0.95.
const amg = new SamAutomaticMaskGenerator(predictor, { pointsPerSide: 4, predIouThresh: 0, stabilityScoreThresh: 0 });
const masks = await amg.generate(image);
const t = amg.lastTimings;
console.log(`automatic masks: ${masks.length} kept of ${t.masksDecoded} decoded (encode ${t.encodeMs.toFixed(0)} ms, decode ${t.decodeMs.toFixed(0)} ms)`);
for (const m of masks.slice(0, 3)) {
  console.log(`  area ${m.area} px, bbox [${m.bbox.join(', ')}], IoU ${m.predictedIou.toFixed(3)}, stability ${m.stabilityScore.toFixed(3)}`);
}

predictor.dispose();
ctx.destroy();

function fmt(v: Float32Array): string {
  return Array.from(v, (x) => x.toFixed(3)).join(' / ');
}

function area(mask: Uint8Array): number {
  let n = 0;
  for (const v of mask) n += v;
  return n;
}
