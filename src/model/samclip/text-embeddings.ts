/**
 * Class embeddings for zero-shot classification and segmentation (DESIGN.md section 5):
 *
 *   T_c = L2( mean over templates t of L2( encode_text( t.format(class_c) ) ) )
 *
 * the openai/CLIP ImageNet prompt-ensemble recipe (80 templates by default). A single template, or
 * the raw class name (`templates: ['{}']`), is the same with one row per class. Embeddings are kept
 * per (model, template set, class) in a host-side cache, so a class list that changes by one class
 * encodes only the new one.
 *
 * The text batch (classes x templates rows) is encoded in chunks sized so that the widest
 * activation (rows x context x MLP width floats) stays within one storage binding, with context
 * trimming (the rows stop at their end-of-text token; same pooled result, fewer positions).
 */
import type { GpuContext } from '../../gpu/context.js';
import { SamclipError } from '../../gpu/errors.js';
import type { Pacer } from '../../gpu/pacer.js';
import type { Tensor } from '../../gpu/tensor.js';
import { copyInto, readTensor } from '../../kernels/copy.js';
import { l2Normalize } from '../../kernels/l2-normalize.js';
import { reduceMean } from '../../kernels/reduce.js';
import type { ClipTokenizer } from '../../text/clip-tokenizer.js';
import { clipNormalize } from '../../text/text-cleanup.js';
import { fillTemplate, identicalAfterTruncation, shortName } from '../../text/truncation.js';
import type { TokenIds } from '../clip/text.js';

/** A class list, prompt or template set that cannot be used. */
export class ClassListError extends SamclipError {
  override name = 'ClassListError';
}

/** Encodes token ids [B, L] to text features [B, D] (not normalised). */
export type TextEncoder = (ctx: GpuContext, tokens: TokenIds) => Tensor;

export interface TextEmbedderOptions {
  /** Rows encoded per GPU pass (default: what fits one binding). */
  maxRows?: number;
}

/**
 * Check a user class list: non-empty, strings, no blanks, no duplicates. Two names are the same
 * class when CLIP's text clean-up (lower-casing, whitespace folding) makes them equal: they would
 * get the same embedding.
 */
export function checkClassList(classes: readonly string[], what = 'classes'): string[] {
  if (!Array.isArray(classes)) throw new ClassListError(`${what}: expected an array of class names, got ${typeof classes}`);
  if (classes.length === 0) throw new ClassListError(`${what}: the class list is empty; give at least one class name`);
  const seen = new Map<string, number>();
  return classes.map((c, i) => {
    if (typeof c !== 'string') throw new ClassListError(`${what}[${i}]: class names must be strings, got ${JSON.stringify(c)}`);
    const t = c.trim();
    const key = clipNormalize(t);
    if (!key) throw new ClassListError(`${what}[${i}]: empty class name`);
    const prev = seen.get(key);
    if (prev !== undefined) throw new ClassListError(`${what}: duplicate class '${t}' at positions ${prev} and ${i}${classes[prev] !== c ? ` ('${classes[prev]}' is the same text for CLIP)` : ''}`);
    seen.set(key, i);
    return t;
  });
}

/** Check a template set: each has exactly one `{}`. */
export function checkTemplates(templates: readonly string[]): void {
  if (!Array.isArray(templates) || templates.length === 0) throw new ClassListError('templates: give at least one template such as "a photo of a {}."');
  templates.forEach((t, i) => {
    if (typeof t !== 'string' || t.split('{}').length !== 2) {
      throw new ClassListError(`templates[${i}]: ${JSON.stringify(t)} must contain '{}' exactly once (where the class name goes)`);
    }
  });
}

export class TextEmbedder {
  private readonly cache = new Map<string, Float32Array>();

  constructor(
    readonly tokenizer: ClipTokenizer,
    readonly encode: TextEncoder,
    readonly embedDim: number,
    readonly contextLength: number,
    /** Hidden width of the widest per-token activation (the MLP), for chunking. */
    readonly mlpWidth: number,
    readonly opts: TextEmbedderOptions = {},
  ) {}

  /** Rows per pass so that rows x context x mlpWidth f32 fits half a binding. */
  private chunkRows(ctx: GpuContext, length: number): number {
    const perRow = length * Math.max(this.mlpWidth, 3 * this.embedDim) * 4;
    const fit = Math.max(1, Math.floor(ctx.limits.maxStorageBufferBindingSize / 2 / perRow));
    return Math.min(fit, this.opts.maxRows ?? Infinity);
  }

  /** Text features [n, D] of raw strings (encode_text, not normalised), on the GPU. */
  features(ctx: GpuContext, texts: readonly string[]): Tensor {
    const tok = this.tokenizer.tokenize(texts, { contextLength: this.contextLength });
    return this.featuresOfIds(ctx, tok.ids, tok.shape[0]);
  }

  /** Features of tokenized rows [n, contextLength], chunked. */
  featuresOfIds(ctx: GpuContext, ids: Int32Array, n: number): Tensor {
    const L = this.contextLength;
    const rows = this.chunkRows(ctx, L);
    if (n <= rows) return this.encode(ctx, { ids, shape: [n, L] });
    const out = ctx.empty([n, this.embedDim]);
    for (let r0 = 0; r0 < n; r0 += rows) {
      const r1 = Math.min(n, r0 + rows);
      ctx.scope(() => {
        const f = this.encode(ctx, { ids: ids.subarray(r0 * L, r1 * L), shape: [r1 - r0, L] });
        copyInto(ctx, f, out.slice(0, r0, r1));
      });
    }
    return out;
  }

  /**
   * Class embeddings T [C, D] (host, unit norm), cached per template set and class. `templates`
   * default: the 80 ImageNet templates given at construction time by the caller.
   */
  async classEmbeddings(ctx: GpuContext, classes: readonly string[], templates: readonly string[], pacer?: Pacer | null): Promise<Float32Array> {
    const names = checkClassList(classes);
    checkTemplates(templates);
    const same = identicalAfterTruncation(this.tokenizer, names, templates, this.contextLength);
    if (same) {
      const [i, j] = same;
      throw new ClassListError(
        `classes: ${i} (${shortName(names[i]!)}) and ${j} (${shortName(names[j]!)}) become identical when CLIP cuts each prompt to ${this.contextLength} tokens; they would get the same embedding. Make them differ earlier.`,
      );
    }
    const tkey = templates.join('\u0000');
    const D = this.embedDim;
    const missing = names.filter((c) => !this.cache.has(`${tkey}\u0001${c}`));
    // Paced: one class (its templates) per GPU step, so progress moves and an abort stops soon.
    const groups = pacer ? missing.map((c) => [c]) : missing.length ? [missing] : [];
    let done = 0;
    for (const group of groups) {
      const host = await this.embedClasses(ctx, group, templates);
      group.forEach((c, i) => this.cache.set(`${tkey}\u0001${c}`, host.slice(i * D, (i + 1) * D)));
      done += group.length;
      pacer?.note(`class embeddings ${done}/${missing.length}`, done, missing.length);
      pacer?.check();
    }
    const T = new Float32Array(names.length * D);
    names.forEach((c, i) => T.set(this.cache.get(`${tkey}\u0001${c}`)!, i * D));
    return T;
  }

  /** Unit-norm mean of the unit-norm template embeddings of each class: [classes.length * D] on the host. */
  private async embedClasses(ctx: GpuContext, classes: readonly string[], templates: readonly string[]): Promise<Float32Array> {
    const texts = classes.flatMap((c) => templates.map((t) => fillTemplate(t, c)));
    const D = this.embedDim;
    const T = ctx.task(); // not an async scope: other calls may run on the context meanwhile
    try {
      const unitMean = T.run(() => {
        const unit = l2Normalize(ctx, this.features(ctx, texts));
        return l2Normalize(ctx, reduceMean(ctx, unit.reshape([classes.length, templates.length, D]), 1));
      });
      return (await readTensor(ctx, unitMean)) as Float32Array;
    } finally {
      T.dispose();
    }
  }

  clearCache(): void {
    this.cache.clear();
  }
}
