/**
 * Text-prompted instance masks (DESIGN.md 6.5): "the dog" -> its best region on the class map ->
 * SAM masks, all from one native-size pass.
 *
 *  1. S on the native grid for [text, ...negatives] (negatives default ['background']), and
 *     P = softmax over them: P_text is the probability that a token shows the text rather than a
 *     negative.
 *  2. The region's prompts, as the semantic refinement builds them (src/pipelines/refinement.ts):
 *     1-3 points on the most confident tokens above `pointThreshold`, kept apart, and the mask
 *     prompt clamp(logit(P_text)). When no token clears the threshold, the single best token is
 *     used and `confident` is false.
 *  3. The SAM head decodes them (three masks by default, sorted by predicted IoU; the first is
 *     `best`), post-processed to the original size like SamPredictor masks.
 */
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import { readTensor } from '../kernels/copy.js';
import { resizeBilinear } from '../kernels/resize.js';
import type { ImageU8 } from '../image/image.js';
import { SamClipImageEmbedding, type SamClipModel } from './samclip-core.js';
import type { TemplateChoice } from '../text/imagenet-templates.js';
import { ClassListError } from '../model/samclip/text-embeddings.js';
import { type RefinementOptions, maskPromptLogits, resolveRefinement, selectPoints, softmaxClasses } from './refinement.js';
import { scoreMaps } from './semantic-segmentation.js';

export interface TextPromptedOptions extends RefinementOptions {
  /** What the text competes with on each token (default ['background']). */
  negatives?: readonly string[];
  templates?: TemplateChoice;
  /** Three masks (default) or SAM's single best-guess mask. */
  multimaskOutput?: boolean;
  /** Use the score map as the decoder's mask input as well as the points (default true). */
  maskPrompt?: boolean;
}

export interface TextPromptedResult {
  text: string;
  width: number;
  height: number;
  /** 0/1 per pixel at the original size, highest predicted IoU first. */
  masks: Uint8Array[];
  iouPredictions: Float32Array;
  /** masks[0]. */
  best: Uint8Array;
  /** The point prompts in original-image pixels (x, y), and their tokens (i, j) on the native grid. */
  points: [number, number][];
  tokens: [number, number][];
  /** P_text on the native g x g grid (row-major). */
  scoreMap: Float32Array;
  gridSize: number;
  /** Whether some token's P_text exceeded the point threshold. */
  confident: boolean;
}

export async function segmentText(model: SamClipModel, image: ImageU8 | SamClipImageEmbedding, text: string, opts: TextPromptedOptions & ProgressOptions = {}): Promise<TextPromptedResult> {
  if (typeof text !== 'string' || !text.trim()) throw new ClassListError(`segmentText: the text prompt must be a non-empty string, got ${JSON.stringify(text)}`);
  const query = text.trim();
  const negatives = [...(opts.negatives ?? ['background'])];
  if (negatives.length === 0) throw new ClassListError('segmentText: give at least one negative prompt (the text competes with them on each token)');
  const ctx = model.ctx;
  const isEmbedding = image instanceof SamClipImageEmbedding;
  const pacer = Pacer.for(ctx, opts, 'segmentText');
  const emb = isEmbedding ? image : await model.embedPaced(image, pacer?.part(0, 0.7) ?? null);
  try {
    if (emb.disposed) throw new ClassListError('segmentText: the image embedding was disposed');
    const prompts = [query, ...negatives];
    const T = await model.classEmbeddings(prompts, { templates: opts.templates, pacer: pacer?.part(0.7, 0.95) });
    const sam = model.backend.sam;
    const g = sam.config.imageEmbeddingSize;
    const p = sam.config.patchSize;
    const L = sam.lowResSize;
    const [ih, iw] = emb.inputSize;
    const [H, W] = emb.originalSize;
    const S = ctx.scope(() => scoreMaps(ctx, emb.dense, ctx.upload(T, [prompts.length, model.embedDim]), model.logitScale));
    let sHost: Float32Array;
    try {
      sHost = (await readTensor(ctx, S)) as Float32Array;
    } finally {
      S.dispose();
    }
    const N = g * g;
    const tm = new Float32Array(N * prompts.length);
    for (let c = 0; c < prompts.length; c++) for (let n = 0; n < N; n++) tm[n * prompts.length + c] = sHost[c * N + n]!;
    const Ptext = softmaxClasses(tm, N, prompts.length).slice(0, N);
    const ropts = resolveRefinement(opts, g);
    let pts = selectPoints(Ptext, g, g, [ih, iw], p, ropts);
    const confident = pts.tokens.length > 0;
    if (!confident) {
      let best = -1;
      let bi = 0;
      let bj = 0;
      for (let i = 0; i < g && p * i + p / 2 < ih; i++) {
        for (let j = 0; j < g && p * j + p / 2 < iw; j++) {
          if (Ptext[i * g + j]! > best) [best, bi, bj] = [Ptext[i * g + j]!, i, j];
        }
      }
      pts = { tokens: [[bi, bj]], coords: [[p * bj + p / 2, p * bi + p / 2]] };
    }
    // Prompts are given in original-image pixels to the predictor, which maps them back.
    const points = pts.coords.map(([x, y]) => [(x * W) / iw, (y * H) / ih] as [number, number]);
    const maskInput = (opts.maskPrompt ?? true)
      ? ctx.scope(() => resizeBilinear(ctx, ctx.upload(maskPromptLogits(Ptext, ropts.clamp), [1, 1, g, g]), L, L))
      : undefined;
    try {
      const r = await model.predictor.predict(
        emb.sam,
        { points, labels: points.map(() => 1), ...(maskInput ? { maskInput } : {}) },
        { multimaskOutput: opts.multimaskOutput ?? true, ...(opts.signal ? { signal: opts.signal } : {}) },
      );
      pacer?.note('masks', 1, 1);
      const order = [...r.iouPredictions.keys()].sort((a, b) => r.iouPredictions[b]! - r.iouPredictions[a]! || a - b);
      const masks = order.map((i) => r.masks[i]!);
      return {
        text: query,
        width: W,
        height: H,
        masks,
        iouPredictions: Float32Array.from(order, (i) => r.iouPredictions[i]!),
        best: masks[0]!,
        points,
        tokens: pts.tokens,
        scoreMap: Ptext,
        gridSize: g,
        confident,
      };
    } finally {
      maskInput?.dispose();
    }
  } finally {
    if (!isEmbedding) emb.dispose();
  }
}
