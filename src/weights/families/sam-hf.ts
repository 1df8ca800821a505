/**
 * Hugging Face `facebook/sam-vit-{base,large,huge}` (transformers `SamModel`) key names <-> the
 * official segment-anything names the engine uses (DESIGN.md section 3).
 *
 * The correspondence is the one transformers' converter applies
 * (src/transformers/models/sam/convert_sam_to_hf.py, KEYS_TO_MODIFY_MAPPING + the hypernetwork rule),
 * written here as whole-key rules in both directions:
 *  - image encoder: `image_encoder` -> `vision_encoder`, `blocks` -> `layers`, `normN` -> `layer_normN`,
 *    `patch_embed.proj` -> `patch_embed.projection`, `neck.{0,1,2,3}` -> `neck.{conv1,layer_norm1,conv2,layer_norm2}`;
 *  - prompt encoder: `point_embeddings` -> `point_embed`, `mask_downscaling.{0,1,3,4,6}` ->
 *    `mask_embed.{conv1,layer_norm1,conv2,layer_norm2,conv3}`, and the random-Fourier matrix
 *    `pe_layer.positional_encoding_gaussian_matrix` -> `shared_image_embedding.positional_embedding`
 *    (SamModel shares that module with its prompt encoder; saved files keep the top-level name, the
 *    tied `prompt_encoder.shared_embedding.positional_embedding` is dropped as a duplicate, and
 *    older files that still hold both are read from the top-level copy);
 *  - mask decoder: `normN` -> `layer_normN`, `norm_final_attn` -> `layer_norm_final_attn`,
 *    `output_upscaling.{0,1,3}` -> `upscale_conv1 / upscale_layer_norm / upscale_conv2`, and the
 *    3-layer MLPs (hypernetworks, IoU head) `layers.{0,1,2}` -> `proj_in / layers.0 / proj_out`.
 *    Like the converter, this assumes 3-layer MLPs (every official SAM).
 * Attention projections (`q_proj`, `k_proj`, `v_proj`, `out_proj`, `qkv`, `proj`, `rel_pos_*`),
 * `lin1` / `lin2`, `iou_token`, `mask_tokens`, `no_mask_embed`, `not_a_point_embed` keep their names.
 */
import type { RenameRule, RenameTable } from '../weights.js';

/** [HF pattern, official replacement]; patterns are whole keys. */
const PAIRS: readonly [string, string][] = [
  ['vision_encoder\\.pos_embed', 'image_encoder.pos_embed'],
  ['vision_encoder\\.patch_embed\\.projection\\.(weight|bias)', 'image_encoder.patch_embed.proj.$1'],
  ['vision_encoder\\.layers\\.(\\d+)\\.layer_norm([12])\\.(weight|bias)', 'image_encoder.blocks.$1.norm$2.$3'],
  ['vision_encoder\\.layers\\.(\\d+)\\.(attn\\.(?:qkv|proj)\\.(?:weight|bias)|attn\\.rel_pos_[hw]|mlp\\.lin[12]\\.(?:weight|bias))', 'image_encoder.blocks.$1.$2'],
  ['vision_encoder\\.neck\\.conv1\\.weight', 'image_encoder.neck.0.weight'],
  ['vision_encoder\\.neck\\.layer_norm1\\.(weight|bias)', 'image_encoder.neck.1.$1'],
  ['vision_encoder\\.neck\\.conv2\\.weight', 'image_encoder.neck.2.weight'],
  ['vision_encoder\\.neck\\.layer_norm2\\.(weight|bias)', 'image_encoder.neck.3.$1'],
  ['shared_image_embedding\\.positional_embedding', 'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'],
  ['prompt_encoder\\.shared_embedding\\.positional_embedding', 'prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'],
  ['prompt_encoder\\.point_embed\\.(\\d+)\\.weight', 'prompt_encoder.point_embeddings.$1.weight'],
  ['prompt_encoder\\.mask_embed\\.conv1\\.(weight|bias)', 'prompt_encoder.mask_downscaling.0.$1'],
  ['prompt_encoder\\.mask_embed\\.layer_norm1\\.(weight|bias)', 'prompt_encoder.mask_downscaling.1.$1'],
  ['prompt_encoder\\.mask_embed\\.conv2\\.(weight|bias)', 'prompt_encoder.mask_downscaling.3.$1'],
  ['prompt_encoder\\.mask_embed\\.layer_norm2\\.(weight|bias)', 'prompt_encoder.mask_downscaling.4.$1'],
  ['prompt_encoder\\.mask_embed\\.conv3\\.(weight|bias)', 'prompt_encoder.mask_downscaling.6.$1'],
  ['mask_decoder\\.transformer\\.layers\\.(\\d+)\\.layer_norm([1-4])\\.(weight|bias)', 'mask_decoder.transformer.layers.$1.norm$2.$3'],
  ['mask_decoder\\.transformer\\.layer_norm_final_attn\\.(weight|bias)', 'mask_decoder.transformer.norm_final_attn.$1'],
  ['mask_decoder\\.upscale_conv1\\.(weight|bias)', 'mask_decoder.output_upscaling.0.$1'],
  ['mask_decoder\\.upscale_layer_norm\\.(weight|bias)', 'mask_decoder.output_upscaling.1.$1'],
  ['mask_decoder\\.upscale_conv2\\.(weight|bias)', 'mask_decoder.output_upscaling.3.$1'],
  ['mask_decoder\\.(output_hypernetworks_mlps\\.\\d+|iou_prediction_head)\\.proj_in\\.(weight|bias)', 'mask_decoder.$1.layers.0.$2'],
  ['mask_decoder\\.(output_hypernetworks_mlps\\.\\d+|iou_prediction_head)\\.layers\\.0\\.(weight|bias)', 'mask_decoder.$1.layers.1.$2'],
  ['mask_decoder\\.(output_hypernetworks_mlps\\.\\d+|iou_prediction_head)\\.proj_out\\.(weight|bias)', 'mask_decoder.$1.layers.2.$2'],
];

/** [official pattern, HF replacement]: the inverse of PAIRS (tested to round-trip every key). */
const INVERSE: readonly [string, string][] = [
  ['image_encoder\\.pos_embed', 'vision_encoder.pos_embed'],
  ['image_encoder\\.patch_embed\\.proj\\.(weight|bias)', 'vision_encoder.patch_embed.projection.$1'],
  ['image_encoder\\.blocks\\.(\\d+)\\.norm([12])\\.(weight|bias)', 'vision_encoder.layers.$1.layer_norm$2.$3'],
  ['image_encoder\\.blocks\\.(\\d+)\\.(attn\\.(?:qkv|proj)\\.(?:weight|bias)|attn\\.rel_pos_[hw]|mlp\\.lin[12]\\.(?:weight|bias))', 'vision_encoder.layers.$1.$2'],
  ['image_encoder\\.neck\\.0\\.weight', 'vision_encoder.neck.conv1.weight'],
  ['image_encoder\\.neck\\.1\\.(weight|bias)', 'vision_encoder.neck.layer_norm1.$1'],
  ['image_encoder\\.neck\\.2\\.weight', 'vision_encoder.neck.conv2.weight'],
  ['image_encoder\\.neck\\.3\\.(weight|bias)', 'vision_encoder.neck.layer_norm2.$1'],
  ['prompt_encoder\\.pe_layer\\.positional_encoding_gaussian_matrix', 'shared_image_embedding.positional_embedding'],
  ['prompt_encoder\\.point_embeddings\\.(\\d+)\\.weight', 'prompt_encoder.point_embed.$1.weight'],
  ['prompt_encoder\\.mask_downscaling\\.0\\.(weight|bias)', 'prompt_encoder.mask_embed.conv1.$1'],
  ['prompt_encoder\\.mask_downscaling\\.1\\.(weight|bias)', 'prompt_encoder.mask_embed.layer_norm1.$1'],
  ['prompt_encoder\\.mask_downscaling\\.3\\.(weight|bias)', 'prompt_encoder.mask_embed.conv2.$1'],
  ['prompt_encoder\\.mask_downscaling\\.4\\.(weight|bias)', 'prompt_encoder.mask_embed.layer_norm2.$1'],
  ['prompt_encoder\\.mask_downscaling\\.6\\.(weight|bias)', 'prompt_encoder.mask_embed.conv3.$1'],
  ['mask_decoder\\.transformer\\.layers\\.(\\d+)\\.norm([1-4])\\.(weight|bias)', 'mask_decoder.transformer.layers.$1.layer_norm$2.$3'],
  ['mask_decoder\\.transformer\\.norm_final_attn\\.(weight|bias)', 'mask_decoder.transformer.layer_norm_final_attn.$1'],
  ['mask_decoder\\.output_upscaling\\.0\\.(weight|bias)', 'mask_decoder.upscale_conv1.$1'],
  ['mask_decoder\\.output_upscaling\\.1\\.(weight|bias)', 'mask_decoder.upscale_layer_norm.$1'],
  ['mask_decoder\\.output_upscaling\\.3\\.(weight|bias)', 'mask_decoder.upscale_conv2.$1'],
  ['mask_decoder\\.(output_hypernetworks_mlps\\.\\d+|iou_prediction_head)\\.layers\\.0\\.(weight|bias)', 'mask_decoder.$1.proj_in.$2'],
  ['mask_decoder\\.(output_hypernetworks_mlps\\.\\d+|iou_prediction_head)\\.layers\\.1\\.(weight|bias)', 'mask_decoder.$1.layers.0.$2'],
  ['mask_decoder\\.(output_hypernetworks_mlps\\.\\d+|iou_prediction_head)\\.layers\\.2\\.(weight|bias)', 'mask_decoder.$1.proj_out.$2'],
];

const whole = (p: string) => new RegExp(`^${p}$`);
const RULES: RenameRule[] = PAIRS.map(([from, to]) => ({ from: whole(from), to }));
const INVERSE_RULES = INVERSE.map(([from, to]) => ({ from: whole(from), to }));

const TIED_COPY = 'prompt_encoder.shared_embedding.positional_embedding';
const TOP_LEVEL_PE = 'shared_image_embedding.positional_embedding';

/**
 * The rename table for a Hugging Face SAM checkpoint with these keys. Keys no rule matches keep
 * their names (they are the same in both families) and are then checked by the strict loader.
 */
export function samHfRenameTable(keys: readonly string[] = []): RenameTable {
  const both = keys.includes(TIED_COPY) && keys.includes(TOP_LEVEL_PE);
  return { family: 'sam-hf', rules: RULES, ignore: both ? [whole(TIED_COPY.replace(/\./g, '\\.'))] : [] };
}

/** Official SAM name -> the Hugging Face `SamModel` name (for writing HF-named files in tests/tools). */
export function samOfficialToHf(key: string): string {
  const rule = INVERSE_RULES.find((r) => r.from.test(key));
  return rule ? key.replace(rule.from, rule.to) : key;
}
