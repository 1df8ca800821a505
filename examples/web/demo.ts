/**
 * The demo's engine side, free of DOM wiring: one GPU context, the loaded models, the current
 * image and its embedding, the prompts, and the operations the page offers. Every GPU operation
 * runs through one queue, so a click during an encode waits for it (the engine's async scopes must
 * not interleave on a context).
 *
 * Models by checkpoint family (detected from the key names):
 *  - SAM (official or Hugging Face names): promptable segmentation.
 *  - SAM-CLIP bundle: promptable segmentation on the shared backbone + semantic segmentation.
 *  - CLIP / OpenCLIP (after a SAM): composite mode, SAM + CLIP as one SAM-CLIP (DESIGN.md 6.4).
 */
import { GpuContext } from '../../src/gpu/context.js';
import { REPORTED_LIMITS } from '../../src/gpu/device.js';
import { GpuUnavailableError } from '../../src/gpu/errors.js';
import type { ImageU8 } from '../../src/image/image.js';
import { SamClip, SamClipImageEmbedding, type TemplateChoice } from '../../src/pipelines/samclip.js';
import type { SemanticSegmentation } from '../../src/pipelines/semantic-segmentation.js';
import { type SamImageEmbedding, SamPredictor, type SamPrompt } from '../../src/pipelines/sam-predictor.js';
import { ClipTokenizer } from '../../src/text/clip-tokenizer.js';
import { type Family, detectFamily } from '../../src/weights/families.js';
import type { SafetensorsFile } from '../../src/weights/safetensors.js';
import { DemoInputError } from './inputs.js';
import { Timings } from './timings.js';
import bpeUrl from '../../assets/bpe_simple_vocab_16e6.txt.gz?url';

export interface AdapterReport {
  description: string;
  vendor: string;
  architecture: string;
  /** Adapter features (all of them, for the report). */
  adapterFeatures: string[];
  /** What the engine enabled on its device. */
  features: { f16: boolean; timestamps: boolean; subgroups: boolean };
  limits: Record<string, number>;
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
  samclip: 'SAM-CLIP bundle (merged)',
  clip: 'CLIP / OpenCLIP (composite with SAM)',
  'clip-hf': 'CLIP, Hugging Face names (composite with SAM)',
};

const LIMIT_NAMES = REPORTED_LIMITS;

export class Demo {
  readonly timings: Timings;
  adapter: AdapterReport | null = null;
  models: LoadedModel[] = [];
  image: ImageU8 | null = null;
  imageName = '';
  points: PointPrompt[] = [];
  box: [number, number, number, number] | null = null;
  multimask: MultimaskMode = 'auto';
  lastMask: MaskResult | null = null;
  lastSemantic: SemanticResult | null = null;
  /** Matrices in f16 (only offered when the adapter has shader-f16). */
  dtype: 'f32' | 'f16' = 'f32';

  private ctxValue: GpuContext | null = null;
  private sam: SamPredictor | null = null;
  private samclip: SamClip | null = null;
  private embedding: SamImageEmbedding | null = null;
  /** SAM-CLIP native-size pass (merged: from the one encode; composite: computed on demand). */
  private semEmbedding: SamClipImageEmbedding | null = null;
  private tokenizer: Promise<ClipTokenizer> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private seq = 0;

  constructor() {
    this.timings = new Timings(() => this.ctxValue?.profiler ?? null);
  }

  // ------------------------------------------------------------------ GPU

  /** Acquire the adapter (once). A page without WebGPU gets an error saying what to do. */
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
    const ctx = await GpuContext.create({ profile });
    this.ctxValue = ctx;
    const limits: Record<string, number> = {};
    const dl = ctx.device.limits as unknown as Record<string, number>;
    for (const k of LIMIT_NAMES) limits[k] = dl[k]!;
    const info = ctx.adapterInfo;
    // The adapter object is not kept by the context; ask again for the full feature list (cheap).
    const adapter = await navigator.gpu.requestAdapter();
    this.adapter = {
      description: ctx.description,
      vendor: info.vendor,
      architecture: info.architecture,
      adapterFeatures: adapter ? [...adapter.features].sort() : [],
      features: { ...ctx.features },
      limits,
    };
    return this.adapter;
  }

  get ctx(): GpuContext {
    if (!this.ctxValue) throw new GpuUnavailableError('no GPU context: WebGPU initialisation failed (see the message above)');
    return this.ctxValue;
  }

  /** Turn the profiler on or off (only with timestamp-query). */
  setProfiling(on: boolean): void {
    const ctx = this.ctx;
    if (on && ctx.features.timestamps) ctx.enableProfiling();
    else ctx.profiler = null;
  }

  /** Run GPU work after everything queued before it. */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  get hasSam(): boolean {
    return this.sam !== null;
  }

  get hasSemantic(): boolean {
    return this.samclip !== null;
  }

  get encoded(): boolean {
    return this.embedding !== null;
  }

  // ------------------------------------------------------------------ models

  private loadTokenizer(): Promise<ClipTokenizer> {
    this.tokenizer ??= (async () => {
      const res = await fetch(bpeUrl);
      if (!res.ok) throw new DemoInputError(`CLIP vocabulary ${bpeUrl}: HTTP ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      // A server may have sent it with Content-Encoding: gzip, in which case fetch already gunzipped it.
      return bytes[0] === 0x1f && bytes[1] === 0x8b ? ClipTokenizer.fromBpeGz(bytes) : ClipTokenizer.fromBpeText(new TextDecoder().decode(bytes));
    })();
    this.tokenizer.catch(() => (this.tokenizer = null));
    return this.tokenizer;
  }

  /** Load a checkpoint (any supported family); the file is closed afterwards. Re-encodes the image. */
  loadWeights(file: SafetensorsFile): Promise<LoadedModel> {
    return this.enqueue(async () => {
      try {
        const family = detectFamily(file.keys(), file.name);
        const ctx = this.ctx;
        const dtype = this.dtype === 'f16' && ctx.features.f16 ? 'f16' : 'f32';
        const entry = await this.timings.measure('load weights', async () => {
          switch (family) {
            case 'sam':
            case 'sam-hf': {
              const sam = await SamPredictor.load(ctx, file, { dtype });
              this.dropModels();
              this.sam = sam;
              const c = sam.model.config;
              return { family, detail: `ViT ${c.embedDim}w x ${c.depth}, ${c.imgSize} px input` };
            }
            case 'samclip': {
              const m = await SamClip.load(ctx, file, { dtype, tokenizer: await this.loadTokenizer() });
              this.dropModels();
              this.samclip = m;
              this.sam = m.predictor;
              const c = m.predictor.model.config;
              return { family, detail: `ViT ${c.embedDim}w x ${c.depth}, ${c.imgSize} px, CLIP dim ${m.embedDim}` };
            }
            case 'clip':
            case 'clip-hf': {
              if (!this.sam || this.samclip?.mode === 'merged') {
                throw new DemoInputError(
                  `${file.name} is a CLIP checkpoint (${FAMILY_ROLE[family]}). Load a SAM checkpoint first: ` +
                    'SAM + CLIP then run as a composite SAM-CLIP (semantic segmentation with public weights).',
                );
              }
              const sam = this.sam.model;
              const m = await SamClip.composite(ctx, { sam, clip: file }, { dtype, tokenizer: await this.loadTokenizer() });
              // A previous composite leaves the SAM model (ours) alone when disposed.
              this.samclip?.dispose();
              this.models = this.models.filter((x) => x.family !== 'clip' && x.family !== 'clip-hf');
              this.samclip = m;
              return { family, detail: `CLIP dim ${m.embedDim}, dense features ${m.resolutions.seg} px` };
            }
          }
        });
        const model: LoadedModel = { name: file.name, family, role: FAMILY_ROLE[family], detail: entry.detail };
        this.models.push(model);
        this.dropEmbedding();
        if (this.image) await this.encodeNow();
        return model;
      } finally {
        await file.close();
      }
    });
  }

  private dropModels(): void {
    this.dropEmbedding();
    // A merged SAM-CLIP owns its SAM head; a composite one leaves the SAM we gave it to us.
    const samOwnedBySamclip = this.samclip?.mode === 'merged';
    this.samclip?.dispose();
    if (!samOwnedBySamclip) this.sam?.dispose();
    this.samclip = null;
    this.sam = null;
    this.models = [];
  }

  // ------------------------------------------------------------------ image

  private dropEmbedding(): void {
    this.semEmbedding?.dispose();
    if (!this.semEmbedding || this.embedding !== this.semEmbedding.sam) this.embedding?.dispose();
    this.semEmbedding = null;
    this.embedding = null;
  }

  /** A new image: prompts are cleared, the embedding is computed now when a model is loaded. */
  setImage(image: ImageU8, name: string): Promise<void> {
    return this.enqueue(async () => {
      this.dropEmbedding();
      this.image = image;
      this.imageName = name;
      this.points = [];
      this.box = null;
      this.lastMask = null;
      this.lastSemantic = null;
      if (this.sam) await this.encodeNow();
    });
  }

  private async encodeNow(): Promise<void> {
    const image = this.image!;
    await this.timings.measure('encode (image encoder)', async () => {
      if (this.samclip?.mode === 'merged') {
        // One backbone pass feeds the SAM head and the CLIP head.
        this.semEmbedding = await this.samclip.embed(image);
        this.embedding = this.semEmbedding.sam;
      } else {
        this.embedding = await this.sam!.encode(image);
      }
    });
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
      if (!this.sam) throw new DemoInputError('no SAM model: load SAM (or SAM-CLIP) weights first');
      if (!this.image) throw new DemoInputError('no image: pick a photo or use the demo photo first');
      if (!this.embedding) await this.encodeNow();
      if (this.points.length === 0 && !this.box) {
        this.lastMask = null;
        return null;
      }
      this.lastMask = await this.timings.measure('decode + post-process', () => this.decode(this.points, this.box));
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
      if (!this.sam || !this.embedding) return null;
      const points = extra.point ? [...this.points, extra.point] : this.points;
      const box = extra.box ?? this.box;
      if (points.length === 0 && !box) return null;
      return this.timings.measure('live preview (decode)', () => this.decode(points, box));
    });
  }

  private async decode(pts: readonly PointPrompt[], box: [number, number, number, number] | null): Promise<MaskResult> {
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
    const r = await this.sam!.predict(this.embedding!, prompt, { multimaskOutput });
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
   * Zero-shot semantic segmentation; refined reuses the native-size embedding. `templates`: the
   * 80-prompt ImageNet ensemble is the most accurate, one template is ~80x less text-tower work
   * (which matters on slow adapters: seconds on SwiftShader).
   */
  segmentSemantic(classText: string, refine: boolean, templates: TemplateChoice = 'ensemble'): Promise<SemanticResult> {
    return this.enqueue(async () => {
      const m = this.samclip;
      if (!m) throw new DemoInputError('semantic segmentation needs a SAM-CLIP bundle, or SAM + CLIP weights (composite mode)');
      if (!this.image) throw new DemoInputError('no image: pick a photo or use the demo photo first');
      const classes = classText
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter(Boolean);
      if (classes.length === 0) throw new DemoInputError('type at least one class name (comma-separated), e.g. "dog, grass, sky"');
      await this.timings.measure('class text embeddings', () => m.classEmbeddings(classes, { templates }));
      let input: ImageU8 | SamClipImageEmbedding = this.image;
      if (refine) {
        if (!this.semEmbedding) {
          await this.timings.measure('native SAM-CLIP pass', async () => {
            this.semEmbedding = await m.embed(this.image!);
          });
        }
        input = this.semEmbedding!;
      }
      const result = await this.timings.measure(refine ? 'semantic (refined)' : 'semantic (head-only)', () => m.segmentSemantic(input, classes, { refine, templates }));
      this.lastSemantic = { seq: ++this.seq, classes, refined: refine, templates, result };
      return this.lastSemantic;
    });
  }
}
