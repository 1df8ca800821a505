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
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import type { ImageU8 } from '../image/image.js';
import { readTensor } from '../kernels/copy.js';
import type { TemplateChoice } from '../text/imagenet-templates.js';
import type { SamClipModel } from './samclip-core.js';
import { checkClassList } from '../model/samclip/text-embeddings.js';
import { type Classification, rankClasses, zeroShotLogits } from './clip-classifier.js';

export interface ClassifyOptions {
  /** 'ensemble' (80 ImageNet templates, default), 'single' ("a photo of a {}."), 'name', or a list. */
  templates?: TemplateChoice;
  /** Input size (default: the model's classification size, 224 at 1024 px; 336 also works). */
  size?: number;
}

export type { ClassScore, Classification } from './clip-classifier.js';

/** logits = scale * pooled . T_c and their softmax (host arithmetic in double); T is [classes, D] flat. */
export function classificationLogits(pooled: Float32Array, T: Float32Array, classes: number, scale: number): { logits: Float32Array; probs: Float32Array } {
  const D = pooled.length;
  return zeroShotLogits(pooled, Array.from({ length: classes }, (_, c) => T.subarray(c * D, (c + 1) * D)), scale);
}

export async function classify(model: SamClipModel, image: ImageU8, labels: readonly string[], opts: ClassifyOptions & ProgressOptions = {}): Promise<Classification> {
  const names = checkClassList(labels, 'classify: labels');
  const rgb = model.checkImage(image, 'classify');
  const size = opts.size ?? model.resolutions.cls;
  const ctx = model.ctx;
  const pacer = Pacer.for(ctx, opts, 'classify');
  const T = await model.classEmbeddings(names, { templates: opts.templates, pacer: pacer?.part(0, 0.5) });
  const pooledT = await model.backend.pooled(ctx, rgb, size, pacer?.part(0.5, 1));
  let pooled: Float32Array;
  try {
    pooled = (await readTensor(ctx, pooledT)) as Float32Array;
  } finally {
    pooledT.dispose();
  }
  pacer?.note('scores', 1, 1);
  return rankClasses(names, classificationLogits(pooled, T, names.length, model.logitScale));
}
