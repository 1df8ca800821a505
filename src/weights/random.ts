/**
 * Seeded random weights with the real checkpoint names and shapes, for benchmarks and tests of
 * full-size models without downloading anything: SAM ViT-B/L/H (official names, or Hugging Face
 * names), the reference fixtures' tiny SAM and tiny SAM-CLIP bundle (architecture only), SAM 2.1
 * Hiera-T/S/B+/L (official names, image model only) and OpenAI CLIP ViT-B/16 and ViT-L/14.
 *
 * Scales follow the reference fixtures (test/fixtures/reference/README.md, "How the weights were
 * made") so activations stay in a sane range through every layer: Linear N(0, 1/fan_in) with an
 * extra x1.5 on query/key rows, Conv N(0, 1/(C_in k k)), ConvTranspose N(0, 1/C_in), biases
 * N(0, 0.02), LayerNorm weights 1 + N(0, 0.1), embedding tables N(0, 1), absolute position tables
 * N(0, 0.3), SAM relative-position tables N(0, 0.5), the Fourier matrix N(0, 1), x @ P projections
 * N(0, 1/rows), `logit_scale` = ln 100. The numbers are NOT the fixtures' (those come from NumPy's
 * generator); only the distributions are.
 *
 * Every tensor has its own generator, seeded from (seed, name): any tensor can be regenerated alone,
 * and files are written tensor by tensor (`writeSafetensorsFile` streams; ViT-H's 2.5 GB never sits in
 * memory). The generator is xoshiro128** seeded through splitmix32 from an FNV-1a hash of the name;
 * normals come from the Box-Muller transform in float64, rounded to float32 once.
 */
import { f32ToF16Bits } from '../gpu/dtype.js';
import { SamclipError } from '../gpu/errors.js';
import { SAM_ARCHITECTURES } from '../model/sam/architectures.js';
import { type InitKind, type SamConfig, type TensorSpec, samConfigMetadata, samTensorSpec } from '../model/sam/config.js';
import { SAMCLIP_METADATA_KEY, type SamclipConfig, samclipMetadataJson, samclipTensorSpec } from '../model/samclip/bundle.js';
import { sam2ConfigMetadata, sam2Preset, sam2TensorSpec } from '../model/sam2/config.js';
import { samOfficialToHf } from './families/sam-hf.js';
import { type SafetensorsStreamEntry, type WriteSafetensorsResult, writeSafetensorsFile } from './safetensors-writer.js';

export type RandomFamily =
  | 'sam-vit-b'
  | 'sam-vit-l'
  | 'sam-vit-h'
  | 'sam-tiny'
  | 'sam2.1-hiera-t'
  | 'sam2.1-hiera-s'
  | 'sam2.1-hiera-b-plus'
  | 'sam2.1-hiera-l'
  | 'clip-vit-b-16'
  | 'clip-vit-l-14'
  | 'samclip-tiny';
export const RANDOM_FAMILIES: readonly RandomFamily[] = [
  'sam-vit-b',
  'sam-vit-l',
  'sam-vit-h',
  'sam-tiny',
  'sam2.1-hiera-t',
  'sam2.1-hiera-s',
  'sam2.1-hiera-b-plus',
  'sam2.1-hiera-l',
  'clip-vit-b-16',
  'clip-vit-l-14',
  'samclip-tiny',
];

/** SAM 2.1's released models (official names; what the shapes cannot tell goes in the `sam2` metadata). */
const SAM2_RANDOM: Readonly<Record<string, Parameters<typeof sam2Preset>[0]>> = {
  'sam2.1-hiera-t': 'hiera-t',
  'sam2.1-hiera-s': 'hiera-s',
  'sam2.1-hiera-b-plus': 'hiera-b+',
  'sam2.1-hiera-l': 'hiera-l',
};

export type RandomDType = 'F32' | 'F16' | 'BF16';

export class RandomWeightsError extends SamclipError {
  override name = 'RandomWeightsError';
}

// ------------------------------------------------------------------ configurations

/** segment_anything/build_sam.py's three models, and the reference fixtures' tiny one (src/model/sam/architectures.ts). */
export const SAM_PRESETS: Readonly<Record<'sam-vit-b' | 'sam-vit-l' | 'sam-vit-h' | 'sam-tiny', SamConfig>> = SAM_ARCHITECTURES;

/** OpenAI CLIP (clip/model.py build_model) hyper-parameters. OpenAI models use QuickGELU. */
export interface ClipPreset {
  embedDim: number;
  imageResolution: number;
  visionLayers: number;
  visionWidth: number;
  visionPatchSize: number;
  contextLength: number;
  vocabSize: number;
  transformerWidth: number;
  transformerHeads: number;
  transformerLayers: number;
}

export const CLIP_PRESETS: Readonly<Record<'clip-vit-b-16' | 'clip-vit-l-14', ClipPreset>> = {
  'clip-vit-b-16': {
    embedDim: 512, imageResolution: 224, visionLayers: 12, visionWidth: 768, visionPatchSize: 16,
    contextLength: 77, vocabSize: 49408, transformerWidth: 512, transformerHeads: 8, transformerLayers: 12,
  },
  'clip-vit-l-14': {
    embedDim: 768, imageResolution: 224, visionLayers: 24, visionWidth: 1024, visionPatchSize: 14,
    contextLength: 77, vocabSize: 49408, transformerWidth: 768, transformerHeads: 12, transformerLayers: 12,
  },
};

/** Every tensor of an OpenAI CLIP `state_dict()` (after build_model drops its three int entries), in order. */
export function clipTensorSpec(c: ClipPreset): TensorSpec[] {
  const out: TensorSpec[] = [];
  const t = (name: string, shape: number[], init: InitKind) => out.push({ name, shape, init });
  const block = (p: string, w: number) => {
    t(`${p}.attn.in_proj_weight`, [3 * w, w], 'linear-qk');
    t(`${p}.attn.in_proj_bias`, [3 * w], 'bias');
    t(`${p}.attn.out_proj.weight`, [w, w], 'linear');
    t(`${p}.attn.out_proj.bias`, [w], 'bias');
    t(`${p}.ln_1.weight`, [w], 'norm');
    t(`${p}.ln_1.bias`, [w], 'bias');
    t(`${p}.mlp.c_fc.weight`, [4 * w, w], 'linear');
    t(`${p}.mlp.c_fc.bias`, [4 * w], 'bias');
    t(`${p}.mlp.c_proj.weight`, [w, 4 * w], 'linear');
    t(`${p}.mlp.c_proj.bias`, [w], 'bias');
    t(`${p}.ln_2.weight`, [w], 'norm');
    t(`${p}.ln_2.bias`, [w], 'bias');
  };
  const vw = c.visionWidth;
  const g = c.imageResolution / c.visionPatchSize;
  t('positional_embedding', [c.contextLength, c.transformerWidth], 'pos');
  t('text_projection', [c.transformerWidth, c.embedDim], 'proj');
  t('logit_scale', [], 'log-scale');
  t('visual.class_embedding', [vw], 'embed');
  t('visual.positional_embedding', [g * g + 1, vw], 'pos');
  t('visual.proj', [vw, c.embedDim], 'proj');
  t('visual.conv1.weight', [vw, 3, c.visionPatchSize, c.visionPatchSize], 'conv');
  t('visual.ln_pre.weight', [vw], 'norm');
  t('visual.ln_pre.bias', [vw], 'bias');
  for (let i = 0; i < c.visionLayers; i++) block(`visual.transformer.resblocks.${i}`, vw);
  t('visual.ln_post.weight', [vw], 'norm');
  t('visual.ln_post.bias', [vw], 'bias');
  for (let i = 0; i < c.transformerLayers; i++) block(`transformer.resblocks.${i}`, c.transformerWidth);
  t('token_embedding.weight', [c.vocabSize, c.transformerWidth], 'embed');
  t('ln_final.weight', [c.transformerWidth], 'norm');
  t('ln_final.bias', [c.transformerWidth], 'bias');
  return out;
}

/**
 * A SAM-CLIP bundle with the architecture of the reference fixtures' `samclip_tiny` (the tiny SAM
 * backbone and head, a 3-block CLIP head, a 2-layer text tower over CLIP's full vocabulary; 256-px
 * input): what `samclip demo` runs on when no real weights are cached. 17.7 MB in F32.
 */
export const SAMCLIP_TINY: SamclipConfig = {
  sam: SAM_PRESETS['sam-tiny'],
  clipHead: { depth: 3, dim: 96, numHeads: 3, mlpDim: 384, relPosSize: 16, blockEps: 1e-6, normEps: 1e-5, mlpWidths: [96, 128, 128, 64] },
  text: { width: 64, layers: 2, heads: 4, mlpWidth: 256, embedDim: 64, act: 'gelu', eps: 1e-5, contextLength: 77, vocabSize: 49408 },
  embedDim: 64,
  nativeResolution: 256,
  resolutions: { native: 256, seg: 160, cls: 112 },
  pixelMean: [123.675, 116.28, 103.53],
  pixelStd: [58.395, 57.12, 57.375],
};

// ------------------------------------------------------------------ generator

/** 32-bit FNV-1a over the UTF-16 code units of `s`, starting from `h`. */
function fnv1a(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** xoshiro128** (Blackman & Vigna), state seeded by splitmix32. */
export class Xoshiro128 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | null = null;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** Uniform 32-bit integer. */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform in (0, 1), 53 bits. */
  uniform(): number {
    const hi = this.u32() >>> 5;
    const lo = this.u32() >>> 6;
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const th = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The generator of one tensor: independent of every other tensor and of the file order. */
export function tensorRng(seed: number, name: string): Xoshiro128 {
  return new Xoshiro128(fnv1a(name, fnv1a(String(seed))));
}

function std(init: InitKind, shape: readonly number[]): number {
  switch (init) {
    case 'linear':
    case 'linear-qk':
    case 'linear-qk-all':
      return 1 / Math.sqrt(shape[1]!);
    case 'conv':
      return 1 / Math.sqrt(shape[1]! * shape[2]! * shape[3]!);
    case 'conv-transpose':
      return 1 / Math.sqrt(shape[0]!);
    case 'proj':
      return 1 / Math.sqrt(shape[0]!);
    case 'bias':
      return 0.02;
    case 'norm':
      return 0.1;
    case 'embed':
    case 'gauss':
      return 1;
    case 'pos':
      return 0.3;
    case 'rel-pos':
      return 0.5;
    case 'log-scale':
      return 0;
  }
}

/** The values of one tensor (float32). */
export function randomTensor(spec: TensorSpec, seed: number): Float32Array {
  const n = spec.shape.reduce((a, d) => a * d, 1);
  const out = new Float32Array(n);
  if (spec.init === 'log-scale') {
    out.fill(Math.log(100));
    return out;
  }
  const rng = tensorRng(seed, spec.name);
  const s = std(spec.init, spec.shape);
  const base = spec.init === 'norm' ? 1 : 0;
  for (let i = 0; i < n; i++) out[i] = base + s * rng.normal();
  if (spec.init === 'linear-qk' || spec.init === 'linear-qk-all') {
    const rows = spec.init === 'linear-qk' ? (2 * spec.shape[0]!) / 3 : spec.shape[0]!;
    const end = rows * spec.shape[1]!;
    for (let i = 0; i < end; i++) out[i] = out[i]! * 1.5;
  }
  return out;
}

/** float32 values -> the stored bytes of `dtype` (F16 and BF16 round to nearest even). */
export function encodeValues(values: Float32Array, dtype: RandomDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint16Array(values.length);
  if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]!);
  } else {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) {
      const b = bits[i]!;
      // NaN never occurs here; round the dropped 16 bits to nearest, ties to even.
      out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
  return new Uint8Array(out.buffer);
}

// ------------------------------------------------------------------ files

export interface RandomWeightsOptions {
  family: RandomFamily;
  seed?: number;
  /** Stored dtype. Default F32. */
  dtype?: RandomDType;
  /** SAM only: 'hf' writes Hugging Face `SamModel` names. Default 'official'. */
  names?: 'official' | 'hf';
}

export interface RandomWeightsPlan {
  entries: SafetensorsStreamEntry[];
  metadata: Record<string, string>;
  /** Total number of values. */
  values: number;
}

/** Entries (generated lazily, one tensor per `read()`) and metadata of a random checkpoint. */
export function planRandomWeights(opts: RandomWeightsOptions): RandomWeightsPlan {
  const seed = opts.seed ?? 0;
  const dtype = opts.dtype ?? 'F32';
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RandomWeightsError(`seed must be an integer in [0, 2^32), got ${seed}`);
  if (!['F32', 'F16', 'BF16'].includes(dtype)) throw new RandomWeightsError(`dtype must be F32, F16 or BF16, got ${dtype}`);
  const metadata: Record<string, string> = {
    generator: 'samclip-webgpu src/weights/random.ts (xoshiro128** per tensor, reference-fixture scales)',
    family: opts.family,
    seed: String(seed),
  };
  let specs: TensorSpec[];
  let rename = (k: string) => k;
  if (opts.family in SAM_PRESETS) {
    const cfg = SAM_PRESETS[opts.family as keyof typeof SAM_PRESETS];
    specs = samTensorSpec(cfg);
    metadata.sam = samConfigMetadata(cfg);
    if (opts.names === 'hf') rename = samOfficialToHf;
  } else if (opts.family in SAM2_RANDOM) {
    if (opts.names === 'hf') throw new RandomWeightsError(`${opts.family}: only official names are generated for SAM 2`);
    const cfg = sam2Preset(SAM2_RANDOM[opts.family]!);
    specs = sam2TensorSpec(cfg);
    metadata.sam2 = sam2ConfigMetadata(cfg);
  } else if (opts.family in CLIP_PRESETS) {
    if (opts.names === 'hf') throw new RandomWeightsError(`${opts.family}: only OpenAI names are generated for CLIP`);
    const c = CLIP_PRESETS[opts.family as keyof typeof CLIP_PRESETS];
    specs = clipTensorSpec(c);
    metadata.clip = JSON.stringify({ ...c, act: 'quick_gelu' });
  } else if (opts.family === 'samclip-tiny') {
    if (opts.names === 'hf') throw new RandomWeightsError(`${opts.family}: only the bundle's own names are generated`);
    specs = samclipTensorSpec(SAMCLIP_TINY);
    metadata[SAMCLIP_METADATA_KEY] = samclipMetadataJson(SAMCLIP_TINY, 'samclip_tiny (seeded random)');
  } else {
    throw new RandomWeightsError(`unknown family '${opts.family}' (known: ${RANDOM_FAMILIES.join(', ')})`);
  }
  const entries = specs.map((s) => ({
    name: rename(s.name),
    dtype,
    shape: s.shape,
    read: () => encodeValues(randomTensor(s, seed), dtype),
  }));
  return { entries, metadata, values: specs.reduce((a, s) => a + s.shape.reduce((p, d) => p * d, 1), 0) };
}

/** Write a random checkpoint (Node only; never overwrites an existing file). */
export async function writeRandomWeights(
  path: string,
  opts: RandomWeightsOptions & { onTensor?: (name: string, bytes: number, index: number, count: number) => void },
): Promise<WriteSafetensorsResult> {
  const plan = planRandomWeights(opts);
  return writeSafetensorsFile(path, plan.entries, { metadata: plan.metadata, onTensor: opts.onTensor });
}
