/**
 * SAM-CLIP (arXiv 2310.15308): one SAM ViT backbone serving a SAM head (prompt encoder + mask
 * decoder) and a CLIP head, with a CLIP text tower. Two ways to build it, one API:
 *
 *  - merged (`SamClip.load`): a bundle in the documented format (docs/samclip-bundle.md). The
 *    backbone runs once per input; at the native size (1024) that one pass feeds both heads.
 *  - composite (`SamClip.composite`): public SAM (ViT-B/L/H) + public CLIP / OpenCLIP weights.
 *    The CLIP side's dense features come from the vision tower by a training-free method
 *    (src/pipelines/dense-clip.ts, MaskCLIP by default), the SAM side from SAM's own encoder.
 *
 *   const m = await SamClip.load(ctx, 'samclip.safetensors');
 *   const cls = await m.classify(image, ['dog', 'cat']);
 *   const seg = await m.segmentSemantic(image, ['dog', 'grass', 'sky'], { refine: true });
 *   const txt = await m.segmentText(image, 'a red car');
 *   const emb = await m.embed(image);                        // one backbone pass, both heads
 *   const r = await m.predictor.predict(emb.sam, { points: [[x, y]], labels: [1] });
 *
 * Inputs (DESIGN.md section 5): the merged model's head-only and classification inputs are square
 * resizes (Pillow bilinear, aspect not kept) with SAM normalisation; the native input is SAM's own
 * (longest side to the model size, padded). Composite classification uses CLIP's own transform;
 * its dense features use a square Pillow-bicubic resize with CLIP normalisation.
 */
import type { GpuContext } from '../../gpu/context.js';
import { SamclipError, check } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { type ImageU8, ImageError, checkImage, toRgb } from '../../image/image.js';
import { pilResize } from '../../image/pil-resize.js';
import { CLIP_MEAN, CLIP_STD, clipPreprocess, fixedResize, normalizeToChw } from '../../image/preprocess.js';
import { samResizeShape } from '../../image/transforms.js';
import { readTensor } from '../../kernels/copy.js';
import { l2Normalize } from '../../kernels/l2-normalize.js';
import { type DenseClipOptions, DenseClip } from '../../pipelines/dense-clip.js';
import { IMAGENET_TEMPLATES } from '../../pipelines/imagenet-templates.js';
import { SamImageEmbedding, SamPredictor } from '../../pipelines/sam-predictor.js';
import { type Classification, type ClassifyOptions, classify } from '../../pipelines/zero-shot-classification.js';
import { type SemanticSegmentation, type SemanticSegmentationOptions, segmentSemantic } from '../../pipelines/semantic-segmentation.js';
import { type TextPromptedOptions, type TextPromptedResult, segmentText } from '../../pipelines/text-prompted.js';
import type { ClipTokenizer } from '../../text/clip-tokenizer.js';
import { SafetensorsFile } from '../../weights/safetensors.js';
import type { Weights } from '../../weights/weights.js';
import type { ClipModel } from '../clip/clip.js';
import type { ClipAct } from '../clip/config.js';
import { loadClip } from '../clip/load.js';
import { TextTransformer } from '../clip/text.js';
import { ImageEncoderViT } from '../sam/image-encoder.js';
import { Sam } from '../sam/sam.js';
import { normalizePadU8 } from '../sam/stage-kernels.js';
import { type SamclipConfig, loadSamclipBundle } from './bundle.js';
import { ClipHead } from './clip-head.js';
import { TextEmbedder } from './text-embeddings.js';

export type SamClipMode = 'merged' | 'composite';

/** Smallest side (pixels) an input image may have. */
export const MIN_IMAGE_SIDE = 16;

/** Template sets by name (or pass your own list, each with one `{}`). */
export type TemplateChoice = 'ensemble' | 'single' | 'name' | readonly string[];

export function resolveTemplates(t: TemplateChoice | undefined): readonly string[] {
  if (t === undefined || t === 'ensemble') return IMAGENET_TEMPLATES;
  if (t === 'single') return ['a photo of a {}.'];
  if (t === 'name') return ['{}'];
  return t;
}

/** The inputs of one native-size pass, on the GPU, shared by the SAM head and the CLIP side. */
export class SamClipImageEmbedding {
  constructor(
    /** The SAM head's input (use with `SamClip.predictor`). */
    readonly sam: SamImageEmbedding,
    /** CLIP-side unit-norm features on the native token grid [1, g, g, D] (owned). */
    readonly dense: Tensor,
  ) {
    dense.persistent = true;
  }

  get originalSize(): readonly [number, number] {
    return this.sam.originalSize;
  }

  get inputSize(): readonly [number, number] {
    return this.sam.inputSize;
  }

  get disposed(): boolean {
    return this.dense.isDisposed || this.sam.disposed;
  }

  dispose(): void {
    this.dense.dispose();
    this.sam.dispose();
  }
}

/** What the pipelines need from a model: image features on three inputs, text, the SAM head. */
export interface SamClipBackend {
  readonly mode: SamClipMode;
  readonly embedDim: number;
  /** exp(logit_scale). */
  readonly logitScale: number;
  /** Default sizes: native (SAM input), head-only segmentation, classification. */
  readonly resolutions: { native: number; seg: number; cls: number };
  readonly text: TextEmbedder;
  readonly sam: Sam;
  /** Unit-norm pooled image embedding [1, D]. */
  pooled(ctx: GpuContext, rgb: ImageU8, size: number): Promise<Tensor>;
  /** Unit-norm dense features [1, g, g, D] of the image squarely resized to `size`. */
  denseSquare(ctx: GpuContext, rgb: ImageU8, size: number): Promise<Tensor>;
  /** SAM embedding + CLIP features on the native grid of the padded native input. */
  native(ctx: GpuContext, rgb: ImageU8): Promise<{ embedding: Tensor; dense: Tensor; inputSize: [number, number] }>;
  dispose(): void;
}

// ------------------------------------------------------------------------------ merged backend

export class MergedBackend implements SamClipBackend {
  readonly mode = 'merged' as const;

  constructor(
    readonly config: SamclipConfig,
    readonly weights: Weights,
    readonly encoder: ImageEncoderViT,
    readonly head: ClipHead,
    readonly sam: Sam,
    readonly textTower: TextTransformer,
    readonly text: TextEmbedder,
    readonly logitScale: number,
  ) {}

  get embedDim(): number {
    return this.config.embedDim;
  }

  get resolutions() {
    return this.config.resolutions;
  }

  /** Backbone tokens [1, g, g, E] of a normalised square input (no neck: only the CLIP head reads them). */
  tokens(ctx: GpuContext, input: Tensor): Tensor {
    return ctx.stage('image_encoder', () =>
      ctx.scope(() => {
        let t = this.encoder.embed(ctx, input);
        this.encoder.blocks.forEach((b, i) => {
          const x = t;
          t = ctx.stage(`block${i}`, () => b.forward(ctx, x));
        });
        return t;
      }),
    );
  }

  /** The image squarely resized (Pillow bilinear) and SAM-normalised: [1, 3, size, size]. */
  squareInput(ctx: GpuContext, rgb: ImageU8, size: number): Tensor {
    const resized = fixedResize(rgb, size, size, 'bilinear');
    return ctx.stage('preprocess', () => normalizePadU8(ctx, resized.data, size, size, size, this.config.pixelMean, this.config.pixelStd));
  }

  async pooled(ctx: GpuContext, rgb: ImageU8, size: number): Promise<Tensor> {
    return ctx.scope(() => this.head.forward(ctx, this.tokens(ctx, this.squareInput(ctx, rgb, size)), { dense: false }).pooled!);
  }

  async denseSquare(ctx: GpuContext, rgb: ImageU8, size: number): Promise<Tensor> {
    return ctx.scope(() => this.head.forward(ctx, this.tokens(ctx, this.squareInput(ctx, rgb, size)), { pooled: false }).dense!);
  }

  async native(ctx: GpuContext, rgb: ImageU8) {
    const S = this.config.sam.imgSize;
    const [h, w] = samResizeShape(rgb.height, rgb.width, S);
    const resized = pilResize(rgb, w, h, { filter: 'bilinear' });
    const out = ctx.scope(() => {
      const input = this.sam.preprocess(ctx, resized);
      // One backbone pass: the neck output feeds the SAM head, the pre-neck tokens the CLIP head.
      const { embedding, tokens } = this.encoder.forward(ctx, input, { returnTokens: true });
      const dense = this.head.forward(ctx, tokens!, { pooled: false }).dense!;
      return { embedding, dense };
    });
    return { ...out, inputSize: [h, w] as [number, number] };
  }

  dispose(): void {
    this.head.dispose();
    this.sam.dispose(); // the encoder and the shared weight set go with it
    this.weights.dispose();
  }
}

// ------------------------------------------------------------------------------ composite backend

export class CompositeBackend implements SamClipBackend {
  readonly mode = 'composite' as const;

  constructor(
    readonly sam: Sam,
    readonly clip: ClipModel,
    readonly denseClip: DenseClip,
    readonly text: TextEmbedder,
    readonly resolutions: { native: number; seg: number; cls: number },
    readonly denseOptions: DenseClipOptions,
    /** Models given as built objects stay the caller's: dispose() leaves them alone. */
    private readonly owns: { sam: boolean; clip: boolean } = { sam: true, clip: true },
  ) {}

  get embedDim(): number {
    return this.clip.config.embedDim;
  }

  get logitScale(): number {
    return this.clip.logitScale;
  }

  async pooled(ctx: GpuContext, rgb: ImageU8, size: number): Promise<Tensor> {
    const pre = clipPreprocess(rgb, { size });
    await this.clip.prepareImageSize(ctx, size);
    return ctx.scope(() => l2Normalize(ctx, this.clip.encodeImage(ctx, ctx.upload(pre.input, pre.shape))));
  }

  async denseSquare(ctx: GpuContext, rgb: ImageU8, size: number): Promise<Tensor> {
    const resized = fixedResize(rgb, size, size, 'bicubic');
    const input = normalizeToChw(resized, { mean: CLIP_MEAN, std: CLIP_STD, divide255: true });
    const pixels = ctx.upload(input, [1, 3, size, size]);
    try {
      return await this.denseClip.features(ctx, pixels, this.denseOptions);
    } finally {
      pixels.dispose();
    }
  }

  async native(ctx: GpuContext, rgb: ImageU8) {
    const S = this.sam.imgSize;
    const [h, w] = samResizeShape(rgb.height, rgb.width, S);
    const resized = pilResize(rgb, w, h, { filter: 'bilinear' });
    const embedding = ctx.scope(() => this.sam.encodeImage(ctx, this.sam.preprocess(ctx, resized)));
    try {
      const seg = await this.denseSquare(ctx, rgb, this.resolutions.seg);
      const host = (await readTensor(ctx, seg)) as Float32Array;
      const Gs = seg.dim(1);
      seg.dispose();
      const g = this.sam.config.imageEmbeddingSize;
      const p = this.sam.config.patchSize;
      const grid = resampleToNativeGrid(host, Gs, Gs, this.embedDim, g, p, [h, w]);
      return { embedding, dense: ctx.upload(grid, [1, g, g, this.embedDim]), inputSize: [h, w] as [number, number] };
    } catch (e) {
      embedding.dispose();
      throw e;
    }
  }

  dispose(): void {
    this.denseClip.dispose();
    if (this.owns.clip) this.clip.dispose();
    if (this.owns.sam) this.sam.dispose();
  }
}

/**
 * Features on a gs x gs grid over the whole (squarely resized) image -> features at the token
 * centres of the native g x g grid of the padded input (bilinear, align_corners false, edges
 * clamped). Tokens whose centre lies in the padding get a zero vector (a score of 0 for every
 * class, so P is uniform there). Exported for tests.
 */
export function resampleToNativeGrid(
  src: Float32Array,
  gh: number,
  gw: number,
  D: number,
  g: number,
  patch: number,
  inputSize: readonly [number, number],
): Float32Array {
  const [ih, iw] = inputSize;
  const out = new Float32Array(g * g * D);
  const axis = (centre: number, extent: number, n: number) => {
    const s = Math.max((centre / extent) * n - 0.5, 0);
    const i0 = Math.min(Math.floor(s), n - 1);
    return { i0, i1: Math.min(i0 + 1, n - 1), w1: Math.min(1, s - i0) };
  };
  for (let i = 0; i < g; i++) {
    const cy = patch * i + patch / 2;
    if (cy >= ih) continue;
    const ty = axis(cy, ih, gh);
    for (let j = 0; j < g; j++) {
      const cx = patch * j + patch / 2;
      if (cx >= iw) continue;
      const tx = axis(cx, iw, gw);
      const o = (i * g + j) * D;
      const a = (ty.i0 * gw + tx.i0) * D;
      const b = (ty.i0 * gw + tx.i1) * D;
      const c = (ty.i1 * gw + tx.i0) * D;
      const d = (ty.i1 * gw + tx.i1) * D;
      for (let k = 0; k < D; k++) {
        const top = (1 - tx.w1) * src[a + k]! + tx.w1 * src[b + k]!;
        const bottom = (1 - tx.w1) * src[c + k]! + tx.w1 * src[d + k]!;
        out[o + k] = (1 - ty.w1) * top + ty.w1 * bottom;
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ the model

export interface SamClipLoadOptions {
  /** GPU storage of matrices (vectors stay f32). Default: f16 when the context prefers it (`preferF16` on an adapter with shader-f16), else f32. */
  dtype?: 'f32' | 'f16';
  /** CLIP tokenizer (default: the BPE file shipped in `assets/`, Node only; browsers pass one). */
  tokenizer?: ClipTokenizer;
}

export interface SamClipCompositeOptions extends SamClipLoadOptions {
  /** CLIP activation when the checkpoint cannot tell (OpenAI: quick_gelu, OpenCLIP LAION / DataComp: gelu). */
  clipAct?: ClipAct;
  /** Dense CLIP features: method, windows (default MaskCLIP, sliding native-size windows). */
  dense?: DenseClipOptions;
  /** Input sizes: `seg` for head-only dense features (default 2x the CLIP input, 448 for ViT-B/16), `cls` for classification (default the CLIP input). */
  resolutions?: { seg?: number; cls?: number };
}

async function defaultTokenizer(t?: ClipTokenizer): Promise<ClipTokenizer> {
  if (t) return t;
  const { loadClipTokenizer } = await import('../../text/clip-tokenizer-node.js');
  return loadClipTokenizer();
}

async function openFile(src: string | SafetensorsFile): Promise<{ file: SafetensorsFile; owned: boolean }> {
  if (typeof src !== 'string') return { file: src, owned: false };
  return { file: /^https?:\/\//.test(src) ? await SafetensorsFile.fromUrl(src) : await SafetensorsFile.open(src), owned: true };
}

export class SamClip {
  /** The SAM head on the shared embedding (`embed(image).sam`), or on its own encoder in composite mode. */
  readonly predictor: SamPredictor;

  private constructor(
    readonly ctx: GpuContext,
    readonly backend: SamClipBackend,
  ) {
    this.predictor = new SamPredictor(ctx, backend.sam);
  }

  /** Merged model from a SAM-CLIP bundle (path, URL or open file), validated strictly. */
  static async load(ctx: GpuContext, src: string | SafetensorsFile, opts: SamClipLoadOptions = {}): Promise<SamClip> {
    const tokenizer = await defaultTokenizer(opts.tokenizer);
    const { weights, config } = await loadSamclipBundle(ctx, src, { dtype: opts.dtype });
    try {
      // The CLIP parts take their tensors first, so that Sam.create's strictness check (every
      // tensor of the set used) covers the whole bundle; the SAM image encoder is the backbone.
      const head = new ClipHead(weights, 'clip_head', config.clipHead);
      const textTower = new TextTransformer(weights, 'text.', config.text);
      const logitScale = Math.exp((await readTensor(ctx, weights.get('logit_scale', [])))[0]!);
      const sam = await Sam.create(ctx, weights, config.sam, { imageEncoder: true, pixelMean: config.pixelMean, pixelStd: config.pixelStd });
      const text = new TextEmbedder(tokenizer, (c, t) => textTower.forward(c, t, { trim: true }), config.embedDim, config.text.contextLength, config.text.mlpWidth);
      return new SamClip(ctx, new MergedBackend(config, weights, sam.imageEncoder!, head, sam, textTower, text, logitScale));
    } catch (e) {
      weights.dispose();
      throw e;
    }
  }

  /**
   * Composite mode: public SAM + CLIP checkpoints (paths, URLs, open files, or models already
   * built). Same pipelines and API as the merged model.
   */
  static async composite(
    ctx: GpuContext,
    parts: { sam: string | SafetensorsFile | Sam; clip: string | SafetensorsFile | ClipModel },
    opts: SamClipCompositeOptions = {},
  ): Promise<SamClip> {
    const tokenizer = await defaultTokenizer(opts.tokenizer);
    const sam = parts.sam instanceof Sam ? parts.sam : await Sam.load(ctx, parts.sam, { dtype: opts.dtype });
    const ownClip = typeof parts.clip === 'string' || parts.clip instanceof SafetensorsFile;
    let clip: ClipModel | undefined;
    try {
      if (!sam.imageEncoder) throw new SamclipError('SamClip.composite: the SAM model needs its image encoder');
      if (ownClip) {
        const { file, owned } = await openFile(parts.clip as string | SafetensorsFile);
        try {
          clip = await loadClip(ctx, file, { act: opts.clipAct, dtype: opts.dtype });
        } finally {
          if (owned) await file.close();
        }
      } else {
        clip = parts.clip as ClipModel;
      }
      if (!clip.visual || !clip.text) throw new SamclipError(`${clip.weights.file}: composite mode needs both CLIP towers (vision for dense features, text for class embeddings)`);
      if (!Number.isFinite(clip.logitScale)) throw new SamclipError(`${clip.weights.file}: no 'logit_scale' in the CLIP checkpoint`);
      const dense = new DenseClip(ctx, clip);
      const tcfg = clip.config.text!;
      const text = new TextEmbedder(tokenizer, (c, t) => clip!.encodeText(c, t, { trim: true }), clip.config.embedDim, tcfg.contextLength, tcfg.mlpWidth);
      const cls = opts.resolutions?.cls ?? clip.imageSize;
      const seg = opts.resolutions?.seg ?? 2 * clip.imageSize;
      const P = clip.config.vision!.patch;
      check(Number.isInteger(seg) && seg >= P && seg % P === 0, () => `SamClip.composite: resolutions.seg ${seg} must be a positive multiple of the CLIP patch ${P}`);
      const backend = new CompositeBackend(sam, clip, dense, text, { native: sam.imgSize, seg, cls }, opts.dense ?? {}, { sam: !(parts.sam instanceof Sam), clip: ownClip });
      dense.windowing(backend.denseOptions); // validate window / stride now
      return new SamClip(ctx, backend);
    } catch (e) {
      if (ownClip) clip?.dispose();
      if (!(parts.sam instanceof Sam)) sam.dispose();
      throw e;
    }
  }

  get mode(): SamClipMode {
    return this.backend.mode;
  }

  get resolutions(): { native: number; seg: number; cls: number } {
    return this.backend.resolutions;
  }

  get embedDim(): number {
    return this.backend.embedDim;
  }

  /** exp(logit_scale): the multiplier of cosine similarities. */
  get logitScale(): number {
    return this.backend.logitScale;
  }

  /** An RGB copy of an input image, checked (size, channels). */
  checkImage(image: ImageU8, what: string): ImageU8 {
    checkImage(image, what);
    if (image.width < MIN_IMAGE_SIDE || image.height < MIN_IMAGE_SIDE) {
      throw new ImageError(`${what}: the image is too small (${image.width}x${image.height}); SAM-CLIP needs at least ${MIN_IMAGE_SIDE}x${MIN_IMAGE_SIDE} pixels`);
    }
    const S = this.resolutions.native;
    const p = this.backend.sam.config.patchSize;
    const [h, w] = samResizeShape(image.height, image.width, S);
    if (h < p || w < p) {
      throw new ImageError(`${what}: the ${image.width}x${image.height} image is too narrow: resized to the ${S}-px input it is ${w}x${h}, under one ${p}-px patch`);
    }
    return toRgb(image);
  }

  /** Class embeddings T [C, D] (unit norm, host), cached per template set and class. */
  classEmbeddings(classes: readonly string[], opts: { templates?: TemplateChoice } = {}): Promise<Float32Array> {
    return this.backend.text.classEmbeddings(this.ctx, classes, resolveTemplates(opts.templates));
  }

  /** One native-size pass: the SAM head's embedding and the CLIP features on the same grid. */
  async embed(image: ImageU8): Promise<SamClipImageEmbedding> {
    const rgb = this.checkImage(image, 'SamClip.embed');
    const out = await this.backend.native(this.ctx, rgb);
    await this.ctx.sync();
    return new SamClipImageEmbedding(new SamImageEmbedding(out.embedding, [rgb.height, rgb.width], out.inputSize), out.dense);
  }

  /** Zero-shot classification (DESIGN.md 6.3). */
  classify(image: ImageU8, labels: readonly string[], opts: ClassifyOptions = {}): Promise<Classification> {
    return classify(this, image, labels, opts);
  }

  /** Zero-shot semantic segmentation, head-only or refined with the SAM head (DESIGN.md 6.4). */
  segmentSemantic(image: ImageU8 | SamClipImageEmbedding, classes: readonly string[], opts: SemanticSegmentationOptions = {}): Promise<SemanticSegmentation> {
    return segmentSemantic(this, image, classes, opts);
  }

  /** Text-prompted instance masks: "the dog" -> its best region -> SAM masks (DESIGN.md 6.5). */
  segmentText(image: ImageU8 | SamClipImageEmbedding, text: string, opts: TextPromptedOptions = {}): Promise<TextPromptedResult> {
    return segmentText(this, image, text, opts);
  }

  dispose(): void {
    this.backend.dispose();
  }
}
