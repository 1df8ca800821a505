/**
 * SAM's prompt encoder (segment_anything/modeling/prompt_encoder.py): points, boxes and a mask
 * prompt become the decoder's sparse tokens [B, N, C] and dense embedding [B, C, h, w].
 *
 * Where the work runs, and why:
 *  - Sparse tokens are a few rows of sin/cos features of the prompt coordinates (random Fourier
 *    features, PositionEmbeddingRandom). The engine has no sin/cos kernel and the data is tiny, so
 *    they are computed on the CPU, each float32 operation rounded in PyTorch's order, and uploaded.
 *    The small tables this needs (the Gaussian matrix and the five point embeddings) are read back
 *    once when the encoder is created.
 *  - The dense positional encoding of the embedding grid (`get_dense_pe`) depends on the weights
 *    only: computed once, kept on the GPU, token-major [1, h*w, C] (what the decoder consumes);
 *    `densePe()` is its NCHW view.
 *  - A mask prompt goes through the downscaling convolutions on the GPU; without one, the dense
 *    embedding is `no_mask_embed` broadcast to [B, C, h, w] as a zero-copy stride-0 view.
 *
 * Semantics carried over from upstream: point coordinates get +0.5 (pixel centre) and are divided
 * by the padded input size; without a box a padding point (0, 0) with label -1 is appended (after
 * the +0.5 shift, so it stays at 0); label -1 gets `not_a_point_embed` and a zero positional
 * encoding; labels 0 / 1 add `point_embeddings[0 / 1]`; box corners add `point_embeddings[2 / 3]`
 * (SAM 2 passes them as points labelled 2 / 3, before the clicks; `boxLabels` accepts those).
 */
import type { GpuContext } from '../../gpu/context.js';
import { SamclipError } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { conv2d } from '../../kernels/conv2d.js';
import { activate } from '../../kernels/elementwise.js';
import type { Weights } from '../../weights/weights.js';
import { LayerNorm2d } from './common.js';
import type { SamConfig } from './config.js';

/** A prompt the model cannot take: wrong sizes, labels, counts, or coordinates. */
export class PromptError extends SamclipError {
  override name = 'PromptError';
}

/** The fields of SamConfig the prompt encoder reads. */
export type PromptEncoderConfig = Pick<SamConfig, 'promptEmbedDim' | 'imageEmbeddingSize' | 'imgSize' | 'maskInChans'>;

const fr = Math.fround;
/** `2 * np.pi * coords` multiplies a float32 tensor by a Python float: the scalar becomes float32. */
const TWO_PI_F32 = fr(2 * Math.PI);

/** Random-Fourier positional encoding with the checkpoint's Gaussian matrix [2, F]. */
export class PositionEmbeddingRandom {
  constructor(
    /** Row-major [2, F]. */
    readonly gaussian: Float32Array,
    readonly numPosFeats: number,
  ) {
    if (gaussian.length !== 2 * numPosFeats) {
      throw new PromptError(`PositionEmbeddingRandom: gaussian matrix has ${gaussian.length} values, expected 2 x ${numPosFeats}`);
    }
  }

  /**
   * `_pe_encoding` of one point already normalised to [0, 1]: [sin(2pi (2c-1) G), cos(...)],
   * written to out[at .. at + 2F).
   */
  encodeInto(x: number, y: number, out: Float32Array, at: number): void {
    const F = this.numPosFeats;
    const g = this.gaussian;
    const cx = fr(2 * x - 1);
    const cy = fr(2 * y - 1);
    for (let j = 0; j < F; j++) {
      const arg = fr(TWO_PI_F32 * fr(cx * g[j]! + cy * g[F + j]!));
      out[at + j] = Math.sin(arg);
      out[at + F + j] = Math.cos(arg);
    }
  }

  /** `forward(size)`: the grid's encoding as [2F, h, w] (cell centres (i + 0.5) / h). */
  grid(h: number, w: number): Float32Array {
    const C = 2 * this.numPosFeats;
    const out = new Float32Array(C * h * w);
    const tmp = new Float32Array(C);
    for (let i = 0; i < h; i++) {
      const y = fr((i + 0.5) / h);
      for (let j = 0; j < w; j++) {
        this.encodeInto(fr((j + 0.5) / w), y, tmp, 0);
        for (let c = 0; c < C; c++) out[(c * h + i) * w + j] = tmp[c]!;
      }
    }
    return out;
  }
}

/** Prompts for B prompt sets, in the model's input frame (already transformed, not shifted). */
export interface EncoderPrompts {
  /** Number of prompt sets. */
  batch: number;
  /** B x N x 2 interleaved (x, y) and B x N labels (-1, 0 or 1). */
  points?: { coords: ArrayLike<number>; labels: ArrayLike<number> };
  /** B x 4 (x0, y0, x1, y1). */
  boxes?: ArrayLike<number>;
  /** Low-res mask logits [B, 1, 4h, 4w] on the GPU. */
  masks?: Tensor;
}

export class PromptEncoder {
  readonly embedDim: number;
  readonly gridSize: number;
  readonly maskInputSize: number;
  readonly pointEmbeddings: Tensor[];
  readonly notAPointEmbed: Tensor;
  readonly noMaskEmbed: Tensor;
  readonly gaussianMatrix: Tensor;
  readonly maskDownscaling: {
    conv0: { weight: Tensor; bias: Tensor };
    norm1: LayerNorm2d;
    conv3: { weight: Tensor; bias: Tensor };
    norm4: LayerNorm2d;
    conv6: { weight: Tensor; bias: Tensor };
  };
  private tables: { pe: PositionEmbeddingRandom; point: Float32Array[]; notAPoint: Float32Array } | null = null;
  private densePeTokens: Tensor | null = null;

  /** Use `PromptEncoder.create`: the CPU half needs a few tables read back from the GPU. */
  constructor(
    w: Weights,
    prefix: string,
    readonly cfg: PromptEncoderConfig,
    /** Accept point labels 2 and 3 (box corners passed as points, as SAM 2's predictor does). */
    readonly boxLabels = false,
  ) {
    const C = cfg.promptEmbedDim;
    const m = cfg.maskInChans;
    if (C % 2 !== 0) throw new PromptError(`PromptEncoder: embedding width ${C} must be even (sin and cos halves)`);
    if (m % 4 !== 0) throw new PromptError(`PromptEncoder: mask_in_chans ${m} must be a multiple of 4`);
    this.embedDim = C;
    this.gridSize = cfg.imageEmbeddingSize;
    this.maskInputSize = 4 * cfg.imageEmbeddingSize;
    this.gaussianMatrix = w.get(`${prefix}.pe_layer.positional_encoding_gaussian_matrix`, [2, C / 2]);
    this.pointEmbeddings = [0, 1, 2, 3].map((i) => w.get(`${prefix}.point_embeddings.${i}.weight`, [1, C]));
    this.notAPointEmbed = w.get(`${prefix}.not_a_point_embed.weight`, [1, C]);
    this.noMaskEmbed = w.get(`${prefix}.no_mask_embed.weight`, [1, C]);
    const conv = (i: number, o: number, c: number, k: number) => ({
      weight: w.get(`${prefix}.mask_downscaling.${i}.weight`, [o, c, k, k]),
      bias: w.get(`${prefix}.mask_downscaling.${i}.bias`, [o]),
    });
    this.maskDownscaling = {
      conv0: conv(0, m / 4, 1, 2),
      norm1: new LayerNorm2d(w, `${prefix}.mask_downscaling.1`, m / 4),
      conv3: conv(3, m, m / 4, 2),
      norm4: new LayerNorm2d(w, `${prefix}.mask_downscaling.4`, m),
      conv6: conv(6, C, m, 1),
    };
  }

  static async create(ctx: GpuContext, w: Weights, prefix: string, cfg: PromptEncoderConfig, boxLabels = false): Promise<PromptEncoder> {
    const enc = new PromptEncoder(w, prefix, cfg, boxLabels);
    await enc.init(ctx);
    return enc;
  }

  private async init(ctx: GpuContext): Promise<void> {
    const read = async (t: Tensor) => Float32Array.from(await ctx.read(t));
    const gaussian = await read(this.gaussianMatrix);
    const point = await Promise.all(this.pointEmbeddings.map(read));
    const notAPoint = await read(this.notAPointEmbed);
    const pe = new PositionEmbeddingRandom(gaussian, this.embedDim / 2);
    this.tables = { pe, point, notAPoint };
    const g = this.gridSize;
    const C = this.embedDim;
    const nchw = pe.grid(g, g);
    const tokens = new Float32Array(C * g * g);
    for (let c = 0; c < C; c++) for (let p = 0; p < g * g; p++) tokens[p * C + c] = nchw[c * g * g + p]!;
    const t = ctx.upload(tokens, [1, g * g, C]);
    t.persistent = true;
    this.densePeTokens = t;
  }

  private get ready() {
    if (!this.tables || !this.densePeTokens) throw new PromptError('PromptEncoder: not initialised; build it with PromptEncoder.create');
    return { ...this.tables, densePeTokens: this.densePeTokens };
  }

  /** get_dense_pe() token-major: [1, h*w, C] (persistent; do not dispose). */
  densePeTokenMajor(): Tensor {
    return this.ready.densePeTokens;
  }

  /** get_dense_pe(): [1, C, h, w], a view of the token-major table (caller disposes the view). */
  densePe(): Tensor {
    const g = this.gridSize;
    const t = this.ready.densePeTokens;
    return t.asStrided([1, this.embedDim, g, g], [g * g * this.embedDim, 1, g * this.embedDim, this.embedDim], t.offset);
  }

  /** The positional encoding of (x, y) in input-frame pixels (after the +0.5 shift) into out[at..]. */
  private encodeCoord(x: number, y: number, out: Float32Array, at: number): void {
    const s = this.cfg.imgSize;
    this.ready.pe.encodeInto(fr(x / s), fr(y / s), out, at);
  }

  /** Number of sparse tokens per prompt set for these prompts. */
  sparseCount(p: EncoderPrompts): number {
    const n = p.points ? p.points.labels.length / p.batch + (p.boxes ? 0 : 1) : 0;
    return n + (p.boxes ? 2 : 0);
  }

  /** Check the prompt arrays against each other and the batch size. */
  validate(p: EncoderPrompts): void {
    const B = p.batch;
    if (!Number.isInteger(B) || B < 1) throw new PromptError(`prompt encoder: batch must be a positive integer, got ${B}`);
    if (p.points) {
      const { coords, labels } = p.points;
      if (labels.length % B !== 0 || labels.length === 0) {
        throw new PromptError(`prompt encoder: ${labels.length} point labels do not split into ${B} prompt set(s) of at least one point`);
      }
      if (coords.length !== 2 * labels.length) {
        throw new PromptError(`prompt encoder: ${coords.length / 2} point coordinates (x, y) but ${labels.length} labels`);
      }
      for (let i = 0; i < labels.length; i++) {
        const l = labels[i]!;
        const corner = this.boxLabels && (l === 2 || l === 3);
        if (l !== -1 && l !== 0 && l !== 1 && !corner) {
          const corners = this.boxLabels ? ', 2 / 3 (box corners)' : '';
          throw new PromptError(`prompt encoder: point label ${l} at index ${i}; labels are 1 (foreground), 0 (background)${corners} or -1 (ignored)`);
        }
      }
      for (let i = 0; i < coords.length; i++) {
        if (!Number.isFinite(coords[i]!)) throw new PromptError(`prompt encoder: point coordinate ${coords[i]} at index ${i} is not finite`);
      }
    }
    if (p.boxes) {
      if (p.boxes.length !== 4 * B) throw new PromptError(`prompt encoder: ${p.boxes.length} box values for ${B} prompt set(s); expected ${4 * B} (x0, y0, x1, y1 each)`);
      for (let i = 0; i < p.boxes.length; i++) {
        if (!Number.isFinite(p.boxes[i]!)) throw new PromptError(`prompt encoder: box value ${p.boxes[i]} at index ${i} is not finite`);
      }
    }
    if (p.masks) {
      const s = this.maskInputSize;
      const sh = p.masks.shape;
      if (sh.length !== 4 || sh[0] !== B || sh[1] !== 1 || sh[2] !== s || sh[3] !== s) {
        throw new PromptError(`prompt encoder: mask input must be [${B}, 1, ${s}, ${s}] (low-res logits of this model), got [${sh.join(', ')}]`);
      }
    }
  }

  /** The sparse tokens [B, N, C] on the CPU (points, padding point, box corners). */
  sparseEmbeddingsCpu(p: EncoderPrompts): { data: Float32Array; shape: [number, number, number] } {
    this.validate(p);
    const { point, notAPoint } = this.ready;
    const B = p.batch;
    const C = this.embedDim;
    const N = this.sparseCount(p);
    const out = new Float32Array(B * N * C);
    const addRow = (at: number, emb: Float32Array) => {
      for (let c = 0; c < C; c++) out[at + c] = fr(out[at + c]! + emb[c]!);
    };
    for (let b = 0; b < B; b++) {
      let row = b * N;
      if (p.points) {
        const { coords, labels } = p.points;
        const n = labels.length / B;
        for (let i = 0; i < n; i++, row++) {
          const k = b * n + i;
          const label = labels[k]!;
          if (label === -1) {
            // Zero positional encoding, then not_a_point_embed.
            addRow(row * C, notAPoint);
            continue;
          }
          this.encodeCoord(fr(fr(coords[2 * k]!) + 0.5), fr(fr(coords[2 * k + 1]!) + 0.5), out, row * C);
          addRow(row * C, point[label]!);
        }
        if (!p.boxes) {
          addRow(row * C, notAPoint);
          row++;
        }
      }
      if (p.boxes) {
        for (let corner = 0; corner < 2; corner++, row++) {
          const x = fr(fr(p.boxes[4 * b + 2 * corner]!) + 0.5);
          const y = fr(fr(p.boxes[4 * b + 2 * corner + 1]!) + 0.5);
          this.encodeCoord(x, y, out, row * C);
          addRow(row * C, point[2 + corner]!);
        }
      }
    }
    return { data: out, shape: [B, N, C] };
  }

  /**
   * The dense embedding [B, C, h, w]: the downscaled mask prompt, or `no_mask_embed` broadcast
   * (a stride-0 view; consumers read it through strides).
   */
  denseEmbeddings(ctx: GpuContext, batch: number, masks?: Tensor): Tensor {
    const g = this.gridSize;
    const C = this.embedDim;
    if (!masks) {
      const t = this.noMaskEmbed;
      return t.asStrided([batch, C, g, g], [0, t.strides[1]!, 0, 0], t.offset);
    }
    const md = this.maskDownscaling;
    return ctx.stage('mask_downscaling', () =>
      ctx.scope(() => {
        let x = conv2d(ctx, masks, md.conv0.weight, md.conv0.bias, { stride: 2 });
        x = activate(ctx, md.norm1.forward(ctx, x), 'gelu');
        x = conv2d(ctx, x, md.conv3.weight, md.conv3.bias, { stride: 2 });
        x = activate(ctx, md.norm4.forward(ctx, x), 'gelu');
        return conv2d(ctx, x, md.conv6.weight, md.conv6.bias);
      }),
    );
  }

  /** Free the GPU table this encoder made (its weights belong to their Weights set). */
  dispose(): void {
    this.densePeTokens?.dispose();
    this.densePeTokens = null;
  }

  /**
   * PromptEncoder.forward: sparse tokens [B, N, C] (uploaded; N may be 0, then the tensor is
   * null) and the dense embedding [B, C, h, w].
   */
  forward(ctx: GpuContext, p: EncoderPrompts): { sparse: Tensor | null; dense: Tensor } {
    const s = this.sparseEmbeddingsCpu(p);
    const sparse = s.shape[1] > 0 ? ctx.upload(s.data, s.shape) : null;
    return { sparse, dense: this.denseEmbeddings(ctx, p.batch, p.masks) };
  }
}
