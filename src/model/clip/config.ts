/**
 * CLIP hyper-parameters, derived from a checkpoint's tensor shapes (openai/CLIP `build_model` does
 * the same from a state dict), plus the few facts shapes cannot tell: the activation (QuickGELU or
 * exact GELU) and, for some OpenCLIP vision towers, the head width.
 *
 * Activation, in order of precedence:
 *  1. the caller's `act` option;
 *  2. the safetensors `__metadata__`: `clip.act` ("quick_gelu" | "gelu", this engine's key), else
 *     the `act` field of a JSON `clip` entry (what src/weights/random.ts writes), else `hidden_act`
 *     (the Hugging Face config field), else `quick_gelu` ("true" | "false", OpenCLIP's model-config
 *     field);
 *  3. QuickGELU, because the OpenAI checkpoints (and the Hugging Face `openai/clip-vit-*` ones) use
 *     it. OpenCLIP models trained by LAION / DataComp use exact GELU but carry the same key names,
 *     so they need option or metadata: an OpenCLIP model name without `-quickgelu` means GELU.
 *
 * Heads: width // 64 as upstream (openai/CLIP `vision_width // 64`, `transformer_width // 64`;
 * OpenCLIP `width // head_width` with head_width 64), except OpenCLIP vision towers whose configs
 * set another head width (ViT-H/14, ViT-g/14, ViT-bigG/14: see VISION_HEAD_WIDTH). A model built
 * with other head counts (the reference fixtures' tiny text tower has 4 heads at width 64) needs
 * the `visionHeads` / `textHeads` option or the `clip.vision_heads` / `clip.text_heads` metadata
 * (or `visionHeads` / `transformerHeads` in a JSON `clip` entry).
 */
import { SamclipError } from '../../gpu/errors.js';
import type { WeightShapes } from '../../weights/weights.js';

/** A CLIP checkpoint, option or input that cannot be used. */
export class ClipError extends SamclipError {
  override name = 'ClipError';
}

export type ClipAct = 'quick_gelu' | 'gelu';

/** LayerNorm eps of every CLIP LayerNorm (torch default). */
export const CLIP_LN_EPS = 1e-5;

/** Metadata key this engine reads (and its converters write) for the activation. */
export const CLIP_ACT_METADATA_KEY = 'clip.act';
/** Metadata keys for head counts that differ from the width rule (decimal integers). */
export const CLIP_HEADS_METADATA_KEYS = { vision: 'clip.vision_heads', text: 'clip.text_heads' } as const;

/**
 * OpenCLIP vision widths whose model configs use a head width other than 64
 * (open_clip model_configs: ViT-H-14 1280/80, ViT-g-14 1408/88, ViT-bigG-14 1664/104).
 */
export const VISION_HEAD_WIDTH: Readonly<Record<number, number>> = { 1280: 80, 1408: 88, 1664: 104 };

export interface TowerConfig {
  width: number;
  layers: number;
  heads: number;
  mlpWidth: number;
  /** Joint embedding size (columns of the projection). */
  embedDim: number;
  act: ClipAct;
  eps: number;
}

export interface VisionConfig extends TowerConfig {
  patch: number;
  /** Side of the square token grid the position table was trained for. */
  grid: number;
  /** grid * patch: the native input size. */
  imageSize: number;
}

export interface TextConfig extends TowerConfig {
  /** Rows of the position table (77). */
  contextLength: number;
  vocabSize: number;
}

export interface ConfigOptions {
  act?: ClipAct;
  heads?: number;
}

function shapeOf(w: WeightShapes, key: string, rank: number): readonly number[] {
  const s = w.shape(key);
  if (!s) throw new ClipError(`${w.file} (${w.family}): missing tensor '${key}', needed to read the model's hyper-parameters`);
  if (s.length !== rank) throw new ClipError(`${w.file} (${w.family}): tensor '${key}' has shape [${s.join(', ')}], expected ${rank} dims`);
  return s;
}

/** Number of `<prefix>transformer.resblocks.N.` blocks, checked to be 0..N-1 without gaps. */
export function countBlocks(w: WeightShapes, prefix: string): number {
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}transformer\\.resblocks\\.(\\d+)\\.`);
  const ids = new Set<number>();
  for (const k of w.keys()) {
    const m = re.exec(k);
    if (m) ids.add(Number(m[1]));
  }
  const n = ids.size;
  for (let i = 0; i < n; i++) {
    if (!ids.has(i)) throw new ClipError(`${w.file}: '${prefix}transformer.resblocks' has blocks [${[...ids].sort((a, b) => a - b).join(', ')}], block ${i} is missing`);
  }
  if (n === 0) throw new ClipError(`${w.file} (${w.family}): no '${prefix}transformer.resblocks.N.*' tensors`);
  return n;
}

function parseAct(v: string, where: string): ClipAct {
  const s = v.trim().toLowerCase();
  if (s === 'quick_gelu' || s === 'quickgelu') return 'quick_gelu';
  if (s === 'gelu') return 'gelu';
  throw new ClipError(`${where}: activation '${v}' is not supported (use 'quick_gelu' or 'gelu')`);
}

/** The activation to use (see the module comment for the order). */
/** The JSON object under metadata `clip`, if any (e.g. src/weights/random.ts's preset). */
function clipJson(metadata: Readonly<Record<string, string>>, file: string): Record<string, unknown> {
  const raw = metadata.clip;
  if (raw === undefined) return {};
  try {
    const v: unknown = JSON.parse(raw);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new ClipError(`${file} metadata 'clip': expected a JSON object, got '${raw.slice(0, 60)}'`);
}

export function resolveAct(metadata: Readonly<Record<string, string>>, file: string, option?: ClipAct): ClipAct {
  if (option !== undefined) return parseAct(option, 'option act');
  const own = metadata[CLIP_ACT_METADATA_KEY];
  if (own !== undefined) return parseAct(own, `${file} metadata '${CLIP_ACT_METADATA_KEY}'`);
  const json = clipJson(metadata, file).act;
  if (json !== undefined) return parseAct(String(json), `${file} metadata 'clip' (act)`);
  const hf = metadata.hidden_act;
  if (hf !== undefined) return parseAct(hf, `${file} metadata 'hidden_act'`);
  const oc = metadata.quick_gelu;
  if (oc !== undefined) {
    const s = oc.trim().toLowerCase();
    if (s !== 'true' && s !== 'false') throw new ClipError(`${file} metadata 'quick_gelu': expected "true" or "false", got '${oc}'`);
    return s === 'true' ? 'quick_gelu' : 'gelu';
  }
  return 'quick_gelu';
}

/** Head count from an option, else from `clip.vision_heads` / `clip.text_heads` metadata, else undefined. */
export function headsOverride(metadata: Readonly<Record<string, string>>, file: string, tower: 'vision' | 'text', option?: number): number | undefined {
  if (option !== undefined) return option;
  let where = `metadata '${CLIP_HEADS_METADATA_KEYS[tower]}'`;
  let v = metadata[CLIP_HEADS_METADATA_KEYS[tower]];
  if (v === undefined) {
    const field = tower === 'vision' ? 'visionHeads' : 'transformerHeads';
    const j = clipJson(metadata, file)[field];
    if (j === undefined) return undefined;
    where = `metadata 'clip' (${field})`;
    v = String(j);
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ClipError(`${file} ${where}: expected a positive integer, got '${v}'`);
  return n;
}

function headsFor(width: number, headWidth: number, option: number | undefined, what: string): number {
  // Integer division, as upstream (`vision_width // 64`): a 96-wide tower has one 96-wide head.
  const heads = option ?? Math.floor(width / headWidth);
  if (!Number.isInteger(heads) || heads < 1 || width % heads !== 0) {
    throw new ClipError(
      `${what}: width ${width} cannot be split into ${option !== undefined ? option : `width // ${headWidth} = ${heads}`} heads; pass the head count explicitly`,
    );
  }
  return heads;
}

/** The vision tower's hyper-parameters from `<prefix>conv1.weight`, the position table, the blocks and `proj`. */
export function visionConfigFromWeights(w: WeightShapes, prefix: string, act: ClipAct, opts: { heads?: number } = {}): VisionConfig {
  const [width, inCh, patch, patchW] = shapeOf(w, `${prefix}conv1.weight`, 4) as [number, number, number, number];
  if (inCh !== 3 || patch !== patchW) {
    throw new ClipError(`${w.file}: '${prefix}conv1.weight' [${width}, ${inCh}, ${patch}, ${patchW}] is not a square RGB patch embedding`);
  }
  const [rows, pw] = shapeOf(w, `${prefix}positional_embedding`, 2) as [number, number];
  const grid = Math.round(Math.sqrt(rows - 1));
  if (grid * grid + 1 !== rows || pw !== width) {
    throw new ClipError(`${w.file}: '${prefix}positional_embedding' [${rows}, ${pw}] is not [grid² + 1, ${width}] (class token + square grid)`);
  }
  const [projIn, embedDim] = shapeOf(w, `${prefix}proj`, 2) as [number, number];
  if (projIn !== width) throw new ClipError(`${w.file}: '${prefix}proj' [${projIn}, ${embedDim}] does not take the tower width ${width}`);
  const layers = countBlocks(w, prefix);
  const mlpWidth = shapeOf(w, `${prefix}transformer.resblocks.0.mlp.c_fc.weight`, 2)[0]!;
  const heads = headsFor(width, VISION_HEAD_WIDTH[width] ?? 64, opts.heads, `${w.file} vision tower`);
  return Object.freeze({ width, layers, heads, mlpWidth, embedDim, act, eps: CLIP_LN_EPS, patch, grid, imageSize: grid * patch });
}

/** The text tower's hyper-parameters from the token and position tables, the blocks and `text_projection`. */
export function textConfigFromWeights(w: WeightShapes, prefix: string, act: ClipAct, opts: { heads?: number } = {}): TextConfig {
  const [vocabSize, width] = shapeOf(w, `${prefix}token_embedding.weight`, 2) as [number, number];
  const [contextLength, pw] = shapeOf(w, `${prefix}positional_embedding`, 2) as [number, number];
  if (pw !== width) throw new ClipError(`${w.file}: '${prefix}positional_embedding' [${contextLength}, ${pw}] does not match the token width ${width}`);
  const [projIn, embedDim] = shapeOf(w, `${prefix}text_projection`, 2) as [number, number];
  if (projIn !== width) throw new ClipError(`${w.file}: '${prefix}text_projection' [${projIn}, ${embedDim}] does not take the tower width ${width}`);
  const layers = countBlocks(w, prefix);
  const mlpWidth = shapeOf(w, `${prefix}transformer.resblocks.0.mlp.c_fc.weight`, 2)[0]!;
  const heads = headsFor(width, 64, opts.heads, `${w.file} text tower`);
  return Object.freeze({ width, layers, heads, mlpWidth, embedDim, act, eps: CLIP_LN_EPS, contextLength, vocabSize });
}
