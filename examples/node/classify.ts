/**
 * Zero-shot classification with CLIP / OpenCLIP: load a checkpoint, classify a photo over a few
 * labels (80-template ensemble, a single template, the raw names), reuse the text-embedding cache,
 * and use the tokenizer and the two towers directly.
 *
 *   npx tsx examples/node/classify.ts [clip.safetensors] [photo.jpg]
 *
 * Defaults: the repository's tiny seeded CLIP (test/fixtures/reference/clip_tiny.weights.safetensors,
 * random weights: the probabilities are meaningless) and test/fixtures/images/dog.jpg. The tiny
 * model needs two options its shapes cannot tell (4 text heads, QuickGELU); for a real checkpoint
 * (`samclip weights pull clip-vit-b-16`) leave them out, and pass `act: 'gelu'` for OpenCLIP
 * LAION / DataComp files.
 */
import { join } from 'node:path';
import { ClipClassifier, GpuContext, type LoadClipOptions, SafetensorsFile, TextEmbeddingCache, loadClip, loadClipTokenizer } from '../../src/index.js';
import { readImage } from '../../src/io/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const path = process.argv[2] ?? join(ROOT, 'test/fixtures/reference/clip_tiny.weights.safetensors');
const photo = process.argv[3] ?? join(ROOT, 'test/fixtures/images/dog.jpg');
const opts: LoadClipOptions = process.argv[2] ? {} : { textHeads: 4, act: 'quick_gelu' };

const ctx = await GpuContext.create();
const file = await SafetensorsFile.open(path);
const model = await loadClip(ctx, file, opts); // family (OpenAI/OpenCLIP or Hugging Face) detected from the keys
await file.close(); // the weights are on the GPU now
console.log(`CLIP: vision ${model.config.vision?.width}/${model.config.vision?.layers} at ${model.imageSize} px, text ${model.config.text?.width}, joint ${model.config.embedDim}, act ${model.config.act}, logit scale ${model.logitScale.toFixed(2)}`);

const cache = new TextEmbeddingCache(); // shareable between classifiers
const clf = await ClipClassifier.create(ctx, model, { cache }); // Node: loads the shipped BPE vocabulary
const image = await readImage(photo);
const labels = ['dog', 'cat', 'truck'];

let t0 = performance.now();
const res = await clf.classify(image, labels); // 80 ImageNet templates per label
console.log(`ensemble (${labels.length} x 80 prompts, ${(performance.now() - t0).toFixed(0)} ms):`, res.ranked.map((r) => `${r.label} ${r.prob.toFixed(3)}`).join(', '));

t0 = performance.now();
await clf.classify(image, labels); // the 240 prompt embeddings now come from the cache
console.log(`again, text from the cache (${cache.size} entries): ${(performance.now() - t0).toFixed(0)} ms`);

const single = await clf.classify(image, labels, { templates: ['a photo of a {}.'] });
const raw = await clf.classify(image, labels, { templates: ['{}'] });
console.log(`single template: top ${single.ranked[0]!.label}; raw names: top ${raw.ranked[0]!.label}`);

// The embeddings themselves (L2-normalised Float32Arrays).
const img = await clf.encodeImage(image);
const [txt] = await clf.encodeText(['a photo of a dog.']);
let cos = 0;
for (let i = 0; i < img.length; i++) cos += img[i]! * txt![i]!;
console.log(`image embedding ${img.length}-d, cosine with "a photo of a dog." = ${cos.toFixed(4)}`);

// The tokenizer on its own (context 77, zero padded, <|startoftext|> ... <|endoftext|>).
const tok = await loadClipTokenizer();
const { ids, shape } = tok.tokenize(['a photo of a dog.']);
console.log(`tokens ${JSON.stringify(shape)}: ${Array.from(ids.slice(0, 8)).join(' ')} ...; decoded: "${tok.decode(ids, { skipSpecialTokens: true })}"`);

model.dispose();
ctx.destroy();
