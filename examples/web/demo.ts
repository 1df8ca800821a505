/**
 * The demo's engine side, free of DOM wiring. The engine itself runs in a web worker
 * (src/worker: `createSamWorker()`), so the page thread only posts messages and draws: an encode of
 * a large photo never freezes the pointer. This class keeps what the page shows (models, prompts,
 * the last mask and label map) and queues the page's operations so they reach the worker in order.
 *
 * Models by checkpoint family (detected from the key names, in the worker):
 *  - SAM (official or Hugging Face names): promptable segmentation.
 *  - SAM 2.1 (official or Hugging Face names, as safetensors): promptable segmentation.
 *  - SAM-CLIP bundle: promptable segmentation on the shared backbone + semantic segmentation.
 *  - CLIP / OpenCLIP (after a SAM): composite mode, SAM + CLIP as one SAM-CLIP (DESIGN.md 6.4).
 */
import { GpuUnavailableError } from '../../src/gpu/errors.js';
import type { ProfileRecord } from '../../src/gpu/profiler.js';
import type { TemplateChoice } from '../../src/pipelines/samclip.js';
import type { SemanticSegmentation } from '../../src/pipelines/semantic-segmentation.js';
import type { SamPrompt } from '../../src/pipelines/sam-predictor.js';
import type { Family } from '../../src/weights/families.js';
import { type SamWorker, type WorkerAdapterInfo, type WorkerEmbedding, type WorkerModelInfo, createSamWorker } from '../../src/worker/index.js';
import { DemoInputError } from './inputs.js';
import { Timings } from './timings.js';
import bpeUrl from '../../assets/bpe_simple_vocab_16e6.txt.gz?url';

/** The worker's adapter (description, features the engine enabled, limits), plus all the adapter's features. */
export interface AdapterReport extends WorkerAdapterInfo {
  adapterFeatures: string[];
}

export interface PointPrompt {
  x: number;
  y: number;
  /** 1 foreground, 0 background. */
  label: number;
}

export type MultimaskMode = 'auto' | 'on' | 'off';

/** The last mask drawn, as the end-to-end test reads it. */
export interface MaskResult {
  seq: number;
  width: number;
  height: number;
  /** 0/1 per pixel, row-major. */
  data: Uint8Array;
  prompt: { points: [number, number][]; labels: number[]; box: [number, number, number, number] | null };
  multimaskOutput: boolean;
  maskIndex: number;
  iouPredictions: number[];
}

export interface SemanticResult {
  seq: number;
  classes: string[];
  refined: boolean;
  templates: TemplateChoice;
  result: SemanticSegmentation;
}

export interface LoadedModel {
  name: string;
  family: Family;
  /** What the entry is: 'SAM', 'SAM-CLIP (merged)', 'CLIP (composite with SAM)'. */
  role: string;
  /** Config summary shown on the page. */
  detail: string;
}

const FAMILY_ROLE: Record<Family, string> = {
  sam: 'SAM (official names)',
  'sam-hf': 'SAM (Hugging Face names)',
  sam2: 'SAM 2.1 (official names)',
  'sam2-hf': 'SAM 2.1 (Hugging Face names)',
  samclip: 'SAM-CLIP bundle (merged)',
  clip: 'CLIP / OpenCLIP (composite with SAM)',
  'clip-hf': 'CLIP, Hugging Face names (composite with SAM)',
};

/** The picture the page shows and the worker encodes: the file's bytes (decoded in the worker) and its size. */
export interface DemoImage {
  blob: Blob;
  name: string;
  width: number;
  height: number;
}

export class Demo {
  readonly timings = new Timings();
  adapter: AdapterReport | null = null;
  models: LoadedModel[] = [];
  image: DemoImage | null = null;
  points: PointPrompt[] = [];
  box: [number, number, number, number] | null = null;
  multimask: MultimaskMode = 'auto';
  lastMask: MaskResult | null = null;
  lastSemantic: SemanticResult | null = null;
  /** Matrices in f16 (only offered when the adapter has shader-f16). */
  dtype: 'f32' | 'f16' = 'f32';
  /** Whether calls ask the worker for their GPU timings. */
  profiling = false;

  private workerValue: SamWorker | null = null;
  private loaded: WorkerModelInfo | null = null;
  private embedding: WorkerEmbedding | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private seq = 0;

  // ------------------------------------------------------------------ GPU

  /** Start the worker and its adapter (once). A page without WebGPU gets an error saying what to do. */
  async init(profile: boolean): Promise<AdapterReport> {
    if (this.adapter) return this.adapter;
    if (!globalThis.isSecureContext) {
      throw new GpuUnavailableError(`WebGPU needs a secure context: open the page over https or from localhost / 127.0.0.1 (this page is ${location.origin})`);
    }
    if (!('gpu' in navigator) || !navigator.gpu) {
      throw new GpuUnavailableError(
        'This browser exposes no WebGPU (navigator.gpu is missing). Use a recent Chrome / Edge, or Firefox / Safari with WebGPU enabled; ' +
          'headless Chromium needs --enable-unsafe-webgpu.',
      );
    }
    this.workerValue = createSamWorker();
    const info = await this.workerValue.init({ profile });
    this.profiling = profile && info.features.timestamps;
    // The full feature list, for the report: asking the page's adapter is cheap (no device).
    const adapter = await navigator.gpu.requestAdapter();
    this.adapter = { ...info, adapterFeatures: adapter ? [...adapter.features].sort() : [] };
    return this.adapter;
  }

  private get worker(): SamWorker {
    if (!this.workerValue) throw new GpuUnavailableError('no WebGPU worker: initialisation failed (see the message above)');
    return this.workerValue;
  }

  /** Turn the profiler on or off (only with timestamp-query). */
  async setProfiling(on: boolean): Promise<void> {
    this.profiling = await this.worker.setProfiling(on);
  }

  /** Time a worker call; with profiling, its GPU time per stage and kernel too. */
  private measure<T>(name: string, fn: (onProfile?: (r: ProfileRecord[]) => void) => Promise<T>): Promise<T> {
    return this.timings.measure(name, (onProfile) => fn(this.profiling ? onProfile : undefined));
  }

  /** Run after everything queued before it (the page's state changes in the order of the user's actions). */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  get hasSam(): boolean {
    return this.loaded !== null;
  }

  get hasSemantic(): boolean {
    return this.loaded?.samclip !== undefined;
  }

  get encoded(): boolean {
    return this.embedding !== null;
  }

  // ------------------------------------------------------------------ models

  /**
   * Load a checkpoint (any supported family): a picked File (read slice by slice in the worker) or
   * a URL (relative to the page; HTTP Range). Re-encodes the image.
   */
  loadWeights(src: File | string): Promise<LoadedModel> {
    return this.enqueue(async () => {
      const dtype = this.dtype === 'f16' && this.adapter?.features.f16 ? 'f16' : 'f32';
      const info = await this.measure('load weights', (onProfile) => this.worker.load(src, { dtype, tokenizer: bpeUrl, onProfile }));
      const c = info.sam;
      const detail =
        info.role === 'sam' ? `ViT ${c.embedDim}w x ${c.depth}, ${c.imgSize} px input`
        : info.role === 'sam2' ? `Hiera ${c.embedDim}w, ${c.depth} blocks, ${c.imgSize} px input`
        : info.role === 'samclip' ? `ViT ${c.embedDim}w x ${c.depth}, ${c.imgSize} px, CLIP dim ${info.samclip!.embedDim}`
        : `CLIP dim ${info.samclip!.embedDim}, dense features ${info.samclip!.resolutions.seg} px`;
      const model: LoadedModel = { name: info.name, family: info.family, role: FAMILY_ROLE[info.family], detail };
      // SAM or a bundle replaces everything; CLIP replaces the previous CLIP of a composite.
      this.models = info.role === 'composite' ? [...this.models.filter((m) => m.family !== 'clip' && m.family !== 'clip-hf'), model] : [model];
      this.loaded = info;
      this.embedding = null; // the worker released it with the old model
      if (this.image) await this.encodeNow();
      return model;
    });
  }

  // ------------------------------------------------------------------ image

  /** A new image: prompts are cleared, the embedding is computed now when a model is loaded. */
  setImage(image: DemoImage): Promise<void> {
    return this.enqueue(async () => {
      if (this.embedding) await this.worker.release(this.embedding);
      this.embedding = null;
      this.image = image;
      this.points = [];
      this.box = null;
      this.lastMask = null;
      this.lastSemantic = null;
      if (this.loaded) await this.encodeNow();
    });
  }

  /** Encode in the worker (with a SAM-CLIP bundle one backbone pass feeds both heads); the Blob is decoded there. */
  private async encodeNow(): Promise<void> {
    const image = this.image!;
    this.embedding = await this.measure('encode (image encoder)', (onProfile) => this.worker.encode(image.blob, { onProfile }));
  }

  // ------------------------------------------------------------------ prompts

  addPoint(x: number, y: number, label: number): Promise<MaskResult | null> {
    this.points.push({ x, y, label });
    return this.predict();
  }

  setBox(box: [number, number, number, number]): Promise<MaskResult | null> {
    this.box = box;
    return this.predict();
  }

  undoPoint(): Promise<MaskResult | null> {
    this.points.pop();
    return this.predict();
  }

  clearPrompts(): void {
    this.points = [];
    this.box = null;
    this.lastMask = null;
  }

  /** SamPredictor.predict on the current prompts; the best mask by predicted IoU is kept. */
  predict(): Promise<MaskResult | null> {
    return this.enqueue(async () => {
      if (!this.loaded) throw new DemoInputError('no SAM model: load SAM (or SAM-CLIP) weights first');
      if (!this.image) throw new DemoInputError('no image: pick a photo or use the demo photo first');
      if (!this.embedding) await this.encodeNow();
      if (this.points.length === 0 && !this.box) {
        this.lastMask = null;
        return null;
      }
      this.lastMask = await this.measure('decode + post-process', (onProfile) => this.decode(this.points, this.box, onProfile));
      return this.lastMask;
    });
  }

  /**
   * Live preview: the mask for the current prompts plus a hovered point, or with a box being
   * dragged. Only the prompt encoder and mask decoder run (the embedding is reused), and no state
   * changes; before the one-time encode there is nothing to preview (null).
   */
  previewMask(extra: { point?: PointPrompt; box?: [number, number, number, number] }): Promise<MaskResult | null> {
    return this.enqueue(async () => {
      if (!this.embedding) return null;
      const points = extra.point ? [...this.points, extra.point] : this.points;
      const box = extra.box ?? this.box;
      if (points.length === 0 && !box) return null;
      return this.measure('live preview (decode)', (onProfile) => this.decode(points, box, onProfile));
    });
  }

  private async decode(pts: readonly PointPrompt[], box: [number, number, number, number] | null, onProfile?: (r: ProfileRecord[]) => void): Promise<MaskResult> {
    const points = pts.map((p) => [p.x, p.y] as [number, number]);
    const labels = pts.map((p) => p.label);
    const prompt: SamPrompt = {};
    if (points.length) {
      prompt.points = points;
      prompt.labels = labels;
    }
    if (box) prompt.box = box;
    // SAM's own advice: three candidates for an ambiguous single click, one mask otherwise.
    const multimaskOutput = this.multimask === 'auto' ? points.length === 1 && !box : this.multimask === 'on';
    const r = await this.worker.predict(prompt, { multimaskOutput, embedding: this.embedding!, onProfile });
    let best = 0;
    for (let i = 1; i < r.iouPredictions.length; i++) if (r.iouPredictions[i]! > r.iouPredictions[best]!) best = i;
    return {
      seq: ++this.seq,
      width: r.width,
      height: r.height,
      data: r.masks[best]!,
      prompt: { points, labels, box: box ? [...box] : null },
      multimaskOutput,
      maskIndex: best,
      iouPredictions: Array.from(r.iouPredictions),
    };
  }

  // ------------------------------------------------------------------ semantic segmentation

  /**
   * Zero-shot semantic segmentation of the encoded image; refined reuses (or makes once) its
   * native-size SAM-CLIP pass. `templates`: the 80-prompt ImageNet ensemble is the most accurate,
   * one template is ~80x less text-tower work (which matters on slow adapters: seconds on SwiftShader).
   */
  segmentSemantic(classText: string, refine: boolean, templates: TemplateChoice = 'ensemble'): Promise<SemanticResult> {
    return this.enqueue(async () => {
      if (!this.hasSemantic) throw new DemoInputError('semantic segmentation needs a SAM-CLIP bundle, or SAM + CLIP weights (composite mode)');
      if (!this.image) throw new DemoInputError('no image: pick a photo or use the demo photo first');
      const classes = classText
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter(Boolean);
      if (classes.length === 0) throw new DemoInputError('type at least one class name (comma-separated), e.g. "dog, grass, sky"');
      if (!this.embedding) await this.encodeNow();
      await this.measure('class text embeddings', (onProfile) => this.worker.classEmbeddings(classes, { templates, onProfile }));
      const result = await this.measure(refine ? 'semantic (refined)' : 'semantic (head-only)', (onProfile) =>
        this.worker.segmentSemantic(classes, { refine, templates, embedding: this.embedding!, onProfile }),
      );
      this.lastSemantic = { seq: ++this.seq, classes, refined: refine, templates, result };
      return this.lastSemantic;
    });
  }
}
