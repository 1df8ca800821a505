/**
 * Promptable segmentation with SAM (segment_anything/predictor.py, SamPredictor): encode an image
 * once, then decode any number of prompts against its GPU-resident embedding.
 *
 *   const predictor = await SamPredictor.load(ctx, 'sam_vit_b.safetensors');
 *   const emb = await predictor.encode(image);               // {width, height, channels: 3, data}
 *   const r = await predictor.predict(emb, { points: [[500, 375]], labels: [1] });
 *   r.masks[i]      // Uint8Array, height * width, 0/1 (row-major), at the original size
 *   r.iouPredictions, r.lowResLogits                          // feed a low-res mask back as maskInput
 *   emb.dispose();
 *
 * or, like the official class, with a current image: `await predictor.setImage(image)` then
 * `predictor.predict({ box: [x0, y0, x1, y1] })`.
 *
 * Prompts are in original-image pixels (x, y); they are mapped to the model's input frame like
 * ResizeLongestSide.apply_coords / apply_boxes. Several prompt sets decode in one batched call
 * (`predictBatch`, like predict_torch with B boxes); they must share a structure (same number of
 * points, all or none with a box, all or none with a mask input).
 *
 * Stage-level entry points (`encodePreprocessed`, `embeddingFrom`, `decodeTransformed`,
 * `postprocess`) take the float tensors of the official pipeline's intermediate stages.
 */
import type { GpuContext } from '../gpu/context.js';
import { throwIfAborted } from '../gpu/errors.js';
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import type { Tensor } from '../gpu/tensor.js';
import { type PretrainedName, type PretrainedOptions, openPretrained } from '../hub/pretrained.js';
import { type ImageU8, ImageError, checkImage, toRgb } from '../image/image.js';
import { type ImageInput, toImageU8 } from '../image/image-input.js';
import { pilResize } from '../image/pil-resize.js';
import { applyBoxes, applyCoords, samResizeShape } from '../image/transforms.js';
import { copyInto, readTensor } from '../kernels/copy.js';
import type { LoadSamOptions } from '../model/sam/load.js';
import type { MaskDecoderOutputs } from '../model/sam/mask-decoder.js';
import { type EncoderPrompts, PromptError } from '../model/sam/prompt-encoder.js';
import { Sam, type SamCreateOptions } from '../model/sam/sam.js';
import { thresholdBits, unpackMaskBits } from '../model/sam/stage-kernels.js';
import type { SafetensorsFile } from '../weights/safetensors.js';

export { PromptError } from '../model/sam/prompt-encoder.js';

/** An image embedding on the GPU, with the sizes needed to map prompts and masks. */
export class SamImageEmbedding {
  constructor(
    /** [1, C, g, g]; owned by this object. */
    readonly tensor: Tensor,
    /** [H, W] of the image given to `encode`. */
    readonly originalSize: readonly [number, number],
    /** [h, w] of the resized image inside the padded square input. */
    readonly inputSize: readonly [number, number],
  ) {
    tensor.persistent = true;
  }

  get disposed(): boolean {
    return this.tensor.isDisposed;
  }

  dispose(): void {
    this.tensor.dispose();
  }
}

/** Points as [[x, y], ...] or interleaved [x0, y0, x1, y1, ...]. */
export type SamPoints = ReadonlyArray<readonly [number, number]> | ArrayLike<number>;

export interface SamPrompt {
  /** Point prompts in original-image pixels. */
  points?: SamPoints;
  /** One label per point: 1 foreground, 0 background (-1: ignored point). */
  labels?: ArrayLike<number>;
  /** [x0, y0, x1, y1] in original-image pixels. */
  box?: readonly [number, number, number, number] | ArrayLike<number>;
  /** Low-res logits from a previous prediction: L x L values (L = 256 for SAM B/L/H), or a GPU tensor [1, 1, L, L]. */
  maskInput?: ArrayLike<number> | Tensor;
}

export interface PredictOptions {
  /** Cancels the call (it rejects with an AbortError); see `latestWins` for hover previews. */
  signal?: AbortSignal;
  /** Three masks (true, the default) or the single best-guess mask. */
  multimaskOutput?: boolean;
  /** Also return the float logits at the original size. */
  returnLogits?: boolean;
}

export interface SamPrediction {
  /** One Uint8Array (height * width, 0/1, row-major) per mask. */
  masks: Uint8Array[];
  /** With returnLogits: the logits behind each mask at the original size. */
  logits?: Float32Array[];
  /** The model's IoU estimate per mask. */
  iouPredictions: Float32Array;
  /** Low-res logits, masks x L x L (a slice of one mask is a valid `maskInput`). */
  lowResLogits: Float32Array;
  lowResSize: number;
  width: number;
  height: number;
}

/** Low-res logits of mask `i` of a prediction (to feed back as `maskInput`). */
export function lowResMask(p: SamPrediction, i: number): Float32Array {
  const n = p.lowResSize * p.lowResSize;
  if (!Number.isInteger(i) || i < 0 || (i + 1) * n > p.lowResLogits.length) {
    throw new PromptError(`lowResMask: the prediction has ${p.lowResLogits.length / n} masks, no mask ${i}`);
  }
  return p.lowResLogits.slice(i * n, (i + 1) * n);
}

/** A prompt field must be an array or typed array (not null, a string or a bare number). */
function requireArrayLike(v: unknown, what: string, field: string): void {
  const ok = v !== null && typeof v === 'object' && typeof (v as { length?: unknown }).length === 'number';
  if (!ok) throw new PromptError(`${what}: ${field} must be an array or a typed array, got ${v === null ? 'null' : typeof v === 'string' ? `the string ${JSON.stringify(v.slice(0, 20))}` : typeof v}`);
}

function flattenPoints(points: SamPoints, what: string): number[] {
  requireArrayLike(points, what, 'points');
  const first = (points as ArrayLike<unknown>)[0];
  if (Array.isArray(first)) {
    const out: number[] = [];
    const arr = points as ReadonlyArray<readonly number[]>;
    for (let i = 0; i < arr.length; i++) {
      const p = arr[i]!;
      if (!Array.isArray(p) || p.length !== 2) throw new PromptError(`${what}: point ${i} must be [x, y], got ${JSON.stringify(p)}`);
      out.push(p[0]!, p[1]!);
    }
    return out;
  }
  const flat = Array.from(points as ArrayLike<number>);
  if (flat.length % 2 !== 0) throw new PromptError(`${what}: ${flat.length} point numbers; expected interleaved (x, y) pairs`);
  return flat;
}

interface CheckedPrompt {
  points?: number[];
  labels?: number[];
  box?: number[];
  mask?: ArrayLike<number> | Tensor;
}

export class SamPredictor {
  private current: SamImageEmbedding | null = null;

  constructor(
    readonly ctx: GpuContext,
    readonly model: Sam,
  ) {}

  /** Load a SAM checkpoint (official / Hugging Face / SAM-CLIP names; another model is an error). */
  static async load(ctx: GpuContext, src: string | SafetensorsFile, opts: LoadSamOptions & SamCreateOptions = {}): Promise<SamPredictor> {
    return new SamPredictor(ctx, await Sam.load(ctx, src, opts));
  }

  /**
   * A SAM model by registry name ('sam-vit-b', 'sam-vit-l', 'sam-vit-h'), from the cache or
   * downloaded into it first (resumable, SHA-256 checked; src/hub). See docs/api.md.
   */
  static async fromPretrained(ctx: GpuContext, name: PretrainedName, opts: PretrainedOptions & LoadSamOptions & SamCreateOptions = {}): Promise<SamPredictor> {
    const { file } = await openPretrained(name, 'sam', opts);
    try {
      return await SamPredictor.load(ctx, file, opts);
    } finally {
      await file.close();
    }
  }

  get lowResSize(): number {
    return this.model.lowResSize;
  }

  // ---------------------------------------------------------------- image

  /**
   * SamPredictor.set_image: Pillow-exact bilinear resize of the longest side to the model's input
   * size (CPU), normalise + pad (GPU), image encoder. Non-RGB images are converted like Pillow's
   * convert('RGB') (grey replicated, alpha dropped).
   */
  async encode(input: ImageInput, opts: ProgressOptions = {}): Promise<SamImageEmbedding> {
    const image = await toImageU8(input, { what: 'SamPredictor.encode', signal: opts.signal });
    return this.encodePaced(image, Pacer.for(this.ctx, opts, 'SamPredictor.encode'));
  }

  /** `encode` with a pacer from a larger call (automatic masks), or none. */
  async encodePaced(image: ImageU8, pacer: Pacer | null): Promise<SamImageEmbedding> {
    checkImage(image, 'SamPredictor.encode');
    const rgb = toRgb(image);
    const S = this.model.imgSize;
    const [h, w] = samResizeShape(rgb.height, rgb.width, S);
    if (h < 1 || w < 1) throw new ImageError(`SamPredictor.encode: a ${rgb.height}x${rgb.width} image resized to longest side ${S} would be ${h}x${w}`);
    const resized = pilResize(rgb, w, h, { filter: 'bilinear' });
    pacer?.note('preprocess', 1, 50);
    const ctx = this.ctx;
    const input = ctx.scope(() => this.model.preprocess(ctx, resized));
    let emb: Tensor;
    try {
      emb = await this.model.encodeImagePaced(ctx, input, pacer?.part(0.02, 1) ?? null);
    } finally {
      input.dispose();
    }
    try {
      await ctx.sync();
    } catch (e) {
      emb.dispose();
      throw e;
    }
    return new SamImageEmbedding(emb, [rgb.height, rgb.width], [h, w]);
  }

  /** Stage entry: encode an already preprocessed input [1, 3, S, S] (float32, normalised, padded). */
  encodePreprocessed(input: Tensor | Float32Array, originalSize: readonly [number, number], inputSize?: readonly [number, number]): SamImageEmbedding {
    const ctx = this.ctx;
    const S = this.model.imgSize;
    const emb = ctx.scope(() => {
      const t = input instanceof Float32Array ? ctx.upload(input, [1, 3, S, S]) : input;
      return this.model.encodeImage(ctx, t);
    });
    return new SamImageEmbedding(emb, originalSize, inputSize ?? samResizeShape(originalSize[0], originalSize[1], S));
  }

  /** Stage entry (SamPredictor.set_image_embedding): wrap an embedding [1, C, g, g] computed elsewhere. */
  embeddingFrom(embedding: Tensor | Float32Array, originalSize: readonly [number, number]): SamImageEmbedding {
    const { promptEmbedDim: C, imageEmbeddingSize: g } = this.model.config;
    let t: Tensor;
    if (embedding instanceof Float32Array) {
      if (embedding.length !== C * g * g) throw new PromptError(`embeddingFrom: ${embedding.length} values; expected [1, ${C}, ${g}, ${g}]`);
      t = this.ctx.upload(embedding, [1, C, g, g]);
    } else {
      t = embedding.ref();
    }
    return new SamImageEmbedding(t, originalSize, samResizeShape(originalSize[0], originalSize[1], this.model.imgSize));
  }

  // ---------------------------------------------------------------- prompts

  private checkPrompt(p: SamPrompt, i: number, emb: SamImageEmbedding): CheckedPrompt {
    const what = `prompt set ${i}`;
    const [H, W] = emb.originalSize;
    const out: CheckedPrompt = {};
    if (p.points !== undefined || p.labels !== undefined) {
      if (p.points === undefined) throw new PromptError(`${what}: labels given without points`);
      if (p.labels === undefined) throw new PromptError(`${what}: points given without labels (1 = foreground, 0 = background)`);
      const pts = flattenPoints(p.points, what);
      requireArrayLike(p.labels, what, 'labels');
      const labels = Array.from(p.labels);
      if (pts.length / 2 !== labels.length) throw new PromptError(`${what}: ${pts.length / 2} points but ${labels.length} labels`);
      if (labels.length > 0) {
        for (let k = 0; k < labels.length; k++) {
          const x = pts[2 * k]!;
          const y = pts[2 * k + 1]!;
          if (!Number.isFinite(x) || !Number.isFinite(y)) throw new PromptError(`${what}: point ${k} is (${x}, ${y}); coordinates must be finite numbers`);
          if (x < 0 || y < 0 || x > W || y > H) {
            throw new PromptError(`${what}: point ${k} (${x}, ${y}) lies outside the ${W}x${H} image (x in [0, ${W}], y in [0, ${H}])`);
          }
          const l = labels[k]!;
          if (l !== 0 && l !== 1 && l !== -1) throw new PromptError(`${what}: label ${l} of point ${k}; use 1 (foreground), 0 (background) or -1 (ignored)`);
        }
        out.points = pts;
        out.labels = labels;
      }
    }
    if (p.box !== undefined) {
      requireArrayLike(p.box, what, 'box');
      const b = Array.from(p.box as ArrayLike<number>);
      if (b.length !== 4) throw new PromptError(`${what}: a box is [x0, y0, x1, y1], got ${b.length} numbers`);
      const [x0, y0, x1, y1] = b as [number, number, number, number];
      if (!b.every(Number.isFinite)) throw new PromptError(`${what}: box [${b.join(', ')}] has a non-finite coordinate`);
      if (x0 < 0 || y0 < 0 || x1 > W || y1 > H) {
        throw new PromptError(`${what}: box [${b.join(', ')}] lies outside the ${W}x${H} image`);
      }
      if (x0 > x1 || y0 > y1) throw new PromptError(`${what}: box [${b.join(', ')}] has x0 > x1 or y0 > y1 (expected [x0, y0, x1, y1])`);
      out.box = b;
    }
    if (p.maskInput !== undefined) {
      const L = this.lowResSize;
      const m = p.maskInput;
      if (m !== null && typeof m === 'object' && 'shape' in m && 'storage' in m) {
        const t = m as Tensor;
        if (t.ndim < 2 || t.ndim > 4 || t.size !== L * L || t.shape[t.ndim - 1] !== L || t.shape[t.ndim - 2] !== L) {
          throw new PromptError(`${what}: mask input must be 1 x ${L} x ${L} low-res logits, got a tensor [${t.shape.join(', ')}]`);
        }
      } else {
        requireArrayLike(m, what, 'mask input');
        const a = m as ArrayLike<number>;
        if (a.length !== L * L) throw new PromptError(`${what}: mask input has ${a.length} values; expected 1 x ${L} x ${L} low-res logits (${L * L})`);
        // One NaN or Inf would turn every output logit into NaN (an empty mask, no error).
        for (let j = 0; j < a.length; j++) {
          if (!Number.isFinite(a[j]!)) throw new PromptError(`${what}: mask input value ${j} (row ${Math.floor(j / L)}, column ${j % L}) is ${a[j]}; logits must be finite`);
        }
      }
      out.mask = m;
    }
    if (!out.points && !out.box && out.mask === undefined) {
      throw new PromptError(`${what}: empty prompt; give points with labels, a box, or a mask input`);
    }
    return out;
  }

  /** Validate and map prompt sets to the model's input frame (the batch must share a structure). */
  private transform(prompts: readonly SamPrompt[], emb: SamImageEmbedding): { enc: Omit<EncoderPrompts, 'masks'>; masks: (ArrayLike<number> | Tensor)[] | null } {
    if (prompts.length === 0) throw new PromptError('predictBatch: no prompt sets given');
    const checked = prompts.map((p, i) => this.checkPrompt(p, i, emb));
    const shape = (c: CheckedPrompt) => `${c.labels?.length ?? 0} point(s), ${c.box ? 'a box' : 'no box'}, ${c.mask !== undefined ? 'a mask input' : 'no mask input'}`;
    const s0 = shape(checked[0]!);
    checked.forEach((c, i) => {
      if (shape(c) !== s0) throw new PromptError(`predictBatch: prompt sets must share a structure; set 0 has ${s0}, set ${i} has ${shape(c)}`);
    });
    const S = this.model.imgSize;
    const first = checked[0]!;
    const enc: Omit<EncoderPrompts, 'masks'> = { batch: checked.length };
    if (first.points) {
      enc.points = {
        coords: Array.from(applyCoords(checked.flatMap((c) => c.points!), emb.originalSize, S)),
        labels: checked.flatMap((c) => c.labels!),
      };
    }
    if (first.box) enc.boxes = Array.from(applyBoxes(checked.flatMap((c) => c.box!), emb.originalSize, S));
    return { enc, masks: first.mask !== undefined ? checked.map((c) => c.mask!) : null };
  }

  /** Mask inputs -> [B, 1, L, L] (host arrays written at once, GPU tensors copied into their slot). */
  private uploadMasks(masks: (ArrayLike<number> | Tensor)[]): Tensor {
    const L = this.lowResSize;
    const B = masks.length;
    const ctx = this.ctx;
    const isTensor = (m: ArrayLike<number> | Tensor): m is Tensor => 'storage' in m;
    const out = ctx.empty([B, 1, L, L]);
    if (masks.some((m) => !isTensor(m))) {
      const host = new Float32Array(B * L * L);
      masks.forEach((m, b) => {
        if (!isTensor(m)) host.set(m, b * L * L);
      });
      ctx.write(out, host);
    }
    masks.forEach((m, b) => {
      // [L, L], [1, L, L] and [1, 1, L, L] views all broadcast into the batch slot.
      if (isTensor(m)) ctx.scope(() => copyInto(ctx, m, out.slice(0, b, b + 1)));
    });
    return out;
  }

  // ---------------------------------------------------------------- decode

  /** Stage entry: prompt encoder + mask decoder on prompts already in the input frame. */
  decodeTransformed(emb: SamImageEmbedding, prompts: EncoderPrompts, multimaskOutput: boolean): MaskDecoderOutputs {
    if (emb.disposed) throw new PromptError('the image embedding was disposed');
    return this.model.predictLowRes(this.ctx, emb.tensor, prompts, multimaskOutput);
  }

  /** Stage entry: low-res logits [N, C, L, L] -> logits at the original size [N, C, H, W]. */
  postprocess(emb: SamImageEmbedding, lowRes: Tensor): Tensor {
    return this.model.postprocessMasks(this.ctx, lowRes, emb.inputSize, emb.originalSize);
  }

  /** The embedding of the image given to `setImage`, if any. */
  get currentImage(): SamImageEmbedding | null {
    return this.current;
  }

  /**
   * SamPredictor.set_image: encode and keep the embedding as the current image (the previous one
   * is disposed); `predict(prompt)` without an embedding then uses it.
   */
  async setImage(image: ImageInput): Promise<SamImageEmbedding> {
    const emb = await this.encode(image);
    this.resetImage();
    this.current = emb;
    return emb;
  }

  /** SamPredictor.reset_image: dispose the current embedding. */
  resetImage(): void {
    this.current?.dispose();
    this.current = null;
  }

  private embeddingOrCurrent(emb: SamImageEmbedding | undefined): SamImageEmbedding {
    const e = emb ?? this.current;
    if (!e) throw new PromptError('no image: call setImage(image) first, or pass an embedding from encode(image)');
    if (e.disposed) throw new PromptError('the image embedding was disposed');
    return e;
  }

  /** SamPredictor.predict for one prompt set, on `emb` or the current image. */
  predict(prompt: SamPrompt, opts?: PredictOptions): Promise<SamPrediction>;
  predict(emb: SamImageEmbedding, prompt: SamPrompt, opts?: PredictOptions): Promise<SamPrediction>;
  async predict(a: SamImageEmbedding | SamPrompt, b?: SamPrompt | PredictOptions, c?: PredictOptions): Promise<SamPrediction> {
    const [emb, prompt, opts] = a instanceof SamImageEmbedding ? [a, b as SamPrompt, c] : [undefined, a, b as PredictOptions | undefined];
    return (await this.predictBatch(this.embeddingOrCurrent(emb), [prompt], opts))[0]!;
  }

  /** Several prompt sets decoded together (predict_torch with a batch), one result per set. */
  predictBatch(prompts: readonly SamPrompt[], opts?: PredictOptions): Promise<SamPrediction[]>;
  predictBatch(emb: SamImageEmbedding, prompts: readonly SamPrompt[], opts?: PredictOptions): Promise<SamPrediction[]>;
  async predictBatch(a: SamImageEmbedding | readonly SamPrompt[], b?: readonly SamPrompt[] | PredictOptions, c?: PredictOptions): Promise<SamPrediction[]> {
    const [e, prompts, o] = a instanceof SamImageEmbedding ? [a, b as readonly SamPrompt[], c] : [undefined, a, b as PredictOptions | undefined];
    return this.decodePrompts(this.embeddingOrCurrent(e), prompts, o ?? {});
  }

  private async decodePrompts(emb: SamImageEmbedding, prompts: readonly SamPrompt[], opts: PredictOptions): Promise<SamPrediction[]> {
    throwIfAborted(opts.signal, 'SamPredictor.predict');
    const { enc, masks } = this.transform(prompts, emb);
    const ctx = this.ctx;
    const multimask = opts.multimaskOutput ?? true;
    const [H, W] = emb.originalSize;
    const L = this.lowResSize;
    // A task, not an async scope: predicts may overlap on one context (hover previews do).
    const task = ctx.task();
    try {
      const out = task.run(() => {
        const maskT = masks ? this.uploadMasks(masks) : undefined;
        return this.model.predictLowRes(ctx, emb.tensor, { ...enc, masks: maskT }, multimask);
      });
      const B = enc.batch;
      const M = out.masks.dim(1);
      const flat = task.run(() => out.masks.reshape([B * M, 1, L, L]));
      const chunk = this.model.postprocessChunk(ctx, emb.originalSize);
      const binary: Uint8Array[] = [];
      const logits: Float32Array[] = [];
      for (let i0 = 0; i0 < B * M; i0 += chunk) {
        const i1 = Math.min(B * M, i0 + chunk);
        const { up, bits } = task.run(() => {
          const up = this.postprocess(emb, flat.slice(0, i0, i1));
          return { up, bits: thresholdBits(ctx, up, this.model.maskThreshold) };
        });
        const words = (await ctx.read(bits)) as Uint32Array;
        throwIfAborted(opts.signal, 'SamPredictor.predict');
        for (let k = 0; k < i1 - i0; k++) binary.push(unpackMaskBits(words, k, H * W));
        if (opts.returnLogits) {
          const f = (await ctx.read(up)) as Float32Array;
          for (let k = 0; k < i1 - i0; k++) logits.push(f.slice(k * H * W, (k + 1) * H * W));
        }
        up.dispose();
        bits.dispose();
      }
      const iou = (await readTensor(ctx, out.iouPred)) as Float32Array;
      const low = (await readTensor(ctx, out.masks)) as Float32Array;
      const results: SamPrediction[] = [];
      for (let b = 0; b < B; b++) {
        const r: SamPrediction = {
          masks: binary.slice(b * M, (b + 1) * M),
          iouPredictions: iou.slice(b * M, (b + 1) * M),
          lowResLogits: low.slice(b * M * L * L, (b + 1) * M * L * L),
          lowResSize: L,
          width: W,
          height: H,
        };
        if (opts.returnLogits) r.logits = logits.slice(b * M, (b + 1) * M);
        results.push(r);
      }
      return results;
    } finally {
      task.dispose();
    }
  }

  dispose(): void {
    this.resetImage();
    this.model.dispose();
  }
}
