/**
 * Zero-shot semantic segmentation with SAM-CLIP (DESIGN.md sections 5 and 6.4).
 *
 * Head-only (`refine: false`, the default): the image squarely resized to the segmentation size
 * (448 at 1024 px) -> dense CLIP features on its g x g grid -> S_c = exp(logit_scale) dense . T_c ->
 * bilinear upsample of S to the original size -> argmax over classes (ties -> the first class).
 *
 * Refined (`refine: true`): one native-size pass (SAM input, 1024) gives the SAM embedding and the
 * dense features on the 64 x 64 grid; S and P = softmax(S) there; per class a mask prompt and 1-3
 * points (src/pipelines/refinement.ts); the kept classes are decoded by the SAM head (single mask,
 * classes with the same number of points in one batched pass); each class's logits are
 * post-processed like SAM masks and the label per pixel is the argmax over decoded classes, or,
 * where every decoded logit is < 0, the head-only label of the native grid post-processed the same
 * way. Upsampling, argmax and compositing run in one fused kernel (label-kernels.ts).
 *
 * Background: `background: true` (or prompt strings) adds background prompts whose pixels get the
 * background label; `backgroundThreshold` labels background the pixels whose best class
 * probability (softmax of the upsampled scores) is below it. Either way the background is the last
 * entry of `result.classes`, so class i keeps label i.
 */
import type { GpuContext } from '../gpu/context.js';
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import { check, fmtShape } from '../gpu/errors.js';
import type { Tensor } from '../gpu/tensor.js';
import type { ImageU8 } from '../image/image.js';
import { concat, copyInto, readTensor } from '../kernels/copy.js';
import { matmul } from '../kernels/matmul.js';
import { resizeBilinear } from '../kernels/resize.js';
import type { Sam } from '../model/sam/sam.js';
import { BACKGROUND_INDEX, FALLBACK_BIT, labelMap } from '../model/samclip/label-kernels.js';
import { SamClipImageEmbedding, type SamClipModel } from './samclip-core.js';
import type { TemplateChoice } from '../text/imagenet-templates.js';
import { ClassListError, checkClassList } from '../model/samclip/text-embeddings.js';
import { type ClassPoints, type RefinementOptions, type RefinementPlan, planRefinement, resolveRefinement, softmaxClasses } from './refinement.js';

export interface SemanticSegmentationOptions extends RefinementOptions {
  /** Refine with the SAM head at the native size (default false: head-only). */
  refine?: boolean;
  /** Background prompts: true = ['background'], or your own strings (all map to one background label). */
  background?: boolean | string | readonly string[];
  /** Pixels whose best class probability is below this get the background label. */
  backgroundThreshold?: number;
  /** Prompt templates (default: the 80 ImageNet templates). */
  templates?: TemplateChoice;
  /** Head-only input size (default: the model's segmentation size, 448 at 1024 px). */
  size?: number;
  /** Also return one 0/1 mask per class (default true). */
  masks?: boolean;
}

export interface SemanticSegmentation {
  /** Label per pixel (row-major, height x width), indexing `classes`. */
  labelMap: Uint8Array | Uint16Array;
  width: number;
  height: number;
  /** The label names: the classes given, then 'background' when background handling is on. */
  classes: string[];
  /** Per label: the largest class probability P over the grid tokens inside the image. */
  scores: Float32Array;
  /** Per label: number of pixels. */
  pixelCounts: Uint32Array;
  /** Per label (with `masks`, default): 0/1 per pixel. */
  masks: Uint8Array[];
  refined: boolean;
  /** Refined only: the classes decoded by the SAM head (indices into the S classes, ascending). */
  decodedClasses?: number[];
  /** Refined only: the points per S class (classes, then background prompts). */
  points?: ClassPoints[];
  /** Refined only: SAM's IoU estimate per decoded class (same order as decodedClasses). */
  iouPredictions?: Float32Array;
  /** Refined only: pixels that kept the head-only label. */
  fallbackPixels?: number;
}

// ------------------------------------------------------------------------------ stages

/** S class-major [C, gh, gw] = scale * T . dense^T, from dense [1, gh, gw, D] and T [C, D]. */
export function scoreMaps(ctx: GpuContext, dense: Tensor, T: Tensor, scale: number): Tensor {
  check(dense.ndim === 4 && dense.dim(0) === 1 && T.ndim === 2 && T.dim(1) === dense.dim(3),
    () => `scoreMaps: dense must be [1, gh, gw, D] and T [C, D], got ${fmtShape(dense.shape)} and ${fmtShape(T.shape)}`);
  const [, gh, gw, D] = dense.shape as [number, number, number, number];
  return ctx.stage('class_scores', () =>
    ctx.scope(() => {
      const flat = dense.reshape([gh * gw, D]);
      return matmul(ctx, T, flat.transpose(0, 1), { alpha: scale }).reshape([T.dim(0), gh, gw]);
    }),
  );
}

/** Mask inputs [K, 1, L, L] for the decoded classes: the plan's g x g logits resized bilinearly. */
export function maskPromptInputs(ctx: GpuContext, plan: RefinementPlan, gh: number, gw: number, L: number): Tensor {
  const K = plan.decoded.length;
  return ctx.scope(() => resizeBilinear(ctx, ctx.upload(plan.promptLogits, [K, 1, gh, gw]), L, L));
}

/**
 * Decode each class with its points (input frame, label 1) and mask input, single-mask output.
 * Classes with the same number of points share one batched decoder pass. Returns the low-res
 * logits [K, L, L] in the order of `points` and the IoU predictions.
 */
export async function decodeClasses(
  ctx: GpuContext,
  sam: Sam,
  embedding: Tensor,
  maskInputs: Tensor,
  points: readonly (readonly (readonly [number, number])[])[],
): Promise<{ lowRes: Tensor; iou: Float32Array }> {
  const K = points.length;
  const L = sam.lowResSize;
  check(maskInputs.ndim === 4 && maskInputs.dim(0) === K && maskInputs.dim(1) === 1 && maskInputs.dim(2) === L && maskInputs.dim(3) === L,
    () => `decodeClasses: mask inputs must be [${K}, 1, ${L}, ${L}], got ${fmtShape(maskInputs.shape)}`);
  const groups = new Map<number, number[]>();
  points.forEach((p, k) => {
    check(p.length >= 1, () => `decodeClasses: class ${k} has no point`);
    groups.set(p.length, [...(groups.get(p.length) ?? []), k]);
  });
  const lowRes = ctx.empty([K, L, L]);
  const ious: { ks: number[]; t: Tensor }[] = [];
  try {
    for (const [n, ks] of groups) {
      const iou = ctx.scope(() => {
        const B = ks.length;
        const coords = ks.flatMap((k) => points[k]!.flatMap(([x, y]) => [x, y]));
        const masks = B === K ? maskInputs : concat(ctx, ks.map((k) => maskInputs.slice(0, k, k + 1)), 0);
        const out = sam.predictLowRes(ctx, embedding, { batch: B, points: { coords, labels: new Array<number>(B * n).fill(1) }, masks }, false);
        ks.forEach((k, b) => copyInto(ctx, out.masks.slice(0, b, b + 1).reshape([1, L, L]), lowRes.slice(0, k, k + 1)));
        return out.iouPred;
      });
      ious.push({ ks, t: iou });
    }
    const iou = new Float32Array(K);
    for (const { ks, t } of ious) {
      const v = (await readTensor(ctx, t)) as Float32Array;
      ks.forEach((k, b) => (iou[k] = v[b]!));
    }
    return { lowRes, iou };
  } catch (e) {
    lowRes.dispose();
    throw e;
  } finally {
    for (const { t } of ious) t.dispose();
  }
}

/** How raw kernel outputs become user labels. */
export interface LabelMapping {
  /** Number of S classes that are user classes (the rest are background prompts). */
  classes: number;
  /** Label value of the background (classes), or -1 when there is none. */
  background: number;
  /** Refined outputs: decoded index -> S class. */
  decoded?: readonly number[];
}

/** Raw u32 kernel output -> Uint8/Uint16 labels (and the count of fallback pixels). */
export function finalizeLabels(raw: Uint32Array, map: LabelMapping): { labels: Uint8Array | Uint16Array; fallback: number } {
  const n = map.classes + (map.background >= 0 ? 1 : 0);
  const labels = n <= 256 ? new Uint8Array(raw.length) : new Uint16Array(raw.length);
  const head = (idx: number) => {
    if (idx === BACKGROUND_INDEX || idx >= map.classes) {
      if (map.background < 0) throw new ClassListError(`finalizeLabels: label ${idx} without a background label`);
      return map.background;
    }
    return idx;
  };
  let fallback = 0;
  const dec = map.decoded;
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i]!;
    if (!dec) {
      labels[i] = head(v);
    } else if (v & FALLBACK_BIT) {
      labels[i] = head(v & 0xffff);
      fallback++;
    } else {
      labels[i] = head(dec[v]!);
    }
  }
  return { labels, fallback };
}

function backgroundPrompts(opt: SemanticSegmentationOptions['background']): string[] {
  if (opt === undefined || opt === false) return [];
  if (opt === true) return ['background'];
  if (typeof opt === 'string') return [opt];
  if (Array.isArray(opt)) return opt.map(String);
  throw new ClassListError(`background must be true, false, a prompt string or a list of prompts, got ${JSON.stringify(opt)}`);
}

// ------------------------------------------------------------------------------ pipeline

export async function segmentSemantic(
  model: SamClipModel,
  image: ImageU8 | SamClipImageEmbedding,
  classes: readonly string[],
  opts: SemanticSegmentationOptions & ProgressOptions = {},
): Promise<SemanticSegmentation> {
  const ctx = model.ctx;
  const pacer = Pacer.for(ctx, opts, 'segmentSemantic');
  const names = checkClassList(classes, 'segmentSemantic: classes');
  const bg = backgroundPrompts(opts.background);
  if (bg.length) checkClassList([...names, ...bg], 'segmentSemantic: classes and background prompts');
  const thr = opts.backgroundThreshold;
  if (thr !== undefined && !(thr >= 0 && thr <= 1)) throw new ClassListError(`segmentSemantic: backgroundThreshold ${thr} must be a probability in [0, 1]`);
  const hasBackground = bg.length > 0 || thr !== undefined;
  const C = names.length;
  const all = [...names, ...bg];
  const isEmbedding = image instanceof SamClipImageEmbedding;
  const refine = opts.refine ?? isEmbedding;
  if (isEmbedding && !refine) throw new ClassListError('segmentSemantic: a precomputed embedding serves the refined (native-size) pipeline; pass the image for head-only segmentation');
  const rgb = isEmbedding ? null : model.checkImage(image, 'segmentSemantic');
  const [H, W] = isEmbedding ? image.originalSize : [rgb!.height, rgb!.width];
  const Tall = await model.classEmbeddings(all, { templates: opts.templates, pacer: pacer?.part(0, 0.3) });
  const mapping: LabelMapping = { classes: C, background: hasBackground ? C : -1 };
  const resultClasses = hasBackground ? [...names, 'background'] : names;

  let raw: Uint32Array;
  let P: Float32Array;
  let inside: (t: number) => boolean = () => true;
  let extra: Partial<SemanticSegmentation> = {};
  if (!refine) {
    const size = opts.size ?? model.resolutions.seg;
    const dense = await model.backend.denseSquare(ctx, rgb!, size, pacer?.part(0.3, 0.95));
    const [, gh, gw] = dense.shape as [number, number, number, number];
    const { S, labels } = ctx.scope(() => {
      const S = scoreMaps(ctx, dense, ctx.upload(Tall, [all.length, model.embedDim]), model.logitScale);
      return { S, labels: labelMap(ctx, S, { outSize: [H, W], threshold: thr }) };
    });
    dense.dispose();
    try {
      raw = (await readTensor(ctx, labels)) as Uint32Array;
      P = softmaxClasses(tokenMajor((await readTensor(ctx, S)) as Float32Array, all.length, gh * gw), gh * gw, all.length);
    } finally {
      S.dispose();
      labels.dispose();
    }
  } else {
    const emb = isEmbedding ? image : await model.embedPaced(rgb!, pacer?.part(0.3, 0.85) ?? null);
    try {
      if (emb.disposed) throw new ClassListError('segmentSemantic: the image embedding was disposed');
      const sam = model.backend.sam;
      const g = sam.config.imageEmbeddingSize;
      const p = sam.config.patchSize;
      const F = sam.imgSize;
      const inputSize = emb.inputSize;
      const ropts = resolveRefinement(opts, g);
      const { S, fallbackLabels } = ctx.scope(() => {
        const S = scoreMaps(ctx, emb.dense, ctx.upload(Tall, [all.length, model.embedDim]), model.logitScale);
        return { S, fallbackLabels: labelMap(ctx, S, { outSize: [H, W], frame: { size: F, inputSize }, threshold: thr }) };
      });
      try {
        P = softmaxClasses(tokenMajor((await readTensor(ctx, S)) as Float32Array, all.length, g * g), g * g, all.length);
        inside = (t) => p * Math.floor(t / g) + p / 2 < inputSize[0] && p * (t % g) + p / 2 < inputSize[1];
        const plan = planRefinement(P, all.length, g, g, inputSize, p, ropts);
        let iou: Float32Array = new Float32Array(0);
        if (plan.decoded.length === 0) {
          raw = (await readTensor(ctx, fallbackLabels)) as Uint32Array;
          for (let i = 0; i < raw.length; i++) raw[i] = raw[i]! | FALLBACK_BIT;
        } else {
          const masks = maskPromptInputs(ctx, plan, g, g, sam.lowResSize);
          pacer?.check();
          const dec = await decodeClasses(ctx, sam, emb.sam.tensor, masks, plan.decoded.map((c) => plan.points[c]!.coords));
          masks.dispose();
          iou = dec.iou;
          const labels = labelMap(ctx, dec.lowRes, { outSize: [H, W], frame: { size: F, inputSize }, fallback: fallbackLabels });
          dec.lowRes.dispose();
          raw = (await readTensor(ctx, labels)) as Uint32Array;
          labels.dispose();
        }
        mapping.decoded = plan.decoded;
        extra = { decodedClasses: plan.decoded, points: plan.points, iouPredictions: iou };
      } finally {
        S.dispose();
        fallbackLabels.dispose();
      }
    } finally {
      if (!isEmbedding) emb.dispose();
    }
  }

  pacer?.note('label map', 1, 1);
  const { labels, fallback } = finalizeLabels(raw, mapping);
  const nLabels = resultClasses.length;
  const tokens = P.length / all.length;
  const scores = new Float32Array(nLabels);
  for (let c = 0; c < nLabels; c++) {
    let best = 0;
    for (let t = 0; t < tokens; t++) {
      if (!inside(t)) continue;
      let v: number;
      if (c < C) v = P[c * tokens + t]!;
      else {
        v = 0;
        for (let b = C; b < all.length; b++) v += P[b * tokens + t]!;
        if (bg.length === 0) v = 1 - maxOver(P, C, tokens, t);
      }
      best = Math.max(best, v);
    }
    scores[c] = best;
  }
  const pixelCounts = new Uint32Array(nLabels);
  for (let i = 0; i < labels.length; i++) pixelCounts[labels[i]!]!++;
  const masks: Uint8Array[] = [];
  if (opts.masks ?? true) {
    for (let c = 0; c < nLabels; c++) masks.push(new Uint8Array(labels.length));
    for (let i = 0; i < labels.length; i++) masks[labels[i]!]![i] = 1;
  }
  const out: SemanticSegmentation = { labelMap: labels, width: W, height: H, classes: resultClasses, scores, pixelCounts, masks, refined: refine, ...extra };
  if (refine) out.fallbackPixels = fallback;
  return out;
}

function maxOver(P: Float32Array, C: number, tokens: number, t: number): number {
  let m = 0;
  for (let c = 0; c < C; c++) m = Math.max(m, P[c * tokens + t]!);
  return m;
}

/** Class-major S [C, N] (as scoreMaps returns it) -> token-major [N, C] for the softmax. */
function tokenMajor(classMajor: Float32Array, C: number, N: number): Float32Array {
  const out = new Float32Array(C * N);
  for (let c = 0; c < C; c++) for (let n = 0; n < N; n++) out[n * C + c] = classMajor[c * N + n]!;
  return out;
}
