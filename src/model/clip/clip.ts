/**
 * The CLIP model (openai/CLIP clip/model.py `CLIP`): an image tower, a text tower and the logit
 * scale. `logit_scale` is stored as a log; the cosine multiplier is exp(logit_scale) (100 for the
 * released models).
 *
 * Either tower may be absent (a text-only or vision-only checkpoint, or `towers` at load time);
 * calling the missing one is a ClipError.
 */
import type { GpuContext } from '../../gpu/context.js';
import { ShapeError } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { readTensor } from '../../kernels/copy.js';
import { l2Normalize } from '../../kernels/l2-normalize.js';
import { matmul } from '../../kernels/matmul.js';
import type { WeightShapes, Weights } from '../../weights/weights.js';
import { type ClipArchitecture, strictTower } from './architectures.js';
import { ClipError, type ClipAct, type TextConfig, type VisionConfig, headsOverride, resolveAct, textConfigFromWeights, visionConfigFromWeights } from './config.js';
import { type TextForwardOptions, TextTransformer, type TokenIds } from './text.js';
import { type PosEmbedInterpolation, type VisionForwardOptions, VisionTransformer } from './vision.js';

export interface ClipModelOptions {
  /** Activation; default from metadata, else QuickGELU (see config.ts). */
  act?: ClipAct;
  visionHeads?: number;
  textHeads?: number;
  /** Which towers to build (default: every tower the weights hold). */
  towers?: 'both' | 'vision' | 'text';
  posEmbedInterpolation?: PosEmbedInterpolation;
  /**
   * The towers' architecture, for a non-standard model that does not describe itself (see
   * architectures.ts): without it only standard CLIP / OpenCLIP towers, known named models and
   * self-describing files load, and a tower that differs from its architecture is an error.
   */
  config?: ClipArchitecture;
  /** Identity used by caches (text embeddings); defaults to file, family, size and options. */
  id?: string;
}

export interface ClipConfig {
  vision: VisionConfig | null;
  text: TextConfig | null;
  act: ClipAct;
  /** Joint embedding size. */
  embedDim: number;
}

/**
 * The configuration of the towers `opts` asks for, derived from names and shapes and checked
 * against their architecture (architectures.ts). Runs on loaded weights or on shapes planned from
 * a header (loadClip checks before uploading anything).
 */
export function clipConfigFrom(w: WeightShapes, opts: ClipModelOptions = {}): { act: ClipAct; vision: VisionConfig | null; text: TextConfig | null; wantVision: boolean; wantText: boolean } {
  const act = resolveAct(w.metadata, w.file, opts.act);
  const towers = opts.towers ?? 'both';
  const hasVision = w.has('visual.conv1.weight');
  const hasText = w.has('token_embedding.weight');
  if (!hasVision && !hasText) {
    const sample = w.keys().slice(0, 4).join(', ');
    throw new ClipError(`${w.file} (${w.family}): no CLIP tower found (no 'visual.conv1.weight', no 'token_embedding.weight'); keys start with: ${sample}`);
  }
  if (towers === 'vision' && !hasVision) throw new ClipError(`${w.file}: towers 'vision' requested, but the file has no vision tower ('visual.conv1.weight')`);
  if (towers === 'text' && !hasText) throw new ClipError(`${w.file}: towers 'text' requested, but the file has no text tower ('token_embedding.weight')`);
  const wantVision = hasVision && towers !== 'text';
  const wantText = hasText && towers !== 'vision';
  const vHeads = headsOverride(w.metadata, w.file, 'vision', opts.visionHeads);
  const tHeads = headsOverride(w.metadata, w.file, 'text', opts.textHeads);
  const vcfg = wantVision ? strictTower(w, 'vision', 'visual.', visionConfigFromWeights(w, 'visual.', act, { heads: vHeads }), vHeads, opts.config?.vision) : null;
  const tcfg = wantText ? strictTower(w, 'text', '', textConfigFromWeights(w, '', act, { heads: tHeads }), tHeads, opts.config?.text) : null;
  if (vcfg && tcfg && vcfg.embedDim !== tcfg.embedDim) {
    throw new ClipError(`${w.file}: the vision projection gives ${vcfg.embedDim}-d features, the text projection ${tcfg.embedDim}-d`);
  }
  return { act, vision: vcfg, text: tcfg, wantVision, wantText };
}

export class ClipModel {
  readonly visual: VisionTransformer | null;
  readonly text: TextTransformer | null;
  readonly config: ClipConfig;

  private constructor(
    readonly weights: Weights,
    visual: VisionTransformer | null,
    text: TextTransformer | null,
    config: ClipConfig,
    /** exp(logit_scale): the multiplier of cosine similarities. */
    readonly logitScale: number,
    readonly id: string,
  ) {
    this.visual = visual;
    this.text = text;
    this.config = config;
  }

  /** Build from canonical (OpenAI-named) weights; strict: every tensor must be used. */
  static async create(ctx: GpuContext, w: Weights, opts: ClipModelOptions = {}, idBase = `${w.file}|${w.family}|${w.keys().length}`): Promise<ClipModel> {
    const { act, vision: vcfg, text: tcfg, wantVision, wantText } = clipConfigFrom(w, opts);
    const visual = vcfg ? new VisionTransformer(w, 'visual.', vcfg, opts.posEmbedInterpolation) : null;
    const text = tcfg ? new TextTransformer(w, '', tcfg) : null;
    let logitScale = Number.NaN;
    if (w.has('logit_scale')) {
      const t = w.get('logit_scale');
      if (t.size !== 1) throw new ClipError(`${w.file}: 'logit_scale' has ${t.size} elements, expected a scalar`);
      logitScale = Math.exp((await readTensor(ctx, t))[0]!);
    }
    // A tower left out on purpose still counts as used; anything else unexpected is an error.
    if (!wantVision) for (const k of w.keys()) if (k.startsWith('visual.')) w.get(k);
    if (!wantText) for (const k of w.keys()) if (!k.startsWith('visual.') && k !== 'logit_scale') w.get(k);
    w.assertAllUsed('the CLIP model');
    const config: ClipConfig = Object.freeze({ vision: vcfg, text: tcfg, act, embedDim: (vcfg ?? tcfg)!.embedDim });
    const id = opts.id ?? `${idBase}|${act}|${vcfg?.heads ?? '-'}|${tcfg?.heads ?? '-'}|${opts.posEmbedInterpolation ?? 'bicubic-antialias'}`;
    return new ClipModel(w, visual, text, config, logitScale, id);
  }

  private requireVisual(): VisionTransformer {
    if (!this.visual) throw new ClipError(`${this.weights.file}: this CLIP model has no vision tower`);
    return this.visual;
  }

  private requireText(): TextTransformer {
    if (!this.text) throw new ClipError(`${this.weights.file}: this CLIP model has no text tower`);
    return this.text;
  }

  /** Native input size of the vision tower. */
  get imageSize(): number {
    return this.requireVisual().cfg.imageSize;
  }

  /** Resize the position table for `size` inputs when needed (async: see vision.ts). */
  prepareImageSize(ctx: GpuContext, height: number, width = height): Promise<void> {
    return this.requireVisual().prepare(ctx, height, width);
  }

  /** `encode_image`: pixels [B, 3, H, W] -> [B, embedDim], not normalised. */
  encodeImage(ctx: GpuContext, pixels: Tensor, opts: VisionForwardOptions = {}): Tensor {
    return this.requireVisual().forward(ctx, pixels, opts);
  }

  /** `encode_text`: token ids [B, L] -> [B, embedDim], not normalised. */
  encodeText(ctx: GpuContext, tokens: TokenIds, opts: TextForwardOptions = {}): Tensor {
    return this.requireText().forward(ctx, tokens, opts);
  }

  /**
   * `CLIP.forward`'s logits_per_image: exp(logit_scale) * normalize(image) @ normalize(text)^T,
   * [Bi, Bt]. (logits_per_text is its transpose.)
   */
  logits(ctx: GpuContext, imageFeatures: Tensor, textFeatures: Tensor): Tensor {
    if (imageFeatures.ndim !== 2 || textFeatures.ndim !== 2 || imageFeatures.dim(1) !== textFeatures.dim(1)) {
      throw new ShapeError(`CLIP logits: features must be [Bi, E] and [Bt, E], got [${imageFeatures.shape.join(', ')}] and [${textFeatures.shape.join(', ')}]`);
    }
    if (!Number.isFinite(this.logitScale)) throw new ClipError(`${this.weights.file}: no 'logit_scale' in the checkpoint`);
    return ctx.scope(() => {
      const a = l2Normalize(ctx, imageFeatures);
      const b = l2Normalize(ctx, textFeatures);
      return matmul(ctx, a, b.transpose(0, 1), { alpha: this.logitScale });
    });
  }

  dispose(): void {
    this.visual?.dispose();
    this.text?.dispose();
    this.weights.dispose();
  }
}
