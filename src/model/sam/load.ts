/**
 * Loading a SAM checkpoint: detect the family from the key names (official segment-anything,
 * Hugging Face `SamModel`, or a SAM-CLIP bundle, whose SAM part uses official names), rename to
 * official names, check the complete key set against the shapes the derived configuration implies
 * (a missing, unexpected or wrongly shaped tensor is an error naming the key and both shapes), and
 * upload. F32 / F16 / BF16 stored tensors are read; matrices are kept as f32 or f16 (`dtype`).
 */
import type { GpuContext } from '../../gpu/context.js';
import { fmtShape } from '../../gpu/errors.js';
import { type Family, detectFamily } from '../../weights/families.js';
import { samHfRenameTable } from '../../weights/families/sam-hf.js';
import { type SafetensorsFile, openSafetensors } from '../../weights/safetensors.js';
import { type RenameTable, WeightError, Weights } from '../../weights/weights.js';
import { resolveSamArchitecture } from './architectures.js';
import { type SamConfig, type TensorSpec, type WeightShapes, samConfigFromWeights, samTensorSpec } from './config.js';

export interface LoadSamOptions {
  /** Storage of matrices and convolution kernels (vectors stay f32). Default: f16 when the context prefers it (`preferF16` on an adapter with shader-f16), else f32. */
  dtype?: 'f32' | 'f16';
  /** Skip detection. */
  family?: Family;
  /** Hyper-parameters the shapes cannot tell (the mask decoder's head count), if the file lacks metadata. */
  overrides?: Partial<SamConfig>;
  /**
   * The complete architecture to check the file against, for a non-standard SAM whose file does
   * not describe itself. Without it, loading accepts only the standard ViT-B/L/H, a known model
   * named by the file's metadata, or a file whose metadata carries its configuration (see
   * architectures.ts); anything that differs from it is an error naming the tensors.
   */
  config?: SamConfig;
}

const SAM_PARTS = /^(image_encoder|prompt_encoder|mask_decoder)\./;

const FAMILY_NAMES: Record<Family, string> = {
  sam: 'official SAM',
  'sam-hf': 'Hugging Face SAM',
  sam2: 'official SAM 2 (load it with Sam2Predictor)',
  'sam2-hf': 'Hugging Face SAM 2 (load it with Sam2Predictor)',
  samclip: 'SAM-CLIP bundle',
  clip: 'OpenAI / OpenCLIP CLIP',
  'clip-hf': 'Hugging Face CLIP',
};

/** Rename table and key filter for a family, or a clear error for a checkpoint of another model. */
export function samLoadPlan(file: SafetensorsFile, family: Family): { table: RenameTable | null; include?: (k: string) => boolean } {
  switch (family) {
    case 'sam':
      return { table: null };
    case 'sam-hf':
      return { table: samHfRenameTable(file.keys()) };
    case 'samclip':
      // The bundle's SAM half is a complete official SAM; its CLIP head and text tower are not ours.
      return { table: null, include: (k) => SAM_PARTS.test(k) };
    default:
      throw new WeightError(
        `${file.name}: this checkpoint is ${FAMILY_NAMES[family]}, not SAM ` +
          `(expected official 'image_encoder.*' / 'mask_decoder.*' keys or Hugging Face 'vision_encoder.*' / 'shared_image_embedding.*')`,
      );
  }
}

/** Up to `n` items, then how many more. */
function listSome(items: string[], n = 8): string {
  return `${items.slice(0, n).join(', ')}${items.length > n ? `, ... (${items.length - n} more)` : ''}`;
}

/**
 * Strictness: every tensor of `spec` present with its shape, nothing else. All differences are
 * reported at once (a model with its last block removed names every tensor of that block); `what`
 * names the model in the message and `detail` (appended) the architecture checked against.
 */
export function checkAgainstSpec(w: WeightShapes, spec: readonly TensorSpec[], what: string, detail = ''): void {
  const expected = new Set<string>();
  const missing: string[] = [];
  const misshaped: string[] = [];
  for (const s of spec) {
    expected.add(s.name);
    const got = w.shape(s.name);
    if (!got) missing.push(`'${s.name}' ${fmtShape(s.shape)}`);
    else if (fmtShape(got) !== fmtShape(s.shape)) misshaped.push(`tensor '${s.name}' has shape ${fmtShape(got)}, expected ${fmtShape(s.shape)}`);
  }
  const extra = w.keys().filter((k) => !expected.has(k)).map((k) => `'${k}' ${fmtShape(w.shape(k)!)}`);
  if (!missing.length && !misshaped.length && !extra.length) return;
  const problems: string[] = [];
  if (missing.length === 1) problems.push(`missing tensor ${missing[0]}`);
  else if (missing.length) problems.push(`${missing.length} missing tensors: ${listSome(missing)}`);
  if (misshaped.length) problems.push(listSome(misshaped, 4));
  if (extra.length) problems.push(`${extra.length} unexpected tensor(s) for ${what}: ${listSome(extra)}`);
  throw new WeightError(`${w.file} (${w.family}): ${problems.join('; ')}${detail}`);
}

/**
 * Strictness against the configuration: every expected tensor present with its shape, nothing
 * else; `against` says which architecture the configuration is.
 */
export function checkSamWeights(w: WeightShapes, cfg: SamConfig, against?: string): void {
  const arch = against ? ` (checked against ${against}: depth ${cfg.depth}, width ${cfg.embedDim}, ${cfg.numHeads} heads, MLP ${cfg.mlpDim})` : '';
  checkAgainstSpec(w, samTensorSpec(cfg), 'SAM', arch);
}

/** Canonical names and shapes a load would produce, read from the header alone. */
export function plannedShapes(file: SafetensorsFile, family: string, table: RenameTable | null, include?: (k: string) => boolean): WeightShapes {
  return Weights.planShapes(file, table, family, include);
}

/**
 * Load a SAM checkpoint (path, URL or an open SafetensorsFile) under official names, with its
 * configuration derived from the shapes.
 */
export async function loadSamWeights(
  ctx: GpuContext,
  src: string | SafetensorsFile,
  opts: LoadSamOptions = {},
): Promise<{ weights: Weights; config: SamConfig }> {
  const { file, owned } = await openSafetensors(src);
  try {
    const family = opts.family ?? detectFamily(file.keys(), file.name);
    const { table, include } = samLoadPlan(file, family);
    // Names, shapes and the configuration come from the header: a bad file fails before any upload.
    const shapes = plannedShapes(file, family, table, include);
    const derived = samConfigFromWeights(shapes, opts.overrides);
    const arch = resolveSamArchitecture(shapes, derived, opts.config);
    const config = Object.freeze({ ...arch.config, ...opts.overrides }) as SamConfig;
    checkSamWeights(shapes, config, arch.source);
    const weights = await Weights.load(ctx, file, table, { dtype: opts.dtype, include });
    return { weights, config };
  } finally {
    if (owned) await file.close();
  }
}
