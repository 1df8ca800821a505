/**
 * Which CLIP towers a checkpoint is supposed to hold, so that loading is strict about architecture
 * (shapes alone cannot tell a ViT-B/16 from one with its last block cut off). Each tower is
 * checked against, in order:
 *  1. the caller's explicit `config` (the way to load a non-standard model that does not describe
 *     itself);
 *  2. the file's own description: a `clip` metadata JSON with layer counts (src/weights/random.ts
 *     writes one), or a SAM-CLIP bundle's `samclip` metadata for its text tower;
 *  3. a known model named by the file's `model` metadata (the fixtures' `clip_tiny`);
 *  4. the standard tower of the file's width (OpenAI CLIP and OpenCLIP model configs).
 * Depth, width and MLP width must then match (an error names the missing, extra or misshaped
 * tensors), and a head count given by option or metadata must agree with the architecture's.
 */
import { fmtShape } from '../../gpu/errors.js';
import type { WeightShapes } from '../../weights/weights.js';
import { ClipError, type TowerConfig, VISION_HEAD_WIDTH } from './config.js';

/** What a tower's shapes cannot all tell, and what strictness compares. */
export interface TowerArchitecture {
  width: number;
  layers: number;
  heads: number;
  mlpWidth: number;
}

/** An explicit architecture for `loadClip` / `ClipModel.create` (`config` option). */
export interface ClipArchitecture {
  vision?: TowerArchitecture;
  text?: TowerArchitecture;
}

type Tower = 'vision' | 'text';

const t = (width: number, layers: number, heads: number, mlpWidth = 4 * width): TowerArchitecture => ({ width, layers, heads, mlpWidth });

/**
 * Standard towers by width (openai/CLIP build_model; open_clip model_configs: ViT-S/M/B/L/H/g/bigG
 * and ViT-B-16-plus). Patch size and resolution vary within a family and are not checked.
 */
const STANDARD: Readonly<Record<Tower, Readonly<Record<number, [string, TowerArchitecture]>>>> = {
  vision: {
    384: ['ViT-S', t(384, 12, 6)],
    512: ['ViT-M', t(512, 12, 8)],
    768: ['ViT-B', t(768, 12, 12)],
    896: ['ViT-B-16-plus', t(896, 12, 14)],
    1024: ['ViT-L', t(1024, 24, 16)],
    1280: ['ViT-H', t(1280, 32, 16)],
    1408: ['ViT-g', t(1408, 40, 16, 6144)],
    1664: ['ViT-bigG', t(1664, 48, 16, 8192)],
  },
  text: {
    384: ['ViT-S text', t(384, 12, 6)],
    512: ['ViT-B text', t(512, 12, 8)],
    640: ['ViT-B-16-plus text', t(640, 12, 10)],
    768: ['ViT-L text', t(768, 12, 12)],
    1024: ['ViT-H/g text', t(1024, 24, 16)],
    1280: ['ViT-bigG text', t(1280, 32, 20)],
  },
};

/** Known non-standard models, by the name files give in their `model` metadata. */
const NAMED: Readonly<Record<string, Required<ClipArchitecture>>> = {
  // test/fixtures/reference (openai/CLIP code, seeded weights): manifest clip.config.
  clip_tiny: { vision: t(96, 2, 1), text: t(64, 2, 4) },
};

function metaJson(w: WeightShapes, key: string): Record<string, unknown> | undefined {
  const raw = w.metadata[key];
  if (raw === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(raw);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // malformed metadata is reported by whoever reads it for its own purpose
  }
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);

/** A tower described by the file's metadata, if it describes one completely. */
function described(w: WeightShapes, tower: Tower): [string, TowerArchitecture] | undefined {
  const clip = metaJson(w, 'clip');
  if (clip) {
    const width = num(tower === 'vision' ? clip.visionWidth : clip.transformerWidth);
    const layers = num(tower === 'vision' ? clip.visionLayers : clip.transformerLayers);
    if (width && layers) {
      const heads = num(tower === 'vision' ? clip.visionHeads : clip.transformerHeads) ?? Math.floor(width / (tower === 'vision' ? VISION_HEAD_WIDTH[width] ?? 64 : 64));
      return ["the file's 'clip' metadata", t(width, layers, heads)];
    }
  }
  const text = tower === 'text' ? (metaJson(w, 'samclip')?.text as Record<string, unknown> | undefined) : undefined;
  const [width, layers, heads] = [num(text?.width), num(text?.layers), num(text?.heads)];
  if (width && layers && heads) return ["the file's 'samclip' metadata", t(width, layers, heads)];
  return undefined;
}

function describe(a: TowerArchitecture): string {
  return `width ${a.width}, ${a.layers} layers, ${a.heads} heads, MLP ${a.mlpWidth}`;
}

/** Block tensors of a tower (OpenAI names under `prefix`). */
function blockSpec(prefix: string, i: number, a: TowerArchitecture): [string, number[]][] {
  const b = `${prefix}transformer.resblocks.${i}`;
  const { width: W, mlpWidth: M } = a;
  return [
    [`${b}.attn.in_proj_weight`, [3 * W, W]],
    [`${b}.attn.in_proj_bias`, [3 * W]],
    [`${b}.attn.out_proj.weight`, [W, W]],
    [`${b}.attn.out_proj.bias`, [W]],
    [`${b}.ln_1.weight`, [W]],
    [`${b}.ln_1.bias`, [W]],
    [`${b}.mlp.c_fc.weight`, [M, W]],
    [`${b}.mlp.c_fc.bias`, [M]],
    [`${b}.mlp.c_proj.weight`, [W, M]],
    [`${b}.mlp.c_proj.bias`, [W]],
    [`${b}.ln_2.weight`, [W]],
    [`${b}.ln_2.bias`, [W]],
  ];
}

function listSome(items: string[], n = 8): string {
  return `${items.slice(0, n).join(', ')}${items.length > n ? `, ... (${items.length - n} more)` : ''}`;
}

/**
 * Check one tower's derived configuration against its architecture and return it with the
 * architecture's head count. `headsGiven` is a count from an option or metadata (undefined when
 * the width rule chose it); `explicit` is the caller's `config` for this tower.
 */
export function strictTower<C extends TowerConfig>(w: WeightShapes, tower: Tower, prefix: string, cfg: C, headsGiven: number | undefined, explicit?: TowerArchitecture): C {
  let source: string;
  let arch: TowerArchitecture;
  const named = w.metadata.model !== undefined ? NAMED[w.metadata.model.trim()] : undefined;
  const desc = described(w, tower);
  const std = STANDARD[tower][cfg.width];
  if (explicit) [source, arch] = ['the explicit config option', explicit];
  else if (desc) [source, arch] = desc;
  else if (named) [source, arch] = [`${w.metadata.model} (named by the file's metadata 'model')`, named[tower]];
  else if (std) [source, arch] = [`${std[0]} (the standard ${tower} tower of width ${cfg.width})`, std[1]];
  else {
    throw new ClipError(
      `${w.file} (${w.family}): a ${tower} tower of width ${cfg.width} (${cfg.layers} layers, MLP ${cfg.mlpWidth}) is not a standard CLIP / OpenCLIP tower ` +
        `(${tower} widths ${Object.keys(STANDARD[tower]).join(', ')}) and the file does not describe its architecture; load a non-standard CLIP ` +
        `with an explicit configuration (the 'config' option: { ${tower}: { width, layers, heads, mlpWidth } }; docs/weights.md, "Strict architecture")`,
    );
  }
  const problems: string[] = [];
  if (cfg.width !== arch.width) problems.push(`width ${cfg.width} (the architecture has ${arch.width})`);
  const expected = new Map<string, number[]>();
  for (let i = 0; i < arch.layers; i++) for (const [k, s] of blockSpec(prefix, i, arch)) expected.set(k, s);
  // Extra blocks are this check's business; an unknown tensor inside a block is the strict
  // loader's (Weights.assertAllUsed names it).
  const blockKey = new RegExp(`^${prefix.replace(/\./g, '\\.')}transformer\\.resblocks\\.(\\d+)\\.`);
  const missing = [...expected].filter(([k]) => !w.has(k)).map(([k, s]) => `'${k}' ${fmtShape(s)}`);
  const extra = w
    .keys()
    .filter((k) => Number(blockKey.exec(k)?.[1] ?? -1) >= arch.layers)
    .map((k) => `'${k}' ${fmtShape(w.shape(k)!)}`);
  const misshaped = [...expected]
    .filter(([k, s]) => w.has(k) && fmtShape(w.shape(k)!) !== fmtShape(s))
    .map(([k, s]) => `'${k}' has shape ${fmtShape(w.shape(k)!)}, expected ${fmtShape(s)}`);
  if (cfg.width === arch.width) {
    if (missing.length) problems.push(`${missing.length} missing tensor(s): ${listSome(missing)}`);
    if (extra.length) problems.push(`${extra.length} unexpected tensor(s): ${listSome(extra)}`);
    if (misshaped.length) problems.push(listSome(misshaped, 4));
  }
  if (headsGiven !== undefined && headsGiven !== arch.heads) problems.push(`${headsGiven} heads were given, the architecture has ${arch.heads}`);
  if (problems.length) {
    throw new ClipError(
      `${w.file} (${w.family}): the ${tower} tower does not match ${source} (${describe(arch)}): ${problems.join('; ')}. ` +
        `A non-standard CLIP needs an explicit configuration (the 'config' option; docs/weights.md)`,
    );
  }
  return { ...cfg, heads: arch.heads };
}
