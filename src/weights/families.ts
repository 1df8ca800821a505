/**
 * Checkpoint families, detected from key names (DESIGN.md section 3). Detection can be overridden
 * by the caller; an unknown layout is an error that lists what was looked for.
 */
import { WeightError } from './weights.js';

export type Family = 'sam' | 'sam-hf' | 'sam2' | 'sam2-hf' | 'clip' | 'clip-hf' | 'samclip';

const SIGNATURES: { family: Family; all: RegExp[]; what: string }[] = [
  { family: 'samclip', all: [/^image_encoder\.patch_embed\./, /^clip_head\./], what: 'image_encoder.* and clip_head.* (SAM-CLIP bundle)' },
  { family: 'sam2', all: [/^image_encoder\.trunk\.patch_embed\.proj\.weight$/, /^sam_mask_decoder\./], what: 'image_encoder.trunk.* + sam_mask_decoder.* (official SAM 2 / 2.1)' },
  { family: 'sam2-hf', all: [/^vision_encoder\.backbone\.patch_embed\.projection\.weight$/, /^mask_decoder\./], what: 'vision_encoder.backbone.* + mask_decoder.* (Hugging Face Sam2Model)' },
  { family: 'sam', all: [/^image_encoder\.patch_embed\.proj\.weight$/, /^mask_decoder\./], what: 'image_encoder.patch_embed.proj.weight (official SAM)' },
  { family: 'sam-hf', all: [/^vision_encoder\.patch_embed\./, /^shared_image_embedding\./], what: 'vision_encoder.* + shared_image_embedding.* (Hugging Face SamModel)' },
  { family: 'clip', all: [/^visual\.(conv1|class_embedding)/, /^token_embedding\.weight$/], what: 'visual.conv1.weight + token_embedding.weight (OpenAI / OpenCLIP)' },
  { family: 'clip-hf', all: [/^vision_model\.embeddings\./, /^text_model\.embeddings\./], what: 'vision_model.* + text_model.* (Hugging Face CLIPModel)' },
];

/** The checkpoint family its key names show. Keys are matched as stored: a file whose keys carry a wrapper prefix (`module.`, `model.`) is reported as unknown, with its first keys in the message. */
export function detectFamily(keys: readonly string[], file = 'checkpoint'): Family {
  for (const sig of SIGNATURES) {
    if (sig.all.every((re) => keys.some((k) => re.test(k)))) return sig.family;
  }
  const sample = keys.slice(0, 5).join(', ');
  throw new WeightError(
    `${file}: not a checkpoint this engine knows (looked for ${SIGNATURES.map((s) => s.what).join('; ')}); first keys: ${sample || '(none)'}`,
  );
}
