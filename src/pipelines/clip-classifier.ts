/**
 * Zero-shot classification with CLIP (DESIGN.md 6.3), as in openai/CLIP's ImageNet notebook:
 *
 *   class embedding T_c = normalize(mean_t normalize(encode_text(template_t(label_c))))
 *   logits = exp(logit_scale) * normalize(encode_image(image)) . T_c,   probs = softmax(logits)
 *
 * The default ensemble is the notebook's 80 ImageNet templates; `templates: ['{}']` uses the raw
 * label, `['a photo of a {}.']` a single template. Text embeddings are cached per (model identity,
 * prompt), so a label set is encoded once per model, and labels that share prompts share work.
 * Image preprocessing is the official transform (src/image: Pillow-exact bicubic resize of the
 * shorter side, centre crop, normalise) at the model's native size unless `size` says otherwise.
 *
 * The small host-side arithmetic (template means, dot products with a handful of classes,
 * softmax) is done in double precision on the CPU; everything per token or pixel runs on the GPU.
 */
import type { GpuContext } from '../gpu/context.js';
import { throwIfAborted } from '../gpu/errors.js';
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import type { PretrainedName, PretrainedOptions } from '../hub/pretrained.js';
import type { ImageU8 } from '../image/image.js';
import { type ImageInput, toImageU8 } from '../image/image-input.js';
import { clipPreprocess } from '../image/preprocess.js';
import { readTensor } from '../kernels/copy.js';
import { l2Normalize } from '../kernels/l2-normalize.js';
import type { ClipModel } from '../model/clip/clip.js';
import { ClipError } from '../model/clip/config.js';
import { type LoadClipOptions, loadClip } from '../model/clip/load.js';
import type { ClipTokenizer } from '../text/clip-tokenizer.js';
import { loadClipTokenizer } from '../text/clip-vocabulary.js';
import { clipNormalize } from '../text/text-cleanup.js';
import { IMAGENET_TEMPLATES } from '../text/imagenet-templates.js';
import { fillTemplate, identicalAfterTruncation, shortName } from '../text/truncation.js';

/** Largest input side: 73 x 73 tokens at patch 14, already 50x the native 224-px cost of ViT-L/14. */
export const MAX_INPUT_SIZE = 1024;

export { IMAGENET_TEMPLATES };

/** Text embeddings (L2-normalised) by model identity and prompt; least recently used entries go first. */
export class TextEmbeddingCache {
  private readonly map = new Map<string, Float32Array>();
  hits = 0;
  misses = 0;

  constructor(readonly maxEntries = 200_000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new ClipError(`TextEmbeddingCache: maxEntries must be a positive integer, got ${maxEntries}`);
  }

  private static key(modelId: string, prompt: string): string {
    return `${modelId}\u0000${prompt}`;
  }

  get(modelId: string, prompt: string): Float32Array | undefined {
    const k = TextEmbeddingCache.key(modelId, prompt);
    const v = this.map.get(k);
    if (v) {
      this.map.delete(k);
      this.map.set(k, v);
      this.hits++;
    } else {
      this.misses++;
    }
    return v;
  }

  set(modelId: string, prompt: string, embedding: Float32Array): void {
    const k = TextEmbeddingCache.key(modelId, prompt);
    this.map.delete(k);
    this.map.set(k, embedding);
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value!);
  }

  get size(): number {
    return this.map.size;
  }

  clear(): void {
    this.map.clear();
  }
}

export interface ClipClassifierOptions {
  /** Share a cache between classifiers (e.g. over several models); default: one per classifier. */
  cache?: TextEmbeddingCache;
  /** Prompts per text-tower call (default 128). */
  textBatchSize?: number;
  /** Run the text tower on the first max(eot)+1 positions only (default true; see model/clip/text.ts). */
  trimContext?: boolean;
}

export interface ClassifyOptions {
  /** Prompt templates with one `{}` each; default the 80 ImageNet templates. */
  templates?: readonly string[];
  /** Input size for the image (default: the model's native size). */
  size?: number;
}

export interface ClassScore {
  label: string;
  index: number;
  prob: number;
  logit: number;
}

export interface Classification {
  /** In the order given. */
  labels: string[];
  probs: Float32Array;
  logits: Float32Array;
  /** All classes, most probable first (ties keep the given order). */
  ranked: ClassScore[];
}

/** logits_c = scale * image . class_c and their softmax, in double precision (rounded to f32 once). */
export function zeroShotLogits(image: Float32Array, classes: readonly Float32Array[], scale: number): { logits: Float32Array; probs: Float32Array } {
  const logits = classes.map((t) => {
    let d = 0;
    for (let k = 0; k < t.length; k++) d += t[k]! * image[k]!;
    return scale * d;
  });
  const max = Math.max(...logits);
  const ex = logits.map((l) => Math.exp(l - max));
  const sum = ex.reduce((a, b) => a + b, 0);
  return { logits: Float32Array.from(logits), probs: Float32Array.from(ex, (e) => e / sum) };
}

/** The classification result: scores in the given order plus the ranking (ties keep the given order). */
export function rankClasses(labels: readonly string[], { logits, probs }: { logits: Float32Array; probs: Float32Array }): Classification {
  const ranked = labels
    .map((label, index) => ({ label, index, prob: probs[index]!, logit: logits[index]! }))
    .sort((a, b) => b.logit - a.logit || a.index - b.index);
  return { labels: [...labels], probs, logits, ranked };
}

/** Validate labels: a non-empty list of distinct, non-blank strings (distinct after CLIP's text normalisation). */
export function checkLabels(labels: readonly string[]): void {
  if (!Array.isArray(labels)) throw new ClipError(`classify: labels must be an array of strings, got ${typeof labels}`);
  if (labels.length === 0) throw new ClipError('classify: the label list is empty; give at least one class name');
  const seen = new Map<string, number>();
  labels.forEach((l, i) => {
    if (typeof l !== 'string') throw new ClipError(`classify: label ${i} is not a string (${JSON.stringify(l)})`);
    const norm = clipNormalize(l);
    if (norm === '') throw new ClipError(`classify: label ${i} (${JSON.stringify(l)}) is blank`);
    const j = seen.get(norm);
    if (j !== undefined) {
      const same = labels[j] === l ? `is given twice (indices ${j} and ${i})` : `(index ${i}) is the same text as ${JSON.stringify(labels[j])} (index ${j}) after CLIP's lower-casing and whitespace folding`;
      throw new ClipError(`classify: duplicate label ${JSON.stringify(l)} ${same}; class names must be distinct`);
    }
    seen.set(norm, i);
  });
}

/** Validate templates: a non-empty list of strings with exactly one `{}` each. */
export function checkTemplates(templates: readonly string[]): void {
  if (!Array.isArray(templates) || templates.length === 0) throw new ClipError('classify: templates must be a non-empty array of strings with one "{}" each');
  templates.forEach((t, i) => {
    if (typeof t !== 'string') throw new ClipError(`classify: template ${i} is not a string (${JSON.stringify(t)})`);
    const n = t.split('{}').length - 1;
    if (n !== 1) throw new ClipError(`classify: template ${i} (${JSON.stringify(t)}) has ${n} "{}" placeholders; exactly one is needed`);
  });
}

function normalize64(v: Float64Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s);
  return Float32Array.from(v, (x) => x / n);
}

export class ClipClassifier {
  readonly cache: TextEmbeddingCache;
  private readonly textBatchSize: number;
  private readonly trim: boolean;

  constructor(
    readonly ctx: GpuContext,
    readonly model: ClipModel,
    readonly tokenizer: ClipTokenizer,
    opts: ClipClassifierOptions = {},
  ) {
    this.cache = opts.cache ?? new TextEmbeddingCache();
    this.textBatchSize = opts.textBatchSize ?? 128;
    if (!Number.isInteger(this.textBatchSize) || this.textBatchSize < 1) throw new ClipError(`ClipClassifier: textBatchSize must be a positive integer, got ${opts.textBatchSize}`);
    this.trim = opts.trimContext ?? true;
  }

  /** With the tokenizer of the vocabulary shipped in the package when none is given (browsers and Node). */
  static async create(ctx: GpuContext, model: ClipModel, opts: ClipClassifierOptions & { tokenizer?: ClipTokenizer } = {}): Promise<ClipClassifier> {
    const tokenizer = opts.tokenizer ?? (await loadClipTokenizer());
    return new ClipClassifier(ctx, model, tokenizer, opts);
  }

  /**
   * A CLIP model by registry name ('clip-vit-b-16', 'openclip-vit-b-16-datacomp', ...), from the
   * cache or downloaded into it first (src/hub). The registry supplies what the file does not
   * record (the DataComp models' GELU). `cache` is the model cache here; the text-embedding cache
   * of `create` is `textCache`. `classifier.model.dispose()` releases the model.
   */
  static async fromPretrained(
    ctx: GpuContext,
    name: PretrainedName,
    opts: PretrainedOptions & LoadClipOptions & Omit<ClipClassifierOptions, 'cache'> & { textCache?: TextEmbeddingCache; tokenizer?: ClipTokenizer } = {},
  ): Promise<ClipClassifier> {
    // The registry and downloader load on first use: apps that load weights by URL do not ship them.
    const { openPretrained } = await import('../hub/pretrained.js');
    const { file, entry } = await openPretrained(name, 'clip', opts);
    let model: ClipModel;
    try {
      model = await loadClip(ctx, file, { ...opts, act: opts.act ?? entry.act });
    } finally {
      await file.close();
    }
    try {
      return await ClipClassifier.create(ctx, model, { ...opts, cache: opts.textCache });
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  /** L2-normalised image embeddings of a batch of images, one Float32Array each. */
  async encodeImages(inputs: readonly ImageInput[], opts: { size?: number } & ProgressOptions = {}): Promise<Float32Array[]> {
    const images = await Promise.all(inputs.map((img, i) => toImageU8(img, { what: `ClipClassifier image ${i}`, signal: opts.signal })));
    if (images.length === 0) return [];
    throwIfAborted(opts.signal, 'ClipClassifier.encodeImages');
    const size = opts.size ?? this.model.imageSize;
    const patch = this.model.config.vision?.patch ?? 1;
    if (!Number.isInteger(size) || size < patch || size > MAX_INPUT_SIZE) {
      throw new ClipError(`CLIP input size must be an integer in [${patch} (the patch size), ${MAX_INPUT_SIZE}], got ${size}`);
    }
    const per = 3 * size * size;
    const input = new Float32Array(images.length * per);
    images.forEach((img, i) => input.set(clipPreprocess(img, { size }).input, i * per));
    await this.model.prepareImageSize(this.ctx, size);
    const ctx = this.ctx;
    const out = ctx.scope(() => {
      const x = ctx.upload(input, [images.length, 3, size, size]);
      return l2Normalize(ctx, this.model.encodeImage(ctx, x));
    });
    try {
      const data = (await readTensor(ctx, out)) as Float32Array;
      const E = out.dim(1);
      opts.onProgress?.({ stage: 'image encoder', fraction: 1 });
      return images.map((_, i) => data.slice(i * E, (i + 1) * E));
    } finally {
      out.dispose();
    }
  }

  /** L2-normalised image embedding. */
  async encodeImage(image: ImageInput, opts: { size?: number } & ProgressOptions = {}): Promise<Float32Array> {
    return (await this.encodeImages([image], opts))[0]!;
  }

  /** L2-normalised text embeddings, one per text (batched; cached per model and prompt). */
  async encodeText(texts: readonly string[], opts: ProgressOptions = {}): Promise<Float32Array[]> {
    return this.encodeTextPaced(texts, Pacer.for(this.ctx, opts, 'ClipClassifier.encodeText'));
  }

  private async encodeTextPaced(texts: readonly string[], pacer: Pacer | null): Promise<Float32Array[]> {
    if (!Array.isArray(texts)) throw new ClipError(`encodeText: expected an array of strings, got ${typeof texts}`);
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw new ClipError(`encodeText: text ${i} is not a string (${JSON.stringify(t)})`);
    });
    const id = this.model.id;
    const result = new Map<string, Float32Array>();
    const pending = new Set<string>();
    for (const t of texts) {
      if (result.has(t) || pending.has(t)) continue;
      const hit = this.cache.get(id, t);
      if (hit) result.set(t, hit);
      else pending.add(t);
    }
    const todo = [...pending];
    const context = this.model.config.text?.contextLength;
    for (let s = 0; s < todo.length; s += this.textBatchSize) {
      const chunk = todo.slice(s, s + this.textBatchSize);
      const tokens = this.tokenizer.tokenize(chunk, { contextLength: context, truncate: true });
      const ctx = this.ctx;
      const out = ctx.scope(() => l2Normalize(ctx, this.model.encodeText(ctx, tokens, { trim: this.trim })));
      try {
        const data = (await readTensor(ctx, out)) as Float32Array;
        const E = out.dim(1);
        chunk.forEach((t, i) => {
          const e = data.slice(i * E, (i + 1) * E);
          this.cache.set(id, t, e);
          result.set(t, e);
        });
      } finally {
        out.dispose();
      }
      pacer?.note(`text embeddings ${s + chunk.length}/${todo.length}`, s + chunk.length, todo.length);
      pacer?.check();
    }
    return texts.map((t) => result.get(t)!);
  }

  /** One embedding per label: the mean of its normalised template embeddings, re-normalised. */
  async classEmbeddings(labels: readonly string[], templates: readonly string[] = IMAGENET_TEMPLATES, opts: ProgressOptions = {}): Promise<Float32Array[]> {
    return this.classEmbeddingsPaced(labels, templates, Pacer.for(this.ctx, opts, 'ClipClassifier.classEmbeddings'));
  }

  private async classEmbeddingsPaced(labels: readonly string[], templates: readonly string[], pacer: Pacer | null): Promise<Float32Array[]> {
    checkLabels(labels);
    checkTemplates(templates);
    const context = this.model.config.text?.contextLength;
    const same = identicalAfterTruncation(this.tokenizer, labels, templates, context);
    if (same) {
      const [i, j] = same;
      throw new ClipError(
        `classify: labels ${i} (${shortName(labels[i]!)}) and ${j} (${shortName(labels[j]!)}) become identical when CLIP cuts each prompt to ${context ?? 77} tokens; they would get the same embedding and split their score. Make them differ earlier.`,
      );
    }
    const prompts = labels.flatMap((l) => templates.map((t) => fillTemplate(t, l)));
    const emb = await this.encodeTextPaced(prompts, pacer);
    const E = emb[0]!.length;
    return labels.map((_, c) => {
      const acc = new Float64Array(E);
      for (let t = 0; t < templates.length; t++) {
        const e = emb[c * templates.length + t]!;
        for (let k = 0; k < E; k++) acc[k]! += e[k]!;
      }
      return normalize64(acc);
    });
  }

  /** Zero-shot probabilities of `labels` for `image`. */
  async classify(input: ImageInput, labels: readonly string[], opts: ClassifyOptions & ProgressOptions = {}): Promise<Classification> {
    const image = await toImageU8(input, { what: 'ClipClassifier.classify', signal: opts.signal });
    checkLabels(labels);
    const scale = this.model.logitScale;
    if (!Number.isFinite(scale)) throw new ClipError(`${this.model.weights.file}: the checkpoint has no 'logit_scale'; classification needs it`);
    const pacer = Pacer.for(this.ctx, opts, 'ClipClassifier.classify');
    const classes = await this.classEmbeddingsPaced(labels, opts.templates ?? IMAGENET_TEMPLATES, pacer?.part(0, 0.8) ?? null);
    const img = await this.encodeImage(image, { size: opts.size, ...(opts.signal ? { signal: opts.signal } : {}) });
    pacer?.note('image encoder', 1, 1);
    return rankClasses(labels, zeroShotLogits(img, classes, scale));
  }
}
