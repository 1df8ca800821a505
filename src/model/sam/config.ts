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

/** LayerNorm eps of the image encoder blocks and of LayerNorm2d (DESIGN.md section 4). */
export const SAM_ENCODER_LN_EPS = 1e-6;

const ENC = 'image_encoder';
const PE = 'prompt_encoder';
const DEC = 'mask_decoder';

function need(w: WeightShapes, key: string, rank: number): readonly number[] {
  const s = w.shape(key);
  if (!s) throw new WeightError(`${w.file} (${w.family}): missing tensor '${key}', needed to derive the SAM configuration`);
  if (s.length !== rank) throw new WeightError(`${w.file} (${w.family}): tensor '${key}' has shape ${fmtShape(s)}, expected rank ${rank}`);
  return s;
}

/** Number of consecutive indices N with `${prefix}.N.${probe}` present. */
function countIndexed(w: WeightShapes, prefix: string, probe: string): number {
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

/**
 * Every tensor of an official SAM checkpoint (`Sam.state_dict()` order) for a configuration: the
 * strict key set `loadSamWeights` checks and the random-weights tool writes.
 */
export function samTensorSpec(cfg: SamConfig): TensorSpec[] {
  const out: TensorSpec[] = [];
  const t = (name: string, shape: number[], init: InitKind) => out.push({ name, shape, init });
  const linear = (p: string, o: number, i: number, init: InitKind = 'linear') => {
    t(`${p}.weight`, [o, i], init);
    t(`${p}.bias`, [o], 'bias');
  };
  const norm = (p: string, n: number) => {
    t(`${p}.weight`, [n], 'norm');
    t(`${p}.bias`, [n], 'bias');
  };
  const { embedDim: E, posEmbedGrid: G, patchSize: P, outChans: O } = cfg;
  const hd = E / cfg.numHeads;
  t(`${ENC}.pos_embed`, [1, G, G, E], 'pos');
  t(`${ENC}.patch_embed.proj.weight`, [E, 3, P, P], 'conv');
  t(`${ENC}.patch_embed.proj.bias`, [E], 'bias');
  const globals = new Set(cfg.globalAttnIndexes);
  for (let i = 0; i < cfg.depth; i++) {
    const b = `${ENC}.blocks.${i}`;
    const s = globals.has(i) || cfg.windowSize === 0 ? G : cfg.windowSize;
    norm(`${b}.norm1`, E);
    t(`${b}.attn.rel_pos_h`, [2 * s - 1, hd], 'rel-pos');
    t(`${b}.attn.rel_pos_w`, [2 * s - 1, hd], 'rel-pos');
    linear(`${b}.attn.qkv`, 3 * E, E, 'linear-qk');
    linear(`${b}.attn.proj`, E, E);
    norm(`${b}.norm2`, E);
    linear(`${b}.mlp.lin1`, cfg.mlpDim, E);
    linear(`${b}.mlp.lin2`, E, cfg.mlpDim);
  }
  t(`${ENC}.neck.0.weight`, [O, E, 1, 1], 'conv');
  norm(`${ENC}.neck.1`, O);
  t(`${ENC}.neck.2.weight`, [O, O, 3, 3], 'conv');
  norm(`${ENC}.neck.3`, O);

  const C = cfg.promptEmbedDim;
  const M = cfg.maskInChans;
  t(`${PE}.pe_layer.positional_encoding_gaussian_matrix`, [2, C / 2], 'gauss');
  for (let i = 0; i < 4; i++) t(`${PE}.point_embeddings.${i}.weight`, [1, C], 'embed');
  t(`${PE}.not_a_point_embed.weight`, [1, C], 'embed');
  t(`${PE}.mask_downscaling.0.weight`, [M / 4, 1, 2, 2], 'conv');
  t(`${PE}.mask_downscaling.0.bias`, [M / 4], 'bias');
  norm(`${PE}.mask_downscaling.1`, M / 4);
  t(`${PE}.mask_downscaling.3.weight`, [M, M / 4, 2, 2], 'conv');
  t(`${PE}.mask_downscaling.3.bias`, [M], 'bias');
  norm(`${PE}.mask_downscaling.4`, M);
  t(`${PE}.mask_downscaling.6.weight`, [C, M, 1, 1], 'conv');
  t(`${PE}.mask_downscaling.6.bias`, [C], 'bias');
  t(`${PE}.no_mask_embed.weight`, [1, C], 'embed');

  const attn = (p: string, down: number) => {
    const inner = C / down;
    linear(`${p}.q_proj`, inner, C, 'linear-qk-all');
    linear(`${p}.k_proj`, inner, C, 'linear-qk-all');
    linear(`${p}.v_proj`, inner, C);
    linear(`${p}.out_proj`, C, inner);
  };
  for (let i = 0; i < cfg.decoderDepth; i++) {
    const l = `${DEC}.transformer.layers.${i}`;
    attn(`${l}.self_attn`, 1);
    norm(`${l}.norm1`, C);
    attn(`${l}.cross_attn_token_to_image`, 2);
    norm(`${l}.norm2`, C);
    linear(`${l}.mlp.lin1`, cfg.decoderMlpDim, C);
    linear(`${l}.mlp.lin2`, C, cfg.decoderMlpDim);
    norm(`${l}.norm3`, C);
    norm(`${l}.norm4`, C);
    attn(`${l}.cross_attn_image_to_token`, 2);
  }
  attn(`${DEC}.transformer.final_attn_token_to_image`, 2);
  norm(`${DEC}.transformer.norm_final_attn`, C);
  const T = cfg.numMultimaskOutputs + 1;
  t(`${DEC}.iou_token.weight`, [1, C], 'embed');
  t(`${DEC}.mask_tokens.weight`, [T, C], 'embed');
  t(`${DEC}.output_upscaling.0.weight`, [C, C / 4, 2, 2], 'conv-transpose');
  t(`${DEC}.output_upscaling.0.bias`, [C / 4], 'bias');
  norm(`${DEC}.output_upscaling.1`, C / 4);
  t(`${DEC}.output_upscaling.3.weight`, [C / 4, C / 8, 2, 2], 'conv-transpose');
  t(`${DEC}.output_upscaling.3.bias`, [C / 8], 'bias');
  for (let i = 0; i < T; i++) {
    const h = `${DEC}.output_hypernetworks_mlps.${i}.layers`;
    linear(`${h}.0`, C, C);
    linear(`${h}.1`, C, C);
    linear(`${h}.2`, C / 8, C);
  }
  const H = cfg.iouHeadHiddenDim;
  for (let i = 0; i < cfg.iouHeadDepth; i++) {
    const first = i === 0;
    const last = i === cfg.iouHeadDepth - 1;
    linear(`${DEC}.iou_prediction_head.layers.${i}`, last ? T : H, first ? C : H);
  }
  return out;
}
