/**
 * `samclip semseg IMAGE --classes sky,road,car [--refine] --out labels.png`: zero-shot semantic
 * segmentation with SAM-CLIP (src/pipelines/semantic-segmentation.ts). Writes a colour-coded label
 * map at the photo's size and, on request, an overlay of the photo with the classes tinted,
 * outlined and named in a legend.
 *
 * This file also holds what the SAM-CLIP commands (`semseg`, `text`, `demo`) share: the weights
 * options and their resolution (a merged bundle, public SAM + CLIP files in composite mode, the
 * pulled checkpoints in the cache, or seeded random weights that say so), and model loading.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { DecodedImage } from '../../io/decode.js';
import type { SamClip, TemplateChoice } from '../../pipelines/samclip.js';
import type { SemanticSegmentation } from '../../pipelines/semantic-segmentation.js';
import { MAX_SEED, collect, intArg, numberArg, withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { CliError, UsageError } from '../errors.js';
import { formatTable } from '../output.js';
import { cacheDir, cachedPath } from '../weights/cache.js';
import { checkReadable } from './files.js';
import { checkDtype, firstCached, loadPhoto, randomWeightsFile, resolveWeights, stem, step } from './model-common.js';

// ------------------------------------------------------------------------------ shared options

export interface SamClipCliOptions extends CommonOptions {
  bundle?: string;
  sam?: string;
  clip?: string;
  /** `--random-weights [kind]`: true when given without a kind. */
  randomWeights?: string | boolean;
  seed?: number;
  cache?: string;
  dtype: string;
  template?: string[];
  rawLabels?: boolean;
  act?: string;
  textHeads?: number;
  visionHeads?: number;
  pointThreshold?: number;
}

/** Random-weight choices: a tiny SAM-CLIP bundle (fast) or full-size composite ViT-B (slow). */
export const RANDOM_KINDS = ['samclip-tiny', 'vit-b'] as const;
export type RandomKind = (typeof RANDOM_KINDS)[number];

const PULL_HINT = '`samclip weights pull sam-vit-b` and `samclip weights pull clip-vit-b-16`';
const SLOW_NOTE = 'full-size SAM ViT-B + CLIP ViT-B/16 take 10 minutes or more on a CPU adapter such as lavapipe, seconds on a GPU';

/** Adds the weights options of the SAM-CLIP commands, and the text-side options. */
export function withSamClipOptions(cmd: Command): Command {
  return cmd
    .option('--bundle <file>', 'SAM-CLIP bundle (merged model; docs/samclip-bundle.md)')
    .option('--sam <file>', 'SAM checkpoint for composite mode (default: the pulled sam-vit-b in the cache)')
    .option('--clip <file>', 'CLIP / OpenCLIP checkpoint for composite mode (default: the pulled clip-vit-b-16 in the cache)')
    .option('--random-weights [kind]', `seeded random weights (meaningless output, for trying the tool): 'samclip-tiny' (default; a tiny SAM-CLIP bundle, seconds) or 'vit-b' (full-size composite; slow on a CPU adapter)`)
    .option('--seed <n>', 'seed of --random-weights', intArg('--seed', 0, MAX_SEED))
    .option('--cache <dir>', 'weights cache (default $SAMCLIP_CACHE or ~/.cache/samclip)')
    .option('--dtype <dtype>', 'GPU storage of weight matrices: f32 or f16 (needs shader-f16)', 'f32')
    .option('-t, --template <text>', "prompt template with one '{}' (repeatable; default: the 80 ImageNet templates)", collect)
    .option('--raw-labels', "use the class names as they are (template '{}')")
    .option('--act <act>', "CLIP activation when the checkpoint does not say: 'quick_gelu' (OpenAI) or 'gelu' (OpenCLIP)")
    .option('--text-heads <n>', 'CLIP text attention heads when the checkpoint does not say', intArg('--text-heads', 1, 128))
    .option('--vision-heads <n>', 'CLIP vision attention heads when the checkpoint does not say', intArg('--vision-heads', 1, 128));
}

/** Template choice from --template / --raw-labels (checked). */
export async function templateChoice(opts: SamClipCliOptions): Promise<TemplateChoice | undefined> {
  if (opts.rawLabels && opts.template) throw new UsageError('give either --raw-labels or --template, not both');
  if (opts.rawLabels) return 'name';
  if (!opts.template) return undefined;
  const { checkTemplates } = await import('../../model/samclip/text-embeddings.js');
  try {
    checkTemplates(opts.template);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return opts.template;
}

/** `--classes a,b --classes c` -> ['a', 'b', 'c'], checked like the library checks them (usage errors). */
export async function parseClasses(values: string[] | undefined, extra: readonly string[] = []): Promise<string[]> {
  const classes = (values ?? []).flatMap((v) => v.split(',')).map((s) => s.trim());
  if (classes.length === 0) throw new UsageError('give the class names with --classes, e.g. --classes dog,grass,sky');
  const { checkClassList } = await import('../../model/samclip/text-embeddings.js');
  try {
    const names = checkClassList(classes, '--classes');
    if (extra.length) checkClassList([...names, ...extra], '--classes and --background-prompt');
    return names;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * A file of this package by its path from the package root, or null when absent. The root is three
 * folders up from this module both in a checkout (src/cli/commands/) and in the built package
 * (lib/cli/commands/).
 */
export function packageFile(rel: string): string | null {
  const p = fileURLToPath(new URL(`../../../${rel}`, import.meta.url));
  return existsSync(p) ? p : null;
}

/** Checks the photo before any model work: SAM-CLIP's smallest input (the library checks again). */
export async function loadSamClipPhoto(path: string): Promise<DecodedImage> {
  const photo = await loadPhoto(path);
  const { MIN_IMAGE_SIDE } = await import('../../pipelines/samclip.js');
  if (photo.width < MIN_IMAGE_SIDE || photo.height < MIN_IMAGE_SIDE) {
    throw new CliError(`${path}: the image is too small (${photo.width}x${photo.height}); SAM-CLIP needs at least ${MIN_IMAGE_SIDE}x${MIN_IMAGE_SIDE} pixels`);
  }
  return photo;
}

// ------------------------------------------------------------------------------ weights

export interface ResolvedSamClip {
  mode: 'merged' | 'composite';
  bundle?: string;
  sam?: string;
  clip?: string;
  /** Activation known from where the CLIP file came from (OpenCLIP DataComp pulls: gelu). */
  clipAct?: 'gelu' | 'quick_gelu';
  source: 'file' | 'cache' | 'random';
  /** The random kind when source is 'random'. */
  randomFamily: RandomKind | null;
}

/** The public SAM + CLIP checkpoints in the cache (composite mode), when both are there. */
export function cachedComposite(cacheOption?: string): { sam: string; clip: string; clipAct?: 'gelu' | 'quick_gelu'; names: [string, string] } | null {
  const cache = cacheDir(cacheOption);
  const sam = firstCached(cache, 'sam');
  const clip = firstCached(cache, 'clip');
  if (!sam || !clip) return null;
  return {
    sam: cachedPath(cache, sam.name, sam.file),
    clip: cachedPath(cache, clip.name, clip.file),
    // The registry knows the activation of files that do not record it (OpenCLIP DataComp: GELU).
    ...(clip.act ? { clipAct: clip.act } : {}),
    names: [sam.name, clip.name],
  };
}

/**
 * What to run: --bundle (merged), --sam / --clip (composite; a part not given comes from the
 * cache), --random-weights, else the pulled SAM + CLIP in the cache (composite).
 */
export async function resolveSamClip(env: CliEnv, opts: SamClipCliOptions): Promise<ResolvedSamClip> {
  const files = opts.bundle !== undefined || opts.sam !== undefined || opts.clip !== undefined;
  if (opts.bundle !== undefined && (opts.sam !== undefined || opts.clip !== undefined)) throw new UsageError('give either --bundle (merged model) or --sam / --clip (composite mode), not both');
  if (opts.randomWeights && files) throw new UsageError('give either weights files or --random-weights, not both');
  if (opts.seed !== undefined && !opts.randomWeights) throw new UsageError('--seed applies to --random-weights');
  const cache = cacheDir(opts.cache);
  if (opts.bundle !== undefined) {
    await checkReadable(opts.bundle, 'bundle');
    return { mode: 'merged', bundle: opts.bundle, source: 'file', randomFamily: null };
  }
  if (opts.randomWeights) {
    const kind = opts.randomWeights === true ? 'samclip-tiny' : opts.randomWeights;
    if (!(RANDOM_KINDS as readonly string[]).includes(kind)) throw new UsageError(`--random-weights: '${kind}' is not one of ${RANDOM_KINDS.join(', ')}`);
    return randomWeights(env, opts, kind as RandomKind);
  }
  if (opts.sam !== undefined || opts.clip !== undefined) {
    if (opts.sam !== undefined) await checkReadable(opts.sam, 'SAM weights file');
    if (opts.clip !== undefined) await checkReadable(opts.clip, 'CLIP weights file');
    const samEntry = opts.sam === undefined ? firstCached(cache, 'sam') : null;
    const clipEntry = opts.clip === undefined ? firstCached(cache, 'clip') : null;
    if (opts.sam === undefined && !samEntry) throw new CliError(`composite mode needs SAM weights too: pass --sam FILE or run \`samclip weights pull sam-vit-b\` (cache: ${cache})`);
    if (opts.clip === undefined && !clipEntry) throw new CliError(`composite mode needs CLIP weights too: pass --clip FILE or run \`samclip weights pull clip-vit-b-16\` (cache: ${cache})`);
    const sam = opts.sam ?? cachedPath(cache, samEntry!.name, samEntry!.file);
    const clip = opts.clip ?? cachedPath(cache, clipEntry!.name, clipEntry!.file);
    if (samEntry) env.note(opts, `using ${samEntry.name} weights from the cache: ${sam}`);
    if (clipEntry) env.note(opts, `using ${clipEntry.name} weights from the cache: ${clip}`);
    return { mode: 'composite', sam, clip, ...(clipEntry?.act ? { clipAct: clipEntry.act } : {}), source: 'file', randomFamily: null };
  }
  const found = cachedComposite(opts.cache);
  if (!found) {
    throw new CliError(
      `no SAM-CLIP weights: SAM-CLIP has none public, so composite mode runs its pipelines on public SAM + CLIP; download them with ${PULL_HINT} (cache: ${cache}), pass --bundle FILE or --sam FILE --clip FILE, or add --random-weights to try the tool on seeded random weights`,
    );
  }
  env.note(opts, `composite mode: ${found.names[0]} + ${found.names[1]} from the cache (${cache})`);
  return { mode: 'composite', sam: found.sam, clip: found.clip, ...(found.clipAct ? { clipAct: found.clipAct } : {}), source: 'cache', randomFamily: null };
}

async function randomWeights(env: CliEnv, opts: SamClipCliOptions, kind: RandomKind): Promise<ResolvedSamClip> {
  if (kind === 'samclip-tiny') {
    const seed = opts.seed ?? 0;
    const bundle = await randomWeightsFile(env, opts, 'samclip-tiny', seed);
    env.note(opts, `NOTE: running on seeded random weights (samclip-tiny: a tiny SAM-CLIP bundle, seed ${seed}, 256-px input); the output is meaningless. For real results: ${PULL_HINT} (composite mode; SAM-CLIP itself has no public weights). Full-size random weights: --random-weights vit-b (${SLOW_NOTE}).`);
    return { mode: 'merged', bundle, source: 'random', randomFamily: kind };
  }
  const common = { ...opts, weights: undefined, seed: opts.seed ?? 0, dtype: opts.dtype };
  const sam = await resolveWeights(env, { ...common, randomWeights: 'sam-vit-b' }, 'sam', 'sam-vit-b');
  const clip = await resolveWeights(env, { ...common, randomWeights: 'clip-vit-b-16' }, 'clip', 'clip-vit-b-16');
  env.note(opts, `NOTE: composite mode on random SAM ViT-B + CLIP ViT-B/16: ${SLOW_NOTE}`);
  return { mode: 'composite', sam: sam.path, clip: clip.path, source: 'random', randomFamily: kind };
}

/** Loads the model (merged bundle or composite) on the command's GPU context; `dispose` frees it all. */
export async function loadSamClip(env: CliEnv, opts: SamClipCliOptions, r: ResolvedSamClip): Promise<{ model: SamClip; dispose: () => void }> {
  const dtype = checkDtype(opts.dtype);
  if (opts.act && opts.act !== 'quick_gelu' && opts.act !== 'gelu') throw new UsageError(`--act must be quick_gelu or gelu, got '${opts.act}'`);
  const { SamClip } = await import('../../pipelines/samclip.js');
  const ctx = await env.gpu({ preferF16: dtype === 'f16' });
  if (r.mode === 'merged') {
    const model = await step(env, opts, 'loading the SAM-CLIP bundle', () => SamClip.load(ctx, r.bundle!, { dtype }));
    return { model, dispose: () => model.dispose() };
  }
  const { SafetensorsFile } = await import('../../weights/safetensors.js');
  const { loadClip } = await import('../../model/clip/load.js');
  const act = (opts.act as 'gelu' | 'quick_gelu' | undefined) ?? r.clipAct;
  const clip = await step(env, opts, 'loading CLIP weights', async () => {
    const file = await SafetensorsFile.open(r.clip!);
    try {
      return await loadClip(ctx, file, { dtype, ...(act ? { act } : {}), ...(opts.textHeads ? { textHeads: opts.textHeads } : {}), ...(opts.visionHeads ? { visionHeads: opts.visionHeads } : {}) });
    } finally {
      await file.close();
    }
  });
  try {
    // The CLIP model stays ours (composite mode leaves models it was given to the caller).
    const model = await step(env, opts, 'loading SAM weights', () => SamClip.composite(ctx, { sam: r.sam!, clip }, { dtype }));
    return {
      model,
      dispose: () => {
        model.dispose();
        clip.dispose();
      },
    };
  } catch (e) {
    clip.dispose();
    throw e;
  }
}

/** Notes that a CPU adapter makes a full-size model (1024-px input) slow; tiny test models are not. */
export async function warnIfSlow(env: CliEnv, opts: CommonOptions, model: SamClip): Promise<void> {
  if (model.resolutions.native < 1024) return;
  const ctx = await env.gpu();
  if (/llvmpipe|lavapipe|swiftshader/i.test(ctx.description)) {
    env.note(opts, `note: ${ctx.description} is a CPU adapter: a full-size model takes 10 minutes or more here (seconds on a GPU)`);
  }
}

export function weightsJson(r: ResolvedSamClip): object {
  return { mode: r.mode, source: r.source, bundle: r.bundle ?? null, sam: r.sam ?? null, clip: r.clip ?? null, randomWeights: r.randomFamily };
}

// ------------------------------------------------------------------------------ semantic segmentation

export interface SemsegRun {
  image: string;
  photo: DecodedImage;
  classes: string[];
  refine: boolean;
  background?: number;
  backgroundPrompts?: string[];
  out: string;
  overlay?: string;
}

const BACKGROUND_COLOR = [0, 0, 0] as const;

function hex(c: readonly number[]): string {
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

/** Segments, writes the label map (and overlay), and returns the JSON result. */
export async function runSemseg(env: CliEnv, opts: SamClipCliOptions, model: SamClip, r: ResolvedSamClip, run: SemsegRun): Promise<{ json: Record<string, unknown>; seg: SemanticSegmentation }> {
  const templates = await templateChoice(opts);
  const { photo } = run;
  const seg = await step(env, opts, `segmenting into ${run.classes.length} classes${run.refine ? ' (refined with the SAM head)' : ''}`, (p) =>
    model.segmentSemantic(photo, run.classes, {
      ...p,
      refine: run.refine,
      masks: false,
      ...(run.backgroundPrompts ? { background: run.backgroundPrompts } : {}),
      ...(run.background !== undefined ? { backgroundThreshold: run.background } : {}),
      ...(templates ? { templates } : {}),
      ...(opts.pointThreshold !== undefined ? { pointThreshold: opts.pointThreshold } : {}),
    }),
  );
  const { writePng } = await import('../../io/encode.js');
  const draw = await import('../../io/draw.js');
  const C = run.classes.length;
  const hasBackground = seg.classes.length > C;
  // Classes get the palette; the background label (last) is black on the map and untinted on the overlay.
  const colors = [...draw.palette(C), ...(hasBackground ? [BACKGROUND_COLOR] : [])];
  await writePng(run.out, draw.colorizeLabels(seg.labelMap, seg.width, seg.height, colors));
  const total = seg.width * seg.height;
  const rows = seg.classes.map((name, i) => ({
    index: i,
    name,
    color: hex(colors[i]!),
    pixels: seg.pixelCounts[i]!,
    fraction: seg.pixelCounts[i]! / total,
    score: seg.scores[i]!,
  }));
  if (run.overlay) {
    const canvas = draw.toCanvas(photo);
    draw.blendLabels(canvas, seg.labelMap, colors.slice(0, C), 0.5);
    const outline = Math.max(1, Math.round(Math.min(seg.width, seg.height) / 400));
    for (let c = 0; c < C; c++) {
      if (!seg.pixelCounts[c]) continue;
      const mask = new Uint8Array(seg.labelMap.length);
      for (let i = 0; i < mask.length; i++) mask[i] = seg.labelMap[i] === c ? 1 : 0;
      draw.outlineMask(canvas, mask, [255, 255, 255], outline);
    }
    draw.drawLegend(canvas, rows.map((row) => ({ name: `${row.name} ${(100 * row.fraction).toFixed(1)}%`, color: colors[row.index]! })));
    await writePng(run.overlay, canvas);
  }
  const json: Record<string, unknown> = {
    image: run.image,
    width: seg.width,
    height: seg.height,
    weights: weightsJson(r),
    randomWeights: r.randomFamily,
    refined: seg.refined,
    classes: rows,
    out: run.out,
    overlay: run.overlay ?? null,
  };
  if (seg.refined) {
    json.refinement = {
      decodedClasses: (seg.decodedClasses ?? []).map((k) => seg.classes[Math.min(k, seg.classes.length - 1)]),
      iouPredictions: Array.from(seg.iouPredictions ?? []),
      fallbackPixels: seg.fallbackPixels ?? 0,
    };
  }
  return { json, seg };
}

/** The text rendering of a semseg result. */
export function semsegText(json: Record<string, unknown>): string {
  const rows = json.classes as { name: string; color: string; pixels: number; fraction: number; score: number }[];
  const table = formatTable(
    ['class', 'pixels', 'share', 'score', 'colour'],
    rows.map((c) => [c.name, String(c.pixels), `${(100 * c.fraction).toFixed(1)}%`, c.score.toFixed(3), c.color]),
    new Set([1, 2, 3]),
  );
  const lines = [`${json.out}: ${json.width}x${json.height} label map${json.refined ? ' (refined with the SAM head)' : ''}`, table];
  if (json.overlay) lines.push(`${json.overlay}: overlay with legend`);
  if (json.randomWeights) lines.push(`(random weights ${json.randomWeights}: the label map is meaningless)`);
  return lines.join('\n');
}

interface SemsegOptions extends SamClipCliOptions {
  classes?: string[];
  refine?: boolean;
  background?: number;
  backgroundPrompt?: string | boolean;
  out?: string;
  overlay?: string;
}

export function registerSemseg(program: Command, env: CliEnv): void {
  const cmd = program
    .command('semseg')
    .description('zero-shot semantic segmentation with SAM-CLIP: a colour-coded label map (and an overlay with a legend)')
    .argument('<image>', 'JPEG or PNG photo')
    .option('-c, --classes <names>', 'comma-separated class names (repeatable)', collect)
    .option('--refine', 'refine the class map with the SAM head at the native size (slower, sharper edges)')
    .option('--background <p>', 'pixels whose best class probability is below p get a background label', numberArg('--background', 0, 1))
    .option('--background-prompt [texts]', "add background prompts (comma-separated; default 'background') whose pixels get a background label")
    .option('--point-threshold <p>', 'refinement: class probability a point prompt must exceed (default 0.5)', numberArg('--point-threshold', 0, 0.999999))
    .option('-o, --out <file>', 'label map PNG (default <image>-labels.png)')
    .option('--overlay <file>', 'also write the photo with the classes tinted and a legend')
    .addHelpText(
      'after',
      '\nWeights: --bundle FILE (merged SAM-CLIP), --sam FILE --clip FILE (composite), else the pulled\nsam-vit-b + clip-vit-b-16 in the cache, or --random-weights to try it.\n\nExamples:\n  samclip semseg street.jpg --classes sky,road,car,tree --refine --out labels.png --overlay overlay.png\n  samclip semseg dog.jpg --classes dog,floor --background-prompt --random-weights',
    );
  withSamClipOptions(withCommon(cmd)).action(async (image: string, opts: SemsegOptions) => {
    if (opts.background !== undefined && opts.backgroundPrompt !== undefined) throw new UsageError('give either --background THRESHOLD or --background-prompt, not both');
    const bp = opts.backgroundPrompt;
    const bgPrompts = bp === undefined || bp === false ? undefined : bp === true ? ['background'] : bp.split(',').map((s) => s.trim());
    if (bgPrompts?.some((p) => !p)) throw new UsageError(`--background-prompt '${String(opts.backgroundPrompt)}': empty prompt`);
    const classes = await parseClasses(opts.classes, bgPrompts);
    checkDtype(opts.dtype);
    await templateChoice(opts);
    const photo = await loadSamClipPhoto(image);
    const weights = await resolveSamClip(env, opts);
    const { model, dispose } = await loadSamClip(env, opts, weights);
    try {
      await warnIfSlow(env, opts, model);
      const { json } = await runSemseg(env, opts, model, weights, {
        image,
        photo,
        classes,
        refine: !!opts.refine,
        ...(opts.background !== undefined ? { background: opts.background } : {}),
        ...(bgPrompts ? { backgroundPrompts: bgPrompts } : {}),
        out: opts.out ?? `${stem(image)}-labels.png`,
        ...(opts.overlay ? { overlay: opts.overlay } : {}),
      });
      env.emit(opts, json, () => semsegText(json));
    } finally {
      dispose();
    }
  });
}
