/**
 * `samclip classify IMAGE --labels cat,dog,...`: zero-shot classification with CLIP
 * (src/pipelines/clip-classifier.ts): class embeddings from prompt templates (the 80 ImageNet
 * templates by default), softmax over the labels with the checkpoint's logit scale.
 */
import type { Command } from 'commander';
import { collect, intArg, withCommon } from '../common.js';
import type { CliEnv } from '../env.js';
import { UsageError } from '../errors.js';
import { formatTable } from '../output.js';
import { type ModelOptions, checkDtype, loadPhoto, resolveWeights, step, withModelOptions } from './model-common.js';

interface ClassifyOptions extends ModelOptions {
  labels?: string[];
  template?: string[];
  rawLabels?: boolean;
  top?: number;
  size?: number;
  act?: string;
  textHeads?: number;
  visionHeads?: number;
}

/** `--labels a,b --labels c` -> ['a', 'b', 'c']; blanks and duplicates are the classifier's errors. */
export function parseLabels(values: string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((s) => s.trim());
}

export function registerClassify(program: Command, env: CliEnv): void {
  const cmd = program
    .command('classify')
    .description('zero-shot classification of a photo with CLIP over the given class names')
    .argument('<image>', 'JPEG or PNG photo')
    .option('-l, --labels <names>', 'comma-separated class names (repeatable)', collect)
    .option('-t, --template <text>', "prompt template with one '{}' (repeatable; default: the 80 ImageNet templates)", collect)
    .option('--raw-labels', "use the class names as they are (template '{}')")
    .option('--top <k>', 'show the k most probable classes, 1..10000', intArg('--top', 1, 10_000))
    .option('--size <px>', 'image input size in pixels, 14..1024 and at least the patch size (default: the model’s own)', intArg('--size', 14, 1024))
    .option('--act <act>', "activation when the checkpoint does not say: 'quick_gelu' (OpenAI) or 'gelu' (OpenCLIP)")
    .option('--text-heads <n>', 'text attention heads when the checkpoint does not say', intArg('--text-heads', 1, 128))
    .option('--vision-heads <n>', 'vision attention heads when the checkpoint does not say', intArg('--vision-heads', 1, 128))
    .addHelpText('after', '\nExample:\n  samclip classify dog.jpg --labels "a dog,a cat,a truck"');
  withModelOptions(withCommon(cmd), 'clip', 'clip-vit-b-16').action(async (image: string, opts: ClassifyOptions) => {
    const labels = parseLabels(opts.labels ?? []);
    if (labels.length === 0) throw new UsageError('give the class names with --labels, e.g. --labels cat,dog,car');
    if (opts.rawLabels && opts.template) throw new UsageError('give either --raw-labels or --template, not both');
    if (opts.act && opts.act !== 'quick_gelu' && opts.act !== 'gelu') throw new UsageError(`--act must be quick_gelu or gelu, got '${opts.act}'`);
    const dtype = checkDtype(opts.dtype);
    const templates = opts.rawLabels ? ['{}'] : opts.template;
    const { checkLabels, checkTemplates, ClipClassifier } = await import('../../pipelines/clip-classifier.js');
    try {
      checkLabels(labels);
      if (templates) checkTemplates(templates);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const photo = await loadPhoto(image);
    const weights = await resolveWeights(env, opts, 'clip', 'clip-vit-b-16');

    const { SafetensorsFile } = await import('../../weights/safetensors.js');
    const { loadClip } = await import('../../model/clip/load.js');
    const ctx = await env.gpu({ preferF16: dtype === 'f16' });
    const file = await SafetensorsFile.open(weights.path);
    const act = (opts.act as 'quick_gelu' | 'gelu' | undefined) ?? weights.act;
    const model = await step(env, opts, 'loading CLIP weights', async () => {
      try {
        return await loadClip(ctx, file, {
          dtype,
          ...(act ? { act } : {}),
          ...(opts.textHeads ? { textHeads: opts.textHeads } : {}),
          ...(opts.visionHeads ? { visionHeads: opts.visionHeads } : {}),
        });
      } finally {
        await file.close();
      }
    });
    const classifier = await ClipClassifier.create(ctx, model);
    const res = await step(env, opts, `classifying over ${labels.length} labels`, (p) =>
      classifier.classify(photo, labels, { ...p, ...(templates ? { templates } : {}), ...(opts.size ? { size: opts.size } : {}) }),
    );
    model.dispose();
    const ranked = res.ranked.slice(0, opts.top ?? res.ranked.length).map((r) => ({ label: r.label, prob: r.prob, logit: r.logit }));
    const result = {
      image,
      weights: weights.path,
      randomWeights: weights.randomFamily,
      templates: templates ?? 'imagenet-80',
      labels,
      probs: Array.from(res.probs),
      logits: Array.from(res.logits),
      ranked,
    };
    env.emit(opts, result, () => {
      const table = formatTable(['label', 'prob', 'logit'], ranked.map((r) => [r.label, r.prob.toFixed(4), r.logit.toFixed(3)]), new Set([1, 2]));
      return weights.randomFamily ? `${table}\n(random weights ${weights.randomFamily}: the scores are meaningless)` : table;
    });
  });
}
