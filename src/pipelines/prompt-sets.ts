/**
 * What SamPredictor and Sam2Predictor share about prompts and masks, independent of the model:
 * validating prompt sets given in original-image pixels (points with labels, a box, a low-res mask
 * input), checking that a batch shares one structure, uploading mask inputs, and turning low-res
 * logits into binary masks at the original size (post-processing in chunks that fit a binding,
 * thresholding on the GPU, bit-packed readback).
 */
import type { GpuContext, TensorTask } from '../gpu/context.js';
import { throwIfAborted } from '../gpu/errors.js';
import type { ProgressOptions } from '../gpu/pacer.js';
import type { ImageInput } from '../image/image-input.js';
import type { Tensor } from '../gpu/tensor.js';
import { copyInto } from '../kernels/copy.js';
import { type EncoderPrompts, PromptError } from '../model/sam/prompt-encoder.js';
import { thresholdBits, unpackMaskBits } from '../model/sam/stage-kernels.js';

/** Points as [[x, y], ...] or interleaved [x0, y0, x1, y1, ...]. */
export type SamPoints = ReadonlyArray<readonly [number, number]> | ArrayLike<number>;

export interface SamPrompt {
  /** Point prompts in original-image pixels. */
  points?: SamPoints;
  /** One label per point: 1 foreground, 0 background (-1: ignored point). */
  labels?: ArrayLike<number>;
  /** [x0, y0, x1, y1] in original-image pixels. */
  box?: readonly [number, number, number, number] | ArrayLike<number>;
  /** Low-res logits from a previous prediction: L x L values (L = 256 for SAM B/L/H and SAM 2 at 1024), or a GPU tensor [1, 1, L, L]. */
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

/** What SamPredictor and Sam2Predictor both offer (so callers can take either). */
export interface PromptablePredictor<E extends { readonly originalSize: readonly [number, number]; dispose(): void } = { readonly originalSize: readonly [number, number]; dispose(): void }> {
  encode(image: ImageInput, opts?: ProgressOptions): Promise<E>;
  predict(emb: E, prompt: SamPrompt, opts?: PredictOptions): Promise<SamPrediction>;
  predictBatch(emb: E, prompts: readonly SamPrompt[], opts?: PredictOptions): Promise<SamPrediction[]>;
  dispose(): void;
}

/** A prompt set after validation: flat arrays in original-image pixels. */
export interface CheckedPrompt {
  points?: number[];
  labels?: number[];
  box?: number[];
  mask?: ArrayLike<number> | Tensor;
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

/** Validate one prompt set against the image size [H, W] and the model's low-res side L. */
export function checkPrompt(p: SamPrompt, i: number, originalSize: readonly [number, number], L: number): CheckedPrompt {
  const what = `prompt set ${i}`;
  const [H, W] = originalSize;
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

/** Validate a batch of prompt sets; they must share a structure (decoded together). */
export function checkPromptSets(prompts: readonly SamPrompt[], originalSize: readonly [number, number], L: number): CheckedPrompt[] {
  if (prompts.length === 0) throw new PromptError('predictBatch: no prompt sets given');
  const checked = prompts.map((p, i) => checkPrompt(p, i, originalSize, L));
  const shape = (c: CheckedPrompt) => `${c.labels?.length ?? 0} point(s), ${c.box ? 'a box' : 'no box'}, ${c.mask !== undefined ? 'a mask input' : 'no mask input'}`;
  const s0 = shape(checked[0]!);
  checked.forEach((c, i) => {
    if (shape(c) !== s0) throw new PromptError(`predictBatch: prompt sets must share a structure; set 0 has ${s0}, set ${i} has ${shape(c)}`);
  });
  return checked;
}

/** Mask inputs -> [B, 1, L, L] (host arrays written at once, GPU tensors copied into their slot). */
export function uploadMaskInputs(ctx: GpuContext, masks: (ArrayLike<number> | Tensor)[], L: number): Tensor {
  const B = masks.length;
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

/**
 * Low-res logits [N, 1, L, L] -> one binary mask (and optionally the logits) per row at the
 * original size, `chunk` rows at a time through `postprocess`, thresholded on the GPU. The chunks'
 * tensors are made in `task` scopes and freed as soon as they are read.
 */
export async function masksAtOriginalSize(
  ctx: GpuContext,
  task: TensorTask,
  lowRes: Tensor,
  opts: { size: readonly [number, number]; chunk: number; threshold: number; returnLogits?: boolean; postprocess: (rows: Tensor) => Tensor; signal?: AbortSignal; what: string },
): Promise<{ binary: Uint8Array[]; logits: Float32Array[] }> {
  const [H, W] = opts.size;
  const N = lowRes.dim(0);
  const binary: Uint8Array[] = [];
  const logits: Float32Array[] = [];
  for (let i0 = 0; i0 < N; i0 += opts.chunk) {
    const i1 = Math.min(N, i0 + opts.chunk);
    const { up, bits } = task.run(() => {
      const up = opts.postprocess(lowRes.slice(0, i0, i1));
      return { up, bits: thresholdBits(ctx, up, opts.threshold) };
    });
    try {
      const words = (await ctx.read(bits)) as Uint32Array;
      throwIfAborted(opts.signal, opts.what);
      for (let k = 0; k < i1 - i0; k++) binary.push(unpackMaskBits(words, k, H * W));
      if (opts.returnLogits) {
        const f = (await ctx.read(up)) as Float32Array;
        for (let k = 0; k < i1 - i0; k++) logits.push(f.slice(k * H * W, (k + 1) * H * W));
      }
    } finally {
      up.dispose();
      bits.dispose();
    }
  }
  return { binary, logits };
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

/** B prompt sets x M masks of read-back results -> one prediction per set. */
export function splitPredictions(r: {
  B: number;
  M: number;
  L: number;
  size: readonly [number, number];
  binary: Uint8Array[];
  logits: Float32Array[] | null;
  iou: Float32Array;
  low: Float32Array;
}): SamPrediction[] {
  const { B, M, L } = r;
  const [H, W] = r.size;
  const out: SamPrediction[] = [];
  for (let b = 0; b < B; b++) {
    const p: SamPrediction = {
      masks: r.binary.slice(b * M, (b + 1) * M),
      iouPredictions: r.iou.slice(b * M, (b + 1) * M),
      lowResLogits: r.low.slice(b * M * L * L, (b + 1) * M * L * L),
      lowResSize: L,
      width: W,
      height: H,
    };
    if (r.logits) p.logits = r.logits.slice(b * M, (b + 1) * M);
    out.push(p);
  }
  return out;
}

/** An encoded image as a predictor hands it out. */
export interface PredictorEmbedding {
  readonly originalSize: readonly [number, number];
  readonly disposed: boolean;
  dispose(): void;
}

/**
 * The predictor surface SamPredictor and Sam2Predictor share (the official predictors' shape): an
 * optional current image (`setImage` / `resetImage`), and `predict` / `predictBatch` on an explicit
 * embedding or the current image. Subclasses encode and decode.
 */
export abstract class PromptPredictor<E extends PredictorEmbedding, R extends SamPrediction> {
  private current: E | null = null;
  abstract readonly model: { readonly lowResSize: number; readonly maskThreshold: number };

  /** Side of the low-res logits and mask inputs (256 for every released model at 1024 px). */
  get lowResSize(): number {
    return this.model.lowResSize;
  }

  /** Logits above this are inside a mask. */
  get maskThreshold(): number {
    return this.model.maskThreshold;
  }

  abstract readonly ctx: GpuContext;
  abstract encode(image: ImageInput, opts?: ProgressOptions): Promise<E>;
  /** Whether a `predict` argument is an embedding (rather than a prompt). */
  protected abstract isEmbedding(x: unknown): x is E;
  protected abstract decodePrompts(emb: E, prompts: readonly SamPrompt[], opts: PredictOptions): Promise<R[]>;
  /** Points in image pixels (interleaved x, y) -> the model's input frame. */
  abstract gridToModelFrame(points: ArrayLike<number>, emb: E): number[];
  /** Low-res logits [N, C, L, L] -> logits at the original size [N, C, H, W]. */
  abstract postprocess(emb: E, lowRes: Tensor): Tensor;
  /** Masks `postprocess` can take at once for this image. */
  abstract postprocessChunk(emb: E): number;

  /**
   * Validate prompt sets (original pixels), map them to the model frame, decode them with `decode`
   * and read the results back: binary masks at the original size, IoU and low-res logits (clamped
   * to +-`clampLow`). `finish` turns the common predictions into the predictor's own, inside the
   * same scope (so it can read more of `decode`'s outputs).
   */
  protected async runPrompts<O extends { masks: Tensor; iouPred: Tensor }>(
    emb: E,
    prompts: readonly SamPrompt[],
    opts: PredictOptions,
    decode: (enc: EncoderPrompts, task: TensorTask) => O | Promise<O>,
    finish: (out: O, preds: SamPrediction[]) => R[] | Promise<R[]>,
    clampLow = Infinity,
  ): Promise<R[]> {
    const what = `${this.constructor.name}.predict`;
    throwIfAborted(opts.signal, what);
    const checked = checkPromptSets(prompts, emb.originalSize, this.lowResSize);
    const first = checked[0]!;
    const enc: EncoderPrompts = { batch: checked.length };
    if (first.points) enc.points = { coords: this.gridToModelFrame(checked.flatMap((c) => c.points!), emb), labels: checked.flatMap((c) => c.labels!) };
    if (first.box) enc.boxes = this.gridToModelFrame(checked.flatMap((c) => c.box!), emb);
    const ctx = this.ctx;
    const L = this.lowResSize;
    // A task, not an async scope: predicts may overlap on one context (hover previews do).
    const task = ctx.task();
    try {
      if (first.mask !== undefined) enc.masks = task.run(() => uploadMaskInputs(ctx, checked.map((c) => c.mask!), L));
      const out = await decode(enc, task);
      const B = enc.batch;
      const M = out.masks.dim(1);
      const flat = task.run(() => out.masks.reshape([B * M, 1, L, L]));
      const { binary, logits } = await masksAtOriginalSize(ctx, task, flat, {
        size: emb.originalSize,
        chunk: this.postprocessChunk(emb),
        threshold: this.maskThreshold,
        returnLogits: opts.returnLogits,
        postprocess: (rows) => this.postprocess(emb, rows),
        signal: opts.signal,
        what,
      });
      const iou = (await ctx.read(out.iouPred)) as Float32Array;
      const low = (await ctx.read(out.masks)) as Float32Array;
      for (let i = 0; i < low.length; i++) low[i] = Math.min(clampLow, Math.max(-clampLow, low[i]!));
      return await finish(out, splitPredictions({ B, M, L, size: emb.originalSize, binary, logits: opts.returnLogits ? logits : null, iou, low }));
    } finally {
      task.dispose();
    }
  }

  /** The embedding of the image given to `setImage`, if any. */
  get currentImage(): E | null {
    return this.current;
  }

  /** set_image: encode and keep as the current image (the previous one is disposed); `predict(prompt)` then uses it. */
  async setImage(image: ImageInput): Promise<E> {
    const emb = await this.encode(image);
    this.resetImage();
    this.current = emb;
    return emb;
  }

  /** reset_image: dispose the current embedding. */
  resetImage(): void {
    this.current?.dispose();
    this.current = null;
  }

  protected embeddingOrCurrent(emb: E | undefined): E {
    const e = emb ?? this.current;
    if (!e) throw new PromptError('no image: call setImage(image) first, or pass an embedding from encode(image)');
    if (e.disposed) throw new PromptError('the image embedding was disposed');
    return e;
  }

  /** predict for one prompt set, on `emb` or the current image. */
  predict(prompt: SamPrompt, opts?: PredictOptions): Promise<R>;
  predict(emb: E, prompt: SamPrompt, opts?: PredictOptions): Promise<R>;
  async predict(a: E | SamPrompt, b?: SamPrompt | PredictOptions, c?: PredictOptions): Promise<R> {
    const [emb, prompt, opts] = this.isEmbedding(a) ? [a, b as SamPrompt, c] : [undefined, a as SamPrompt, b as PredictOptions | undefined];
    return (await this.predictBatch(this.embeddingOrCurrent(emb), [prompt], opts))[0]!;
  }

  /** Several prompt sets decoded together (the official batch form), one result per set. */
  predictBatch(prompts: readonly SamPrompt[], opts?: PredictOptions): Promise<R[]>;
  predictBatch(emb: E, prompts: readonly SamPrompt[], opts?: PredictOptions): Promise<R[]>;
  async predictBatch(a: E | readonly SamPrompt[], b?: readonly SamPrompt[] | PredictOptions, c?: PredictOptions): Promise<R[]> {
    const [e, prompts, o] = this.isEmbedding(a) ? [a, b as readonly SamPrompt[], c] : [undefined, a as readonly SamPrompt[], b as PredictOptions | undefined];
    return this.decodePrompts(this.embeddingOrCurrent(e), prompts, o ?? {});
  }
}
