/**
 * Which SAM a checkpoint is supposed to be, so that loading can be strict about architecture:
 * shapes alone cannot tell a ViT-B from a ViT-B with its last block cut off (both are consistent
 * sets of tensors), so the configuration a file is checked against comes from, in order:
 *  1. the caller's explicit `config` (the only way to load a non-standard model that does not
 *     describe itself);
 *  2. the file's own description: the `sam` metadata JSON our tools write (samConfigMetadata), or
 *     a SAM-CLIP bundle's `samclip` metadata;
 *  3. a known architecture named by the file's `model` metadata (e.g. the fixtures' `sam_tiny`);
 *  4. the standard model of the file's width: 768 -> ViT-B, 1024 -> ViT-L, 1280 -> ViT-H
 *     (segment_anything/build_sam.py).
 * A checkpoint matching none of these is refused, and one that differs from its architecture (a
 * missing or extra block, another width or MLP size) is an error naming the tensors.
 */
import { WeightError } from '../../weights/weights.js';
import { SAM_HEADS_1024, type SamConfig, type WeightShapes, metadataJson } from './config.js';

const SAM_HEAD: Omit<SamConfig, 'embedDim' | 'depth' | 'numHeads' | 'mlpDim' | 'globalAttnIndexes'> = {
  imgSize: 1024,
  patchSize: 16,
  windowSize: 14,
  outChans: 256,
  posEmbedGrid: 64,
  ...SAM_HEADS_1024,
};

export type SamArchitectureName = 'sam-vit-b' | 'sam-vit-l' | 'sam-vit-h' | 'sam-tiny';

/** segment_anything/build_sam.py's three models, and the reference fixtures' tiny one. */
export const SAM_ARCHITECTURES: Readonly<Record<SamArchitectureName, SamConfig>> = {
  'sam-vit-b': { ...SAM_HEAD, embedDim: 768, depth: 12, numHeads: 12, mlpDim: 3072, globalAttnIndexes: [2, 5, 8, 11] },
  'sam-vit-l': { ...SAM_HEAD, embedDim: 1024, depth: 24, numHeads: 16, mlpDim: 4096, globalAttnIndexes: [5, 11, 17, 23] },
  'sam-vit-h': { ...SAM_HEAD, embedDim: 1280, depth: 32, numHeads: 16, mlpDim: 5120, globalAttnIndexes: [7, 15, 23, 31] },
  'sam-tiny': {
    imgSize: 256, patchSize: 16, embedDim: 96, depth: 4, numHeads: 3, mlpDim: 384, windowSize: 7, globalAttnIndexes: [1, 3],
    outChans: 64, posEmbedGrid: 16, promptEmbedDim: 64, imageEmbeddingSize: 16, maskInChans: 16, decoderDepth: 2,
    decoderHeads: 4, decoderMlpDim: 128, numMultimaskOutputs: 3, iouHeadDepth: 3, iouHeadHiddenDim: 64,
  },
};

/** Model names files use (metadata `model`, checkpoint names) for the architectures above. */
const ALIASES: Readonly<Record<string, SamArchitectureName>> = {
  'sam-vit-b': 'sam-vit-b', sam_vit_b: 'sam-vit-b', vit_b: 'sam-vit-b', 'facebook/sam-vit-base': 'sam-vit-b',
  'sam-vit-l': 'sam-vit-l', sam_vit_l: 'sam-vit-l', vit_l: 'sam-vit-l', 'facebook/sam-vit-large': 'sam-vit-l',
  'sam-vit-h': 'sam-vit-h', sam_vit_h: 'sam-vit-h', vit_h: 'sam-vit-h', 'facebook/sam-vit-huge': 'sam-vit-h',
  'sam-tiny': 'sam-tiny', sam_tiny: 'sam-tiny',
};

const BY_WIDTH: Readonly<Record<number, SamArchitectureName>> = { 768: 'sam-vit-b', 1024: 'sam-vit-l', 1280: 'sam-vit-h' };

/** The configuration a checkpoint is checked against, and where it came from (for messages). */
export interface SamArchitecture {
  config: SamConfig;
  /** e.g. "sam-vit-b (standard for width 768)". */
  source: string;
  /** False when the caller supplied it (non-standard models are then allowed). */
  standard: boolean;
}

/** An integer field of a metadata config, or an error naming it. */
function int(v: unknown, where: string, file: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new WeightError(`${file}: metadata ${where} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

function grid(v: unknown, where: string, file: string): number {
  // Bundles write [g, g]; our 'sam' JSON writes g.
  if (Array.isArray(v) && v.length === 2 && v[0] === v[1]) return int(v[0], where, file);
  return int(v, where, file);
}

/**
 * The configuration described by `sam` metadata (our tools) or a bundle's `samclip` metadata, or
 * undefined when the file carries neither. Every architectural field must be present.
 */
export function samConfigFromMetadata(w: WeightShapes): { config: SamConfig; key: string } | undefined {
  const sam = metadataJson(w, 'sam');
  const bundle = sam === undefined ? metadataJson(w, 'samclip') : undefined;
  const m = sam ?? bundle;
  if (m === undefined) return undefined;
  const key = sam !== undefined ? 'sam' : 'samclip';
  const enc = sam ? m.image_encoder : m.backbone;
  const pe = m.prompt_encoder;
  const dec = m.mask_decoder;
  const f = w.file;
  // Bundle metadata may describe only the CLIP side; its SAM is then checked like any other.
  if (!sam && (!enc || !pe || !dec)) return undefined;
  if (!enc || !pe || !dec) throw new WeightError(`${f}: metadata '${key}' lacks ${!enc ? (sam ? 'image_encoder' : 'backbone') : !pe ? 'prompt_encoder' : 'mask_decoder'}; it cannot describe the SAM architecture`);
  const embedDim = int(enc.embed_dim, `${key}.embed_dim`, f);
  const patch = int(enc.patch_size, `${key}.patch_size`, f);
  const img = int(enc.img_size, `${key}.img_size`, f);
  const mlpDim = enc.mlp_dim !== undefined ? int(enc.mlp_dim, `${key}.mlp_dim`, f) : Math.round(embedDim * Number(enc.mlp_ratio));
  if (!Number.isInteger(mlpDim) || mlpDim <= 0) throw new WeightError(`${f}: metadata '${key}' gives neither mlp_dim nor a usable mlp_ratio`);
  if (!Array.isArray(enc.global_attn_indexes)) throw new WeightError(`${f}: metadata ${key}.global_attn_indexes must be a list of block indexes`);
  const posGrid = enc.pos_embed_grid !== undefined ? grid(enc.pos_embed_grid, `${key}.pos_embed_grid`, f) : img / patch;
  const config: SamConfig = {
    imgSize: img,
    patchSize: patch,
    embedDim,
    depth: int(enc.depth, `${key}.depth`, f),
    numHeads: int(enc.num_heads, `${key}.num_heads`, f),
    mlpDim,
    windowSize: int(enc.window_size, `${key}.window_size`, f),
    globalAttnIndexes: (enc.global_attn_indexes as unknown[]).map((v, i) => int(v, `${key}.global_attn_indexes[${i}]`, f)),
    outChans: int(enc.out_chans, `${key}.out_chans`, f),
    posEmbedGrid: posGrid,
    promptEmbedDim: int(pe.embed_dim, `${key}.prompt_encoder.embed_dim`, f),
    imageEmbeddingSize: grid(pe.image_embedding_size, `${key}.prompt_encoder.image_embedding_size`, f),
    maskInChans: int(pe.mask_in_chans, `${key}.prompt_encoder.mask_in_chans`, f),
    decoderDepth: int(dec.depth, `${key}.mask_decoder.depth`, f),
    decoderHeads: int(dec.num_heads, `${key}.mask_decoder.num_heads`, f),
    decoderMlpDim: int(dec.mlp_dim, `${key}.mask_decoder.mlp_dim`, f),
    numMultimaskOutputs: int(dec.num_multimask_outputs, `${key}.mask_decoder.num_multimask_outputs`, f),
    iouHeadDepth: int(dec.iou_head_depth, `${key}.mask_decoder.iou_head_depth`, f),
    iouHeadHiddenDim: int(dec.iou_head_hidden_dim, `${key}.mask_decoder.iou_head_hidden_dim`, f),
  };
  return { config, key };
}

/** The known architecture called `name` (see ALIASES), or undefined. */
export function samArchitectureNamed(name: string): SamArchitectureName | undefined {
  return ALIASES[name.trim().toLowerCase()] ?? ALIASES[name.trim()];
}

/**
 * The architecture `w` is checked against (see the module comment); `derived` is what its shapes
 * say, used only to pick the standard model of its width and to describe a refusal.
 */
export function resolveSamArchitecture(w: WeightShapes, derived: SamConfig, explicit?: SamConfig): SamArchitecture {
  if (explicit) return { config: { ...explicit }, source: 'the explicit config option', standard: false };
  const described = samConfigFromMetadata(w);
  if (described) return { config: described.config, source: `the file's '${described.key}' metadata`, standard: false };
  const model = w.metadata.model;
  const named = model !== undefined ? samArchitectureNamed(model) : undefined;
  if (named) return { config: { ...SAM_ARCHITECTURES[named] }, source: `${named} (named by the file's metadata 'model')`, standard: true };
  const byWidth = BY_WIDTH[derived.embedDim];
  if (byWidth) return { config: { ...SAM_ARCHITECTURES[byWidth] }, source: `${byWidth} (the standard SAM of width ${derived.embedDim})`, standard: true };
  throw new WeightError(
    `${w.file} (${w.family}): a SAM of width ${derived.embedDim} (depth ${derived.depth}, ${derived.numHeads} heads) is not one of the standard ViT-B/L/H ` +
      `(widths 768, 1024, 1280) and the file does not describe its architecture; load a non-standard SAM with an explicit configuration ` +
      `(the 'config' load option, a complete SamConfig; docs/weights.md, "Strict architecture")`,
  );
}
