/**
 * Assembling a SAM-CLIP bundle (docs/samclip-bundle.md) from its three sources:
 *
 *  - a SAM checkpoint: official segment-anything names, Hugging Face `SamModel` names (renamed by
 *    the SAM rename table), or an existing bundle (its SAM part);
 *  - a CLIP checkpoint for the text tower: OpenAI / OpenCLIP names (`token_embedding.weight`,
 *    `transformer.*`, `ln_final.*`, `text_projection`, `logit_scale`; the vision tower is dropped),
 *    OpenCLIP CustomTextCLIP names already under `text.`, Hugging Face `CLIPModel` names (renamed,
 *    q/k/v fused, projection transposed), or an existing bundle;
 *  - a CLIP-head checkpoint: `clip_head.*` keys, or the same without the prefix (`blocks.*`,
 *    `norm.*`, `mlp.*`).
 *
 * The combined key set is validated exactly like a bundle being loaded (samclipConfigFromShapes),
 * from the headers alone, before a byte is written; the metadata JSON records the derived
 * configuration plus what shapes cannot tell (text heads and activation, decoder heads). Tensors are
 * streamed one by one (F32, or F16 on request).
 */
import { f32ToF16Bits } from '../../gpu/dtype.js';
import { SamclipError } from '../../gpu/errors.js';
import { detectFamily } from '../../weights/families.js';
import { CLIP_HF_TABLE } from '../../weights/families/clip-hf.js';
import { samHfRenameTable } from '../../weights/families/sam-hf.js';
import type { SafetensorsFile } from '../../weights/safetensors.js';
import { type SafetensorsStreamEntry, encodeSafetensors } from '../../weights/safetensors-writer.js';
import { randomTensor } from '../../weights/random.js';
import { type RenameTable, Weights } from '../../weights/weights.js';
import { type ClipAct, headsOverride, resolveAct } from '../clip/config.js';
import { resolveSamArchitecture } from '../sam/architectures.js';
import { type WeightShapes, samConfigFromWeights } from '../sam/config.js';
import { CLIP_HEAD_PREFIX, type ClipHeadConfig, SAMCLIP_METADATA_KEY, type SamclipConfig, SamclipBundleError, type SamclipMetadata, clipHeadTensorSpec, readSamclipMetadata, samBundleMetadata, samclipConfigFromShapes, samclipMetadataJson } from './bundle.js';

export interface AssembleSources {
  sam: SafetensorsFile;
  clip: SafetensorsFile;
  head: SafetensorsFile;
}

export interface AssembleOptions {
  /** Text-tower heads (default: the CLIP file's metadata, else width / 64). */
  textHeads?: number;
  /** Text-tower activation (default: the CLIP file's metadata, else QuickGELU as OpenAI's). */
  textAct?: ClipAct;
  /** Stored dtype (default F32). */
  dtype?: 'F32' | 'F16';
  /** `model` field of the metadata. */
  model?: string;
  /** Default head-only / classification input sizes written to the metadata. */
  resolutions?: { seg?: number; cls?: number };
  /** Extra metadata entries (strings), e.g. provenance. */
  extraMetadata?: Record<string, string>;
}

/** One tensor of the output: where its values come from. */
interface Source {
  file: SafetensorsFile;
  keys: string[];
  transpose: boolean;
  shape: number[];
}

export interface AssemblePlan {
  config: SamclipConfig;
  metadata: Record<string, string>;
  entries: SafetensorsStreamEntry[];
}

/** Canonical name -> source, with an optional rename table, filter and output prefix. */
function planPart(file: SafetensorsFile, table: RenameTable | null, keep: (canonical: string) => string | null, into: Map<string, Source>, what: string): void {
  for (const [key, p] of Weights.plan(file, table)) {
    const out = keep(key);
    if (out === null) continue;
    if (into.has(out)) throw new SamclipBundleError(`${file.name}: '${key}' (${what}) maps to '${out}', which another source already provides`);
    into.set(out, { file, keys: p.sources, transpose: p.transpose, shape: p.shape });
  }
}

const SAM_PART = /^(image_encoder|prompt_encoder|mask_decoder)\./;
const TEXT_KEYS = /^(token_embedding\.weight|positional_embedding|transformer\.resblocks\.|ln_final\.|text_projection)/;

function samTable(file: SafetensorsFile): RenameTable | null {
  const fam = detectFamily(file.keys(), file.name);
  if (fam === 'sam' || fam === 'samclip') return null;
  if (fam === 'sam-hf') return samHfRenameTable(file.keys());
  throw new SamclipBundleError(`${file.name}: the SAM source is a ${fam} checkpoint; give an official or Hugging Face SAM checkpoint (or a SAM-CLIP bundle)`);
}

/** Plan the bundle: sources, validated configuration, metadata. Nothing is read but headers. */
export function planBundle(src: AssembleSources, opts: AssembleOptions = {}): AssemblePlan {
  const out = new Map<string, Source>();
  // SAM (backbone + SAM head).
  planPart(src.sam, samTable(src.sam), (k) => (SAM_PART.test(k) ? k : null), out, 'SAM');
  const samKeys = [...out.keys()];
  if (!samKeys.some((k) => k.startsWith('image_encoder.'))) throw new SamclipBundleError(`${src.sam.name}: no SAM image encoder ('image_encoder.*') in the SAM source`);

  // Text tower + logit scale.
  const clipKeys = src.clip.keys();
  const bundleLike = clipKeys.some((k) => k.startsWith('text.token_embedding'));
  if (bundleLike) {
    planPart(src.clip, null, (k) => (k.startsWith('text.') || k === 'logit_scale' ? k : null), out, 'text tower');
  } else {
    // Text-only files are fine: the family is told by the text keys alone.
    const openai = clipKeys.includes('token_embedding.weight');
    const hf = !openai && clipKeys.some((k) => k.startsWith('text_model.'));
    if (!openai && !hf) {
      throw new SamclipBundleError(
        `${src.clip.name}: no CLIP text tower ('token_embedding.weight' (OpenAI / OpenCLIP), 'text.token_embedding.weight' (OpenCLIP custom text) or 'text_model.*' (Hugging Face)); first keys: ${clipKeys.slice(0, 4).join(', ')}`,
      );
    }
    planPart(src.clip, hf ? CLIP_HF_TABLE : null, (k) => (k === 'logit_scale' ? k : TEXT_KEYS.test(k) ? `text.${k}` : null), out, 'text tower');
  }
  if (![...out.keys()].some((k) => k.startsWith('text.'))) throw new SamclipBundleError(`${src.clip.name}: no CLIP text tower found (token_embedding, transformer, ln_final, text_projection)`);

  // CLIP head: `clip_head.*`, or bare names.
  const prefixed = src.head.keys().some((k) => k.startsWith(`${CLIP_HEAD_PREFIX}.`));
  planPart(src.head, null, (k) => {
    if (prefixed) return k.startsWith(`${CLIP_HEAD_PREFIX}.`) ? k : null;
    return /^(blocks\.|norm\.|mlp\.)/.test(k) ? `${CLIP_HEAD_PREFIX}.${k}` : null;
  }, out, 'CLIP head');
  if (![...out.keys()].some((k) => k.startsWith(`${CLIP_HEAD_PREFIX}.`))) {
    throw new SamclipBundleError(`${src.head.name}: no CLIP-head tensors ('clip_head.*', or 'blocks.*' / 'norm.*' / 'mlp.*')`);
  }

  // What shapes cannot tell, from options and the sources' own metadata.
  const samShapes = shapesView(src.sam.name, out, src.sam.metadata, (k) => SAM_PART.test(k));
  // The SAM source's architecture (standard, named or described by its metadata) goes into the
  // bundle's metadata, so the bundle is checked against it like any SAM checkpoint.
  const samArch = resolveSamArchitecture(samShapes, samConfigFromWeights(samShapes)).config;
  const fromBundle = (f: SafetensorsFile): SamclipMetadata => (f.metadata[SAMCLIP_METADATA_KEY] ? readSamclipMetadata(f.name, f.metadata) : {});
  const clipMeta = fromBundle(src.clip);
  const textHeads = opts.textHeads ?? clipMeta.text?.heads ?? headsOverride(src.clip.metadata, src.clip.name, 'text');
  const textAct = opts.textAct ?? (clipMeta.text?.act as ClipAct | undefined) ?? resolveAct(src.clip.metadata, src.clip.name);
  const headMeta = fromBundle(src.head).clip_head;
  const partial: SamclipMetadata = {
    ...samBundleMetadata(samArch),
    text: { act: textAct, ...(textHeads !== undefined ? { heads: textHeads } : {}) },
    ...(headMeta ? { clip_head: { block_norm_eps: headMeta.block_norm_eps, norm_eps: headMeta.norm_eps } } : {}),
    ...(opts.resolutions ? { resolutions: opts.resolutions } : {}),
  };
  const config = samclipConfigFromShapes(shapesView('assembled bundle', out, { [SAMCLIP_METADATA_KEY]: JSON.stringify(partial) }));

  const dtype = opts.dtype ?? 'F32';
  const entries: SafetensorsStreamEntry[] = [...out].map(([name, s]) => ({
    name,
    dtype,
    shape: s.shape,
    read: async () => encode(await readSource(s), dtype),
  }));
  const metadata: Record<string, string> = {
    ...(opts.extraMetadata ?? {}),
    [SAMCLIP_METADATA_KEY]: samclipMetadataJson(config, opts.model ?? 'samclip'),
    assembled_from: JSON.stringify({ sam: src.sam.name, clip: src.clip.name, head: src.head.name }),
  };
  return { config, metadata, entries };
}

function shapesView(file: string, m: Map<string, Source>, metadata: Record<string, string>, filter: (k: string) => boolean = () => true): WeightShapes {
  const keys = [...m.keys()].filter(filter);
  const set = new Set(keys);
  return { file, family: 'samclip', metadata, has: (k) => set.has(k), shape: (k) => (set.has(k) ? m.get(k)!.shape : undefined), keys: () => keys };
}

/** Values of one output tensor in f32 (fused along dim 0, transposed where the table says). */
async function readSource(s: Source): Promise<Float32Array> {
  const parts = await Promise.all(s.keys.map((k) => s.file.readF32(k)));
  if (s.transpose) {
    const [r, c] = s.file.info(s.keys[0]!).shape as [number, number];
    const src = parts[0]!;
    const t = new Float32Array(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = src[i * c + j]!;
    return t;
  }
  if (parts.length === 1) return parts[0]!;
  const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return all;
}

function encode(v: Float32Array, dtype: 'F32' | 'F16'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const h = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]!) || Math.abs(v[i]!) > 65504) throw new SamclipError(`F16 output: value ${v[i]} at index ${i} does not fit in float16`);
    h[i] = f32ToF16Bits(v[i]!);
  }
  return new Uint8Array(h.buffer);
}

/**
 * A CLIP-head checkpoint of seeded random weights (the reference fixtures' scales, the same
 * generator as src/weights/random.ts), bare names: for benchmarks of full-size merged models
 * before trained SAM-CLIP weights exist.
 */
export function randomClipHead(cfg: ClipHeadConfig, seed = 0): Uint8Array {
  const specs = clipHeadTensorSpec(cfg);
  const entries = specs.map((s) => ({ name: s.name.slice(CLIP_HEAD_PREFIX.length + 1), dtype: 'F32' as const, shape: s.shape, data: randomTensor(s, seed) }));
  return encodeSafetensors(entries, {
    generator: 'samclip-webgpu src/model/samclip/assemble.ts randomClipHead (src/weights/random.ts scales)',
    seed: String(seed),
    [SAMCLIP_METADATA_KEY]: JSON.stringify({ clip_head: { block_norm_eps: cfg.blockEps, norm_eps: cfg.normEps, mlp_widths: cfg.mlpWidths } }),
  });
}
