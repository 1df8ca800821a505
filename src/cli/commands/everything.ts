/**
 * `samclip everything IMAGE --out DIR`: SAM's (or, with `--model sam2.1-hiera-t`, SAM 2's) automatic
 * mask generation (src/pipelines/automatic-mask-generator.ts). Writes into DIR `overlay.png` (each mask in its own
 * colour over the photo, outlined) and, with `--format png` (the default), one grey PNG per mask
 * (`mask-000.png`, largest first, like the SAM notebook draws them) and `masks.json` (area, box,
 * predicted IoU, stability, grid point, crop box and file of each mask); with `--format coco`,
 * `annotations.json`: COCO annotation JSON with pycocotools' compressed RLE (src/pipelines/coco-rle.ts).
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import type { AmgPredictor } from '../../pipelines/automatic-mask-generator.js';
import { intArg, numberArg, withCommon } from '../common.js';
import type { CliEnv } from '../env.js';
import { CliError } from '../errors.js';
import { type ModelOptions, checkDtype, loadPhoto, resolveSegmenter, step, withModelChoice, withModelOptions } from './model-common.js';

interface EverythingOptions extends ModelOptions {
  out: string;
  pointsPerSide: number;
  pointsPerBatch: number;
  predIouThresh?: number;
  stabilityThresh: number;
  boxNmsThresh: number;
  cropLayers: number;
  minArea: number;
  format: OutputFormat;
  force?: boolean;
}

type OutputFormat = 'png' | 'coco';

function formatArg(v: string): OutputFormat {
  if (v !== 'png' && v !== 'coco') throw new InvalidArgumentError(`--format must be png or coco, got '${v}'`);
  return v;
}

const OUTPUTS = /^(mask-\d+\.png|overlay\.png|masks\.json|annotations\.json)$/;

/** DIR must be new or empty; with --force, earlier outputs of this command are removed first. */
async function prepareDir(dir: string, force: boolean): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new CliError(`--out ${dir}: is a file, not a directory`);
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError(`--out ${dir}: ${(e as Error).message}`);
  }
  if (entries.length && !force) throw new CliError(`--out ${dir} is not empty; pass --force to replace earlier masks there`);
  for (const f of entries) if (OUTPUTS.test(f)) await rm(join(dir, f));
  await mkdir(dir, { recursive: true });
}

export function registerEverything(program: Command, env: CliEnv): void {
  const cmd = program
    .command('everything')
    .description("segment everything: SAM's automatic mask generator; writes a PNG per mask, an overlay and masks.json (or COCO JSON)")
    .argument('<image>', 'JPEG or PNG photo')
    .requiredOption('-o, --out <dir>', 'output directory (new or empty)')
    .option('--points-per-side <n>', 'prompt grid size (n x n points per crop), 1..128', intArg('--points-per-side', 1, 128), 32)
    .option('--points-per-batch <n>', 'grid points decoded together, 1..256', intArg('--points-per-batch', 1, 256), 64)
    .option('--pred-iou-thresh <x>', 'drop masks with a lower predicted IoU, -1..1 (<= 0: no filter; default 0.88 for SAM, 0.8 for SAM 2)', numberArg('--pred-iou-thresh', -1, 1))
    .option('--stability-thresh <x>', 'drop masks with a lower stability score, -1..1 (<= 0: no filter)', numberArg('--stability-thresh', -1, 1), 0.95)
    .option('--box-nms-thresh <x>', 'box IoU above which duplicates are removed, 0..1', numberArg('--box-nms-thresh', 0, 1), 0.7)
    .option('--crop-layers <n>', 'extra layers of overlapping crops, 0..3 (0: whole image only)', intArg('--crop-layers', 0, 3), 0)
    .option('--min-area <px>', 'fill holes and remove islands smaller than this, 0..100000000', intArg('--min-area', 0, 100_000_000), 0)
    .option('--format <fmt>', 'png: a grey PNG per mask and masks.json; coco: annotations.json, COCO annotations with compressed RLE masks (pycocotools format)', formatArg, 'png')
    .option('--force', 'write into a non-empty directory (earlier masks there are removed)')
    .addHelpText('after', '\nExamples:\n  samclip everything truck.jpg --out truck-masks/\n  samclip everything truck.jpg --out truck-coco/ --format coco\n  samclip everything truck.jpg --model sam2.1-hiera-t --out truck-masks/');
  withModelOptions(withModelChoice(withCommon(cmd)), 'sam', 'sam-vit-b').action(async (image: string, opts: EverythingOptions) => {
    const dtype = checkDtype(opts.dtype);
    const photo = await loadPhoto(image);
    const { kind, weights } = await resolveSegmenter(env, opts);
    await prepareDir(opts.out, !!opts.force);

    const { SamAutomaticMaskGenerator } = await import('../../pipelines/automatic-mask-generator.js');
    const { writePng, maskToGrey } = await import('../../io/encode.js');
    const draw = await import('../../io/draw.js');
    const ctx = await env.gpu({ preferF16: dtype === 'f16' });
    const predictor: AmgPredictor & { dispose(): void } = await step(env, opts, `loading ${kind === 'sam2' ? 'SAM 2' : 'SAM'} weights`, async (): Promise<AmgPredictor & { dispose(): void }> =>
      kind === 'sam2'
        ? (await import('../../pipelines/sam2-predictor.js')).Sam2Predictor.load(ctx, weights.path, { dtype })
        : (await import('../../pipelines/sam-predictor.js')).SamPredictor.load(ctx, weights.path, { dtype }),
    );
    const amg = new SamAutomaticMaskGenerator(predictor, {
      pointsPerSide: opts.pointsPerSide,
      pointsPerBatch: opts.pointsPerBatch,
      predIouThresh: opts.predIouThresh,
      stabilityScoreThresh: opts.stabilityThresh,
      boxNmsThresh: opts.boxNmsThresh,
      cropNLayers: opts.cropLayers,
      minMaskRegionArea: opts.minArea,
    });
    const masks = await step(env, opts, `generating masks (${opts.pointsPerSide}x${opts.pointsPerSide} points)`, (p) => amg.generate(photo, p));
    predictor.dispose();
    // Largest first: small masks drawn last stay visible on the overlay.
    const order = masks.map((_, i) => i).sort((a, b) => masks[b]!.area - masks[a]!.area || a - b);
    const canvas = draw.toCanvas(photo);
    const colors = draw.palette(order.length);
    const outline = Math.max(1, Math.round(Math.min(photo.width, photo.height) / 400));
    const coco = opts.format === 'coco';
    const records = [];
    const bar = env.progress(opts, 'writing masks', order.length);
    for (let k = 0; k < order.length; k++) {
      const m = masks[order[k]!]!;
      const seg = m.segmentation as Uint8Array;
      const file = coco ? undefined : `mask-${String(k).padStart(3, '0')}.png`;
      if (file) await writePng(join(opts.out, file), maskToGrey(seg, photo.width, photo.height));
      draw.fillMask(canvas, seg, colors[k]!, 0.5);
      draw.outlineMask(canvas, seg, [255, 255, 255], outline);
      records.push({ file, area: m.area, bbox: m.bbox, predictedIou: m.predictedIou, stabilityScore: m.stabilityScore, point: m.pointCoords[0], cropBox: m.cropBox });
      bar.update(k + 1);
    }
    bar.finish();
    await writePng(join(opts.out, 'overlay.png'), canvas);
    if (coco) {
      // Annotation ids follow the same largest-first order as the overlay's colours.
      const { amgToCoco } = await import('../../pipelines/coco-rle.js');
      const dataset = amgToCoco(order.map((i) => masks[i]!), { fileName: basename(image), width: photo.width, height: photo.height });
      await writeFile(join(opts.out, 'annotations.json'), `${JSON.stringify(dataset)}\n`);
    }
    const result = {
      image,
      width: photo.width,
      height: photo.height,
      weights: weights.path,
      randomWeights: weights.randomFamily,
      out: opts.out,
      count: records.length,
      format: opts.format,
      model: kind,
      options: { pointsPerSide: opts.pointsPerSide, predIouThresh: amg.opts.predIouThresh, stabilityThresh: opts.stabilityThresh, boxNmsThresh: opts.boxNmsThresh, cropLayers: opts.cropLayers, minArea: opts.minArea },
      timings: amg.lastTimings,
      masks: records,
    };
    if (!coco) await writeFile(join(opts.out, 'masks.json'), `${JSON.stringify(result, null, 2)}\n`);
    env.emit(opts, result, () =>
      [
        coco
          ? `${opts.out}: ${records.length} masks in annotations.json (COCO, compressed RLE, largest first), overlay.png`
          : `${opts.out}: ${records.length} masks (mask-000.png ... largest first), overlay.png, masks.json`,
        ...(records.length === 0 ? ['no mask passed the filters; try lower --pred-iou-thresh / --stability-thresh'] : []),
        ...(weights.randomFamily ? [`(random weights ${weights.randomFamily}: the masks are meaningless)`] : []),
      ].join('\n'),
    );
  });
}
