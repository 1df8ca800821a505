/**
 * The two ways SAM-CLIP's networks are put together (arXiv 2310.15308), behind one interface the
 * pipelines use (image features on three inputs, class text, the SAM head):
 *
 *  - merged: a bundle in the documented format (docs/samclip-bundle.md). The backbone runs once per
 *    input; at the native size (1024) that one pass feeds both heads.
 *  - composite: public SAM (ViT-B/L/H) + public CLIP / OpenCLIP weights. The CLIP side's dense
 *    features come from the vision tower by a training-free method (../clip/dense-clip.ts,
 *    MaskCLIP by default), the SAM side from SAM's own encoder.
 *
 * Inputs (DESIGN.md section 5): the merged model's head-only and classification inputs are square
 * resizes (Pillow bilinear, aspect not kept) with SAM normalisation; the native input is SAM's own
 * (longest side to the model size, padded). Composite classification uses CLIP's own transform;
 * its dense features use a square Pillow-bicubic resize with CLIP normalisation.
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Pacer } from '../../gpu/pacer.js';
import type { Tensor } from '../../gpu/tensor.js';
import type { ImageU8 } from '../../image/image.js';
import { pilResize } from '../../image/pil-resize.js';
import { CLIP_MEAN, CLIP_STD, clipPreprocess, fixedResize, normalizeToChw } from '../../image/preprocess.js';
import { samResizeShape } from '../../image/transforms.js';
import { readTensor } from '../../kernels/copy.js';
import { l2Normalize } from '../../kernels/l2-normalize.js';
import type { Weights } from '../../weights/weights.js';
import type { ClipModel } from '../clip/clip.js';
import type { DenseClip, DenseClipOptions } from '../clip/dense-clip.js';
import type { TextTransformer } from '../clip/text.js';
import type { ImageEncoderViT } from '../sam/image-encoder.js';
import type { Sam } from '../sam/sam.js';
import { normalizePadU8 } from '../sam/stage-kernels.js';
import type { SamclipConfig } from './bundle.js';
import type { ClipHead } from './clip-head.js';
import type { TextEmbedder } from './text-embeddings.js';

export type SamClipMode = 'merged' | 'composite';

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
  /** Unit-norm pooled image embedding [1, D]. A pacer (progress, cancellation) is optional throughout. */
  pooled(ctx: GpuContext, rgb: ImageU8, size: number, pacer?: Pacer | null): Promise<Tensor>;
  /** Unit-norm dense features [1, g, g, D] of the image squarely resized to `size`. */
  denseSquare(ctx: GpuContext, rgb: ImageU8, size: number, pacer?: Pacer | null): Promise<Tensor>;
  /** SAM embedding + CLIP features on the native grid of the padded native input. */
  native(ctx: GpuContext, rgb: ImageU8, pacer?: Pacer | null): Promise<{ embedding: Tensor; dense: Tensor; inputSize: [number, number] }>;
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

  async pooled(ctx: GpuContext, rgb: ImageU8, size: number, pacer?: Pacer | null): Promise<Tensor> {
    return this.squareHead(ctx, rgb, size, pacer, 'pooled');
  }

  async denseSquare(ctx: GpuContext, rgb: ImageU8, size: number, pacer?: Pacer | null): Promise<Tensor> {
    return this.squareHead(ctx, rgb, size, pacer, 'dense');
  }

  /** The CLIP head's pooled or dense output on the square input; the backbone paced block by block when asked. */
  private async squareHead(ctx: GpuContext, rgb: ImageU8, size: number, pacer: Pacer | null | undefined, out: 'pooled' | 'dense'): Promise<Tensor> {
    const head = (tokens: Tensor) => this.head.forward(ctx, tokens, { pooled: out === 'pooled', dense: out === 'dense' })[out]!;
    if (!pacer) return ctx.scope(() => head(this.tokens(ctx, this.squareInput(ctx, rgb, size))));
    const input = ctx.scope(() => this.squareInput(ctx, rgb, size));
    let tokens: Tensor;
    try {
      tokens = await this.encoder.tokensPaced(ctx, input, pacer.part(0, 0.9));
    } finally {
      input.dispose();
    }
    try {
      return ctx.scope(() => head(tokens));
    } finally {
      tokens.dispose();
    }
  }

  async native(ctx: GpuContext, rgb: ImageU8, pacer?: Pacer | null) {
    const S = this.config.sam.imgSize;
    const [h, w] = samResizeShape(rgb.height, rgb.width, S);
    const resized = pilResize(rgb, w, h, { filter: 'bilinear' });
    const inputSize: [number, number] = [h, w];
    if (!pacer) {
      const out = ctx.scope(() => {
        const input = this.sam.preprocess(ctx, resized);
        // One backbone pass: the neck output feeds the SAM head, the pre-neck tokens the CLIP head.
        const { embedding, tokens } = this.encoder.forward(ctx, input, { returnTokens: true });
        const dense = this.head.forward(ctx, tokens!, { pooled: false }).dense!;
        return { embedding, dense };
      });
      return { ...out, inputSize };
    }
    const input = ctx.scope(() => this.sam.preprocess(ctx, resized));
    let enc: { embedding: Tensor; tokens?: Tensor };
    try {
      enc = await this.encoder.forwardPaced(ctx, input, pacer.part(0, 0.9), { returnTokens: true });
    } finally {
      input.dispose();
    }
    try {
      const dense = ctx.scope(() => this.head.forward(ctx, enc.tokens!, { pooled: false }).dense!);
      return { embedding: enc.embedding, dense, inputSize };
    } catch (e) {
      enc.embedding.dispose();
      throw e;
    } finally {
      enc.tokens!.dispose();
    }
  }

  dispose(): void {
    this.head.dispose();
    this.textTower.dispose();
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

  async pooled(ctx: GpuContext, rgb: ImageU8, size: number, pacer?: Pacer | null): Promise<Tensor> {
    pacer?.check();
    const pre = clipPreprocess(rgb, { size });
    await this.clip.prepareImageSize(ctx, size);
    return ctx.scope(() => l2Normalize(ctx, this.clip.encodeImage(ctx, ctx.upload(pre.input, pre.shape))));
  }

  async denseSquare(ctx: GpuContext, rgb: ImageU8, size: number, pacer?: Pacer | null): Promise<Tensor> {
    pacer?.check();
    const resized = fixedResize(rgb, size, size, 'bicubic');
    const input = normalizeToChw(resized, { mean: CLIP_MEAN, std: CLIP_STD, divide255: true });
    const pixels = ctx.upload(input, [1, 3, size, size]);
    try {
      return await this.denseClip.features(ctx, pixels, this.denseOptions);
    } finally {
      pixels.dispose();
    }
  }

  async native(ctx: GpuContext, rgb: ImageU8, pacer?: Pacer | null) {
    const S = this.sam.imgSize;
    const [h, w] = samResizeShape(rgb.height, rgb.width, S);
    const resized = pilResize(rgb, w, h, { filter: 'bilinear' });
    const input = ctx.scope(() => this.sam.preprocess(ctx, resized));
    let embedding: Tensor;
    try {
      embedding = await this.sam.encodeImagePaced(ctx, input, pacer?.part(0, 0.7) ?? null);
    } finally {
      input.dispose();
    }
    try {
      const seg = await this.denseSquare(ctx, rgb, this.resolutions.seg, pacer);
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
