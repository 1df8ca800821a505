/**
 * Hugging Face transformers `Sam2Model` key names (`facebook/sam2.1-hiera-*` `model.safetensors`)
 * <-> the official facebookresearch/sam2 names the engine uses (DESIGN.md section 3).
 *
 * The correspondence is the one transformers' converter applies (models/sam2/convert_sam2_to_hf.py:
 * KEYS_TO_MODIFY_MAPPING plus its per-module layer renumbering), restated as whole-key templates
 * read in both directions:
 *  - trunk: `image_encoder.trunk` -> `vision_encoder.backbone`, `normN` -> `layer_normN`,
 *    `patch_embed.proj` -> `patch_embed.projection`, MLP `layers.0/1` -> `proj_in/proj_out`;
 *  - neck: `image_encoder.neck.convs.N.conv` -> `vision_encoder.neck.convs.N`;
 *  - `no_mem_embed` -> `no_memory_embedding`;
 *  - prompt encoder: `sam_prompt_encoder` -> `prompt_encoder`, `mask_downscaling.{0,1,3,4,6}` ->
 *    `mask_embed.{conv1,layer_norm1,conv2,layer_norm2,conv3}`, the four `point_embeddings.i` [1, C]
 *    stacked into one `point_embed.weight` [4, C] (split back by a split rule), and the Fourier
 *    matrix as `shared_image_embedding.positional_embedding` (tied to
 *    `prompt_encoder.shared_embedding.positional_embedding`; a file holding both is read from
 *    the top-level copy, as for SAM);
 *  - mask decoder: `sam_mask_decoder` -> `mask_decoder`, `out_proj` -> `o_proj`, `normN` ->
 *    `layer_normN`, `norm_final_attn` -> `layer_norm_final_attn`, transformer MLP `layers.0/1` ->
 *    `proj_in/proj_out`, `output_upscaling.{0,1,3}` -> `upscale_conv1 / upscale_layer_norm /
 *    upscale_conv2`, and the 3-layer MLPs (hypernetworks, IoU head, object-score head)
 *    `layers.{0,1,2}` -> `proj_in / layers.0 / proj_out`.
 * Keys of the video model (memory attention and encoder, object pointers, temporal encodings)
 * are listed in `SAM2_HF_VIDEO_ONLY`: the image predictor does not load them.
 */
import type { RenameRule, RenameTable } from '../weights.js';

/**
 * [Hugging Face template, official template]. Placeholders: `{i}` / `{j}` an index, `{p}` weight or
 * bias, `{n}` a digit, `{a:x|y}` one of the listed words; each stands for the same text on both sides.
 */
const TEMPLATES: readonly [string, string][] = [
  ['vision_encoder.backbone.{a:pos_embed|pos_embed_window}', 'image_encoder.trunk.{a:pos_embed|pos_embed_window}'],
  ['vision_encoder.backbone.patch_embed.projection.{p}', 'image_encoder.trunk.patch_embed.proj.{p}'],
  ['vision_encoder.backbone.blocks.{i}.layer_norm{n}.{p}', 'image_encoder.trunk.blocks.{i}.norm{n}.{p}'],
  ['vision_encoder.backbone.blocks.{i}.{a:attn.qkv|attn.proj|proj}.{p}', 'image_encoder.trunk.blocks.{i}.{a:attn.qkv|attn.proj|proj}.{p}'],
  ['vision_encoder.backbone.blocks.{i}.mlp.proj_in.{p}', 'image_encoder.trunk.blocks.{i}.mlp.layers.0.{p}'],
  ['vision_encoder.backbone.blocks.{i}.mlp.proj_out.{p}', 'image_encoder.trunk.blocks.{i}.mlp.layers.1.{p}'],
  ['vision_encoder.neck.convs.{i}.{p}', 'image_encoder.neck.convs.{i}.conv.{p}'],
  ['no_memory_embedding', 'no_mem_embed'],
  ['shared_image_embedding.positional_embedding', 'sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'],
  ['prompt_encoder.{a:not_a_point_embed|no_mask_embed}.weight', 'sam_prompt_encoder.{a:not_a_point_embed|no_mask_embed}.weight'],
  ['prompt_encoder.mask_embed.conv1.{p}', 'sam_prompt_encoder.mask_downscaling.0.{p}'],
  ['prompt_encoder.mask_embed.layer_norm1.{p}', 'sam_prompt_encoder.mask_downscaling.1.{p}'],
  ['prompt_encoder.mask_embed.conv2.{p}', 'sam_prompt_encoder.mask_downscaling.3.{p}'],
  ['prompt_encoder.mask_embed.layer_norm2.{p}', 'sam_prompt_encoder.mask_downscaling.4.{p}'],
  ['prompt_encoder.mask_embed.conv3.{p}', 'sam_prompt_encoder.mask_downscaling.6.{p}'],
  [
    'mask_decoder.transformer.layers.{i}.{a:self_attn|cross_attn_token_to_image|cross_attn_image_to_token}.{b:q_proj|k_proj|v_proj}.{p}',
    'sam_mask_decoder.transformer.layers.{i}.{a:self_attn|cross_attn_token_to_image|cross_attn_image_to_token}.{b:q_proj|k_proj|v_proj}.{p}',
  ],
  [
    'mask_decoder.transformer.layers.{i}.{a:self_attn|cross_attn_token_to_image|cross_attn_image_to_token}.o_proj.{p}',
    'sam_mask_decoder.transformer.layers.{i}.{a:self_attn|cross_attn_token_to_image|cross_attn_image_to_token}.out_proj.{p}',
  ],
  ['mask_decoder.transformer.final_attn_token_to_image.{b:q_proj|k_proj|v_proj}.{p}', 'sam_mask_decoder.transformer.final_attn_token_to_image.{b:q_proj|k_proj|v_proj}.{p}'],
  ['mask_decoder.transformer.final_attn_token_to_image.o_proj.{p}', 'sam_mask_decoder.transformer.final_attn_token_to_image.out_proj.{p}'],
  ['mask_decoder.transformer.layers.{i}.layer_norm{n}.{p}', 'sam_mask_decoder.transformer.layers.{i}.norm{n}.{p}'],
  ['mask_decoder.transformer.layers.{i}.mlp.proj_in.{p}', 'sam_mask_decoder.transformer.layers.{i}.mlp.layers.0.{p}'],
  ['mask_decoder.transformer.layers.{i}.mlp.proj_out.{p}', 'sam_mask_decoder.transformer.layers.{i}.mlp.layers.1.{p}'],
  ['mask_decoder.transformer.layer_norm_final_attn.{p}', 'sam_mask_decoder.transformer.norm_final_attn.{p}'],
  ['mask_decoder.{a:iou_token|mask_tokens|obj_score_token}.weight', 'sam_mask_decoder.{a:iou_token|mask_tokens|obj_score_token}.weight'],
  ['mask_decoder.upscale_conv1.{p}', 'sam_mask_decoder.output_upscaling.0.{p}'],
  ['mask_decoder.upscale_layer_norm.{p}', 'sam_mask_decoder.output_upscaling.1.{p}'],
  ['mask_decoder.upscale_conv2.{p}', 'sam_mask_decoder.output_upscaling.3.{p}'],
  ['mask_decoder.{a:conv_s0|conv_s1}.{p}', 'sam_mask_decoder.{a:conv_s0|conv_s1}.{p}'],
  ['mask_decoder.output_hypernetworks_mlps.{i}.proj_in.{p}', 'sam_mask_decoder.output_hypernetworks_mlps.{i}.layers.0.{p}'],
  ['mask_decoder.output_hypernetworks_mlps.{i}.layers.0.{p}', 'sam_mask_decoder.output_hypernetworks_mlps.{i}.layers.1.{p}'],
  ['mask_decoder.output_hypernetworks_mlps.{i}.proj_out.{p}', 'sam_mask_decoder.output_hypernetworks_mlps.{i}.layers.2.{p}'],
  ['mask_decoder.{a:iou_prediction_head|pred_obj_score_head}.proj_in.{p}', 'sam_mask_decoder.{a:iou_prediction_head|pred_obj_score_head}.layers.0.{p}'],
  ['mask_decoder.{a:iou_prediction_head|pred_obj_score_head}.layers.0.{p}', 'sam_mask_decoder.{a:iou_prediction_head|pred_obj_score_head}.layers.1.{p}'],
  ['mask_decoder.{a:iou_prediction_head|pred_obj_score_head}.proj_out.{p}', 'sam_mask_decoder.{a:iou_prediction_head|pred_obj_score_head}.layers.2.{p}'],
  // A single-Linear object-score head (pred_obj_scores_mlp false) keeps its name.
  ['mask_decoder.pred_obj_score_head.{p}', 'sam_mask_decoder.pred_obj_score_head.{p}'],
];

const PLACEHOLDER = /\{(i|j|p|n|[a-h]:[^}]+|[a-h])\}/g;

function placeholderRegex(name: string, alternatives?: string): string {
  if (name === 'i' || name === 'j') return '\\d+';
  if (name === 'p') return 'weight|bias';
  if (name === 'n') return '\\d';
  return alternatives!.split('|').map((a) => a.replace(/\./g, '\\.')).join('|');
}

/** A template as a whole-key pattern with named groups, and as a `$<name>` replacement. */
function compile(template: string): { pattern: RegExp; replacement: string } {
  let re = '';
  let rep = '';
  let last = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    const literal = template.slice(last, m.index);
    re += literal.replace(/\./g, '\\.');
    rep += literal;
    const [name, alts] = m[1]!.split(':') as [string, string | undefined];
    re += `(?<${name}>${placeholderRegex(name, alts)})`;
    rep += `$<${name}>`;
    last = m.index! + m[0].length;
  }
  const tail = template.slice(last);
  return { pattern: new RegExp(`^${re}${tail.replace(/\./g, '\\.')}$`), replacement: rep + tail };
}

const TO_OFFICIAL: RenameRule[] = TEMPLATES.map(([hf, off]) => ({ from: compile(hf).pattern, to: compile(off).replacement }));
const TO_HF: RenameRule[] = TEMPLATES.map(([hf, off]) => ({ from: compile(off).pattern, to: compile(hf).replacement }));

const POINT_EMBED = 'prompt_encoder.point_embed.weight';
const TIED_COPY = 'prompt_encoder.shared_embedding.positional_embedding';
const TOP_LEVEL_PE = 'shared_image_embedding.positional_embedding';

/** Hugging Face keys of the video model, never loaded by the image predictor. */
export const SAM2_HF_VIDEO_ONLY =
  /^(memory_attention\.|memory_encoder\.|memory_temporal_positional_encoding|no_memory_positional_encoding|no_object_pointer|object_pointer_proj\.|temporal_positional_encoding_projection_layer\.|mask_downsample\.|occlusion_spatial_embedding_parameter)/;

/** The rename table for a Hugging Face SAM 2 checkpoint with these keys. */
export function sam2HfRenameTable(keys: readonly string[] = []): RenameTable {
  const both = keys.includes(TIED_COPY) && keys.includes(TOP_LEVEL_PE);
  const rules: RenameRule[] = [...TO_OFFICIAL];
  if (!both) rules.push({ from: /^prompt_encoder\.shared_embedding\.positional_embedding$/, to: 'sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix' });
  return {
    family: 'sam2-hf',
    rules,
    split: [{ from: /^prompt_encoder\.point_embed\.weight$/, to: [0, 1, 2, 3].map((i) => `sam_prompt_encoder.point_embeddings.${i}.weight`) }],
    ignore: both ? [/^prompt_encoder\.shared_embedding\.positional_embedding$/] : [],
  };
}

/**
 * Official SAM 2 name -> the Hugging Face `Sam2Model` name (writing HF-named files in tests and
 * tools). The four point embeddings map to the one stacked `point_embed.weight` (rows 0..3).
 */
export function sam2OfficialToHf(key: string): string {
  if (/^sam_prompt_encoder\.point_embeddings\.\d\.weight$/.test(key)) return POINT_EMBED;
  const rule = TO_HF.find((r) => r.from.test(key));
  return rule ? key.replace(rule.from, rule.to) : key;
}
