/**
 * What the model sub-commands share: finding weights (an explicit file, the pulled file in the
 * cache, or seeded random weights that announce themselves), reading the input photo, and the
 * prompt syntax (`x,y[:label]`, `x0,y0,x1,y1`) with checks against the image size.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { Command } from 'commander';
import type { DecodedImage } from '../../io/decode.js';
import type { ProgressOptions } from '../../gpu/pacer.js';
import type { RandomFamily } from '../../weights/random.js';
import { MAX_SEED, intArg } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { CliError, UsageError } from '../errors.js';
import { type Progress, formatSeconds } from '../output.js';
import { type ModelKind, REGISTRY, type RegistryEntry, cacheDir, cachedPath, isCached } from '../weights/cache.js';
import { checkReadable } from './files.js';

export interface ModelOptions extends CommonOptions {
  weights?: string;
  /** `--model NAME` (segment, everything): a registry name choosing SAM or SAM 2 and its weights. */
  model?: string;
  /** `--random-weights [family]`: true when given without a family. */
  randomWeights?: string | boolean;
  seed: number;
  cache?: string;
  dtype: string;
}

/** Adds --weights, --random-weights, --seed, --cache, --dtype. */
export function withModelOptions(cmd: Command, kind: ModelKind, defaultRandom: string): Command {
  const pull = REGISTRY.find((e) => e.kind === kind)!.name;
  return cmd
    .option('-w, --weights <file>', `${kind.toUpperCase()} checkpoint (.safetensors); default: the pulled one in the cache (samclip weights pull ${pull})`)
    .option('--random-weights [family]', `run on seeded random weights (meaningless output; for trying the tool), default family ${defaultRandom}`)
    .option('--seed <n>', 'seed of --random-weights', intArg('--seed', 0, MAX_SEED), 0)
    .option('--cache <dir>', 'weights cache (default $SAMCLIP_CACHE or ~/.cache/samclip)')
    .option('--dtype <dtype>', 'GPU storage of weight matrices: f32 or f16 (needs shader-f16)', 'f32');
}

export interface ResolvedWeights {
  path: string;
  source: 'file' | 'cache' | 'random';
  /** The random family when source is 'random'. */
  randomFamily: string | null;
  /** CLIP activation the registry knows for a pulled file the checkpoint itself does not label. */
  act?: 'gelu' | 'quick_gelu';
}

export function checkDtype(dtype: string): 'f32' | 'f16' {
  if (dtype !== 'f32' && dtype !== 'f16') throw new UsageError(`--dtype must be f32 or f16, got '${dtype}'`);
  return dtype;
}

/** The first registry entry of `kind` whose file is in the cache (complete, with its record). */
export function firstCached(cache: string, kind: ModelKind): RegistryEntry | null {
  return REGISTRY.find((e) => e.kind === kind && isCached(cache, e.name, e.file)) ?? null;
}

/** The checkpoint to run: --weights, else --random-weights, else the first pulled one of `kind`. */
export async function resolveWeights(env: CliEnv, opts: ModelOptions, kind: ModelKind, defaultRandom: string): Promise<ResolvedWeights> {
  if (opts.weights && opts.randomWeights) throw new UsageError('give either --weights or --random-weights, not both');
  if (opts.weights) {
    await checkReadable(opts.weights, 'weights file');
    return { path: opts.weights, source: 'file', randomFamily: null };
  }
  const cache = cacheDir(opts.cache);
  if (opts.randomWeights) {
    const family = typeof opts.randomWeights === 'string' ? opts.randomWeights : defaultRandom;
    const { RANDOM_FAMILIES } = await import('../../weights/random.js');
    const prefix = { sam: 'sam-', sam2: 'sam2', clip: 'clip-' }[kind];
    const ofKind = RANDOM_FAMILIES.filter((f) => f.startsWith(prefix));
    if (!(ofKind as readonly string[]).includes(family)) {
      throw new UsageError(`--random-weights: '${family}' is not a ${kind.toUpperCase()} family; use one of ${ofKind.join(', ')}`);
    }
    const path = await randomWeightsFile(env, opts, family as RandomFamily, opts.seed);
    const pull = REGISTRY.find((e) => e.kind === kind)!.name;
    env.note(opts, `NOTE: running on seeded random weights (${family}, seed ${opts.seed}); the output is meaningless. For real results: samclip weights pull ${pull}`);
    return { path, source: 'random', randomFamily: family };
  }
  const e = firstCached(cache, kind);
  if (e) {
    const path = cachedPath(cache, e.name, e.file);
    env.note(opts, `using ${e.name} weights from the cache: ${path}`);
    return { path, source: 'cache', randomFamily: null, ...(e.act ? { act: e.act } : {}) };
  }
  const pull = REGISTRY.find((e) => e.kind === kind)!.name;
  throw new CliError(
    `no ${kind.toUpperCase()} weights: download them with \`samclip weights pull ${pull}\` (cache: ${cache}), pass --weights FILE, or add --random-weights to try the tool on seeded random weights`,
  );
}

/**
 * Seeded random weights of `family` in the cache's `random/` folder, generated on first use (a
 * second run reuses them; the writer never overwrites, so concurrent runs are safe).
 */
export async function randomWeightsFile(env: CliEnv, opts: CommonOptions & { cache?: string }, family: RandomFamily, seed: number): Promise<string> {
  const path = join(cacheDir(opts.cache), 'random', `${family}-seed${seed}.safetensors`);
  if (existsSync(path)) return path;
  const { writeRandomWeights } = await import('../../weights/random.js');
  await mkdir(dirname(path), { recursive: true });
  const bar = env.progress(opts, `generating random ${family}`, 0);
  await writeRandomWeights(path, {
    family,
    seed,
    onTensor: (_n, _b, i, count) => {
      bar.setTotal(count);
      bar.update(i + 1);
    },
  }).catch(async (e: unknown) => {
    // Another run may have written it meanwhile (the writer never overwrites): use that one.
    if (!existsSync(path)) throw e;
  });
  bar.finish();
  return path;
}

/** Adds `--model NAME` (segment, everything): SAM or SAM 2 by registry name. */
export function withModelChoice(cmd: Command): Command {
  const names = REGISTRY.filter((e) => e.kind === 'sam' || e.kind === 'sam2').map((e) => e.name);
  return cmd.option('-m, --model <name>', `model by registry name (${names.join(', ')}); default: SAM, or what --weights holds`);
}

/** The model family a checkpoint file holds (a .pt / .pth is opened with the pickle-free reader). */
async function fileKind(path: string): Promise<'sam' | 'sam2'> {
  const { detectFamily } = await import('../../weights/families.js');
  let keys: string[];
  if (/\.(pt|pth)$/i.test(path)) {
    const { openPthFile } = await import('../../weights/pth.js');
    const ckpt = await openPthFile(path);
    keys = ckpt.tensors.map((t) => t.name);
    await ckpt.close();
  } else {
    const { SafetensorsFile } = await import('../../weights/safetensors.js');
    const f = await SafetensorsFile.open(path);
    keys = f.keys();
    await f.close();
  }
  const family = detectFamily(keys, path);
  return family === 'sam2' || family === 'sam2-hf' ? 'sam2' : 'sam';
}

/**
 * Which segmenter to run and its weights: `--model NAME` picks SAM or SAM 2 (its pulled file,
 * unless --weights or --random-weights is given); without it, --weights decides by its keys, and
 * otherwise SAM as before.
 */
export async function resolveSegmenter(env: CliEnv, opts: ModelOptions): Promise<{ kind: 'sam' | 'sam2'; weights: ResolvedWeights }> {
  if (!opts.model) {
    if (opts.weights && !opts.randomWeights) {
      await checkReadable(opts.weights, 'weights file');
      return { kind: await fileKind(opts.weights), weights: await resolveWeights(env, opts, 'sam', 'sam-vit-b') };
    }
    return { kind: 'sam', weights: await resolveWeights(env, opts, 'sam', 'sam-vit-b') };
  }
  const e = REGISTRY.find((x) => x.name === opts.model);
  const choices = REGISTRY.filter((x) => x.kind === 'sam' || x.kind === 'sam2').map((x) => x.name);
  if (!e || (e.kind !== 'sam' && e.kind !== 'sam2')) throw new UsageError(`--model: unknown segmenter '${opts.model}'; use one of ${choices.join(', ')}`);
  const kind = e.kind;
  if (opts.weights || opts.randomWeights) {
    const randomDefault = kind === 'sam2' ? e.name.replace(/-hf$/, '') : 'sam-vit-b';
    return { kind, weights: await resolveWeights(env, opts, kind, randomDefault) };
  }
  const cache = cacheDir(opts.cache);
  const path = cachedPath(cache, e.name, e.file);
  if (!isCached(cache, e.name, e.file)) {
    throw new CliError(`--model ${e.name}: not in the cache (${path}); download it with \`samclip weights pull ${e.name}\`, pass --weights FILE, or add --random-weights`);
  }
  env.note(opts, `using ${e.name} weights from the cache: ${path}`);
  return { kind, weights: { path, source: 'cache', randomFamily: null } };
}

/**
 * Reads the photo (JPEG/PNG, EXIF orientation applied). Images whose decoded pixels would exceed
 * 512 MiB are refused from their header; `SAMCLIP_MAX_IMAGE_BYTES` raises that limit.
 */
export async function loadPhoto(path: string): Promise<DecodedImage> {
  const { readImage } = await import('../../io/decode.js');
  const raw = process.env.SAMCLIP_MAX_IMAGE_BYTES;
  const maxImageBytes = raw === undefined || raw === '' ? undefined : Number(raw);
  if (maxImageBytes !== undefined && !(Number.isSafeInteger(maxImageBytes) && maxImageBytes > 0)) {
    throw new UsageError(`SAMCLIP_MAX_IMAGE_BYTES must be a positive integer (bytes), got '${raw}'`);
  }
  return readImage(path, maxImageBytes === undefined ? {} : { maxImageBytes });
}

/** Reports a long step's duration on stderr (progress; never on stdout, silent with --quiet). */
export async function step<T>(env: CliEnv, opts: CommonOptions, label: string, fn: (progress: ProgressOptions) => Promise<T>): Promise<T> {
  const t0 = performance.now();
  // Calls that report progress get a bar with the stage and an ETA; the others a "label... 1.2s" line.
  let bar: Progress | null = null;
  const onProgress = (p: { stage: string; fraction: number }) => {
    if (opts.quiet) return;
    if (!bar) {
      if (env.stderr.isTTY) env.stderr.write('\r\x1b[K');
      bar = env.progress(opts, label, 1000);
    }
    bar.detail = p.stage;
    bar.update(Math.round(1000 * p.fraction));
  };
  if (env.stderr.isTTY && !opts.quiet) env.stderr.write(`${label}...`);
  const r = await fn({ onProgress });
  const secs = (performance.now() - t0) / 1000;
  if (bar) {
    (bar as Progress).detail = 'done';
    (bar as Progress).finish(`in ${formatSeconds(secs)}`);
  } else if (!opts.quiet) env.stderr.write(env.stderr.isTTY ? ` ${formatSeconds(secs)}\n` : `${label}: ${formatSeconds(secs)}\n`);
  return r;
}

export interface PointPrompt {
  x: number;
  y: number;
  label: 0 | 1;
}

const LABELS: Record<string, 0 | 1> = { '1': 1, '0': 0, fg: 1, bg: 0, pos: 1, neg: 0, '+': 1, '-': 0 };

/** `x,y` or `x,y:label` (label 1/fg/pos = foreground, 0/bg/neg = background). */
export function parsePoint(s: string): PointPrompt {
  const m = /^\s*(-?[\d.]+(?:e-?\d+)?)\s*,\s*(-?[\d.]+(?:e-?\d+)?)\s*(?::\s*(\S+))?\s*$/i.exec(s);
  const label = m?.[3] === undefined ? 1 : LABELS[m[3].toLowerCase()];
  const x = Number(m?.[1]);
  const y = Number(m?.[2]);
  if (!m || label === undefined || !Number.isFinite(x) || !Number.isFinite(y)) {
    throw new UsageError(`--point '${s}': expected x,y or x,y:label with label 1 (foreground) or 0 (background), e.g. --point 400,300 --point 120,80:0`);
  }
  return { x, y, label };
}

export function parseBox(s: string): [number, number, number, number] {
  const parts = s.split(',').map((p) => p.trim());
  const v = parts.map(Number);
  if (parts.length !== 4 || parts.some((p) => p === '') || !v.every(Number.isFinite)) {
    throw new UsageError(`--box '${s}': expected x0,y0,x1,y1 (pixels, top-left and bottom-right corners)`);
  }
  const [x0, y0, x1, y1] = v as [number, number, number, number];
  if (x0 > x1 || y0 > y1) throw new UsageError(`--box '${s}': x0 must be <= x1 and y0 <= y1`);
  return [x0, y0, x1, y1];
}

/** Prompts must lie on the image (pixel coordinates of the displayed, EXIF-oriented photo). */
export function checkPromptsInside(image: { width: number; height: number }, file: string, points: PointPrompt[], box: number[] | null): void {
  const { width: W, height: H } = image;
  for (const p of points) {
    if (p.x < 0 || p.y < 0 || p.x > W || p.y > H) {
      throw new UsageError(`--point ${p.x},${p.y} lies outside ${file} (${W}x${H}: x in [0, ${W}], y in [0, ${H}])`);
    }
  }
  if (box && (box[0]! < 0 || box[1]! < 0 || box[2]! > W || box[3]! > H)) {
    throw new UsageError(`--box ${box.join(',')} lies outside ${file} (${W}x${H})`);
  }
}

/** `dir/photo.jpg` -> `photo` (for default output names). */
export function stem(path: string): string {
  return basename(path, extname(path));
}

/** `mask.png` + `-1` -> `mask-1.png`. */
export function withSuffix(path: string, suffix: string): string {
  const ext = extname(path);
  return `${path.slice(0, path.length - ext.length)}${suffix}${ext || '.png'}`;
}
