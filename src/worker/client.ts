/**
 * The page side of the web-worker wrapper: `createSamWorker()` starts the engine in a module worker
 * and returns a `SamWorker` whose async methods mirror SamPredictor and SamClip. The page thread
 * only posts messages; decoding, pre-processing, GPU submission and mask post-processing all run in
 * the worker, so pointer events and painting stay smooth during an encode.
 *
 *   const sam = createSamWorker();                  // bundlers emit the worker script themselves
 *   await sam.load('models/sam_vit_b.safetensors');  // relative to the page
 *   const emb = await sam.encode(await createImageBitmap(file));   // the bitmap is transferred
 *   const { masks } = await sam.predict({ points: [[x, y]], labels: [1] }, { embedding: emb });
 *
 * Calls are answered in order of arrival (the worker runs one at a time). Each takes an optional
 * `signal`: aborting rejects the call at once with the signal's reason and tells the worker, which
 * skips it if it has not started or stops it at its next step. Errors thrown in the worker are
 * re-thrown here as `SamWorkerError` with the same `name` and `message`.
 */
import type { Progress } from '../gpu/pacer.js';
import type { ProfileRecord } from '../gpu/profiler.js';
import { type ImageInput, EXACT_BITMAP_OPTIONS, isImageU8, toImageU8 } from '../image/image-input.js';
import type { AmgMask, AmgOptions } from '../pipelines/automatic-mask-generator.js';
import type { PredictOptions, SamPrediction, SamPrompt } from '../pipelines/sam-predictor.js';
import type { TemplateChoice } from '../pipelines/samclip.js';
import type { SemanticSegmentation, SemanticSegmentationOptions } from '../pipelines/semantic-segmentation.js';
import type { TextPromptedOptions, TextPromptedResult } from '../pipelines/text-prompted.js';
import type { Classification, ClassifyOptions } from '../pipelines/zero-shot-classification.js';
import { fetchableUrl } from '../util/url.js';
import type { LoadOptions } from './host.js';
import { SamWorkerError, fromWireError } from './protocol.js';
import type { FromWorker, ToWorker, WireImage, WireWeights, WorkerAdapterInfo, WorkerContextOptions, WorkerEmbedding, WorkerModelInfo, WorkerStats } from './protocol.js';

export interface CallOptions {
  /** Cancel the call: it rejects at once with `signal.reason`; the worker stops it within a GPU step. */
  signal?: AbortSignal;
  /** Progress of a long call (encode, automatic masks, SAM-CLIP pipelines): stage and fraction, as the worker reports them. */
  onProgress?: (p: Progress) => void;
  /** With a profiling context (`init({ profile: true })` on an adapter with timestamp-query): this call's GPU timings. */
  onProfile?: (records: ProfileRecord[]) => void;
}

export interface SendImageOptions {
  /**
   * Transfer the image's memory to the worker instead of copying it. Default: true for an
   * ImageBitmap (yours is closed afterwards), false for ImageU8 / ImageData (their bytes would be
   * detached) and VideoFrame.
   */
  transfer?: boolean;
}

/** Which image a SAM-CLIP call works on: `image` (any ImageInput), or `embedding` from encode(); neither: the last encoded. */
export interface ImageTarget extends SendImageOptions {
  image?: ImageInput;
  embedding?: WorkerEmbedding | number;
}

export interface WorkerLoadOptions extends Omit<LoadOptions, 'tokenizer'> {
  /** CLIP BPE vocabulary (SAM-CLIP): a URL (relative to the page) or its bytes (`.txt.gz` or text). */
  tokenizer?: string | URL | ArrayBuffer;
}

interface Pending {
  method: string;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  onProfile?: (records: ProfileRecord[]) => void;
  onProgress?: (p: Progress) => void;
  done(): void;
}

const tagOf = (x: object): string => Object.prototype.toString.call(x).slice(8, -1);

/** An image in a form that can cross to the worker, and what to transfer with it. */
export async function wireImage(input: ImageInput, opts: SendImageOptions = {}): Promise<{ image: WireImage; transfer: Transferable[] }> {
  if (typeof input === 'string') return { image: fetchableUrl(input) ?? input, transfer: [] };
  if (input instanceof URL) return { image: input.href, transfer: [] };
  if (isImageU8(input) || (input !== null && typeof input === 'object' && tagOf(input) === 'ImageData')) {
    const img = await toImageU8(input, { what: 'image' }); // checked here, where the caller is
    return { image: input as WireImage, transfer: opts.transfer ? [img.data.buffer as ArrayBuffer] : [] };
  }
  const tag = input !== null && typeof input === 'object' ? tagOf(input) : '';
  switch (tag) {
    case 'Blob':
    case 'File':
      return { image: input as Blob, transfer: [] };
    case 'ImageBitmap':
      return { image: input as ImageBitmap, transfer: opts.transfer === false ? [] : [input as ImageBitmap] };
    case 'VideoFrame':
      return { image: input as VideoFrame, transfer: opts.transfer ? [input as VideoFrame] : [] };
    case 'HTMLImageElement': {
      // Decoded once more off the page's colour management, as toImageU8 does on the page.
      const img = input as HTMLImageElement;
      if (!img.complete || img.naturalWidth === 0) await img.decode();
      const bitmap = await createImageBitmap(img, EXACT_BITMAP_OPTIONS);
      return { image: bitmap, transfer: [bitmap] };
    }
    case 'HTMLCanvasElement':
    case 'OffscreenCanvas':
    case 'HTMLVideoElement': {
      // A snapshot of what is drawn now (the canvas stays the caller's).
      const bitmap = await createImageBitmap(input as HTMLCanvasElement | OffscreenCanvas | HTMLVideoElement);
      return { image: bitmap, transfer: [bitmap] };
    }
  }
  await toImageU8(input, { what: 'image' }); // throws the error that names what was given
  throw new SamWorkerError('ImageError', `image: cannot send a ${tag || typeof input} to the worker`);
}

async function wireWeights(src: string | URL | ArrayBuffer | Blob): Promise<{ src: WireWeights; transfer: Transferable[] }> {
  if (typeof src === 'string') return { src: fetchableUrl(src) ?? src, transfer: [] };
  if (src instanceof URL) return { src: src.href, transfer: [] };
  if (src instanceof ArrayBuffer) return { src, transfer: [src] };
  return { src, transfer: [] };
}

const embeddingId = (e: WorkerEmbedding | number | undefined): number | undefined => (typeof e === 'object' ? e.id : e);

export class SamWorker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Calls cancelled by the page, by id: an encode answered anyway leaves an embedding to release. */
  private readonly cancelled = new Map<number, string>();
  private broken: Error | null = null;

  constructor(readonly worker: Worker) {
    worker.addEventListener('message', (e: MessageEvent<FromWorker>) => this.onMessage(e.data));
    worker.addEventListener('error', (e: Event) => {
      const ev = e as ErrorEvent;
      this.fail(
        ev.message
          ? `the worker failed: ${ev.message}${ev.filename ? ` (${ev.filename}:${ev.lineno})` : ''}`
          : 'the worker script could not be started (is its URL right, and served as JavaScript? a bundler must see `new Worker(new URL(..., import.meta.url), { type: "module" })`)',
      );
    });
    worker.addEventListener('messageerror', () => this.fail('a message from the worker could not be deserialised'));
  }

  private fail(message: string): void {
    this.broken = new SamWorkerError('SamWorkerError', message);
    for (const p of this.pending.values()) {
      p.done();
      p.reject(this.broken);
    }
    this.pending.clear();
  }

  private onMessage(msg: FromWorker): void {
    const p = this.pending.get(msg.id);
    if (!p) {
      // The answer to a call the page cancelled: free what the worker made for it.
      if (this.cancelled.get(msg.id) === 'encode' && msg.type === 'result') void this.release(msg.value as WorkerEmbedding).catch(() => undefined);
      this.cancelled.delete(msg.id);
      return;
    }
    if (msg.type === 'progress') {
      p.onProgress?.(msg.progress);
      return;
    }
    this.pending.delete(msg.id);
    p.done();
    if (msg.type === 'result') {
      if (msg.profile) p.onProfile?.(msg.profile);
      p.resolve(msg.value);
    } else {
      p.reject(fromWireError(msg.error));
    }
  }

  private call<T>(method: string, args: unknown[], transfer: Transferable[], opts: CallOptions = {}): Promise<T> {
    if (this.broken) return Promise.reject(this.broken);
    const { signal, onProfile, onProgress } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.delete(id)) return;
        this.cancelled.set(id, method);
        this.post({ type: 'cancel', id }, []);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, onProfile, onProgress, done: () => signal?.removeEventListener('abort', onAbort) });
      try {
        this.post({ type: 'call', id, method, args, profile: onProfile !== undefined, progress: onProgress !== undefined }, transfer);
      } catch (e) {
        this.pending.delete(id);
        signal?.removeEventListener('abort', onAbort);
        reject(new SamWorkerError((e as Error).name ?? 'DataCloneError', `${method}: an argument cannot be sent to the worker: ${(e as Error).message}`));
      }
    });
  }

  private post(msg: ToWorker, transfer: Transferable[]): void {
    this.worker.postMessage(msg, transfer);
  }

  /** What the SAM-CLIP calls send for `opts`: their own options, plus the image or embedding id. */
  private async target<O extends ImageTarget & CallOptions>(opts: O): Promise<{ rest: object; transfer: Transferable[] }> {
    const { signal: _s, onProfile: _p, onProgress: _g, transfer: t, image, embedding, ...rest } = opts;
    if (image === undefined) return { rest: { ...rest, embedding: embeddingId(embedding) }, transfer: [] };
    const w = await wireImage(image, { transfer: t });
    return { rest: { ...rest, image: w.image }, transfer: w.transfer };
  }

  // ------------------------------------------------------------------ GPU and models

  /** Start WebGPU in the worker (done by the first load otherwise); the adapter's description, features and limits. */
  init(opts: WorkerContextOptions = {}, call?: CallOptions): Promise<WorkerAdapterInfo> {
    return this.call('init', [opts], [], call);
  }

  /** GPU timings per call (`onProfile`): needs timestamp-query. Resolves to whether profiling is on. */
  setProfiling(on: boolean): Promise<boolean> {
    return this.call('setProfiling', [on], []);
  }

  /**
   * Load a checkpoint: a URL (relative to the page; read with HTTP Range requests), a File / Blob
   * (read slice by slice) or its bytes (the ArrayBuffer is transferred: yours is detached). SAM and
   * SAM-CLIP bundles replace what was loaded; a CLIP checkpoint joins the loaded SAM (composite).
   */
  async load(src: string | URL | ArrayBuffer | Blob, opts: WorkerLoadOptions & CallOptions = {}): Promise<WorkerModelInfo> {
    const { signal, onProfile, onProgress: _g, tokenizer, ...rest } = opts;
    const w = await wireWeights(src);
    const tok = typeof tokenizer === 'string' || tokenizer instanceof URL ? (await wireWeights(tokenizer)).src : tokenizer;
    return this.call('load', [w.src, { ...rest, tokenizer: tok }], tok instanceof ArrayBuffer ? [...w.transfer, tok] : w.transfer, { signal, onProfile });
  }

  // ------------------------------------------------------------------ SAM

  /** SamPredictor.encode (or SamClip.embed with a SAM-CLIP bundle: one pass for both heads); the embedding stays in the worker. */
  async encode(image: ImageInput, opts: SendImageOptions & CallOptions = {}): Promise<WorkerEmbedding> {
    const w = await wireImage(image, opts);
    return this.call('encode', [w.image], w.transfer, opts);
  }

  /** SamPredictor.predict on `embedding` (default: the last encoded). */
  predict(prompt: SamPrompt, opts: PredictOptions & { embedding?: WorkerEmbedding | number } & CallOptions = {}): Promise<SamPrediction> {
    const { signal, onProfile, onProgress: _g, embedding, ...rest } = opts;
    return this.call('predict', [prompt, { ...rest, embedding: embeddingId(embedding) }], [], { signal, onProfile });
  }

  /** SamAutomaticMaskGenerator.generate on `image` (default: the last encoded image). */
  async generateMasks(opts: AmgOptions & ImageTarget & CallOptions = {}): Promise<AmgMask[]> {
    const { rest, transfer } = await this.target(opts);
    return this.call('generateMasks', [rest], transfer, opts);
  }

  /** Free an embedding kept in the worker. Resolves to false if it was not there. */
  release(embedding: WorkerEmbedding | number): Promise<boolean> {
    return this.call('release', [embeddingId(embedding)], []);
  }

  // ------------------------------------------------------------------ SAM-CLIP

  /** SamClip.segmentSemantic; with `refine`, on the kept embedding's native pass (made once). */
  async segmentSemantic(classes: readonly string[], opts: SemanticSegmentationOptions & ImageTarget & CallOptions = {}): Promise<SemanticSegmentation> {
    const { rest, transfer } = await this.target(opts);
    return this.call('segmentSemantic', [classes, rest], transfer, opts);
  }

  async segmentText(text: string, opts: TextPromptedOptions & ImageTarget & CallOptions = {}): Promise<TextPromptedResult> {
    const { rest, transfer } = await this.target(opts);
    return this.call('segmentText', [text, rest], transfer, opts);
  }

  async classify(labels: readonly string[], opts: ClassifyOptions & ImageTarget & CallOptions = {}): Promise<Classification> {
    const { rest, transfer } = await this.target(opts);
    return this.call('classify', [labels, rest], transfer, opts);
  }

  /** SamClip.classEmbeddings: [C, D] unit-norm class embeddings (cached in the worker). */
  classEmbeddings(classes: readonly string[], opts: { templates?: TemplateChoice } & CallOptions = {}): Promise<Float32Array> {
    return this.call('classEmbeddings', [classes, { templates: opts.templates }], [], opts);
  }

  // ------------------------------------------------------------------ end

  /** Embeddings kept in the worker and GPU bytes in use (after the calls before it have finished). */
  stats(): Promise<WorkerStats> {
    return this.call('stats', [], []);
  }

  /** Free the models, embeddings and GPU context in the worker (the worker keeps running). */
  dispose(): Promise<null> {
    return this.call('dispose', [], []);
  }

  /** Stop the worker at once; calls in flight reject. */
  terminate(): void {
    this.worker.terminate();
    this.fail('the worker was terminated');
  }
}

/**
 * Start the engine in a module worker. Without an argument the library's own worker script is
 * used, written as `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })` so
 * that Vite, webpack 5, Parcel and esbuild-based tools emit it as a chunk. Give a URL or a Worker
 * of your own when your bundler needs it spelt out in your code (docs/api.md, "Web worker").
 */
export function createSamWorker(source?: Worker | string | URL): SamWorker {
  if (source === undefined) return new SamWorker(new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }));
  return new SamWorker(typeof source === 'object' && !(source instanceof URL) ? source : new Worker(source, { type: 'module' }));
}
