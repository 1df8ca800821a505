/**
 * The zero-shot classification pipeline:
 *  - end to end from the photos (the .jpg files decoded by readImage) through the CPU preprocessing
 *    and the vision tower to `image_features` of the official code (clip_tiny, fixtures' rule);
 *  - the template ensemble (mean of normalised prompt embeddings, re-normalised) against the
 *    official class embeddings `T` of the SAM-CLIP fixtures (the OpenAI text tower with exact GELU,
 *    80 ImageNet templates x 6 classes), and the single-template embeddings;
 *  - classify(): softmax of exp(logit_scale) x cosine, ranking, the text-embedding cache;
 *  - bad input: empty, duplicate, blank labels; malformed templates.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clipPreprocess } from '../../src/image/preprocess.js';
import { ClipModel } from '../../src/model/clip/clip.js';
import { ClipError } from '../../src/model/clip/config.js';
import { ClipClassifier, IMAGENET_TEMPLATES, TextEmbeddingCache } from '../../src/pipelines/clip-classifier.js';
import { loadClipTokenizer } from '../../src/text/clip-vocabulary.js';
import type { ClipTokenizer } from '../../src/text/clip-tokenizer.js';
import { Weights } from '../../src/weights/weights.js';
import { expectClose } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { usePhotos } from '../helpers/photos.js';
import { FIXTURES, expectReference, manifest, openReference } from '../helpers/reference.js';
import { CLIP_MANIFEST, loadTiny, readF32 } from '../model/clip-helpers.js';

const gpu = useGpu();
let tiny: ClipModel;
let tokenizer: ClipTokenizer;
let classifier: ClipClassifier;

const photo = usePhotos();

function normalized(x: Float32Array, rows: number): Float32Array {
  const E = x.length / rows;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < E; k++) s += x[r * E + k]! ** 2;
    const n = Math.sqrt(s);
    for (let k = 0; k < E; k++) out[r * E + k] = x[r * E + k]! / n;
  }
  return out;
}

beforeAll(async () => {
  tiny = await loadTiny(gpu());
  tokenizer = await loadClipTokenizer();
  classifier = new ClipClassifier(gpu(), tiny, tokenizer);
});
afterAll(() => tiny?.dispose());

describe('templates', () => {
  it('the shipped asset and the built-in list are the 80 ImageNet templates', () => {
    const asset = JSON.parse(readFileSync(new URL('../../assets/imagenet_templates.json', import.meta.url), 'utf8')) as string[];
    expect(asset).toHaveLength(80);
    expect([...IMAGENET_TEMPLATES]).toEqual(asset);
    const fixture = JSON.parse(readFileSync(join(FIXTURES, 'clip', 'imagenet_templates.json'), 'utf8')) as string[];
    expect(asset).toEqual(fixture);
  });
});

describe('end to end from the .jpg', () => {
  it('photo -> preprocess (within 1 uint8 step) -> vision tower -> image_features (fixtures rule)', async () => {
    const ctx = gpu();
    const ref = await openReference('clip_tiny.safetensors');
    const resized = await ref.readRaw('photos_resized_u8');
    const feats = await ref.readF32('image_features');
    const E = 64;
    for (const [i, name] of (['truck', 'dog'] as const).entries()) {
      const pre = clipPreprocess(photo(name), { size: tiny.imageSize });
      const expectedU8 = resized.subarray(i * 64 * 64 * 3, (i + 1) * 64 * 64 * 3);
      let maxStep = 0;
      for (let k = 0; k < expectedU8.length; k++) maxStep = Math.max(maxStep, Math.abs(pre.resized.data[k]! - expectedU8[k]!));
      console.log(`${name}: photos_resized_u8 max |step| ${maxStep}`);
      expect(maxStep).toBeLessThanOrEqual(1);
      const x = ctx.upload(pre.input, [1, 3, 64, 64]);
      const f = tiny.encodeImage(ctx, x);
      const expected = feats.subarray((i + 1) * E, (i + 2) * E); // row 0 is the synthetic image
      const r = expectReference(await readF32(ctx, f), expected, { ...CLIP_MANIFEST.tensors.image_features, shape: [1, E] }, `${name} image_features`);
      console.log(`${name} image_features from the decoded photo: rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)})`);
      f.dispose();
      x.dispose();
      // The pipeline's encodeImage is the same, L2-normalised.
      const e = await classifier.encodeImage(photo(name));
      expectClose(e, normalized(Float32Array.from(expected), 1), { relL2: 1e-4 }, `${name} encodeImage (normalised)`, [E]);
    }
    await ref.close();
  });
});

describe('template ensemble vs the official class embeddings (SAM-CLIP text fixtures, GELU tower)', () => {
  let textModel: ClipModel;
  let textClassifier: ClipClassifier;
  const sm = manifest('samclip');

  beforeAll(async () => {
    const ctx = gpu();
    const bundle = await openReference('samclip/samclip_tiny.safetensors');
    // The bundle's text tower sits under `text.`: strip it and leave the SAM / head tensors out.
    const w = await Weights.load(ctx, bundle, { family: 'samclip-text', rules: [{ from: /^text\./, to: '' }] }, {
      include: (k) => !/^(image_encoder|prompt_encoder|mask_decoder|clip_head)\./.test(k),
    });
    await bundle.close();
    textModel = await ClipModel.create(ctx, w, { act: 'gelu', textHeads: sm.config.text.heads });
    textClassifier = new ClipClassifier(ctx, textModel, tokenizer, { textBatchSize: 200 });
  });
  afterAll(() => textModel?.dispose());

  it('classEmbeddings(classes) = T, and single-template embeddings', async () => {
    const text = await openReference('samclip/samclip_tiny.text.safetensors');
    const classes: string[] = sm.text.classes;
    const T = await textClassifier.classEmbeddings(classes);
    const r = expectReference(Float32Array.from(T.flatMap((t) => [...t])), await text.readF32('T'), sm.text.tensors.T, 'T (ensemble)');
    console.log(`class embeddings T (80 templates x ${classes.length} classes): rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)})`);
    const single = await textClassifier.classEmbeddings(classes, [sm.text.single_template]);
    const rs = expectReference(Float32Array.from(single.flatMap((t) => [...t])), await text.readF32('single.embeddings'), sm.text.tensors['single.embeddings'], 'single.embeddings');
    console.log(`single-template embeddings: rel_l2 ${rs.relL2.toExponential(2)}`);
    await text.close();
    // 480 prompts encoded once each ('a photo of a {}.' is one of the 80 templates, so the single
    // template adds none); asking again is served from the cache.
    const misses = textClassifier.cache.misses;
    await textClassifier.classEmbeddings(classes);
    expect(textClassifier.cache.misses).toBe(misses);
    expect(IMAGENET_TEMPLATES).toContain(sm.text.single_template);
    expect(textClassifier.cache.size).toBe(80 * classes.length);
  });
});

describe('classify', () => {
  it('probabilities are softmax(exp(logit_scale) * cos) over the ensembles; ranked', async () => {
    const labels = ['truck', 'dog', 'grass', 'sky'];
    const res = await classifier.classify(photo('dog'), labels);
    expect(res.labels).toEqual(labels);
    const img = await classifier.encodeImage(photo('dog'));
    const T = await classifier.classEmbeddings(labels);
    const expLogits = T.map((t) => 100 * t.reduce((a, v, k) => a + v * img[k]!, 0));
    expectClose(res.logits, expLogits, { relL2: 1e-5 }, 'logits');
    const m = Math.max(...expLogits);
    const ex = expLogits.map((l) => Math.exp(l - m));
    const s = ex.reduce((a, b) => a + b, 0);
    expectClose(res.probs, ex.map((e) => e / s), { relL2: 1e-5 }, 'probs');
    expect(res.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    for (let i = 1; i < res.ranked.length; i++) expect(res.ranked[i - 1]!.prob).toBeGreaterThanOrEqual(res.ranked[i]!.prob);
    console.log(`dog.jpg with random tiny weights: ${res.ranked.map((r) => `${r.label} ${r.prob.toFixed(3)}`).join(', ')}`);
  });

  it('a single template and the raw label are options', async () => {
    const a = await classifier.classify(photo('truck'), ['truck', 'dog'], { templates: ['a photo of a {}.'] });
    const b = await classifier.classify(photo('truck'), ['truck', 'dog'], { templates: ['{}'] });
    expect(a.probs).not.toEqual(b.probs);
  });

  it('the cache is keyed by model identity and prompt', async () => {
    const cache = new TextEmbeddingCache();
    const c1 = new ClipClassifier(gpu(), tiny, tokenizer, { cache });
    await c1.encodeText(['a photo of a cat.', 'a photo of a cat.', 'a dog']);
    expect(cache.size).toBe(2);
    const again = await c1.encodeText(['a dog']);
    expect(cache.hits).toBeGreaterThanOrEqual(1);
    expect(again[0]!.length).toBe(64);
    const other = await loadTiny(gpu(), { act: 'gelu', towers: 'text' });
    try {
      expect(other.id).not.toBe(tiny.id);
      const c2 = new ClipClassifier(gpu(), other, tokenizer, { cache });
      const g = await c2.encodeText(['a dog']);
      expect(cache.size).toBe(3);
      expect(Array.from(g[0]!)).not.toEqual(Array.from(again[0]!));
    } finally {
      other.dispose();
    }
  });

  it('bad input gives clear errors', async () => {
    const img = photo('dog');
    await expect(classifier.classify(img, [])).rejects.toThrow(/label list is empty/);
    await expect(classifier.classify(img, ['cat', 'dog', 'cat'])).rejects.toThrow(/duplicate label "cat" is given twice \(indices 0 and 2\)/);
    await expect(classifier.classify(img, ['Cat', 'dog', ' cat '])).rejects.toThrow(/duplicate label " cat " \(index 2\) is the same text as "Cat" \(index 0\)/);
    await expect(classifier.classify(img, ['cat', '  '])).rejects.toThrow(/label 1 \("  "\) is blank/);
    await expect(classifier.classify(img, ['cat', 3 as unknown as string])).rejects.toThrow(/label 1 is not a string/);
    await expect(classifier.classify(img, ['cat'], { templates: ['a photo'] })).rejects.toThrow(/template 0 \("a photo"\) has 0 "\{\}" placeholders/);
    await expect(classifier.classify(img, ['cat'], { templates: ['{} and {}'] })).rejects.toThrow(/has 2 "\{\}" placeholders/);
    await expect(classifier.classify(img, ['cat'], { templates: [] })).rejects.toThrow(ClipError);
    await expect(classifier.classify(img, ['cat'], { size: 70 })).rejects.toThrow(/multiples of the patch size 16/);
    expect(() => new ClipClassifier(gpu(), tiny, tokenizer, { textBatchSize: 0 })).toThrow(/textBatchSize/);
  });
});
