/**
 * `samclip segment IMAGE --point x,y[:label] ... --box x0,y0,x1,y1 [--multimask] --out mask.png`:
 * promptable segmentation with SAM (src/pipelines/sam-predictor.ts) or, with `--model
 * sam2.1-hiera-t` (or a SAM 2 checkpoint as --weights), SAM 2.1 (src/pipelines/sam2-predictor.ts). Masks are written as grey PNGs
 * (255 inside) at the photo's size; `--overlay` draws the best mask, the points and the box on the
 * photo. With `--multimask`, the three candidate masks are written as `<out>-0.png` ... and the one
 * with the highest predicted IoU also as `<out>`.
 */
import type { Command } from 'commander';
import type { PromptablePredictor } from '../../pipelines/prompt-sets.js';
import { collect, withCommon } from '../common.js';
import type { CliEnv } from '../env.js';
import { UsageError } from '../errors.js';
import {
  type ModelOptions,
  type PointPrompt,
  checkDtype,
  checkPromptsInside,
  loadPhoto,
  parseBox,
  parsePoint,
  resolveSegmenter,
  stem,
  step,
  withModelChoice,
  withModelOptions,
  withSuffix,
} from './model-common.js';

interface SegmentOptions extends ModelOptions {
  point?: string[];
  box?: string;
  multimask?: boolean;
  out?: string;
  overlay?: string;
}

export function registerSegment(program: Command, env: CliEnv): void {
  const cmd = program
    .command('segment')
    .description('segment the object at the given points / box with SAM or SAM 2; writes the mask as a PNG')
    .argument('<image>', 'JPEG or PNG photo')
    .option('-p, --point <x,y[:label]>', 'a prompt point in pixels; label 1 = on the object (default), 0 = background; repeatable', collect)
    .option('-b, --box <x0,y0,x1,y1>', 'a box around the object, in pixels')
    .option('--multimask', 'three candidate masks (for ambiguous single points); the best is also written to --out')
    .option('-o, --out <file>', 'mask PNG (default <image>-mask.png)')
    .option('--overlay <file>', 'also write the photo with the mask, points and box drawn on it')
    .addHelpText('after', '\nExamples:\n  samclip segment dog.jpg --point 400,300 --out dog-mask.png\n  samclip segment truck.jpg --box 75,275,1725,850 --point 500,375:0 --overlay overlay.png\n  samclip segment dog.jpg --model sam2.1-hiera-t --point 400,300');
  withModelOptions(withModelChoice(withCommon(cmd)), 'sam', 'sam-vit-b').action(async (image: string, opts: SegmentOptions) => {
    const points: PointPrompt[] = (opts.point ?? []).map(parsePoint);
    const box = opts.box ? parseBox(opts.box) : null;
    if (points.length === 0 && !box) throw new UsageError('give at least one --point x,y or a --box x0,y0,x1,y1');
    const dtype = checkDtype(opts.dtype);
    const photo = await loadPhoto(image);
    checkPromptsInside(photo, image, points, box);
    const { kind, weights } = await resolveSegmenter(env, opts);
    const out = opts.out ?? `${stem(image)}-mask.png`;

    const { writePng, maskToGrey } = await import('../../io/encode.js');
    const ctx = await env.gpu({ preferF16: dtype === 'f16' });
    const predictor: PromptablePredictor = await step(env, opts, `loading ${kind === 'sam2' ? 'SAM 2' : 'SAM'} weights`, async (): Promise<PromptablePredictor> =>
      kind === 'sam2'
        ? (await import('../../pipelines/sam2-predictor.js')).Sam2Predictor.load(ctx, weights.path, { dtype })
        : (await import('../../pipelines/sam-predictor.js')).SamPredictor.load(ctx, weights.path, { dtype }),
    );
    const emb = await step(env, opts, 'encoding the image', (p) => predictor.encode(photo, p));
    const prompt = {
      ...(points.length ? { points: points.map((p) => [p.x, p.y] as [number, number]), labels: points.map((p) => p.label) } : {}),
      ...(box ? { box } : {}),
    };
    const pred = await step(env, opts, 'decoding the prompt', () => predictor.predict(emb, prompt, { multimaskOutput: !!opts.multimask }));
    emb.dispose();

    const scores = Array.from(pred.iouPredictions);
    const best = scores.indexOf(Math.max(...scores));
    const files: { path: string; index: number; iou: number; area: number }[] = [];
    const area = (m: Uint8Array) => m.reduce((a, v) => a + v, 0);
    if (opts.multimask) {
      for (let i = 0; i < pred.masks.length; i++) {
        const path = withSuffix(out, `-${i}`);
        await writePng(path, maskToGrey(pred.masks[i]!, pred.width, pred.height));
        files.push({ path, index: i, iou: scores[i]!, area: area(pred.masks[i]!) });
      }
    }
    await writePng(out, maskToGrey(pred.masks[best]!, pred.width, pred.height));
    if (opts.overlay) {
      const draw = await import('../../io/draw.js');
      const canvas = draw.toCanvas(photo);
      const color = [30, 144, 255] as const;
      draw.fillMask(canvas, pred.masks[best]!, color, 0.45);
      draw.outlineMask(canvas, pred.masks[best]!, [255, 255, 255], Math.max(1, Math.round(Math.min(photo.width, photo.height) / 300)));
      const r = Math.max(3, Math.round(Math.min(photo.width, photo.height) / 80));
      if (box) draw.drawRect(canvas, box[0], box[1], box[2], box[3], [0, 220, 0], Math.max(2, Math.round(r / 2)));
      for (const p of points) draw.drawMarker(canvas, p.x, p.y, p.label ? [0, 200, 0] : [230, 30, 30], r);
      await writePng(opts.overlay, canvas);
    }
    const result = {
      image,
      width: pred.width,
      height: pred.height,
      model: kind,
      weights: weights.path,
      randomWeights: weights.randomFamily,
      points,
      box,
      multimask: !!opts.multimask,
      out,
      best,
      iou: scores[best],
      area: area(pred.masks[best]!),
      masks: opts.multimask ? files : undefined,
      overlay: opts.overlay ?? null,
    };
    env.emit(opts, result, () => {
      const pct = (a: number) => `${((100 * a) / (pred.width * pred.height)).toFixed(1)}%`;
      const lines = [`${out}: ${pred.width}x${pred.height} mask, ${result.area} pixels (${pct(result.area)}), predicted IoU ${scores[best]!.toFixed(3)}`];
      for (const f of files) lines.push(`  ${f.path}: mask ${f.index}, ${f.area} pixels (${pct(f.area)}), predicted IoU ${f.iou.toFixed(3)}${f.index === best ? '  <- best' : ''}`);
      if (opts.overlay) lines.push(`${opts.overlay}: overlay`);
      if (weights.randomFamily) lines.push(`(random weights ${weights.randomFamily}: the mask is meaningless)`);
      return lines.join('\n');
    });
    predictor.dispose();
  });
}
