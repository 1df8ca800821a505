/**
 * SAM-CLIP: zero-shot classification, semantic segmentation (head-only and refined with the SAM
 * head, with background handling), text-prompted masks, SAM prompts on the shared embedding, and
 * composite mode (public SAM + CLIP weights behind the same API).
 *
 *   npx tsx examples/node/semseg.ts [bundle.safetensors] [photo.jpg]
 *
 * Defaults: the repository's tiny seeded SAM-CLIP bundle
 * (test/fixtures/reference/samclip/samclip_tiny.safetensors, random weights: the label maps are
 * meaningless) and test/fixtures/images/dog.jpg. Writes out/examples/semseg-labels.png.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GpuContext, SafetensorsFile, SamClip, loadClip } from '../../src/index.js';
import { colorizeLabels, palette, readImage, writePng } from '../../src/io/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const REF = join(ROOT, 'test/fixtures/reference');
const bundle = process.argv[2] ?? join(REF, 'samclip/samclip_tiny.safetensors');
const photo = process.argv[3] ?? join(ROOT, 'test/fixtures/images/dog.jpg');
const OUT = join(ROOT, 'out', 'examples');

const ctx = await GpuContext.create();
const model = await SamClip.load(ctx, bundle); // merged model, validated strictly from the header
console.log(`SAM-CLIP (${model.mode}): native ${model.resolutions.native} px, seg ${model.resolutions.seg}, cls ${model.resolutions.cls}, joint ${model.embedDim}`);
const image = await readImage(photo);
const classes = ['dog', 'grass', 'floor'];

// Classification: the CLIP head's pooled embedding at the classification size.
const cls = await model.classify(image, classes);
console.log('classify:', cls.ranked.map((r) => `${r.label} ${r.prob.toFixed(3)}`).join(', '));

// Head-only semantic segmentation at the segmentation size (448 for a 1024-px model).
const head = await model.segmentSemantic(image, classes);
console.log(`head-only: ${summary(head.classes, head.pixelCounts)}`);

// Refined with the SAM head, a background prompt, and a probability floor for the background.
const refined = await model.segmentSemantic(image, classes, { refine: true, background: true, backgroundThreshold: 0.4 });
console.log(`refined: ${summary(refined.classes, refined.pixelCounts)}; decoded classes ${JSON.stringify(refined.decodedClasses)}, fallback pixels ${refined.fallbackPixels}`);

// One native-size pass shared by everything that follows (no second backbone run).
const emb = await model.embed(image);
try {
  const seeded = await model.segmentSemantic(emb, classes, { refine: true, seed: 7, maxPoints: 2, pointThreshold: 0.3 });
  console.log(`refined on the shared embedding (seed 7): points per class ${seeded.points!.map((p) => p.coords.length).join(', ')}`);
  const txt = await model.segmentText(emb, 'the dog');
  console.log(`segmentText "the dog": ${txt.masks.length} masks, IoU ${Array.from(txt.iouPredictions, (v) => v.toFixed(3)).join(' / ')}, confident ${txt.confident}, points ${JSON.stringify(txt.points)}`);
  const p = await model.predictor.predict(emb.sam, { points: [[400, 250]], labels: [1] }, { multimaskOutput: false });
  console.log(`SAM head on the same pass: IoU ${p.iouPredictions[0]!.toFixed(3)}`);
  await mkdir(OUT, { recursive: true });
  const colours = palette(refined.classes.length);
  await writePng(join(OUT, 'semseg-labels.png'), colorizeLabels(refined.labelMap, refined.width, refined.height, colours));
  console.log(`wrote ${join('out', 'examples', 'semseg-labels.png')}`);
} finally {
  emb.dispose();
}
model.dispose();

// Composite mode: a public SAM checkpoint + a public CLIP checkpoint, same API. Here the tiny
// fixtures; the tiny CLIP needs options its shapes cannot tell, so it is built first and passed in.
const clipFile = await SafetensorsFile.open(join(REF, 'clip_tiny.weights.safetensors'));
const clip = await loadClip(ctx, clipFile, { textHeads: 4, act: 'quick_gelu' });
await clipFile.close();
const composite = await SamClip.composite(ctx, { sam: join(REF, 'sam_tiny.weights.safetensors'), clip }, { dense: { method: 'maskclip', window: 64, stride: 32 } });
const c = await composite.segmentSemantic(image, classes, { refine: true });
console.log(`composite (${composite.mode}): ${summary(c.classes, c.pixelCounts)}`);
composite.dispose();
clip.dispose(); // a model passed in stays the caller's
ctx.destroy();

function summary(names: readonly string[], counts: Uint32Array): string {
  const total = counts.reduce((a, b) => a + b, 0);
  return names.map((n, i) => `${n} ${((100 * counts[i]!) / total).toFixed(1)}%`).join(', ');
}
