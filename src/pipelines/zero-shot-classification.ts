/**
 * SAM-CLIP zero-shot classification (DESIGN.md 6.3): the pooled image embedding against class
 * embeddings from prompt ensembles,
 *
 *   logits_c = exp(logit_scale) * pooled . T_c,   probs = softmax(logits)
 *
 * Merged model: the CLIP head's pooled embedding of the image resized to 224 (or 336) with SAM
 * normalisation; composite: the CLIP vision tower on CLIP's own transform. The dot products with a
 * handful of classes run on the CPU in double precision (rounded to f32 once).
 */
import type { ImageU8 } from '../image/image.js';
import { readTensor } from '../kernels/copy.js';
import type { SamClip, TemplateChoice } from '../model/samclip/samclip.js';
import { checkClassList } from '../model/samclip/text-embeddings.js';

export interface ClassifyOptions {
  /** 'ensemble' (80 ImageNet templates, default), 'single' ("a photo of a {}."), 'name', or a list. */
  templates?: TemplateChoice;
  /** Input size (default: the model's classification size, 224 at 1024 px; 336 also works). */
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
  logits: Float32Array;
  probs: Float32Array;
  /** Most probable first (ties keep the given order). */
  ranked: ClassScore[];
}

/** logits = scale * pooled . T_c and their softmax (host arithmetic in double). */
export function classificationLogits(pooled: Float32Array, T: Float32Array, classes: number, scale: number): { logits: Float32Array; probs: Float32Array } {
  const D = pooled.length;
  const logits = new Float32Array(classes);
  for (let c = 0; c < classes; c++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += pooled[d]! * T[c * D + d]!;
    logits[c] = scale * s;
  }
  const m = Math.max(...logits);
  let z = 0;
  for (const l of logits) z += Math.exp(l - m);
  const probs = Float32Array.from(logits, (l) => Math.exp(l - m) / z);
  return { logits, probs };
}

export async function classify(model: SamClip, image: ImageU8, labels: readonly string[], opts: ClassifyOptions = {}): Promise<Classification> {
  const names = checkClassList(labels, 'classify: labels');
  const rgb = model.checkImage(image, 'classify');
  const size = opts.size ?? model.resolutions.cls;
  const T = await model.classEmbeddings(names, { templates: opts.templates });
  const ctx = model.ctx;
  const pooledT = await model.backend.pooled(ctx, rgb, size);
  let pooled: Float32Array;
  try {
    pooled = (await readTensor(ctx, pooledT)) as Float32Array;
  } finally {
    pooledT.dispose();
  }
  const { logits, probs } = classificationLogits(pooled, T, names.length, model.logitScale);
  const ranked = names
    .map((label, index) => ({ label, index, prob: probs[index]!, logit: logits[index]! }))
    .sort((a, b) => b.prob - a.prob || a.index - b.index);
  return { labels: names, logits, probs, ranked };
}
