/**
 * Loading a CLIP model from a safetensors checkpoint: the family (OpenAI / OpenCLIP names, or
 * Hugging Face `CLIPModel` names) is detected from the keys or forced, HF files go through the
 * declarative rename table (src/weights/families/clip-hf.ts), and the model is built strictly.
 * F32, F16 and BF16 files are read; `dtype: 'f16'` stores matrices in f16 on the GPU.
 */
import type { GpuContext } from '../../gpu/context.js';
import { detectFamily, type Family } from '../../weights/families.js';
import { CLIP_HF_TABLE } from '../../weights/families/clip-hf.js';
import type { SafetensorsFile } from '../../weights/safetensors.js';
import { Weights, weightStorage } from '../../weights/weights.js';
import { ClipModel, type ClipModelOptions, clipConfigFrom } from './clip.js';
import { ClipError } from './config.js';

export type ClipFamily = 'clip' | 'clip-hf';

export interface LoadClipOptions extends ClipModelOptions {
  /** Force the key layout instead of detecting it. */
  family?: ClipFamily;
  /** GPU storage of matrices (vectors stay f32). Default: f16 when the context prefers it. */
  dtype?: 'f32' | 'f16';
}

const WHAT: Record<Family, string> = {
  sam: 'an official SAM checkpoint',
  'sam-hf': 'a Hugging Face SAM checkpoint',
  sam2: 'an official SAM 2 checkpoint',
  'sam2-hf': 'a Hugging Face SAM 2 checkpoint',
  samclip: 'a SAM-CLIP bundle',
  clip: 'an OpenAI / OpenCLIP CLIP checkpoint',
  'clip-hf': 'a Hugging Face CLIPModel checkpoint',
};

/** The CLIP key family of `source`, or a ClipError saying what the file is instead. */
export function clipFamilyOf(source: SafetensorsFile): ClipFamily {
  const family = detectFamily(source.keys(), source.name);
  if (family !== 'clip' && family !== 'clip-hf') {
    throw new ClipError(
      `${source.name}: this is ${WHAT[family]}, not a CLIP checkpoint (expected OpenAI names such as 'visual.conv1.weight' + 'token_embedding.weight', or Hugging Face 'vision_model.*' + 'text_model.*')`,
    );
  }
  return family;
}

/** Keys that a forced family must have at least one of (a tower's first tensor). */
const FORCED_SIGNATURE: Record<ClipFamily, RegExp> = {
  clip: /^(visual\.conv1\.weight|token_embedding\.weight)$/,
  'clip-hf': /^(vision_model\.embeddings\.patch_embedding\.weight|text_model\.embeddings\.token_embedding\.weight)$/,
};

/** Canonical text-tower keys (everything but `visual.*` and `logit_scale`). */
function isTextKey(k: string): boolean {
  return !k.startsWith('visual.') && k !== 'logit_scale';
}

/** Load a CLIP model from `source` (which stays open and owned by the caller). */
export async function loadClip(ctx: GpuContext, source: SafetensorsFile, opts: LoadClipOptions = {}): Promise<ClipModel> {
  const family = opts.family ?? clipFamilyOf(source);
  if (family !== 'clip' && family !== 'clip-hf') throw new ClipError(`loadClip: unknown family '${String(family)}' (use 'clip' or 'clip-hf')`);
  // A forced family skips detection (for files whose other keys confuse it), not the sanity check.
  if (opts.family && !source.keys().some((k) => FORCED_SIGNATURE[family].test(k))) {
    throw new ClipError(`${source.name}: family '${family}' was forced, but the file has none of its tower keys (${FORCED_SIGNATURE[family].source}); first keys: ${source.keys().slice(0, 4).join(', ')}`);
  }
  const dtype = weightStorage(ctx, opts.dtype);
  // A tower left out is not uploaded at all (its tensors count as used).
  const towers = opts.towers ?? 'both';
  const include = towers === 'vision' ? (k: string) => !isTextKey(k) : towers === 'text' ? (k: string) => !k.startsWith('visual.') : undefined;
  const table = family === 'clip-hf' ? CLIP_HF_TABLE : null;
  // Names, shapes and architecture are checked on the header: a wrong file fails before any upload.
  clipConfigFrom(Weights.planShapes(source, table, table?.family ?? 'canonical', include), opts);
  const w = await Weights.load(ctx, source, table, { dtype, include });
  try {
    return await ClipModel.create(ctx, w, opts, `${source.name}|${source.dataBytes}|${family}|${dtype}`);
  } catch (e) {
    w.dispose();
    throw e;
  }
}
