/**
 * The worker side of the web-worker wrapper: one GPU context, the loaded model (SAM, SAM 2, a
 * SAM-CLIP bundle, or SAM + CLIP in composite mode) and the image embeddings, driven by the page through
 * src/worker/client.ts. Calls run one at a time in arrival order, so GPU work never overlaps on the
 * context; a cancelled call that has not started is skipped, one that has started stops at its
 * next step boundary (an embedding it made is released), and its answer is an AbortError.
 *
 * `serveSamWorker()` is what a worker script calls (src/worker/worker.ts does nothing else); it has
 * no effect at import time, so bundlers may tree-shake this module freely.
 */
import { GpuContext } from '../gpu/context.js';
import { REPORTED_LIMITS } from '../gpu/device.js';
import { SamclipError } from '../gpu/errors.js';
import type { ProgressOptions } from '../gpu/pacer.js';
import type { ImageU8 } from '../image/image.js';
import { toImageU8 } from '../image/image-input.js';
import { type AmgOptions, type AmgPredictor, SamAutomaticMaskGenerator } from '../pipelines/automatic-mask-generator.js';
import type { PromptablePredictor } from '../pipelines/prompt-sets.js';
import { type PredictOptions, type SamImageEmbedding, SamPredictor, type SamPrompt } from '../pipelines/sam-predictor.js';
import { type Sam2ImageEmbedding, Sam2Predictor } from '../pipelines/sam2-predictor.js';
import { SamClip, type SamClipImageEmbedding, type TemplateChoice } from '../pipelines/samclip.js';
import type { SemanticSegmentationOptions } from '../pipelines/semantic-segmentation.js';
import type { TextPromptedOptions } from '../pipelines/text-prompted.js';
import type { ClassifyOptions } from '../pipelines/zero-shot-classification.js';
import { ClipTokenizer } from '../text/clip-tokenizer.js';
import { fetchableUrl } from '../util/url.js';
import { detectFamily } from '../weights/families.js';
import { SafetensorsFile, openSafetensors } from '../weights/safetensors.js';
import {
  type CallMessage,
  type FromWorker,
  type ToWorker,
  type WireImage,
  type WireWeights,
  type WorkerAdapterInfo,
  type WorkerContextOptions,
  type WorkerEmbedding,
  type WorkerModelInfo,
  type WorkerStats,
  buffersOf,
  toWireError,
} from './protocol.js';

/** The per-call image choice of the SAM-CLIP methods: a new image, an embedding kept here, or (neither) the last one encoded. */
export interface ImageChoice {
  image?: WireImage;
  embedding?: number;
}

export interface LoadOptions {
  /** Name used in messages (default: the URL or file name). */
  name?: string;
  dtype?: 'f32' | 'f16';
  /** CLIP BPE vocabulary for SAM-CLIP: a URL, or the bytes (`.txt.gz` or text). */
  tokenizer?: string | ArrayBuffer;
}

/** SAM or SAM 2: the worker calls only what both predictors offer. */
type Segmenter = SamPredictor | Sam2Predictor;
type SegmenterEmbedding = SamImageEmbedding | Sam2ImageEmbedding;

interface Kept {
  image: ImageU8;
  sam: SegmenterEmbedding;
  /** The SAM-CLIP native pass (merged: from the encode; composite: made when first needed). */
  samclip: SamClipImageEmbedding | null;
}

type Answer = { value: unknown; transfer?: boolean };

/** Per call: its cancellation, and where its progress goes (to the page, when it asked). */
type Call = ProgressOptions & { signal: AbortSignal };

class WorkerStateError extends SamclipError {
  override name = 'SamWorkerStateError';
}

/** Dispatches the page's calls; exported for tests that drive it without a real worker. */
export class SamWorkerHost {
  private ctx: GpuContext | null = null;
  private ctxOptions: WorkerContextOptions = {};
  private sam: Segmenter | null = null;
  private samclip: SamClip | null = null;
  private tokenizer: ClipTokenizer | null = null;
  private readonly kept = new Map<number, Kept>();
  private nextId = 1;
  private current: number | null = null;
  private queue: Promise<void> = Promise.resolve();
  private readonly controllers = new Map<number, AbortController>();

  constructor(private readonly post: (msg: FromWorker, transfer: Transferable[]) => void) {}

  handle(msg: ToWorker): void {
    if (msg.type === 'cancel') {
      this.controllers.get(msg.id)?.abort(new DOMException(`call ${msg.id} was cancelled`, 'AbortError'));
      return;
    }
    const ac = new AbortController();
    this.controllers.set(msg.id, ac);
    this.queue = this.queue.then(() => this.run(msg, ac.signal)).finally(() => this.controllers.delete(msg.id));
  }

  private async run(msg: CallMessage, signal: AbortSignal): Promise<void> {
    try {
      signal.throwIfAborted();
      const profiler = msg.profile ? this.ctx?.profiler ?? null : null;
      if (profiler) {
        await profiler.collect();
        profiler.clear();
      }
      const call: Call = { signal };
      if (msg.progress) call.onProgress = (progress) => this.post({ type: 'progress', id: msg.id, progress }, []);
      const { value, transfer } = await this.dispatch(msg.method, msg.args, call);
      let profile;
      if (profiler) {
        await profiler.collect();
        profile = profiler.records.slice();
        profiler.clear();
      }
      this.post({ type: 'result', id: msg.id, value, profile }, transfer ? buffersOf(value) : []);
    } catch (e) {
      this.post({ type: 'error', id: msg.id, error: toWireError(signal.aborted ? signal.reason : e) }, []);
    }
  }

  private dispatch(method: string, args: unknown[], call: Call): Promise<Answer> {
    const a = args as never[];
    switch (method) {
      case 'init': return this.init(a[0]).then((value) => ({ value }));
      case 'load': return this.load(a[0], a[1], call).then((value) => ({ value }));
      case 'encode': return this.encode(a[0], call).then((value) => ({ value }));
      case 'predict': return this.predict(a[0], a[1], call).then((value) => ({ value, transfer: true }));
      case 'segmentSemantic': return this.segmentSemantic(a[0], a[1], call).then((value) => ({ value, transfer: true }));
      case 'segmentText': return this.segmentText(a[0], a[1], call).then((value) => ({ value, transfer: true }));
      case 'classify': return this.classify(a[0], a[1], call).then((value) => ({ value }));
      // Cached in the model: copied, not transferred.
      case 'classEmbeddings': return this.needSamClip('classEmbeddings').classEmbeddings(a[0], { templates: (a[1] as { templates?: TemplateChoice })?.templates }).then((value) => ({ value }));
      case 'generateMasks': return this.generateMasks(a[0], call).then((value) => ({ value, transfer: true }));
      case 'release': return Promise.resolve({ value: this.release(a[0]) });
      case 'stats': return Promise.resolve({ value: this.stats() });
      case 'setProfiling': return Promise.resolve({ value: this.setProfiling(a[0]) });
      case 'dispose': return Promise.resolve({ value: this.dispose() });
      default: return Promise.reject(new WorkerStateError(`the worker has no method '${method}'`));
    }
  }

  // ------------------------------------------------------------------ GPU and models

  private async init(opts: WorkerContextOptions = {}): Promise<WorkerAdapterInfo> {
    if (this.ctx && JSON.stringify(opts) !== JSON.stringify(this.ctxOptions)) {
      throw new WorkerStateError('init: the worker already has a GPU context with other options; dispose() first');
    }
    if (!this.ctx) {
      this.ctx = await GpuContext.create(opts);
      this.ctxOptions = opts;
    }
    const ctx = this.ctx;
    const limits: Record<string, number> = {};
    const dl = ctx.device.limits as unknown as Record<string, number>;
    for (const k of REPORTED_LIMITS) limits[k] = dl[k]!;
    return { description: ctx.description, vendor: ctx.adapterInfo.vendor, architecture: ctx.adapterInfo.architecture, features: { ...ctx.features }, limits };
  }

  private async context(): Promise<GpuContext> {
    if (!this.ctx) await this.init(this.ctxOptions);
    return this.ctx!;
  }

  private async open(src: WireWeights, name?: string): Promise<SafetensorsFile> {
    if (src instanceof ArrayBuffer) return SafetensorsFile.fromBytes(src, name ?? '<bytes>');
    if (typeof Blob === 'function' && src instanceof Blob) return SafetensorsFile.fromBlob(src, name);
    if (typeof src === 'string') return (await openSafetensors(src)).file;
    throw new WorkerStateError(`load: expected a URL, an ArrayBuffer or a Blob / File, got ${Object.prototype.toString.call(src)}`);
  }

  private async clipTokenizer(src: LoadOptions['tokenizer']): Promise<ClipTokenizer | undefined> {
    if (src === undefined) return this.tokenizer ?? undefined;
    let bytes: Uint8Array;
    if (typeof src === 'string') {
      const res = await fetch(fetchableUrl(src) ?? src);
      if (!res.ok) throw new WorkerStateError(`CLIP vocabulary ${src}: HTTP ${res.status}`);
      bytes = new Uint8Array(await res.arrayBuffer());
    } else {
      bytes = new Uint8Array(src);
    }
    // A server may send the .gz with Content-Encoding: gzip, which fetch has already undone.
    this.tokenizer = bytes[0] === 0x1f && bytes[1] === 0x8b ? await ClipTokenizer.fromBpeGz(bytes) : ClipTokenizer.fromBpeText(new TextDecoder().decode(bytes));
    return this.tokenizer;
  }

  /**
   * Load a checkpoint of any supported family (detected from its keys). SAM or a SAM-CLIP bundle
   * replaces what was loaded; CLIP joins the SAM loaded before as a composite SAM-CLIP. Embeddings
   * of the previous model are released.
   */
  private async load(src: WireWeights, opts: LoadOptions = {}, call: Call): Promise<WorkerModelInfo> {
    const ctx = await this.context();
    const tokenizer = await this.clipTokenizer(opts.tokenizer);
    const file = await this.open(src, opts.name);
    try {
      call.signal.throwIfAborted();
      const family = detectFamily(file.keys(), file.name);
      let role: WorkerModelInfo['role'];
      if (family === 'sam' || family === 'sam-hf') {
        const sam = await SamPredictor.load(ctx, file, { dtype: opts.dtype });
        this.dropModels();
        this.sam = sam;
        role = 'sam';
      } else if (family === 'sam2' || family === 'sam2-hf') {
        const sam = await Sam2Predictor.load(ctx, file, { dtype: opts.dtype });
        this.dropModels();
        this.sam = sam;
        role = 'sam2';
      } else if (family === 'samclip') {
        const m = await SamClip.load(ctx, file, { dtype: opts.dtype, tokenizer });
        this.dropModels();
        this.samclip = m;
        this.sam = m.predictor;
        role = 'samclip';
      } else {
        if (!this.sam || this.samclip?.mode === 'merged' || !(this.sam instanceof SamPredictor)) {
          throw new WorkerStateError(`${file.name} is a CLIP checkpoint: load a SAM checkpoint (not SAM 2) first, then CLIP joins it as a composite SAM-CLIP`);
        }
        const m = await SamClip.composite(ctx, { sam: this.sam.model, clip: file }, { dtype: opts.dtype, tokenizer });
        this.releaseAll();
        this.samclip?.dispose(); // a composite leaves the SAM it was given alone
        this.samclip = m;
        role = 'composite';
      }
      const sam = this.sam!;
      const info: WorkerModelInfo = { name: file.name, family, role, sam: segmenterInfo(sam) };
      if (this.samclip) info.samclip = { embedDim: this.samclip.embedDim, resolutions: this.samclip.resolutions };
      return info;
    } finally {
      await file.close();
    }
  }

  private dropModels(): void {
    this.releaseAll();
    const samOwnedBySamclip = this.samclip?.mode === 'merged';
    this.samclip?.dispose();
    if (!samOwnedBySamclip) this.sam?.dispose();
    this.samclip = null;
    this.sam = null;
  }

  private needSam(what: string): Segmenter {
    if (!this.sam) throw new WorkerStateError(`${what}: no SAM model in the worker; load SAM or SAM-CLIP weights first`);
    return this.sam;
  }

  private needSamClip(what: string): SamClip {
    if (!this.samclip) throw new WorkerStateError(`${what}: needs a SAM-CLIP bundle, or SAM + CLIP weights (composite mode)`);
    return this.samclip;
  }

  // ------------------------------------------------------------------ images and embeddings

  /** Encode an image (one backbone pass for both heads with a merged SAM-CLIP) and keep its embedding. */
  private async encode(input: WireImage, call: Call): Promise<WorkerEmbedding> {
    const sam = this.needSam('encode');
    const image = await toImageU8(input, { what: 'encode', signal: call.signal });
    let kept: Kept;
    if (this.samclip?.mode === 'merged') {
      const e = await this.samclip.embed(image, call);
      kept = { image, sam: e.sam, samclip: e };
    } else {
      kept = { image, sam: await sam.encode(image, call), samclip: null };
    }
    if (call.signal.aborted) {
      disposeKept(kept);
      call.signal.throwIfAborted();
    }
    const id = this.nextId++;
    this.kept.set(id, kept);
    this.current = id;
    return { id, originalSize: [...kept.sam.originalSize] as [number, number], inputSize: [...kept.sam.inputSize] as [number, number] };
  }

  private keptOf(id: number | undefined, what: string): Kept {
    const key = id ?? this.current;
    const k = key === null ? undefined : this.kept.get(key);
    if (!k) {
      throw new WorkerStateError(id === undefined ? `${what}: no image encoded yet; call encode(image) first` : `${what}: embedding ${id} is not in the worker (released, or made by a model since replaced)`);
    }
    return k;
  }

  /** An image given with the call, or the image / embedding kept for `embedding` (default: the last encoded). */
  private async imageOrKept(choice: ImageChoice = {}, what: string, call: Call): Promise<{ image: ImageU8; kept: Kept | null }> {
    if (choice.image !== undefined) return { image: await toImageU8(choice.image, { what, signal: call.signal }), kept: null };
    const kept = this.keptOf(choice.embedding, what);
    return { image: kept.image, kept };
  }

  /** The kept image's native-size SAM-CLIP pass (merged: from the encode; composite: made once, here). */
  private async nativeEmbedding(m: SamClip, kept: Kept, call: Call): Promise<SamClipImageEmbedding> {
    kept.samclip ??= await m.embed(kept.image, { signal: call.signal });
    return kept.samclip;
  }

  private release(id: number): boolean {
    const k = this.kept.get(id);
    if (!k) return false;
    disposeKept(k);
    this.kept.delete(id);
    if (this.current === id) this.current = null;
    return true;
  }

  private releaseAll(): void {
    for (const id of [...this.kept.keys()]) this.release(id);
  }

  // ------------------------------------------------------------------ pipelines

  private async predict(prompt: SamPrompt, opts: PredictOptions & { embedding?: number } = {}, call: Call) {
    const sam = this.needSam('predict');
    const kept = this.keptOf(opts.embedding, 'predict');
    // Embeddings are released when the model changes, so a kept one is always this model's.
    return (sam as PromptablePredictor<SegmenterEmbedding>).predict(kept.sam, prompt, { multimaskOutput: opts.multimaskOutput, returnLogits: opts.returnLogits, signal: call.signal });
  }

  private async segmentSemantic(classes: readonly string[], opts: SemanticSegmentationOptions & ImageChoice = {}, call: Call) {
    const m = this.needSamClip('segmentSemantic');
    const { image: _i, embedding: _e, ...rest } = opts;
    const { image, kept } = await this.imageOrKept(opts, 'segmentSemantic', call);
    // Refinement runs on the native-size pass: reuse (or make once) the kept one.
    const input = rest.refine && kept ? await this.nativeEmbedding(m, kept, call) : image;
    return m.segmentSemantic(input, classes, { ...rest, ...call });
  }

  private async segmentText(text: string, opts: TextPromptedOptions & ImageChoice = {}, call: Call) {
    const m = this.needSamClip('segmentText');
    const { image: _i, embedding: _e, ...rest } = opts;
    const { image, kept } = await this.imageOrKept(opts, 'segmentText', call);
    const input = kept ? await this.nativeEmbedding(m, kept, call) : image;
    return m.segmentText(input, text, { ...rest, ...call });
  }

  private async classify(labels: readonly string[], opts: ClassifyOptions & ImageChoice = {}, call: Call) {
    const m = this.needSamClip('classify');
    const { image: _i, embedding: _e, ...rest } = opts;
    const { image } = await this.imageOrKept(opts, 'classify', call);
    return m.classify(image, labels, { ...rest, ...call });
  }

  private async generateMasks(opts: AmgOptions & ImageChoice = {}, call: Call) {
    const sam = this.needSam('generateMasks');
    const { image: _i, embedding: _e, ...rest } = opts;
    const { image } = await this.imageOrKept(opts, 'generateMasks', call);
    return new SamAutomaticMaskGenerator(sam as AmgPredictor<SegmenterEmbedding>, rest).generate(image, call);
  }

  /** What the worker holds: kept embeddings, and GPU memory in use by tensors (weights included). */
  private stats(): WorkerStats {
    return { embeddings: this.kept.size, liveBytes: this.ctx?.poolStats().liveBytes ?? 0 };
  }

  private setProfiling(on: boolean): boolean {
    const ctx = this.ctx;
    if (!ctx) throw new WorkerStateError('setProfiling: call init() first');
    if (on && ctx.features.timestamps) ctx.enableProfiling();
    else ctx.profiler = null;
    return ctx.profiler !== null;
  }

  private dispose(): null {
    this.dropModels();
    this.ctx?.destroy();
    this.ctx = null;
    return null;
  }
}

/** The image encoder's size for the page: SAM's ViT, or SAM 2's Hiera (stage-0 width, total blocks). */
function segmenterInfo(sam: Segmenter): WorkerModelInfo['sam'] {
  if (sam instanceof SamPredictor) {
    const c = sam.model.config;
    return { embedDim: c.embedDim, depth: c.depth, imgSize: c.imgSize };
  }
  const t = sam.model.config.trunk;
  return { embedDim: t.embedDim, depth: t.stages.reduce((a, b) => a + b, 0), imgSize: sam.model.imageSize };
}

function disposeKept(k: Kept): void {
  k.samclip?.dispose();
  if (!k.samclip || k.samclip.sam !== k.sam) k.sam.dispose();
}

/** The worker global's few members used here (typed locally so the module also type-checks without the WebWorker lib). */
interface WorkerScope {
  postMessage(message: unknown, transfer: Transferable[]): void;
  addEventListener(type: 'message', listener: (e: MessageEvent<ToWorker>) => void): void;
}

/**
 * Serve the page's calls in this worker. A worker script is one line:
 *
 *   import { serveSamWorker } from 'samclip-webgpu/worker';
 *   serveSamWorker();
 */
export function serveSamWorker(scope: WorkerScope = globalThis as unknown as WorkerScope): SamWorkerHost {
  const host = new SamWorkerHost((msg, transfer) => scope.postMessage(msg, transfer));
  scope.addEventListener('message', (e) => host.handle(e.data));
  return host;
}
