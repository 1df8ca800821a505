/**
 * The SAM-CLIP bundle's text tower and class embeddings against the reference fixtures: token ids
 * (single template and the 80-template ensemble), encode_text features from the stored ids, the
 * single-template embeddings and the ensemble class embeddings T (the fixtures' rule, rel_l2
 * printed), the cache, chunked encoding, and class-list errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTensor } from '../../src/kernels/copy.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { ClassListError, TextEmbedder, checkClassList } from '../../src/model/samclip/text-embeddings.js';
import { IMAGENET_TEMPLATES } from '../../src/text/imagenet-templates.js';
import type { SafetensorsFile } from '../../src/weights/safetensors.js';
import { useGpu } from '../helpers/gpu.js';
import { expectReference, openReference } from '../helpers/reference.js';
import { BUNDLE, CLASSES, MS, TEXT } from './samclip-fixture.js';

const gpu = useGpu();
let model: SamClip;
let f: SafetensorsFile;

beforeAll(async () => {
  model = await SamClip.load(gpu(), BUNDLE);
  f = await openReference('samclip/samclip_tiny.text.safetensors');
});
afterAll(async () => {
  model?.dispose();
  await f?.close();
});

function check(actual: Float32Array, expected: Float32Array, name: string) {
  const r = expectReference(actual, expected, TEXT[name]!, `text:${name}`);
  console.log(`text:${name}: rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)}), max_abs ${r.maxAbs.toExponential(2)}`);
}

describe('text tower and class embeddings', () => {
  it('tokenizes the single-template and ensemble prompts like clip.tokenize', async () => {
    const tok = model.backend.text.tokenizer;
    const single = tok.tokenize(MS.text.single_strings as string[]);
    expect(Array.from(single.ids)).toEqual(Array.from(await f.readI32('single.token_ids')));
    const rows = CLASSES.flatMap((c) => IMAGENET_TEMPLATES.map((t) => t.replace('{}', c)));
    expect(Array.from(tok.tokenize(rows).ids)).toEqual(Array.from(await f.readI32('ensemble.token_ids')));
  });

  it('encode_text of the stored ids (single and all 480 ensemble rows)', async () => {
    const ctx = gpu();
    const text = model.backend.text;
    for (const name of ['single', 'ensemble'] as const) {
      const ids = await f.readI32(`${name}.token_ids`);
      const n = ids.length / 77;
      const feats = text.featuresOfIds(ctx, ids, n);
      check((await readTensor(ctx, feats)) as Float32Array, await f.readF32(`${name}.features`), `${name}.features`);
      feats.dispose();
    }
  });

  it('single-template embeddings and the 80-template ensemble T', async () => {
    check(await model.classEmbeddings(CLASSES, { templates: 'single' }), await f.readF32('single.embeddings'), 'single.embeddings');
    check(await model.classEmbeddings(CLASSES), await f.readF32('T'), 'T');
  });

  it('chunked encoding (small passes) gives the same T, and the cache serves repeated classes', async () => {
    const ctx = gpu();
    const base = model.backend.text;
    const small = new TextEmbedder(base.tokenizer, base.encode, base.embedDim, base.contextLength, base.mlpWidth, { maxRows: 37 });
    const T = await small.classEmbeddings(ctx, CLASSES, IMAGENET_TEMPLATES);
    check(T, await f.readF32('T'), 'T');
    let calls = 0;
    const counting = new TextEmbedder(base.tokenizer, (c, t) => (calls++, base.encode(c, t)), base.embedDim, base.contextLength, base.mlpWidth);
    await counting.classEmbeddings(ctx, ['dog', 'grass'], ['a photo of a {}.']);
    const before = calls;
    const again = await counting.classEmbeddings(ctx, ['grass', 'dog'], ['a photo of a {}.']);
    expect(calls).toBe(before);
    const single = await f.readF32('single.embeddings');
    const r = expectReference(again.slice(0, 64), single.slice(2 * 64, 3 * 64), TEXT['single.embeddings']!, 'cached grass');
    expect(r.relL2).toBeLessThan(1e-4);
  });

  it('class-list errors name the problem', async () => {
    expect(() => checkClassList([])).toThrow(/class list is empty/);
    expect(() => checkClassList(['dog', 'cat', 'dog'])).toThrow(/duplicate class 'dog' at positions 0 and 2/);
    expect(() => checkClassList(['dog', 'Dog '])).toThrow(/duplicate class/);
    expect(() => checkClassList(['dog', ' '])).toThrow(ClassListError);
    await expect(model.classEmbeddings(['a'], { templates: ['no placeholder'] })).rejects.toThrow(/must contain '\{\}' exactly once/);
  });
});
