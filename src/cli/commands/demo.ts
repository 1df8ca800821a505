/**
 * `samclip demo` (`npm run demo`): the README's first command. Zero-shot semantic segmentation of
 * a bundled photo, refined with the SAM head, written to `out/` (a label map and an overlay with a
 * legend).
 *
 * Weights: the real public SAM + CLIP checkpoints when they are in the cache (composite mode;
 * SAM-CLIP itself has no public weights). Otherwise the demo says exactly how to get them and runs
 * on a tiny seeded-random SAM-CLIP bundle (generated into the cache on first use), so that it
 * finishes in seconds even on a CPU adapter (full-size random ViT-B weights would take many minutes
 * there) while saying loudly that the picture is meaningless.
 *
 * The photo ships with the package (assets/dog.jpg, from segment-anything, Apache-2.0), so the demo
 * runs the same from a checkout (`npm run demo`) and from an installed package (`npx samclip demo`);
 * its advice names the command that works where it runs.
 */
import { isAbsolute, join, relative } from 'node:path';
import type { Command } from 'commander';
import { collect, withCommon } from '../common.js';
import type { CliEnv } from '../env.js';
import { CliError } from '../errors.js';
import { cacheDir } from '../weights/cache.js';
import { stem } from './model-common.js';
import {
  type ResolvedSamClip,
  type SamClipCliOptions,
  cachedComposite,
  loadSamClip,
  loadSamClipPhoto,
  packageFile,
  parseClasses,
  resolveSamClip,
  runSemseg,
  semsegText,
  warnIfSlow,
} from './semseg.js';

/** The demo photo, shipped in the package (the same picture as test/fixtures/images/dog.jpg). */
export const DEMO_IMAGE = 'assets/dog.jpg';
export const DEMO_CLASSES = 'dog,person,metal bowl,floor';

interface DemoOptions extends SamClipCliOptions {
  image?: string;
  classes?: string[];
  outDir: string;
  refine: boolean;
}

/** How to run the CLI from here: the npm script in a checkout (it has the sources), else the installed binary. */
function cliName(): string {
  return packageFile('src/cli/main.ts') ? 'npm run samclip --' : 'npx samclip';
}

export function registerDemo(program: Command, env: CliEnv): void {
  const cmd = program
    .command('demo')
    .description('semantic segmentation of a bundled photo into out/ (real weights from the cache, else seeded random ones, said loudly)')
    .option('--image <file>', `photo to segment (default: the package's ${DEMO_IMAGE})`)
    .option('-c, --classes <names>', `comma-separated class names (default: ${DEMO_CLASSES})`, collect)
    .option('--out-dir <dir>', 'where the pictures go', 'out')
    .option('--no-refine', 'head-only segmentation (skip the SAM-head refinement)')
    .option('--random-weights [kind]', "use seeded random weights even when real ones are cached: 'samclip-tiny' (default) or 'vit-b' (slow on a CPU adapter)")
    .option('--cache <dir>', 'weights cache (default $SAMCLIP_CACHE or ~/.cache/samclip)')
    .option('--dtype <dtype>', 'GPU storage of weight matrices: f32 or f16 (needs shader-f16)', 'f32')
    .addHelpText('after', '\nExample:\n  npm run demo            (= samclip demo)\n  samclip demo --image street.jpg --classes sky,road,car,tree');
  withCommon(cmd).action(async (opts: DemoOptions) => {
    const t0 = performance.now();
    const bundled = packageFile(DEMO_IMAGE);
    // The bundled photo by its path from here when that is shorter (it is, from the repository root).
    const shown = bundled && relative(process.cwd(), bundled);
    const image = opts.image ?? (shown && !shown.startsWith('..') && !isAbsolute(shown) ? shown : bundled);
    if (!image) throw new CliError(`the demo photo ${DEMO_IMAGE} is missing from this installation; pass --image FILE`);
    const classes = await parseClasses(opts.classes ?? [DEMO_CLASSES]);
    const photo = await loadSamClipPhoto(image);
    const cli = cliName();
    let weights: ResolvedSamClip;
    if (opts.randomWeights || cachedComposite(opts.cache)) {
      weights = await resolveSamClip(env, opts);
    } else {
      env.note(opts, [
        '',
        `Real weights are not in the cache (${cacheDir(opts.cache)}).`,
        'SAM-CLIP has no public weights; its pipelines run in composite mode on public SAM ViT-B + CLIP ViT-B/16.',
        'To get them (downloads of a few hundred MB each, checked by SHA-256), run:',
        '',
        `    ${cli} weights pull sam-vit-b`,
        `    ${cli} weights pull clip-vit-b-16`,
        '',
        'then run the demo again. Meanwhile the demo runs on SEEDED RANDOM WEIGHTS (a tiny SAM-CLIP bundle,',
        'generated into the cache), so the pictures show the pipeline working, not a real segmentation.',
        '(Full-size random ViT-B weights would take 10 minutes or more on a CPU adapter such as lavapipe:',
        `\`${cli} demo --random-weights vit-b\`.)`,
        '',
      ].join('\n'));
      weights = await resolveSamClip(env, { ...opts, quiet: true, randomWeights: 'samclip-tiny' });
    }
    const { model, dispose } = await loadSamClip(env, opts, weights);
    try {
      await warnIfSlow(env, opts, model);
      const base = join(opts.outDir, stem(image));
      const { json } = await runSemseg(env, opts, model, weights, {
        image,
        photo,
        classes,
        refine: opts.refine,
        out: `${base}-labels.png`,
        overlay: `${base}-overlay.png`,
      });
      const seconds = (performance.now() - t0) / 1000;
      env.emit(opts, { ...json, seconds }, () =>
        [
          '',
          `Semantic segmentation of ${image} (${weights.randomFamily ? `seeded random weights ${weights.randomFamily}` : `${weights.mode} mode`}) in ${seconds.toFixed(1)} s:`,
          semsegText(json),
          '',
          'Outputs:',
          `  ${json.out}      label map, one colour per class`,
          `  ${json.overlay}     the photo with the classes and a legend`,
          ...(weights.randomFamily
            ? ['', `These come from RANDOM weights and are meaningless. For a real segmentation: ${cli} weights pull sam-vit-b && ${cli} weights pull clip-vit-b-16, then run the demo again.`]
            : []),
        ].join('\n'),
      );
    } finally {
      dispose();
    }
  });
}
