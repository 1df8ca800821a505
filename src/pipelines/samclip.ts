/**
 * SAM-CLIP (arXiv 2310.15308), the user-facing facade: one SAM ViT backbone serving a SAM head
 * (prompt encoder + mask decoder) and a CLIP head, with a CLIP text tower. Built from a merged
 * bundle (`SamClip.load`) or from public SAM + CLIP weights (`SamClip.composite`); the networks and
 * how each mode wires them are in src/model/samclip/backends.ts.
 *
 *   const m = await SamClip.load(ctx, 'samclip.safetensors');
 *   const cls = await m.classify(image, ['dog', 'cat']);
 *   const seg = await m.segmentSemantic(image, ['dog', 'grass', 'sky'], { refine: true });
 *   const txt = await m.segmentText(image, 'a red car');
 *   const emb = await m.embed(image);                        // one backbone pass, both heads
 *   const r = await m.predictor.predict(emb.sam, { points: [[x, y]], labels: [1] });
 */
import type { GpuContext } from '../gpu/context.js';
import { SamclipError, check } from '../gpu/errors.js';
import { Pacer, type ProgressOptions } from '../gpu/pacer.js';
import { type ImageU8, ImageError, checkImage, toRgb } from '../image/image.js';
import { type ImageInput, toImageU8 } from '../image/image-input.js';
import { samResizeShape } from '../image/transforms.js';
import type { PretrainedName, PretrainedOptions } from '../hub/pretrained.js';
import { readTensor } from '../kernels/copy.js';
import type { ClipModel } from '../model/clip/clip.js';
import type { ClipAct } from '../model/clip/config.js';
import { type DenseClipOptions, DenseClip } from '../model/clip/dense-clip.js';
import { loadClip } from '../model/clip/load.js';
import { TextTransformer } from '../model/clip/text.js';
import { Sam } from '../model/sam/sam.js';
import { CompositeBackend, MergedBackend, type SamClipBackend, type SamClipMode } from '../model/samclip/backends.js';
import { loadSamclipBundle } from '../model/samclip/bundle.js';
import { ClipHead } from '../model/samclip/clip-head.js';
import { TextEmbedder } from '../model/samclip/text-embeddings.js';
import type { ClipTokenizer } from '../text/clip-tokenizer.js';
import { loadClipTokenizer } from '../text/clip-vocabulary.js';
import { type TemplateChoice, resolveTemplates } from '../text/imagenet-templates.js';
import { SafetensorsFile, openSafetensors } from '../weights/safetensors.js';
import { SamImageEmbedding, SamPredictor } from './sam-predictor.js';
import { SamClipImageEmbedding, type SamClipModel } from './samclip-core.js';
import { type SemanticSegmentation, type SemanticSegmentationOptions, segmentSemantic } from './semantic-segmentation.js';
import { type TextPromptedOptions, type TextPromptedResult, segmentText } from './text-prompted.js';
import { type Classification, type ClassifyOptions, classify } from './zero-shot-classification.js';

export { SamClipImageEmbedding } from './samclip-core.js';
export type { SamClipMode } from '../model/samclip/backends.js';
export type { TemplateChoice } from '../text/imagenet-templates.js';

/** Smallest side (pixels) an input image may have. */
export const MIN_IMAGE_SIDE = 16;

export interface SamClipLoadOptions {
  /** GPU storage of matrices (vectors stay f32). Default: f16 when the context prefers it (`preferF16` on an adapter with shader-f16), else f32. */
  dtype?: 'f32' | 'f16';
  /** CLIP tokenizer (default: `loadClipTokenizer()`, the vocabulary shipped in the package; browsers and Node). */
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

/** An embedding passes through; any other image form becomes an ImageU8. */
async function embeddingOrImage(image: ImageInput | SamClipImageEmbedding, what: string, signal?: AbortSignal): Promise<ImageU8 | SamClipImageEmbedding> {
  return image instanceof SamClipImageEmbedding ? image : toImageU8(image, { what, signal });
}

export class SamClip implements SamClipModel {
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
    const tokenizer = opts.tokenizer ?? (await loadClipTokenizer());
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
    const tokenizer = opts.tokenizer ?? (await loadClipTokenizer());
    const sam = parts.sam instanceof Sam ? parts.sam : await Sam.load(ctx, parts.sam, { dtype: opts.dtype });
    const ownClip = typeof parts.clip === 'string' || parts.clip instanceof SafetensorsFile;
    let clip: ClipModel | undefined;
    try {
      if (!sam.imageEncoder) throw new SamclipError('SamClip.composite: the SAM model needs its image encoder');
      if (ownClip) {
        const { file, owned } = await openSafetensors(parts.clip as string | SafetensorsFile);
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

  /**
   * Composite mode from registry names, e.g. `{ sam: 'sam-vit-b', clip: 'clip-vit-b-16' }` (the
   * default pair), each from the cache or downloaded into it first (src/hub); the downloads run
   * side by side and report progress with their names.
   */
  static async fromPretrained(
    ctx: GpuContext,
    names: { sam?: PretrainedName; clip?: PretrainedName } = {},
    opts: PretrainedOptions & SamClipCompositeOptions = {},
  ): Promise<SamClip> {
    // The registry and downloader load on first use: apps that load weights by URL do not ship them.
    const { openPretrained } = await import('../hub/pretrained.js');
    const [sam, clip] = await Promise.allSettled([openPretrained(names.sam ?? 'sam-vit-b', 'sam', opts), openPretrained(names.clip ?? 'clip-vit-b-16', 'clip', opts)]);
    try {
      if (sam.status === 'rejected') throw sam.reason;
      if (clip.status === 'rejected') throw clip.reason;
      return await SamClip.composite(ctx, { sam: sam.value.file, clip: clip.value.file }, { ...opts, clipAct: opts.clipAct ?? clip.value.entry.act });
    } finally {
      if (sam.status === 'fulfilled') await sam.value.file.close();
      if (clip.status === 'fulfilled') await clip.value.file.close();
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
  classEmbeddings(classes: readonly string[], opts: { templates?: TemplateChoice; pacer?: Pacer | null } = {}): Promise<Float32Array> {
    return this.backend.text.classEmbeddings(this.ctx, classes, resolveTemplates(opts.templates), opts.pacer);
  }

  /** One native-size pass: the SAM head's embedding and the CLIP features on the same grid. */
  async embed(input: ImageInput, opts: ProgressOptions = {}): Promise<SamClipImageEmbedding> {
    const image = await toImageU8(input, { what: 'SamClip.embed', signal: opts.signal });
    return this.embedPaced(image, Pacer.for(this.ctx, opts, 'SamClip.embed'));
  }

  /** `embed` with a pacer from a larger call, or none. */
  async embedPaced(image: ImageU8, pacer: Pacer | null): Promise<SamClipImageEmbedding> {
    const rgb = this.checkImage(image, 'SamClip.embed');
    const out = await this.backend.native(this.ctx, rgb, pacer);
    try {
      await this.ctx.sync();
    } catch (e) {
      out.embedding.dispose();
      out.dense.dispose();
      throw e;
    }
    pacer?.note('embedding', 1, 1);
    return new SamClipImageEmbedding(new SamImageEmbedding(out.embedding, [rgb.height, rgb.width], out.inputSize), out.dense);
  }

  /** Zero-shot classification (DESIGN.md 6.3). */
  async classify(image: ImageInput, labels: readonly string[], opts: ClassifyOptions & ProgressOptions = {}): Promise<Classification> {
    return classify(this, await toImageU8(image, { what: 'SamClip.classify', signal: opts.signal }), labels, opts);
  }

  /** Zero-shot semantic segmentation, head-only or refined with the SAM head (DESIGN.md 6.4). */
  async segmentSemantic(image: ImageInput | SamClipImageEmbedding, classes: readonly string[], opts: SemanticSegmentationOptions & ProgressOptions = {}): Promise<SemanticSegmentation> {
    return segmentSemantic(this, await embeddingOrImage(image, 'SamClip.segmentSemantic', opts.signal), classes, opts);
  }

  /** Text-prompted instance masks: "the dog" -> its best region -> SAM masks (DESIGN.md 6.5). */
  async segmentText(image: ImageInput | SamClipImageEmbedding, text: string, opts: TextPromptedOptions & ProgressOptions = {}): Promise<TextPromptedResult> {
    return segmentText(this, await embeddingOrImage(image, 'SamClip.segmentText', opts.signal), text, opts);
  }

  dispose(): void {
    this.backend.dispose();
  }
}
