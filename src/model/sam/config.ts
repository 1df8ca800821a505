/**
 * SAM hyper-parameters, derived from a checkpoint's tensor shapes (DESIGN.md section 3: B/L/H and
 * smaller configs are read, not assumed). Names follow segment_anything/build_sam.py.
 *
 * What the shapes tell:
 *  - image encoder: width and patch from `patch_embed.proj.weight` [E, 3, p, p]; the absolute
 *    position grid from `pos_embed` [1, g, g, E] (input size = g * p); depth from the block count;
 *    MLP width from `mlp.lin1`; the head dim from the relative-position tables [2s - 1, E / heads];
 *    a block is global iff its table has 2g - 1 rows (else it is windowed with s = window size);
 *    neck channels from `neck.0.weight`.
 *  - prompt encoder / decoder: width from `not_a_point_embed`, mask-input channels from
 *    `mask_downscaling.3`, decoder depth / MLP width / IoU head from their layers, multimask outputs
 *    from `mask_tokens` (rows - 1).
 *
 * What they cannot tell is the number of heads of the mask decoder's attentions. It is read from the
 * checkpoint metadata when present (`sam` JSON written by our tools, or a SAM-CLIP bundle's
 * `samclip.mask_decoder.num_heads`), else from `overrides`, else: at most 8 heads (every official
 * SAM: width 256, 8 heads) and at least 16 channels per head (the reference fixtures' tiny
 * decoder: width 64, 4 heads).
 */
import { fmtShape } from '../../gpu/errors.js';
import { WeightError, type WeightShapes } from '../../weights/weights.js';

export type { WeightShapes } from '../../weights/weights.js';

export interface SamConfig {
  imgSize: number;
  patchSize: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpDim: number;
  /** Window of the windowed blocks (0 when every block is global). */
  windowSize: number;
  globalAttnIndexes: number[];
  outChans: number;
  /** Rows (= columns) of the absolute position table: 64 for a 1024-px model. */
  posEmbedGrid: number;
  promptEmbedDim: number;
  /** Side of the image embedding grid: imgSize / patchSize (64 at 1024). */
  imageEmbeddingSize: number;
  maskInChans: number;
  decoderDepth: number;
  decoderHeads: number;
  decoderMlpDim: number;
  numMultimaskOutputs: number;
  iouHeadDepth: number;
  iouHeadHiddenDim: number;
}

/** The prompt encoder and mask decoder of every released SAM and SAM 2 model (1024 px input). */
export const SAM_HEADS_1024 = {
  promptEmbedDim: 256,
  imageEmbeddingSize: 64,
  maskInChans: 16,
  decoderDepth: 2,
  decoderHeads: 8,
  decoderMlpDim: 2048,
  numMultimaskOutputs: 3,
  iouHeadDepth: 3,
  iouHeadHiddenDim: 256,
} as const;

/** LayerNorm eps of the image encoder blocks and of LayerNorm2d (DESIGN.md section 4). */
export const SAM_ENCODER_LN_EPS = 1e-6;

const ENC = 'image_encoder';
const PE = 'prompt_encoder';
const DEC = 'mask_decoder';

/** A tensor's shape, required with the given rank to derive `model`'s configuration. */
export function need(w: WeightShapes, key: string, rank: number, model = 'SAM'): readonly number[] {
  const s = w.shape(key);
  if (!s) throw new WeightError(`${w.file} (${w.family}): missing tensor '${key}', needed to derive the ${model} configuration`);
  if (s.length !== rank) throw new WeightError(`${w.file} (${w.family}): tensor '${key}' has shape ${fmtShape(s)}, expected rank ${rank}`);
  return s;
}

/** Number of consecutive indices N with `${prefix}.N.${probe}` present. */
export function countIndexed(w: WeightShapes, prefix: string, probe: string): number {
  let n = 0;
  while (w.has(`${prefix}.${n}.${probe}`)) n++;
  return n;
}

/** A JSON value stored under `key` in the file's metadata (undefined when absent). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function metadataJson(w: WeightShapes, key: string): any {
  const raw = w.metadata[key];
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new WeightError(`${w.file}: __metadata__["${key}"] is not valid JSON`);
  }
}

/** Image-encoder part only (SAM-CLIP backbones, encoder-only files). */
export function samEncoderConfigFromWeights(w: WeightShapes, prefix = ENC): Pick<SamConfig,
  'imgSize' | 'patchSize' | 'embedDim' | 'depth' | 'numHeads' | 'mlpDim' | 'windowSize' | 'globalAttnIndexes' | 'outChans' | 'posEmbedGrid' | 'imageEmbeddingSize'> {
  const [E, cin, p, p2] = need(w, `${prefix}.patch_embed.proj.weight`, 4) as [number, number, number, number];
  if (cin !== 3 || p !== p2) {
    throw new WeightError(`${w.file}: '${prefix}.patch_embed.proj.weight' ${fmtShape([E, cin, p, p2])} is not a square RGB patch embedding`);
  }
  const pos = need(w, `${prefix}.pos_embed`, 4);
  const g = pos[1]!;
  if (pos[0] !== 1 || pos[2] !== g || pos[3] !== E) {
    throw new WeightError(`${w.file}: '${prefix}.pos_embed' has shape ${fmtShape(pos)}, expected [1, g, g, ${E}]`);
  }
  const depth = countIndexed(w, `${prefix}.blocks`, 'attn.qkv.weight');
  if (depth === 0) throw new WeightError(`${w.file}: no '${prefix}.blocks.N.attn.qkv.weight' tensors`);
  const mlpDim = need(w, `${prefix}.blocks.0.mlp.lin1.weight`, 2)[0]!;
  const globals: number[] = [];
  let windowSize = 0;
  let headDim = 0;
  for (let i = 0; i < depth; i++) {
    const key = `${prefix}.blocks.${i}.attn.rel_pos_h`;
    const rp = w.shape(key);
    if (!rp) {
      throw new WeightError(`${w.file}: missing '${key}': SAM encoders without relative position are not supported (the head count is read from these tables)`);
    }
    const [rows, d] = rp as [number, number];
    if (headDim && d !== headDim) throw new WeightError(`${w.file}: '${key}' ${fmtShape(rp)} has head dim ${d}, block 0 has ${headDim}`);
    headDim = d;
    if (rows === 2 * g - 1) {
      globals.push(i);
    } else {
      const s = (rows + 1) / 2;
      if (!Number.isInteger(s) || (windowSize && s !== windowSize)) {
        throw new WeightError(`${w.file}: '${key}' ${fmtShape(rp)} fits neither the ${g}x${g} grid (${2 * g - 1} rows) nor the window size ${windowSize || '?'} of the other blocks`);
      }
      windowSize = s;
    }
  }
  if (E % headDim !== 0) throw new WeightError(`${w.file}: width ${E} is not a multiple of the rel-pos head dim ${headDim}`);
  // A window as large as the grid has the same table size as global attention, so shapes call such a
  // block global; the file's metadata, when it says otherwise, decides.
  const meta = metadataJson(w, 'sam')?.image_encoder ?? metadataJson(w, 'samclip')?.backbone;
  if (windowSize === 0 && meta?.window_size === g && Array.isArray(meta.global_attn_indexes)) {
    windowSize = g;
    globals.splice(0, globals.length, ...(meta.global_attn_indexes as number[]));
  }
  return {
    imgSize: g * p,
    patchSize: p,
    embedDim: E,
    depth,
    numHeads: E / headDim,
    mlpDim,
    windowSize,
    globalAttnIndexes: globals,
    outChans: need(w, `${prefix}.neck.0.weight`, 4)[0]!,
    posEmbedGrid: g,
    imageEmbeddingSize: g,
  };
}

/** The whole SAM configuration from a weight set under official names. */
export function samConfigFromWeights(w: WeightShapes, overrides: Partial<SamConfig> = {}): SamConfig {
  const enc = samEncoderConfigFromWeights(w);
  const C = need(w, `${PE}.not_a_point_embed.weight`, 2)[1]!;
  const maskInChans = need(w, `${PE}.mask_downscaling.3.weight`, 4)[0]!;
  const decoderDepth = countIndexed(w, `${DEC}.transformer.layers`, 'self_attn.q_proj.weight');
  if (decoderDepth === 0) throw new WeightError(`${w.file}: no '${DEC}.transformer.layers.N' tensors`);
  const decoderMlpDim = need(w, `${DEC}.transformer.layers.0.mlp.lin1.weight`, 2)[0]!;
  const maskTokens = need(w, `${DEC}.mask_tokens.weight`, 2)[0]!;
  const iouHeadDepth = countIndexed(w, `${DEC}.iou_prediction_head.layers`, 'weight');
  const iouHeadHiddenDim = need(w, `${DEC}.iou_prediction_head.layers.0.weight`, 2)[0]!;
  const meta = metadataJson(w, 'sam')?.mask_decoder ?? metadataJson(w, 'samclip')?.mask_decoder;
  const decoderHeads: number = meta?.num_heads ?? Math.max(1, Math.min(8, Math.floor(C / 16)));
  const cfg: SamConfig = {
    ...enc,
    promptEmbedDim: C,
    maskInChans,
    decoderDepth,
    decoderHeads,
    decoderMlpDim,
    numMultimaskOutputs: maskTokens - 1,
    iouHeadDepth,
    iouHeadHiddenDim,
    ...overrides,
  };
  if (C % cfg.decoderHeads !== 0 || (C / 2) % cfg.decoderHeads !== 0) {
    throw new WeightError(`${w.file}: mask decoder width ${C} (cross-attention ${C / 2}) does not split into ${cfg.decoderHeads} heads`);
  }
  return Object.freeze(cfg) as SamConfig;
}

/** The `sam` metadata JSON our tools write, so configs survive a round trip through a file. */
export function samConfigMetadata(cfg: SamConfig): string {
  return JSON.stringify({
    image_encoder: {
      img_size: cfg.imgSize,
      patch_size: cfg.patchSize,
      embed_dim: cfg.embedDim,
      depth: cfg.depth,
      num_heads: cfg.numHeads,
      mlp_dim: cfg.mlpDim,
      window_size: cfg.windowSize,
      global_attn_indexes: cfg.globalAttnIndexes,
      out_chans: cfg.outChans,
    },
    prompt_encoder: { embed_dim: cfg.promptEmbedDim, image_embedding_size: cfg.imageEmbeddingSize, mask_in_chans: cfg.maskInChans },
    mask_decoder: {
      transformer_dim: cfg.promptEmbedDim,
      depth: cfg.decoderDepth,
      num_heads: cfg.decoderHeads,
      mlp_dim: cfg.decoderMlpDim,
      num_multimask_outputs: cfg.numMultimaskOutputs,
      iou_head_depth: cfg.iouHeadDepth,
      iou_head_hidden_dim: cfg.iouHeadHiddenDim,
    },
  });
}

/** How a tensor is initialised by the random-weights tool (the reference fixtures' scales). */
export type InitKind =
  | 'linear' // N(0, 1/fan_in)
  | 'linear-qk' // attn.qkv: N(0, 1/fan_in), q and k rows (first 2/3) x1.5
  | 'linear-qk-all' // decoder q_proj / k_proj: x1.5 on every row
  | 'conv' // N(0, 1/(C_in k k))
  | 'conv-transpose' // N(0, 1/C_in)
  | 'bias' // N(0, 0.02)
  | 'norm' // 1 + N(0, 0.1)
  | 'embed' // N(0, 1)
  | 'pos' // N(0, 0.3)
  | 'rel-pos' // N(0, 0.5)
  | 'gauss' // N(0, 1)
  | 'proj' // N(0, 1/rows): x @ P projections stored (in, out)
  | 'log-scale'; // ln 100

export interface TensorSpec {
  name: string;
  shape: number[];
  init: InitKind;
}

/** Collects tensor specs: named tensors, Linears, norms and convolutions (each with its bias). */
export class SpecBuilder {
  readonly out: TensorSpec[] = [];
  t(name: string, shape: number[], init: InitKind): void {
    this.out.push({ name, shape, init });
  }
  linear(p: string, o: number, i: number, init: InitKind = 'linear'): void {
    this.t(`${p}.weight`, [o, i], init);
    this.t(`${p}.bias`, [o], 'bias');
  }
  norm(p: string, n: number): void {
    this.t(`${p}.weight`, [n], 'norm');
    this.t(`${p}.bias`, [n], 'bias');
  }
  conv(p: string, o: number, i: number, k: number, init: InitKind = 'conv'): void {
    this.t(`${p}.weight`, init === 'conv-transpose' ? [i, o, k, k] : [o, i, k, k], init);
    this.t(`${p}.bias`, [o], 'bias');
  }
}

/** The prompt encoder's tensors (SAM's; SAM 2's under `sam_prompt_encoder`). */
export function promptEncoderSpec(b: SpecBuilder, pe: string, cfg: Pick<SamConfig, 'promptEmbedDim' | 'maskInChans'>): void {
  const C = cfg.promptEmbedDim;
  const M = cfg.maskInChans;
  b.t(`${pe}.pe_layer.positional_encoding_gaussian_matrix`, [2, C / 2], 'gauss');
  for (let i = 0; i < 4; i++) b.t(`${pe}.point_embeddings.${i}.weight`, [1, C], 'embed');
  b.t(`${pe}.not_a_point_embed.weight`, [1, C], 'embed');
  b.conv(`${pe}.mask_downscaling.0`, M / 4, 1, 2);
  b.norm(`${pe}.mask_downscaling.1`, M / 4);
  b.conv(`${pe}.mask_downscaling.3`, M, M / 4, 2);
  b.norm(`${pe}.mask_downscaling.4`, M);
  b.conv(`${pe}.mask_downscaling.6`, C, M, 1);
  b.t(`${pe}.no_mask_embed.weight`, [1, C], 'embed');
}

/** What SAM 2's mask decoder adds to SAM's (see src/model/sam2/mask-decoder.ts). */
export interface DecoderSpecExtras {
  /** The transformer MLP's layer names (SAM: lin1 / lin2). */
  mlpNames?: readonly [string, string];
  /** Object-score token and head (a 3-layer MLP or one Linear). */
  objScore?: 'mlp' | 'linear';
  /** conv_s0 / conv_s1 (high-resolution skips). */
  highRes?: boolean;
}

/** The mask decoder's tensors (SAM's order; SAM 2's extras where its state_dict has them). */
export function maskDecoderSpec(
  b: SpecBuilder,
  dec: string,
  cfg: Pick<SamConfig, 'promptEmbedDim' | 'decoderDepth' | 'decoderMlpDim' | 'numMultimaskOutputs' | 'iouHeadDepth' | 'iouHeadHiddenDim'>,
  extras: DecoderSpecExtras = {},
): void {
  const C = cfg.promptEmbedDim;
  const [mlp0, mlp1] = extras.mlpNames ?? ['lin1', 'lin2'];
  const attn = (p: string, down: number) => {
    const inner = C / down;
    b.linear(`${p}.q_proj`, inner, C, 'linear-qk-all');
    b.linear(`${p}.k_proj`, inner, C, 'linear-qk-all');
    b.linear(`${p}.v_proj`, inner, C);
    b.linear(`${p}.out_proj`, C, inner);
  };
  for (let i = 0; i < cfg.decoderDepth; i++) {
    const l = `${dec}.transformer.layers.${i}`;
    attn(`${l}.self_attn`, 1);
    b.norm(`${l}.norm1`, C);
    attn(`${l}.cross_attn_token_to_image`, 2);
    b.norm(`${l}.norm2`, C);
    b.linear(`${l}.mlp.${mlp0}`, cfg.decoderMlpDim, C);
    b.linear(`${l}.mlp.${mlp1}`, C, cfg.decoderMlpDim);
    b.norm(`${l}.norm3`, C);
    b.norm(`${l}.norm4`, C);
    attn(`${l}.cross_attn_image_to_token`, 2);
  }
  attn(`${dec}.transformer.final_attn_token_to_image`, 2);
  b.norm(`${dec}.transformer.norm_final_attn`, C);
  const T = cfg.numMultimaskOutputs + 1;
  b.t(`${dec}.iou_token.weight`, [1, C], 'embed');
  b.t(`${dec}.mask_tokens.weight`, [T, C], 'embed');
  if (extras.objScore) b.t(`${dec}.obj_score_token.weight`, [1, C], 'embed');
  b.conv(`${dec}.output_upscaling.0`, C / 4, C, 2, 'conv-transpose');
  b.norm(`${dec}.output_upscaling.1`, C / 4);
  b.conv(`${dec}.output_upscaling.3`, C / 8, C / 4, 2, 'conv-transpose');
  if (extras.highRes) {
    b.conv(`${dec}.conv_s0`, C / 8, C, 1);
    b.conv(`${dec}.conv_s1`, C / 4, C, 1);
  }
  for (let i = 0; i < T; i++) {
    const h = `${dec}.output_hypernetworks_mlps.${i}.layers`;
    b.linear(`${h}.0`, C, C);
    b.linear(`${h}.1`, C, C);
    b.linear(`${h}.2`, C / 8, C);
  }
  const H = cfg.iouHeadHiddenDim;
  for (let i = 0; i < cfg.iouHeadDepth; i++) {
    const first = i === 0;
    const last = i === cfg.iouHeadDepth - 1;
    b.linear(`${dec}.iou_prediction_head.layers.${i}`, last ? T : H, first ? C : H);
  }
  if (extras.objScore === 'mlp') {
    b.linear(`${dec}.pred_obj_score_head.layers.0`, C, C);
    b.linear(`${dec}.pred_obj_score_head.layers.1`, C, C);
    b.linear(`${dec}.pred_obj_score_head.layers.2`, 1, C);
  } else if (extras.objScore === 'linear') {
    b.linear(`${dec}.pred_obj_score_head`, 1, C);
  }
}

/**
 * Every tensor of an official SAM checkpoint (`Sam.state_dict()` order) for a configuration: the
 * strict key set `loadSamWeights` checks and the random-weights tool writes.
 */
export function samTensorSpec(cfg: SamConfig): TensorSpec[] {
  const b = new SpecBuilder();
  const { embedDim: E, posEmbedGrid: G, patchSize: P, outChans: O } = cfg;
  const hd = E / cfg.numHeads;
  b.t(`${ENC}.pos_embed`, [1, G, G, E], 'pos');
  b.conv(`${ENC}.patch_embed.proj`, E, 3, P);
  const globals = new Set(cfg.globalAttnIndexes);
  for (let i = 0; i < cfg.depth; i++) {
    const blk = `${ENC}.blocks.${i}`;
    const s = globals.has(i) || cfg.windowSize === 0 ? G : cfg.windowSize;
    b.norm(`${blk}.norm1`, E);
    b.t(`${blk}.attn.rel_pos_h`, [2 * s - 1, hd], 'rel-pos');
    b.t(`${blk}.attn.rel_pos_w`, [2 * s - 1, hd], 'rel-pos');
    b.linear(`${blk}.attn.qkv`, 3 * E, E, 'linear-qk');
    b.linear(`${blk}.attn.proj`, E, E);
    b.norm(`${blk}.norm2`, E);
    b.linear(`${blk}.mlp.lin1`, cfg.mlpDim, E);
    b.linear(`${blk}.mlp.lin2`, E, cfg.mlpDim);
  }
  b.t(`${ENC}.neck.0.weight`, [O, E, 1, 1], 'conv');
  b.norm(`${ENC}.neck.1`, O);
  b.t(`${ENC}.neck.2.weight`, [O, O, 3, 3], 'conv');
  b.norm(`${ENC}.neck.3`, O);
  promptEncoderSpec(b, PE, cfg);
  maskDecoderSpec(b, DEC, cfg);
  return b.out;
}
