/**
 * Hugging Face `CLIPModel` checkpoints (`openai/clip-vit-base-patch16` `model.safetensors`, and the
 * HF exports of OpenCLIP models) onto the OpenAI / OpenCLIP names the CLIP model reads.
 *
 * One table, written once as name templates (`{n}` = a block index, `{p}` = weight|bias), from
 * which both directions are generated: the `RenameTable` applied at load time, and the inverse
 * used to write HF-named files (tests, converters). What differs besides names
 * (transformers/models/clip/modeling_clip.py against openai/CLIP clip/model.py):
 *  - q/k/v are separate Linear layers in HF, one fused `in_proj_weight` / `in_proj_bias` with rows
 *    [q; k; v] in OpenAI: fused at load (FuseRule);
 *  - the projections are bias-free Linear layers in HF, stored [out, in]; OpenAI's `visual.proj`
 *    and `text_projection` are used as `x @ P`, i.e. [in, out]: transposed at load;
 *  - `pre_layrnorm` (sic) is `ln_pre`, `post_layernorm` is `ln_post`, `final_layer_norm` is
 *    `ln_final`, `position_embedding.weight` is `positional_embedding`;
 *  - `position_ids` buffers (older exports) carry nothing and are ignored.
 * `logit_scale` has the same name and meaning (a log) in both.
 */
import type { FuseRule, RenameRule, RenameTable } from '../weights.js';

interface Entry {
  hf: string;
  canonical: string;
  transpose?: boolean;
}

const TOWERS = [
  { hf: 'text_model.encoder.layers.{n}', canonical: 'transformer.resblocks.{n}' },
  { hf: 'vision_model.encoder.layers.{n}', canonical: 'visual.transformer.resblocks.{n}' },
] as const;

/** Per-block names, relative to the tower prefixes above. */
const BLOCK: readonly Entry[] = [
  { hf: 'self_attn.out_proj.{p}', canonical: 'attn.out_proj.{p}' },
  { hf: 'layer_norm1.{p}', canonical: 'ln_1.{p}' },
  { hf: 'layer_norm2.{p}', canonical: 'ln_2.{p}' },
  { hf: 'mlp.fc1.{p}', canonical: 'mlp.c_fc.{p}' },
  { hf: 'mlp.fc2.{p}', canonical: 'mlp.c_proj.{p}' },
];

/** HF q/k/v (in this order) fused into the canonical tensor. */
const BLOCK_FUSED: readonly { hf: readonly string[]; canonical: string }[] = [
  { hf: ['self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight'], canonical: 'attn.in_proj_weight' },
  { hf: ['self_attn.q_proj.bias', 'self_attn.k_proj.bias', 'self_attn.v_proj.bias'], canonical: 'attn.in_proj_bias' },
];

const GLOBAL: readonly Entry[] = [
  { hf: 'text_model.embeddings.token_embedding.weight', canonical: 'token_embedding.weight' },
  { hf: 'text_model.embeddings.position_embedding.weight', canonical: 'positional_embedding' },
  { hf: 'text_model.final_layer_norm.{p}', canonical: 'ln_final.{p}' },
  { hf: 'text_projection.weight', canonical: 'text_projection', transpose: true },
  { hf: 'vision_model.embeddings.class_embedding', canonical: 'visual.class_embedding' },
  { hf: 'vision_model.embeddings.patch_embedding.weight', canonical: 'visual.conv1.weight' },
  { hf: 'vision_model.embeddings.position_embedding.weight', canonical: 'visual.positional_embedding' },
  { hf: 'vision_model.pre_layrnorm.{p}', canonical: 'visual.ln_pre.{p}' },
  { hf: 'vision_model.post_layernorm.{p}', canonical: 'visual.ln_post.{p}' },
  { hf: 'visual_projection.weight', canonical: 'visual.proj', transpose: true },
  { hf: 'logit_scale', canonical: 'logit_scale' },
];

/** Every entry, block names expanded under both towers. */
export const CLIP_HF_ENTRIES: readonly Entry[] = [
  ...GLOBAL,
  ...TOWERS.flatMap((t) => BLOCK.map((e) => ({ hf: `${t.hf}.${e.hf}`, canonical: `${t.canonical}.${e.canonical}` }))),
];

export const CLIP_HF_FUSED: readonly { hf: readonly string[]; canonical: string }[] = TOWERS.flatMap((t) =>
  BLOCK_FUSED.map((f) => ({ hf: f.hf.map((h) => `${t.hf}.${h}`), canonical: `${t.canonical}.${f.canonical}` })),
);

const PLACEHOLDER: Record<string, string> = { '{n}': '(\\d+)', '{p}': '(weight|bias)' };

/** Template -> anchored RegExp with one group per placeholder, and the `$k` replacement of another template. */
function compile(from: string, to: string): { re: RegExp; to: string } {
  const order: string[] = [];
  const src = from.replace(/\./g, '\\.').replace(/\{[np]\}/g, (m) => {
    order.push(m);
    return PLACEHOLDER[m]!;
  });
  const repl = to.replace(/\{[np]\}/g, (m) => `$${order.indexOf(m) + 1}`);
  return { re: new RegExp(`^${src}$`), to: repl };
}

const rules: RenameRule[] = CLIP_HF_ENTRIES.map((e) => {
  const c = compile(e.hf, e.canonical);
  return { from: c.re, to: c.to, ...(e.transpose ? { transpose: true } : {}) };
});

const fuse: FuseRule[] = CLIP_HF_FUSED.map((f) => ({
  parts: f.hf.map((h) => compile(h, '').re),
  to: f.canonical.replace('{n}', '$1'),
}));

export const CLIP_HF_TABLE: RenameTable = {
  family: 'clip-hf',
  rules,
  fuse,
  ignore: [/^(text_model|vision_model)\.embeddings\.position_ids$/],
};

/**
 * The inverse: how a canonical (OpenAI-named) tensor is stored in a HF file. `split` means the
 * tensor's rows are cut into equal parts, one per key, in order; `transpose` that it is stored
 * transposed. Returns null for a name the table does not cover.
 */
export function clipHfNamesFor(canonical: string): { keys: string[]; transpose: boolean; split: boolean } | null {
  for (const e of CLIP_HF_ENTRIES) {
    const c = compile(e.canonical, e.hf);
    if (c.re.test(canonical)) return { keys: [canonical.replace(c.re, c.to)], transpose: !!e.transpose, split: false };
  }
  for (const f of CLIP_HF_FUSED) {
    const keys: string[] = [];
    for (const h of f.hf) {
      const c = compile(f.canonical, h);
      if (!c.re.test(canonical)) break;
      keys.push(canonical.replace(c.re, c.to));
    }
    if (keys.length === f.hf.length) return { keys, transpose: false, split: true };
  }
  return null;
}
