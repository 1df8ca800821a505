/**
 * `samclip text IMAGE "the dog" --out mask.png`: text-prompted instance masks with SAM-CLIP
 * (src/pipelines/text-prompted.ts): the text's best region on the class map becomes point and
 * mask prompts for the SAM head. Masks are grey PNGs (255 inside) at the photo's size; the best
 * one (highest predicted IoU) goes to --out, `--all` also writes every candidate as
 * `<out>-0.png` (best) ... and `--overlay` draws the best mask and its point prompts on the photo.
 */
import type { Command } from 'commander';
import { numberArg, withCommon } from '../common.js';
import type { CliEnv } from '../env.js';
import { UsageError } from '../errors.js';
import { stem, step, withSuffix } from './model-common.js';
import { type SamClipCliOptions, loadSamClip, loadSamClipPhoto, resolveSamClip, templateChoice, warnIfSlow, weightsJson, withSamClipOptions } from './semseg.js';

interface TextOptions extends SamClipCliOptions {
  negatives?: string;
  singleMask?: boolean;
  all?: boolean;
  out?: string;
  overlay?: string;
}

export function registerText(program: Command, env: CliEnv): void {
  const cmd = program
    .command('text')
    .description('text-prompted instance mask with SAM-CLIP: "the dog" -> its best region -> SAM mask PNG')
    .argument('<image>', 'JPEG or PNG photo')
    .argument('<text>', 'what to segment, e.g. "the dog"')
    .option('--negatives <texts>', "comma-separated prompts the text competes with on each patch (default 'background')")
    .option('--single-mask', "SAM's single best-guess mask instead of three candidates")
    .option('--all', 'also write every candidate mask as <out>-0.png (best), <out>-1.png, ...')
    .option('--point-threshold <p>', 'probability a patch must exceed to become a point prompt (default 0.5)', numberArg('--point-threshold', 0, 0.999999))
    .option('-o, --out <file>', 'mask PNG (default <image>-mask.png)')
    .option('--overlay <file>', 'also write the photo with the mask and its point prompts drawn on it')
    .addHelpText('after', '\nExamples:\n  samclip text dog.jpg "the dog" --out dog-mask.png --overlay dog-overlay.png\n  samclip text street.jpg "a red car" --negatives "background,road" --all');
  withSamClipOptions(withCommon(cmd)).action(async (image: string, text: string, opts: TextOptions) => {
    if (!text.trim()) throw new UsageError('the text prompt is empty; say what to segment, e.g. "the dog"');
    const negatives = opts.negatives === undefined ? undefined : opts.negatives.split(',').map((s) => s.trim());
    if (negatives && negatives.some((n) => !n)) throw new UsageError(`--negatives '${opts.negatives}': empty prompt`);
    // The text competes with the negatives: the same prompt on both sides would score a tie everywhere.
    const { checkClassList } = await import('../../model/samclip/text-embeddings.js');
    try {
      checkClassList([text, ...(negatives ?? ['background'])], negatives ? 'the text and --negatives' : "the text and the default negative 'background'");
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const templates = await templateChoice(opts);
    const photo = await loadSamClipPhoto(image);
    const weights = await resolveSamClip(env, opts);
    const out = opts.out ?? `${stem(image)}-mask.png`;
    const { model, dispose } = await loadSamClip(env, opts, weights);
    try {
      await warnIfSlow(env, opts, model);
      const res = await step(env, opts, `segmenting "${text.trim()}"`, (p) =>
        model.segmentText(photo, text, {
          ...p,
          multimaskOutput: !opts.singleMask,
          ...(negatives ? { negatives } : {}),
          ...(templates ? { templates } : {}),
          ...(opts.pointThreshold !== undefined ? { pointThreshold: opts.pointThreshold } : {}),
        }),
      );
      const { writePng, maskToGrey } = await import('../../io/encode.js');
      const area = (m: Uint8Array) => m.reduce((s, v) => s + v, 0);
      await writePng(out, maskToGrey(res.best, res.width, res.height));
      const files: { path: string; index: number; iou: number; area: number }[] = [];
      if (opts.all) {
        for (let i = 0; i < res.masks.length; i++) {
          const path = withSuffix(out, `-${i}`);
          await writePng(path, maskToGrey(res.masks[i]!, res.width, res.height));
          files.push({ path, index: i, iou: res.iouPredictions[i]!, area: area(res.masks[i]!) });
        }
      }
      if (opts.overlay) {
        const draw = await import('../../io/draw.js');
        const canvas = draw.toCanvas(photo);
        draw.fillMask(canvas, res.best, [30, 144, 255], 0.45);
        draw.outlineMask(canvas, res.best, [255, 255, 255], Math.max(1, Math.round(Math.min(res.width, res.height) / 300)));
        const r = Math.max(3, Math.round(Math.min(res.width, res.height) / 80));
        for (const [x, y] of res.points) draw.drawMarker(canvas, x, y, [0, 200, 0], r);
        draw.drawLegend(canvas, [{ name: res.text, color: [30, 144, 255] }]);
        await writePng(opts.overlay, canvas);
      }
      const bestArea = area(res.best);
      const result = {
        image,
        text: res.text,
        width: res.width,
        height: res.height,
        weights: weightsJson(weights),
        randomWeights: weights.randomFamily,
        out,
        iou: res.iouPredictions[0],
        area: bestArea,
        confident: res.confident,
        points: res.points,
        masks: opts.all ? files : undefined,
        overlay: opts.overlay ?? null,
      };
      env.emit(opts, result, () => {
        const pct = (a: number) => `${((100 * a) / (res.width * res.height)).toFixed(1)}%`;
        const lines = [`${out}: ${res.width}x${res.height} mask of "${res.text}", ${bestArea} pixels (${pct(bestArea)}), predicted IoU ${res.iouPredictions[0]!.toFixed(3)}`];
        for (const f of files) lines.push(`  ${f.path}: candidate ${f.index}, ${f.area} pixels (${pct(f.area)}), predicted IoU ${f.iou.toFixed(3)}`);
        if (opts.overlay) lines.push(`${opts.overlay}: overlay`);
        if (!res.confident) lines.push(`(no patch scored above the point threshold: the mask follows the single best patch; try --point-threshold lower, or other --negatives)`);
        if (weights.randomFamily) lines.push(`(random weights ${weights.randomFamily}: the mask is meaningless)`);
        return lines.join('\n');
      });
    } finally {
      dispose();
    }
  });
}
