/**
 * Loading a SAM 2 / 2.1 checkpoint: the official `sam2.1_hiera_*.pt` (PyTorch zip, read without
 * running its pickle, through src/weights/pth and seen as a safetensors file), a safetensors file
 * under official names, or Hugging Face transformers' `Sam2Model` `model.safetensors` (renamed by
 * src/weights/families/sam2-hf.ts). The family is detected from the key names.
 *
 * Strict: the configuration is derived from the header's shapes (config.ts), then the complete
 * key set is checked against what that configuration implies; a missing, unexpected or misshaped
 * tensor is an error naming the key and both shapes, before anything is uploaded. The keys of the
 * video model (memory attention and encoder, object pointers: `SAM2_VIDEO_ONLY`) are recognised by
 * name and not loaded; any other stray key is an error.
 */
import type { GpuContext } from '../../gpu/context.js';
import { type Family, detectFamily } from '../../weights/families.js';
import { SAM2_HF_VIDEO_ONLY, sam2HfRenameTable } from '../../weights/families/sam2-hf.js';
import { openPth, openPthFile } from '../../weights/pth.js';
import { pthAsSafetensors } from '../../weights/pth-safetensors.js';
import { SafetensorsFile } from '../../weights/safetensors.js';
import { type RenameTable, WeightError, Weights } from '../../weights/weights.js';
import { checkAgainstSpec, plannedShapes } from '../sam/load.js';
import type { WeightShapes } from '../sam/config.js';
import { SAM2_VIDEO_ONLY, type Sam2Config, type Sam2ConfigOverrides, sam2ConfigFromWeights, sam2TensorSpec } from './config.js';

export interface LoadSam2Options {
  /** Storage of matrices and convolution kernels (vectors stay f32). Default: f16 when the context prefers it, else f32. */
  dtype?: 'f32' | 'f16';
  /** Skip detection: 'sam2' (official names) or 'sam2-hf'. */
  family?: 'sam2' | 'sam2-hf';
  /** What the shapes cannot tell, for a trunk that is not one of the released models (see config.ts). */
  overrides?: Sam2ConfigOverrides;
}

/** Where SAM 2 weights can come from. */
export type Sam2Source = string | SafetensorsFile | Uint8Array | ArrayBuffer;

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

function isZip(bytes: Uint8Array): boolean {
  return ZIP_MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Open a source as a safetensors file: a path or URL to `.safetensors`, `.pt` or `.pth` (a PyTorch
 * zip is recognised by its bytes, whatever the name), an open file, or the file's bytes.
 */
export async function openSam2Source(src: Sam2Source): Promise<{ file: SafetensorsFile; owned: boolean }> {
  if (src instanceof SafetensorsFile) return { file: src, owned: false };
  if (typeof src !== 'string') {
    const bytes = src instanceof Uint8Array ? src : new Uint8Array(src);
    const file = isZip(bytes) ? await pthAsSafetensors(await openPth(bytes, 'checkpoint.pt')) : SafetensorsFile.fromBytes(bytes);
    return { file, owned: true };
  }
  const pth = /\.(pt|pth)$/i.test(src);
  if (/^https?:\/\//.test(src)) {
    if (!pth) return { file: await SafetensorsFile.fromUrl(src), owned: true };
    const res = await fetch(src);
    if (!res.ok) throw new WeightError(`${src}: HTTP ${res.status}`);
    return { file: await pthAsSafetensors(await openPth(new Uint8Array(await res.arrayBuffer()), src)), owned: true };
  }
  return { file: pth ? await pthAsSafetensors(await openPthFile(src)) : await SafetensorsFile.open(src), owned: true };
}

/** Rename table and video-key filter for a family, or a clear error for a checkpoint of another model. */
export function sam2LoadPlan(file: SafetensorsFile, family: Family): { table: RenameTable | null; video: RegExp } {
  switch (family) {
    case 'sam2':
      return { table: null, video: SAM2_VIDEO_ONLY };
    case 'sam2-hf':
      return { table: sam2HfRenameTable(file.keys()), video: SAM2_HF_VIDEO_ONLY };
    default:
      throw new WeightError(
        `${file.name}: this checkpoint is '${family}', not SAM 2 (expected official 'image_encoder.trunk.*' / 'sam_mask_decoder.*' keys, ` +
          `or Hugging Face 'vision_encoder.backbone.*' / 'mask_decoder.*')${family === 'sam' || family === 'sam-hf' ? '; load SAM checkpoints with SamPredictor' : ''}`,
      );
  }
}

/** Strictness against the configuration: every expected tensor present with its shape, nothing else. */
export function checkSam2Weights(w: WeightShapes, cfg: Sam2Config): void {
  checkAgainstSpec(w, sam2TensorSpec(cfg), 'the SAM 2 image model');
}

/** Load a SAM 2 checkpoint under official names, with its configuration derived from the shapes. */
export async function loadSam2Weights(ctx: GpuContext, src: Sam2Source, opts: LoadSam2Options = {}): Promise<{ weights: Weights; config: Sam2Config }> {
  const { file, owned } = await openSam2Source(src);
  try {
    const family = opts.family ?? detectFamily(file.keys(), file.name);
    const { table, video } = sam2LoadPlan(file, family);
    // Video keys are dropped by their source names, before renaming.
    const plannedTable: RenameTable = { ...(table ?? { family: 'sam2', rules: [] }), ignore: [...(table?.ignore ?? []), video] };
    const shapes = plannedShapes(file, family, plannedTable);
    const config = sam2ConfigFromWeights(shapes, opts.overrides);
    checkSam2Weights(shapes, config);
    const weights = await Weights.load(ctx, file, plannedTable, { dtype: opts.dtype });
    return { weights, config };
  } finally {
    if (owned) await file.close();
  }
}
