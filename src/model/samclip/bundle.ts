/**
 * The SAM-CLIP bundle (docs/samclip-bundle.md): one safetensors file holding a SAM backbone + SAM
 * head (official segment-anything names), a CLIP head (`clip_head.*`), an OpenAI / OpenCLIP text
 * tower under `text.`, and `logit_scale`; hyper-parameters in `__metadata__["samclip"]` (JSON).
 *
 * Everything that shapes can tell is read from the shapes (widths, depths, head dims, MLP widths,
 * the grid the relative-position tables were made for); the metadata supplies what they cannot
 * (text heads and activation, mask-decoder heads, LayerNorm eps) and is cross-checked against the
 * shapes where both speak. Validation is strict and runs on the header alone, before any upload:
 * a missing part (backbone, SAM head, CLIP head, text tower, logit scale) is named as such, then
 * every expected key must be present with its shape and nothing else may be there.
 */
import type { GpuContext } from '../../gpu/context.js';
import { SamclipError, fmtShape } from '../../gpu/errors.js';
import { type SafetensorsFile, openSafetensors } from '../../weights/safetensors.js';
import { WeightError, Weights } from '../../weights/weights.js';
import type { ClipAct, TextConfig } from '../clip/config.js';
import { type SamConfig, type TensorSpec, type WeightShapes, samConfigFromWeights, samTensorSpec } from '../sam/config.js';
import { resolveSamArchitecture } from '../sam/architectures.js';
import { checkSamWeights, plannedShapes } from '../sam/load.js';

/** A bundle (or bundle part) that cannot be used; the message names the file and the key. */
export class SamclipBundleError extends SamclipError {
  override name = 'SamclipBundleError';
}

export const SAMCLIP_METADATA_KEY = 'samclip';
export const SAMCLIP_BUNDLE_FORMAT = 'samclip-bundle/1';
export const CLIP_HEAD_PREFIX = 'clip_head';
export const TEXT_PREFIX = 'text.';

/** The CLIP head (DESIGN.md section 5): SAM blocks with global attention, then LayerNorm + MLP. */
export interface ClipHeadConfig {
  depth: number;
  /** Token width (= the backbone width). */
  dim: number;
  numHeads: number;
  /** Hidden width of each block's MLP (lin1). */
  mlpDim: number;
  /** Side of the token grid the stored rel-pos tables were made for ((rows + 1) / 2). */
  relPosSize: number;
  /** LayerNorm eps inside the blocks (SAM's 1e-6). */
  blockEps: number;
  /** eps of `clip_head.norm` (torch default 1e-5). */
  normEps: number;
  /** [in, hidden..., out] of the projection MLP `clip_head.mlp.{0,2,4,...}` (GELU between). */
  mlpWidths: number[];
}

export interface SamclipConfig {
  sam: SamConfig;
  clipHead: ClipHeadConfig;
  text: TextConfig;
  /** Joint embedding size (CLIP-head output = text projection output). */
  embedDim: number;
  /** The native (refinement) input size: the SAM image size (1024). */
  nativeResolution: number;
  /** Default input sizes: head-only segmentation and classification. */
  resolutions: { native: number; seg: number; cls: number };
  pixelMean: [number, number, number];
  pixelStd: [number, number, number];
}

/** The metadata JSON as written by tools/assemble-samclip-bundle.ts (every field optional on read). */
export interface SamclipMetadata {
  format?: string;
  model?: string;
  backbone?: Record<string, unknown>;
  prompt_encoder?: Record<string, unknown>;
  mask_decoder?: { num_heads?: number } & Record<string, unknown>;
  clip_head?: { block_norm_eps?: number; norm_eps?: number; num_heads?: number; mlp_widths?: number[]; mlp_act?: string } & Record<string, unknown>;
  text?: { heads?: number; act?: string; ln_eps?: number } & Record<string, unknown>;
  embed_dim?: number;
  native_resolution?: number;
  resolutions?: { native?: number; seg?: number; cls?: number };
  pixel_mean?: number[];
  pixel_std?: number[];
}

const SAM_DEFAULT_MEAN: [number, number, number] = [123.675, 116.28, 103.53];
const SAM_DEFAULT_STD: [number, number, number] = [58.395, 57.12, 57.375];

const PARTS = {
  backbone: /^image_encoder\./,
  samHead: /^(prompt_encoder|mask_decoder)\./,
  clipHead: /^clip_head\./,
  text: /^text\./,
} as const;

/** `__metadata__["samclip"]` parsed, or {} when absent. */
export function readSamclipMetadata(file: string, metadata: Readonly<Record<string, string>>): SamclipMetadata {
  const raw = metadata[SAMCLIP_METADATA_KEY];
  if (raw === undefined) return {};
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch (e) {
    throw new SamclipBundleError(`${file}: __metadata__["${SAMCLIP_METADATA_KEY}"] is not valid JSON (${(e as Error).message})`);
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) {
    throw new SamclipBundleError(`${file}: __metadata__["${SAMCLIP_METADATA_KEY}"] must be a JSON object`);
  }
  const meta = m as SamclipMetadata;
  if (meta.format !== undefined && meta.format !== SAMCLIP_BUNDLE_FORMAT) {
    throw new SamclipBundleError(`${file}: bundle format '${meta.format}' is not supported (this engine reads '${SAMCLIP_BUNDLE_FORMAT}')`);
  }
  return meta;
}

function need(w: WeightShapes, key: string, rank: number): readonly number[] {
  const s = w.shape(key);
  if (!s) throw new SamclipBundleError(`${w.file}: missing tensor '${key}', needed to derive the SAM-CLIP configuration`);
  if (s.length !== rank) throw new SamclipBundleError(`${w.file}: tensor '${key}' has shape ${fmtShape(s)}, expected rank ${rank}`);
  return s;
}

function countIndexed(w: WeightShapes, prefix: string, probe: string, step = 1): number {
  let n = 0;
  while (w.has(`${prefix}.${n * step}.${probe}`)) n++;
  return n;
}

function positiveNumber(v: unknown, what: string, file: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new SamclipBundleError(`${file}: metadata ${what} must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** The CLIP head's configuration from `clip_head.*` shapes (+ metadata for eps). */
export function clipHeadConfigFromShapes(w: WeightShapes, meta: SamclipMetadata = {}): ClipHeadConfig {
  const p = CLIP_HEAD_PREFIX;
  const depth = countIndexed(w, `${p}.blocks`, 'attn.qkv.weight');
  if (depth === 0) throw new SamclipBundleError(`${w.file}: no '${p}.blocks.N.attn.qkv.weight' tensors: the bundle has no CLIP head blocks`);
  const dim = need(w, `${p}.blocks.0.norm1.weight`, 1)[0]!;
  const mlpDim = need(w, `${p}.blocks.0.mlp.lin1.weight`, 2)[0]!;
  const [rows, headDim] = need(w, `${p}.blocks.0.attn.rel_pos_h`, 2) as [number, number];
  const relPosSize = (rows + 1) / 2;
  if (!Number.isInteger(relPosSize)) throw new SamclipBundleError(`${w.file}: '${p}.blocks.0.attn.rel_pos_h' has ${rows} rows, not 2 * size - 1`);
  if (dim % headDim !== 0) throw new SamclipBundleError(`${w.file}: CLIP-head width ${dim} is not a multiple of the rel-pos head dim ${headDim}`);
  const numHeads = dim / headDim;
  const metaHeads = meta.clip_head?.num_heads;
  if (metaHeads !== undefined && metaHeads !== numHeads) {
    throw new SamclipBundleError(`${w.file}: metadata clip_head.num_heads ${metaHeads} disagrees with the rel-pos tables (${dim} / ${headDim} = ${numHeads} heads)`);
  }
  // The projection MLP: Linear layers at indices 0, 2, 4, ... (GELU modules in between hold no weights).
  const layers = countIndexed(w, `${p}.mlp`, 'weight', 2);
  if (layers === 0) throw new SamclipBundleError(`${w.file}: no '${p}.mlp.0.weight': the CLIP head has no projection MLP`);
  const widths = [need(w, `${p}.mlp.0.weight`, 2)[1]!];
  for (let i = 0; i < layers; i++) {
    const [o, inp] = need(w, `${p}.mlp.${2 * i}.weight`, 2) as [number, number];
    if (inp !== widths[i]) throw new SamclipBundleError(`${w.file}: '${p}.mlp.${2 * i}.weight' ${fmtShape([o, inp])} takes ${inp} features, the previous layer gives ${widths[i]}`);
    widths.push(o);
  }
  if (widths[0] !== dim) throw new SamclipBundleError(`${w.file}: '${p}.mlp.0.weight' takes ${widths[0]} features, the head width is ${dim}`);
  const metaWidths = meta.clip_head?.mlp_widths;
  if (metaWidths && fmtShape(metaWidths) !== fmtShape(widths)) {
    throw new SamclipBundleError(`${w.file}: metadata clip_head.mlp_widths ${fmtShape(metaWidths)} disagrees with the weights ${fmtShape(widths)}`);
  }
  const act = meta.clip_head?.mlp_act;
  if (act !== undefined && act !== 'gelu') throw new SamclipBundleError(`${w.file}: metadata clip_head.mlp_act '${act}' is not supported (only exact 'gelu')`);
  return Object.freeze({
    depth,
    dim,
    numHeads,
    mlpDim,
    relPosSize,
    blockEps: positiveNumber(meta.clip_head?.block_norm_eps, 'clip_head.block_norm_eps', w.file) ?? 1e-6,
    normEps: positiveNumber(meta.clip_head?.norm_eps, 'clip_head.norm_eps', w.file) ?? 1e-5,
    mlpWidths: widths,
  });
}

/** Every `clip_head.*` tensor for a configuration (init kinds for the random-weights path). */
export function clipHeadTensorSpec(c: ClipHeadConfig): TensorSpec[] {
  const out: TensorSpec[] = [];
  const p = CLIP_HEAD_PREFIX;
  const hd = c.dim / c.numHeads;
  const rows = 2 * c.relPosSize - 1;
  for (let i = 0; i < c.depth; i++) {
    const b = `${p}.blocks.${i}`;
    out.push(
      { name: `${b}.norm1.weight`, shape: [c.dim], init: 'norm' },
      { name: `${b}.norm1.bias`, shape: [c.dim], init: 'bias' },
      { name: `${b}.attn.rel_pos_h`, shape: [rows, hd], init: 'rel-pos' },
      { name: `${b}.attn.rel_pos_w`, shape: [rows, hd], init: 'rel-pos' },
      { name: `${b}.attn.qkv.weight`, shape: [3 * c.dim, c.dim], init: 'linear-qk' },
      { name: `${b}.attn.qkv.bias`, shape: [3 * c.dim], init: 'bias' },
      { name: `${b}.attn.proj.weight`, shape: [c.dim, c.dim], init: 'linear' },
      { name: `${b}.attn.proj.bias`, shape: [c.dim], init: 'bias' },
      { name: `${b}.norm2.weight`, shape: [c.dim], init: 'norm' },
      { name: `${b}.norm2.bias`, shape: [c.dim], init: 'bias' },
      { name: `${b}.mlp.lin1.weight`, shape: [c.mlpDim, c.dim], init: 'linear' },
      { name: `${b}.mlp.lin1.bias`, shape: [c.mlpDim], init: 'bias' },
      { name: `${b}.mlp.lin2.weight`, shape: [c.dim, c.mlpDim], init: 'linear' },
      { name: `${b}.mlp.lin2.bias`, shape: [c.dim], init: 'bias' },
    );
  }
  out.push({ name: `${p}.norm.weight`, shape: [c.dim], init: 'norm' }, { name: `${p}.norm.bias`, shape: [c.dim], init: 'bias' });
  for (let i = 0; i + 1 < c.mlpWidths.length; i++) {
    out.push(
      { name: `${p}.mlp.${2 * i}.weight`, shape: [c.mlpWidths[i + 1]!, c.mlpWidths[i]!], init: 'linear' },
      { name: `${p}.mlp.${2 * i}.bias`, shape: [c.mlpWidths[i + 1]!], init: 'bias' },
    );
  }
  return out;
}

function parseAct(v: string, file: string): ClipAct {
  const s = v.trim().toLowerCase();
  if (s === 'gelu') return 'gelu';
  if (s === 'quick_gelu' || s === 'quickgelu') return 'quick_gelu';
  throw new SamclipBundleError(`${file}: metadata text.act '${v}' is not supported (use 'gelu' or 'quick_gelu')`);
}

/**
 * The text tower's configuration from `text.*` shapes. Heads and activation come from the
 * metadata (`text.heads`, `text.act`); without it: width / 64 heads and exact GELU (OpenCLIP's
 * DataComp / LAION towers, which SAM-CLIP distils from).
 */
export function textConfigFromShapes(w: WeightShapes, meta: SamclipMetadata = {}, prefix = TEXT_PREFIX): TextConfig {
  const [vocabSize, width] = need(w, `${prefix}token_embedding.weight`, 2) as [number, number];
  const [contextLength, pw] = need(w, `${prefix}positional_embedding`, 2) as [number, number];
  if (pw !== width) throw new SamclipBundleError(`${w.file}: '${prefix}positional_embedding' ${fmtShape([contextLength, pw])} does not match the token width ${width}`);
  const [projIn, embedDim] = need(w, `${prefix}text_projection`, 2) as [number, number];
  if (projIn !== width) throw new SamclipBundleError(`${w.file}: '${prefix}text_projection' ${fmtShape([projIn, embedDim])} does not take the tower width ${width}`);
  const layers = countIndexed(w, `${prefix}transformer.resblocks`, 'attn.in_proj_weight');
  if (layers === 0) throw new SamclipBundleError(`${w.file}: no '${prefix}transformer.resblocks.N' tensors`);
  const mlpWidth = need(w, `${prefix}transformer.resblocks.0.mlp.c_fc.weight`, 2)[0]!;
  const heads = meta.text?.heads ?? Math.max(1, Math.floor(width / 64));
  if (!Number.isInteger(heads) || heads < 1 || width % heads !== 0) {
    throw new SamclipBundleError(`${w.file}: the text width ${width} does not split into ${heads} heads (metadata text.heads)`);
  }
  const act = meta.text?.act !== undefined ? parseAct(String(meta.text.act), w.file) : 'gelu';
  const eps = positiveNumber(meta.text?.ln_eps, 'text.ln_eps', w.file) ?? 1e-5;
  return Object.freeze({ width, layers, heads, mlpWidth, embedDim, act, eps, contextLength, vocabSize });
}

/** Every `text.*` tensor of an OpenAI / OpenCLIP text tower. */
export function textTensorSpec(c: TextConfig, prefix = TEXT_PREFIX): TensorSpec[] {
  const W = c.width;
  const out: TensorSpec[] = [
    { name: `${prefix}token_embedding.weight`, shape: [c.vocabSize, W], init: 'embed' },
    { name: `${prefix}positional_embedding`, shape: [c.contextLength, W], init: 'pos' },
  ];
  for (let i = 0; i < c.layers; i++) {
    const b = `${prefix}transformer.resblocks.${i}`;
    out.push(
      { name: `${b}.ln_1.weight`, shape: [W], init: 'norm' },
      { name: `${b}.ln_1.bias`, shape: [W], init: 'bias' },
      { name: `${b}.attn.in_proj_weight`, shape: [3 * W, W], init: 'linear-qk' },
      { name: `${b}.attn.in_proj_bias`, shape: [3 * W], init: 'bias' },
      { name: `${b}.attn.out_proj.weight`, shape: [W, W], init: 'linear' },
      { name: `${b}.attn.out_proj.bias`, shape: [W], init: 'bias' },
      { name: `${b}.ln_2.weight`, shape: [W], init: 'norm' },
      { name: `${b}.ln_2.bias`, shape: [W], init: 'bias' },
      { name: `${b}.mlp.c_fc.weight`, shape: [c.mlpWidth, W], init: 'linear' },
      { name: `${b}.mlp.c_fc.bias`, shape: [c.mlpWidth], init: 'bias' },
      { name: `${b}.mlp.c_proj.weight`, shape: [W, c.mlpWidth], init: 'linear' },
      { name: `${b}.mlp.c_proj.bias`, shape: [W], init: 'bias' },
    );
  }
  out.push(
    { name: `${prefix}ln_final.weight`, shape: [W], init: 'norm' },
    { name: `${prefix}ln_final.bias`, shape: [W], init: 'bias' },
    { name: `${prefix}text_projection`, shape: [W, c.embedDim], init: 'proj' },
  );
  return out;
}

/** The complete key set of a bundle, in file order of the parts. */
export function samclipTensorSpec(cfg: SamclipConfig): TensorSpec[] {
  return [
    { name: 'logit_scale', shape: [], init: 'log-scale' },
    ...samTensorSpec(cfg.sam),
    ...clipHeadTensorSpec(cfg.clipHead),
    ...textTensorSpec(cfg.text),
  ];
}

/** A view of the shapes restricted to keys matching `re`. */
function subset(w: WeightShapes, re: RegExp): WeightShapes {
  const keys = w.keys().filter((k) => re.test(k));
  const set = new Set(keys);
  return { file: w.file, family: w.family, metadata: w.metadata, has: (k) => set.has(k), shape: (k) => (set.has(k) ? w.shape(k) : undefined), keys: () => keys };
}

/** Which of the four parts are present (by key prefix). */
export function bundleParts(keys: readonly string[]): Record<keyof typeof PARTS | 'logitScale', boolean> {
  const has = (re: RegExp) => keys.some((k) => re.test(k));
  return {
    backbone: has(PARTS.backbone),
    samHead: has(PARTS.samHead),
    clipHead: has(PARTS.clipHead),
    text: has(PARTS.text),
    logitScale: keys.includes('logit_scale'),
  };
}

/**
 * Derive the configuration and validate the whole key set from shapes (a header, or a weight set).
 * Throws SamclipBundleError naming what is missing, wrongly shaped or unexpected.
 */
export function samclipConfigFromShapes(w: WeightShapes): SamclipConfig {
  const parts = bundleParts(w.keys());
  const what = `${w.file}`;
  if (!parts.backbone) throw new SamclipBundleError(`${what}: not a SAM-CLIP bundle: no SAM backbone ('image_encoder.*' keys)`);
  if (!parts.samHead) {
    throw new SamclipBundleError(`${what}: the bundle is missing its SAM head ('prompt_encoder.*' and 'mask_decoder.*' keys); a SAM-CLIP bundle holds both heads`);
  }
  if (!parts.clipHead) {
    throw new SamclipBundleError(
      `${what}: the bundle is missing its CLIP head ('clip_head.*' keys); this looks like a plain SAM checkpoint: ` +
        `use SamClip.composite({ sam, clip }) with public CLIP weights, or assemble a bundle with tools/assemble-samclip-bundle.ts`,
    );
  }
  if (!parts.text) throw new SamclipBundleError(`${what}: the bundle is missing its text tower ('text.*' keys: an OpenCLIP text tower under the 'text.' prefix)`);
  if (!parts.logitScale) throw new SamclipBundleError(`${what}: the bundle has no 'logit_scale' scalar (stored as ln(scale), e.g. ln 100)`);
  const meta = readSamclipMetadata(w.file, w.metadata);

  const samShapes = subset(w, /^(image_encoder|prompt_encoder|mask_decoder)\./);
  let sam: SamConfig;
  try {
    const heads = meta.mask_decoder?.num_heads;
    const derived = samConfigFromWeights(samShapes, heads !== undefined ? { decoderHeads: heads } : {});
    // The bundle's metadata describes its SAM; a bundle without it is checked against the
    // standard SAM of its width (a truncated backbone must not load as a shallower one).
    const arch = resolveSamArchitecture(samShapes, derived);
    sam = Object.freeze({ ...arch.config }) as SamConfig;
    checkSamWeights(samShapes, sam, arch.source);
  } catch (e) {
    if (e instanceof WeightError) throw new SamclipBundleError(`SAM part: ${e.message}`);
    throw e;
  }
  const clipHead = clipHeadConfigFromShapes(w, meta);
  const text = textConfigFromShapes(w, meta);
  if (clipHead.dim !== sam.embedDim) {
    throw new SamclipBundleError(`${what}: the CLIP head is ${clipHead.dim} wide, the backbone ${sam.embedDim}: the head reads the backbone tokens before the neck`);
  }
  const embedDim = clipHead.mlpWidths[clipHead.mlpWidths.length - 1]!;
  if (embedDim !== text.embedDim) {
    throw new SamclipBundleError(`${what}: the CLIP head gives ${embedDim}-d embeddings, the text projection ${text.embedDim}-d`);
  }
  if (meta.embed_dim !== undefined && meta.embed_dim !== embedDim) {
    throw new SamclipBundleError(`${what}: metadata embed_dim ${meta.embed_dim} disagrees with the weights (${embedDim})`);
  }
  const native = meta.native_resolution ?? sam.imgSize;
  if (native !== sam.imgSize) throw new SamclipBundleError(`${what}: metadata native_resolution ${native} disagrees with the backbone's ${sam.imgSize}-px position table`);
  // 448 / 224 at 1024 px: the same fractions of the native size when the metadata is silent.
  const p = sam.patchSize;
  const frac = (f: number) => Math.max(p, Math.round((native * f) / p) * p);
  const resolutions = {
    native,
    seg: meta.resolutions?.seg ?? frac(448 / 1024),
    cls: meta.resolutions?.cls ?? frac(224 / 1024),
  };
  for (const [k, v] of Object.entries(resolutions)) {
    if (!Number.isInteger(v) || v < p || v % p !== 0) throw new SamclipBundleError(`${what}: resolution ${k} = ${v} is not a positive multiple of the ${p}-px patch`);
  }
  const triple = (v: number[] | undefined, dflt: [number, number, number], name: string): [number, number, number] => {
    if (v === undefined) return dflt;
    if (!Array.isArray(v) || v.length !== 3 || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      throw new SamclipBundleError(`${what}: metadata ${name} must be three numbers, got ${JSON.stringify(v)}`);
    }
    return [v[0]!, v[1]!, v[2]!];
  };
  const cfg: SamclipConfig = {
    sam,
    clipHead,
    text,
    embedDim,
    nativeResolution: native,
    resolutions,
    pixelMean: triple(meta.pixel_mean, SAM_DEFAULT_MEAN, 'pixel_mean'),
    pixelStd: triple(meta.pixel_std, SAM_DEFAULT_STD, 'pixel_std'),
  };
  checkBundleKeys(w, cfg);
  return Object.freeze(cfg);
}

/** Strictness: every expected tensor with its shape, nothing else. */
export function checkBundleKeys(w: WeightShapes, cfg: SamclipConfig): void {
  const expected = new Set<string>();
  for (const s of samclipTensorSpec(cfg)) {
    expected.add(s.name);
    const got = w.shape(s.name);
    if (!got) throw new SamclipBundleError(`${w.file}: missing tensor '${s.name}' ${fmtShape(s.shape)}`);
    if (fmtShape(got) !== fmtShape(s.shape)) throw new SamclipBundleError(`${w.file}: tensor '${s.name}' has shape ${fmtShape(got)}, expected ${fmtShape(s.shape)}`);
  }
  const extra = w.keys().filter((k) => !expected.has(k));
  if (extra.length) {
    const shown = extra.slice(0, 8).map((k) => `'${k}' ${fmtShape(w.shape(k)!)}`);
    throw new SamclipBundleError(`${w.file}: ${extra.length} unexpected tensor(s) in the bundle: ${shown.join(', ')}${extra.length > 8 ? ', ...' : ''}`);
  }
}

/** The SAM part of bundle metadata (backbone, prompt encoder, mask decoder) for a SAM configuration. */
export function samBundleMetadata(s: SamConfig): Required<Pick<SamclipMetadata, 'backbone' | 'prompt_encoder' | 'mask_decoder'>> {
  return {
    backbone: {
      type: 'sam_vit',
      img_size: s.imgSize,
      patch_size: s.patchSize,
      embed_dim: s.embedDim,
      depth: s.depth,
      num_heads: s.numHeads,
      mlp_ratio: s.mlpDim / s.embedDim,
      window_size: s.windowSize,
      global_attn_indexes: s.globalAttnIndexes,
      use_rel_pos: true,
      norm_eps: 1e-6,
      out_chans: s.outChans,
      pos_embed_grid: [s.posEmbedGrid, s.posEmbedGrid],
    },
    prompt_encoder: {
      embed_dim: s.promptEmbedDim,
      image_embedding_size: [s.imageEmbeddingSize, s.imageEmbeddingSize],
      input_image_size: [s.imgSize, s.imgSize],
      mask_in_chans: s.maskInChans,
      mask_input_size: [4 * s.imageEmbeddingSize, 4 * s.imageEmbeddingSize],
    },
    mask_decoder: {
      transformer_dim: s.promptEmbedDim,
      depth: s.decoderDepth,
      num_heads: s.decoderHeads,
      mlp_dim: s.decoderMlpDim,
      num_multimask_outputs: s.numMultimaskOutputs,
      iou_head_depth: s.iouHeadDepth,
      iou_head_hidden_dim: s.iouHeadHiddenDim,
    },
  };
}

/** The metadata JSON for a configuration (what the assembly tool writes). */
export function samclipMetadataJson(cfg: SamclipConfig, model = 'samclip'): string {
  const h = cfg.clipHead;
  const t = cfg.text;
  return JSON.stringify({
    format: SAMCLIP_BUNDLE_FORMAT,
    model,
    ...samBundleMetadata(cfg.sam),
    clip_head: {
      depth: h.depth,
      dim: h.dim,
      num_heads: h.numHeads,
      mlp_ratio: h.mlpDim / h.dim,
      window_size: 0,
      use_rel_pos: true,
      rel_pos_input_size: [h.relPosSize, h.relPosSize],
      block_norm_eps: h.blockEps,
      norm_eps: h.normEps,
      mlp_widths: h.mlpWidths,
      mlp_act: 'gelu',
      pool: 'max over all tokens',
    },
    text: {
      width: t.width,
      layers: t.layers,
      heads: t.heads,
      context_length: t.contextLength,
      vocab_size: t.vocabSize,
      embed_dim: t.embedDim,
      act: t.act,
      ln_eps: t.eps,
    },
    embed_dim: cfg.embedDim,
    native_resolution: cfg.nativeResolution,
    resolutions: cfg.resolutions,
    pixel_mean: cfg.pixelMean,
    pixel_std: cfg.pixelStd,
  });
}

export interface LoadBundleOptions {
  /** GPU storage of matrices and convolution kernels (vectors stay f32). Default 'f32'. */
  dtype?: 'f32' | 'f16';
}

/** Validate a bundle from its header alone (nothing is read or uploaded). */
export function validateSamclipBundle(file: SafetensorsFile): SamclipConfig {
  return samclipConfigFromShapes(plannedShapes(file, 'samclip', null));
}

/**
 * Open (path, URL or an open file), validate and upload a bundle. The returned weights hold every
 * tensor under its bundle name; the caller owns them.
 */
export async function loadSamclipBundle(
  ctx: GpuContext,
  src: string | SafetensorsFile,
  opts: LoadBundleOptions = {},
): Promise<{ weights: Weights; config: SamclipConfig }> {
  const { file, owned } = await openSafetensors(src);
  try {
    const config = validateSamclipBundle(file);
    const weights = await Weights.load(ctx, file, null, { dtype: opts.dtype });
    return { weights, config };
  } finally {
    if (owned) await file.close();
  }
}
