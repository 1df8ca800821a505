/**
 * SAM 2 / 2.1 hyper-parameters (sam2/configs/sam2.1/sam2.1_hiera_*.yaml and the constructors of
 * sam2/modeling/backbones/hieradet.py, image_encoder.py, sam2_base.py), derived from a checkpoint's
 * tensor shapes as far as the shapes tell, and the per-block geometry of the Hiera trunk.
 *
 * What the shapes tell:
 *  - trunk: stage-0 width from `patch_embed.proj.weight` [E, 3, 7, 7]; the block count; each block's
 *    input and output width from `attn.qkv.weight` [3 dim_out, dim] (a stage starts where the width
 *    changes), so the blocks per stage; the background position grid from `pos_embed` [1, E, h, w];
 *    the first stage's window from `pos_embed_window` [1, E, w0, w0];
 *  - neck: its width from `neck.convs.0.conv.weight` [d, C_last, 1, 1], the channel list from all four;
 *  - prompt encoder / decoder: as SAM's (width, mask-input channels, decoder depth and MLP width,
 *    IoU head, multimask outputs), plus whether the object-score head is an MLP or one Linear.
 *
 * What they cannot tell: the head count (qkv is fused), the windows of stages 2-4, which blocks
 * are global (a global block has the same tensors as a windowed one) and the input size (Hiera is
 * resolution-agnostic). They come from, in order: the caller's `overrides`; the file's metadata
 * (`sam2` JSON, written by our tools); the table of the four official SAM 2 / 2.1 models, identified
 * by their stage-0 width and blocks per stage. Anything still unknown is an error naming it.
 *
 * Fixed by the official code for every released model and not stored anywhere: 2x2 query pooling
 * at the first three stage changes with width and heads doubling, patch embedding 7x7 stride 4
 * padding 3, LayerNorm eps 1e-6 in the trunk, nearest top-down FPN on levels [2, 3], scalp 1,
 * high-resolution features in the decoder, sigmoid IoU, decoder heads 8, and the dynamic multimask
 * fallback (stability delta 0.05, threshold 0.98).
 */
import { fmtShape } from '../../gpu/errors.js';
import { WeightError } from '../../weights/weights.js';
import { SAM_HEADS_1024, type SamConfig, SpecBuilder, type TensorSpec, type WeightShapes, countIndexed, maskDecoderSpec, need as needShape, promptEncoderSpec } from '../sam/config.js';

export interface HieraConfig {
  /** Stage-0 width (doubles at every stage change). */
  embedDim: number;
  /** Stage-0 heads (double at every stage change). */
  numHeads: number;
  /** Blocks per stage. */
  stages: number[];
  /** Window side per stage (0: global). The first block of a stage uses the previous stage's. */
  windowSpec: number[];
  /** Blocks with global attention. */
  globalAttBlocks: number[];
  /** Grid of the background position table `pos_embed` [1, E, h, w]. */
  windowPosEmbedBkgSize: [number, number];
  /** Stage changes that pool the queries (the first `qPool` of them). */
  qPool: number;
  /** Query pooling stride (2x2). */
  qStride: number;
}

/**
 * The prompt encoder and mask decoder fields carry SAM's names (SamConfig), so SAM's modules take a
 * Sam2Config as it is: `promptEmbedDim` is the decoder width, `imgSize` the prompt encoder's frame
 * (= imageSize), `imageEmbeddingSize` = imageSize / 16.
 */
export interface Sam2Config
  extends Pick<
    SamConfig,
    'promptEmbedDim' | 'imageEmbeddingSize' | 'imgSize' | 'maskInChans' | 'decoderDepth' | 'decoderHeads' | 'decoderMlpDim' | 'numMultimaskOutputs' | 'iouHeadDepth' | 'iouHeadHiddenDim'
  > {
  /** Input side: the image is resized to imageSize x imageSize (1024 for every released model). */
  imageSize: number;
  trunk: HieraConfig;
  /** FPN width (= decoder width), channels of the trunk's stage outputs (deepest first), top-down levels, dropped levels. */
  neck: { dModel: number; backboneChannelList: number[]; fpnTopDownLevels: number[]; scalp: number };
  /** Object-score head: a 3-layer MLP (SAM 2.1, SAM 2) or a single Linear. */
  predObjScoresMlp: boolean;
  /** Single-mask output falls back to the best multimask token when token 0 is unstable. */
  dynamicMultimask: { delta: number; thresh: number };
}

/** The geometry of one MultiScaleBlock (hieradet.Hiera.__init__). */
export interface HieraBlockSpec {
  index: number;
  dim: number;
  dimOut: number;
  heads: number;
  /** Window side; 0 for global attention. */
  window: number;
  /** Pools queries and shortcut 2x2 (first block of stages 2..1+qPool). */
  qPool: boolean;
  /** Last block of a stage: its output feeds the FPN. */
  stageEnd: boolean;
}

/** Trunk LayerNorm eps (MultiScaleBlock's partial(nn.LayerNorm, eps=1e-6)). */
export const HIERA_LN_EPS = 1e-6;
/** PatchEmbed of hieradet: 7x7 kernel, stride 4, padding 3. */
export const HIERA_PATCH = { kernel: 7, stride: 4, padding: 3 } as const;
/** SAM2Base.backbone_stride. */
export const SAM2_BACKBONE_STRIDE = 16;
/** The official MaskDecoder kwargs of build_sam2(apply_postprocessing=True). */
export const SAM2_DYNAMIC_MULTIMASK = { delta: 0.05, thresh: 0.98 } as const;

/** Blocks per stage, stage ends and per-block geometry, as Hiera.__init__ computes them. */
export function hieraBlocks(t: HieraConfig): HieraBlockSpec[] {
  const stageEnds = t.stages.map((_, i) => t.stages.slice(0, i + 1).reduce((a, b) => a + b, 0) - 1);
  const qPoolBlocks = new Set(stageEnds.slice(0, -1).map((e) => e + 1).slice(0, t.qPool));
  const globals = new Set(t.globalAttBlocks);
  const depth = stageEnds[stageEnds.length - 1]! + 1;
  const out: HieraBlockSpec[] = [];
  let dim = t.embedDim;
  let heads = t.numHeads;
  let stage = 1;
  for (let i = 0; i < depth; i++) {
    let dimOut = dim;
    // The window lags by a block: a stage's first block still uses the previous stage's window.
    const window = globals.has(i) ? 0 : t.windowSpec[stage - 1]!;
    if (stageEnds.includes(i - 1)) {
      dimOut = 2 * dim;
      heads = 2 * heads;
      stage++;
    }
    out.push({ index: i, dim, dimOut, heads, window, qPool: qPoolBlocks.has(i), stageEnd: stageEnds.includes(i) });
    dim = dimOut;
  }
  return out;
}

/** What the shapes cannot tell, for the released models (sam2.1_hiera_{t,s,b+,l}.yaml, also SAM 2.0). */
interface KnownHiera {
  name: string;
  numHeads: number;
  windowSpec: number[];
  globalAttBlocks: number[];
}

const KNOWN_HIERA: Record<string, KnownHiera> = {
  '96:1,2,7,2': { name: 'Hiera-T (sam2.1_hiera_tiny)', numHeads: 1, windowSpec: [8, 4, 14, 7], globalAttBlocks: [5, 7, 9] },
  '96:1,2,11,2': { name: 'Hiera-S (sam2.1_hiera_small)', numHeads: 1, windowSpec: [8, 4, 14, 7], globalAttBlocks: [7, 10, 13] },
  '112:2,3,16,3': { name: 'Hiera-B+ (sam2.1_hiera_base_plus)', numHeads: 2, windowSpec: [8, 4, 14, 7], globalAttBlocks: [12, 16, 20] },
  '144:2,6,36,4': { name: 'Hiera-L (sam2.1_hiera_large)', numHeads: 2, windowSpec: [8, 4, 16, 8], globalAttBlocks: [23, 33, 43] },
};

/** The released model a trunk layout belongs to, if any (for messages and the CLI). */
export function knownHieraName(embedDim: number, stages: readonly number[]): string | null {
  return KNOWN_HIERA[`${embedDim}:${stages.join(',')}`]?.name ?? null;
}

const T = 'image_encoder.trunk';
const N = 'image_encoder.neck';
const PE = 'sam_prompt_encoder';
const DEC = 'sam_mask_decoder';

const need = (w: WeightShapes, key: string, rank: number) => needShape(w, key, rank, 'SAM 2');

/** Overrides a caller may give for what the shapes cannot tell (and the input size). */
export interface Sam2ConfigOverrides {
  imageSize?: number;
  numHeads?: number;
  windowSpec?: number[];
  globalAttBlocks?: number[];
  decoderHeads?: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function metadataOverrides(w: WeightShapes): Sam2ConfigOverrides {
  const raw = w.metadata.sam2;
  if (raw === undefined) return {};
  try {
    const m = JSON.parse(raw) as Record<string, unknown>;
    const out: Sam2ConfigOverrides = {};
    if (typeof m.image_size === 'number') out.imageSize = m.image_size;
    if (typeof m.num_heads === 'number') out.numHeads = m.num_heads;
    if (Array.isArray(m.window_spec)) out.windowSpec = m.window_spec as number[];
    if (Array.isArray(m.global_att_blocks)) out.globalAttBlocks = m.global_att_blocks as number[];
    if (typeof m.decoder_heads === 'number') out.decoderHeads = m.decoder_heads;
    return out;
  } catch {
    throw new WeightError(`${w.file}: __metadata__["sam2"] is not valid JSON`);
  }
}

/** The `sam2` metadata our tools write: what the shapes cannot tell. */
export function sam2ConfigMetadata(cfg: Sam2Config): string {
  return JSON.stringify({
    image_size: cfg.imageSize,
    num_heads: cfg.trunk.numHeads,
    window_spec: cfg.trunk.windowSpec,
    global_att_blocks: cfg.trunk.globalAttBlocks,
    decoder_heads: cfg.decoderHeads,
  });
}

/** The SAM 2 configuration of a weight set under official names. */
export function sam2ConfigFromWeights(w: WeightShapes, overrides: Sam2ConfigOverrides = {}): Sam2Config {
  const [E, cin, k, k2] = need(w, `${T}.patch_embed.proj.weight`, 4) as [number, number, number, number];
  if (cin !== 3 || k !== HIERA_PATCH.kernel || k2 !== HIERA_PATCH.kernel) {
    throw new WeightError(`${w.file}: '${T}.patch_embed.proj.weight' ${fmtShape([E, cin, k, k2])} is not Hiera's 7x7 RGB patch embedding`);
  }
  const depth = countIndexed(w, `${T}.blocks`, 'attn.qkv.weight');
  if (depth === 0) throw new WeightError(`${w.file}: no '${T}.blocks.N.attn.qkv.weight' tensors`);
  const stages: number[] = [1];
  const widths: number[] = [E];
  let dim = E;
  for (let i = 0; i < depth; i++) {
    const [q3, din] = need(w, `${T}.blocks.${i}.attn.qkv.weight`, 2) as [number, number];
    if (din !== dim || q3 % 3 !== 0) {
      throw new WeightError(`${w.file}: '${T}.blocks.${i}.attn.qkv.weight' ${fmtShape([q3, din])} does not follow a block of width ${dim}`);
    }
    const dout = q3 / 3;
    if (i > 0 && dout !== dim) {
      if (dout !== 2 * dim) throw new WeightError(`${w.file}: block ${i} changes the width ${dim} -> ${dout}; Hiera doubles it at a stage change`);
      stages.push(1);
      widths.push(dout);
    } else if (i > 0) {
      stages[stages.length - 1]!++;
    }
    dim = dout;
  }
  const pos = need(w, `${T}.pos_embed`, 4);
  if (pos[0] !== 1 || pos[1] !== E) throw new WeightError(`${w.file}: '${T}.pos_embed' has shape ${fmtShape(pos)}, expected [1, ${E}, h, w]`);
  const win = need(w, `${T}.pos_embed_window`, 4);
  if (win[0] !== 1 || win[1] !== E || win[2] !== win[3]) throw new WeightError(`${w.file}: '${T}.pos_embed_window' has shape ${fmtShape(win)}, expected [1, ${E}, w, w]`);

  const meta = metadataOverrides(w);
  const known = KNOWN_HIERA[`${E}:${stages.join(',')}`];
  const pick = <K extends keyof Sam2ConfigOverrides>(key: K): Sam2ConfigOverrides[K] => overrides[key] ?? meta[key];
  const missing: string[] = [];
  const numHeads = pick('numHeads') ?? known?.numHeads;
  const windowSpec = pick('windowSpec') ?? known?.windowSpec;
  const globalAttBlocks = pick('globalAttBlocks') ?? known?.globalAttBlocks;
  if (numHeads === undefined) missing.push('numHeads (stage-0 attention heads)');
  if (windowSpec === undefined) missing.push('windowSpec (window side per stage)');
  if (globalAttBlocks === undefined) missing.push('globalAttBlocks (blocks with global attention)');
  if (missing.length) {
    throw new WeightError(
      `${w.file}: a Hiera trunk of width ${E} with stages [${stages.join(', ')}] is none of the released SAM 2 models ` +
        `(Hiera-T/S/B+/L), and the shapes cannot tell ${missing.join(', ')}; give them as overrides or in the file's "sam2" metadata`,
    );
  }
  if (windowSpec!.length !== stages.length) throw new WeightError(`${w.file}: windowSpec [${windowSpec!.join(', ')}] has ${windowSpec!.length} entries for ${stages.length} stages`);
  if (windowSpec![0] !== win[2]) {
    throw new WeightError(`${w.file}: '${T}.pos_embed_window' ${fmtShape(win)} is made for a ${win[2]}-token first window, windowSpec says ${windowSpec![0]}`);
  }
  const imageSize = pick('imageSize') ?? 1024;
  if (!Number.isInteger(imageSize) || imageSize % 32 !== 0 || imageSize < 32) {
    throw new WeightError(`${w.file}: image size ${imageSize} must be a positive multiple of 32 (patch stride 4, three 2x2 poolings)`);
  }

  // Neck: convs.j takes the trunk's stage n - j output (deepest first).
  const dModel = need(w, `${N}.convs.0.conv.weight`, 4)[0]!;
  const channelList = [...widths].reverse();
  channelList.forEach((c, j) => {
    const s = need(w, `${N}.convs.${j}.conv.weight`, 4);
    if (s[0] !== dModel || s[1] !== c || s[2] !== 1 || s[3] !== 1) {
      throw new WeightError(`${w.file}: '${N}.convs.${j}.conv.weight' has shape ${fmtShape(s)}, expected [${dModel}, ${c}, 1, 1] (stage ${channelList.length - j} of the trunk)`);
    }
  });

  const C = need(w, `${PE}.not_a_point_embed.weight`, 2)[1]!;
  if (C !== dModel) throw new WeightError(`${w.file}: prompt encoder width ${C} differs from the neck width ${dModel}`);
  const decoderDepth = countIndexed(w, `${DEC}.transformer.layers`, 'self_attn.q_proj.weight');
  if (decoderDepth === 0) throw new WeightError(`${w.file}: no '${DEC}.transformer.layers.N' tensors`);
  const maskTokens = need(w, `${DEC}.mask_tokens.weight`, 2)[0]!;
  const cfg: Sam2Config = {
    imageSize,
    trunk: {
      embedDim: E,
      numHeads: numHeads!,
      stages,
      windowSpec: windowSpec!,
      globalAttBlocks: globalAttBlocks!,
      windowPosEmbedBkgSize: [pos[2]!, pos[3]!],
      qPool: Math.min(3, stages.length - 1),
      qStride: 2,
    },
    neck: { dModel, backboneChannelList: channelList, fpnTopDownLevels: [2, 3], scalp: 1 },
    promptEmbedDim: C,
    imageEmbeddingSize: imageSize / SAM2_BACKBONE_STRIDE,
    imgSize: imageSize,
    maskInChans: need(w, `${PE}.mask_downscaling.3.weight`, 4)[0]!,
    decoderDepth,
    decoderHeads: pick('decoderHeads') ?? 8,
    decoderMlpDim: need(w, `${DEC}.transformer.layers.0.mlp.layers.0.weight`, 2)[0]!,
    numMultimaskOutputs: maskTokens - 1,
    iouHeadDepth: countIndexed(w, `${DEC}.iou_prediction_head.layers`, 'weight'),
    iouHeadHiddenDim: need(w, `${DEC}.iou_prediction_head.layers.0.weight`, 2)[0]!,
    predObjScoresMlp: w.has(`${DEC}.pred_obj_score_head.layers.0.weight`),
    dynamicMultimask: { ...SAM2_DYNAMIC_MULTIMASK },
  };
  checkGeometry(w.file, cfg);
  return Object.freeze(cfg);
}

/** Heads that split the widths, and window sides that the grids allow. */
function checkGeometry(file: string, cfg: Sam2Config): void {
  const t = cfg.trunk;
  for (const b of hieraBlocks(t)) {
    if (b.dimOut % b.heads !== 0 || (b.dimOut / b.heads) % 4 !== 0) {
      throw new WeightError(`${file}: block ${b.index} width ${b.dimOut} with ${b.heads} heads: the head width must be a whole multiple of 4`);
    }
    if (b.qPool && b.window % 2 !== 0) {
      throw new WeightError(`${file}: block ${b.index} pools queries inside ${b.window}-token windows; the window must be even`);
    }
  }
  const C = cfg.promptEmbedDim;
  if (C % 8 !== 0 || (C / 2) % cfg.decoderHeads !== 0 || (C / 2 / cfg.decoderHeads) % 4 !== 0) {
    throw new WeightError(`${file}: decoder width ${C} with ${cfg.decoderHeads} heads: the cross-attention head width must be a whole multiple of 4`);
  }
}

/** Keys of an official checkpoint used only by video propagation: present in every `.pt`, not loaded for images. */
export const SAM2_VIDEO_ONLY = /^(maskmem_tpos_enc|no_mem_pos_enc|no_obj_ptr|no_obj_embed_spatial|mask_downsample\.|memory_attention\.|memory_encoder\.|obj_ptr_proj\.|obj_ptr_tpos_proj\.)/;

/**
 * Every tensor the image predictor loads, under official names, for a configuration: the strict
 * key set and what the random-weights tool writes. Init kinds follow the reference fixtures.
 */
export function sam2TensorSpec(cfg: Sam2Config): TensorSpec[] {
  const b = new SpecBuilder();
  const tr = cfg.trunk;
  const E = tr.embedDim;
  b.t('no_mem_embed', [1, 1, cfg.promptEmbedDim], 'pos');
  b.t(`${T}.pos_embed`, [1, E, ...tr.windowPosEmbedBkgSize], 'pos');
  b.t(`${T}.pos_embed_window`, [1, E, tr.windowSpec[0]!, tr.windowSpec[0]!], 'pos');
  b.conv(`${T}.patch_embed.proj`, E, 3, HIERA_PATCH.kernel);
  for (const blk of hieraBlocks(tr)) {
    const p = `${T}.blocks.${blk.index}`;
    b.norm(`${p}.norm1`, blk.dim);
    b.linear(`${p}.attn.qkv`, 3 * blk.dimOut, blk.dim, 'linear-qk');
    b.linear(`${p}.attn.proj`, blk.dimOut, blk.dimOut);
    b.norm(`${p}.norm2`, blk.dimOut);
    b.linear(`${p}.mlp.layers.0`, 4 * blk.dimOut, blk.dimOut);
    b.linear(`${p}.mlp.layers.1`, blk.dimOut, 4 * blk.dimOut);
    if (blk.dim !== blk.dimOut) b.linear(`${p}.proj`, blk.dimOut, blk.dim);
  }
  cfg.neck.backboneChannelList.forEach((c, j) => b.conv(`${N}.convs.${j}.conv`, cfg.neck.dModel, c, 1));
  promptEncoderSpec(b, PE, cfg);
  maskDecoderSpec(b, DEC, cfg, { mlpNames: ['layers.0', 'layers.1'], objScore: cfg.predObjScoresMlp ? 'mlp' : 'linear', highRes: true });
  return b.out;
}

/** The released models at 1024 px (decoder 256 wide), for random weights and benchmarks. */
export function sam2Preset(name: 'hiera-t' | 'hiera-s' | 'hiera-b+' | 'hiera-l'): Sam2Config {
  const key = { 'hiera-t': '96:1,2,7,2', 'hiera-s': '96:1,2,11,2', 'hiera-b+': '112:2,3,16,3', 'hiera-l': '144:2,6,36,4' }[name];
  const k = KNOWN_HIERA[key]!;
  const [E, stagesText] = key.split(':') as [string, string];
  const embedDim = Number(E);
  const stages = stagesText.split(',').map(Number);
  const widths = stages.map((_, i) => embedDim * 2 ** i);
  return Object.freeze({
    imageSize: 1024,
    trunk: { embedDim, numHeads: k.numHeads, stages, windowSpec: k.windowSpec, globalAttBlocks: k.globalAttBlocks, windowPosEmbedBkgSize: name === 'hiera-b+' ? [14, 14] : [7, 7], qPool: 3, qStride: 2 },
    neck: { dModel: 256, backboneChannelList: widths.reverse(), fpnTopDownLevels: [2, 3], scalp: 1 },
    ...SAM_HEADS_1024,
    imgSize: 1024,
    predObjScoresMlp: true,
    dynamicMultimask: { ...SAM2_DYNAMIC_MULTIMASK },
  } satisfies Sam2Config);
}
