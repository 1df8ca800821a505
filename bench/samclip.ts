/**
 * SAM-CLIP at full size on the engine (random weights with real shapes; lavapipe here):
 *
 *  1. merged model (SAM ViT-B backbone + CLIP head + CLIP ViT-B/16 text tower, assembled into a
 *     bundle by the assembly tool with a random head), semantic segmentation latency by stage:
 *       text (5 classes: 80-template ensemble and single template, cold cache),
 *       head-only at 448: backbone, CLIP head, scores + label map,
 *       refined at 1024: backbone (with neck), CLIP head, refinement prep (S, fallback labels, P,
 *       points, mask prompts), SAM head decode (5 classes), post-process / composite labels;
 *       plus each whole pipeline (text embeddings cached);
 *  2. the comparison that is the merged model's reason to exist: the refined 1024 pipeline for 5
 *     classes against one SAM ViT-B encode + one CLIP ViT-B/16 encode (goal < 1.3x), timed
 *     interleaved so load drift on a shared machine hits both sides alike;
 *  3. composite mode end to end on the same photo with SAM ViT-B + CLIP ViT-B/16 random checkpoints
 *     from tools/random-weights.ts: embed (SAM encode + MaskCLIP dense features, sliding windows),
 *     refined and head-only segmentation.
 * Each latency is the median of --runs after --warmup untimed runs; clocks stop after the queue drains.
 *
 *   node --import tsx bench/samclip.ts [--runs 3] [--warmup 1] [--dir /tmp/samclip-bench]
 *       [--image truck|dog] [--classes a,b,c,d,e] [--no-composite] [--no-merged] [--no-text-ensemble] [--profile]
 *       [--ratio-only] [--refined-only] [--json rows.json]
 *
 * `--refined-only` (bench/device.ts): only the merged model's refined pipeline, first run and then
 * --runs timed runs, written with `--json` in bench/harness/record.ts's shape. Its output has no
 * external reference at full size (the pipeline is checked end to end against fixtures in the test
 * suite; its components are validated by the encoder, decoder and CLIP benches).
 *
 * Files made once in --dir: sam_vit_b_random.safetensors (seed 0), clip_vit_b16_random.safetensors
 * (seed 0), samclip_vit_b_random.safetensors (assembled: that SAM, that text tower, a random CLIP head,
 * seed 0).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { GpuContext } from '../src/gpu/context.js';
import type { ImageU8 } from '../src/image/image.js';
import { pilResize } from '../src/image/pil-resize.js';
import { clipPreprocess } from '../src/image/preprocess.js';
import { samResizeShape } from '../src/image/transforms.js';
import { readTensor } from '../src/kernels/copy.js';
import type { ClipModel } from '../src/model/clip/clip.js';
import { loadClip } from '../src/model/clip/load.js';
import { planBundle, randomClipHead } from '../src/model/samclip/assemble.js';
import { labelMap } from '../src/model/samclip/label-kernels.js';
import type { MergedBackend } from '../src/model/samclip/backends.js';
import { SamClip } from '../src/pipelines/samclip.js';
import { planRefinement, resolveRefinement, softmaxClasses } from '../src/pipelines/refinement.js';
import { decodeClasses, finalizeLabels, maskPromptInputs, scoreMaps } from '../src/pipelines/semantic-segmentation.js';
import { writeRandomWeights } from '../src/weights/random.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { writeSafetensorsFile } from '../src/weights/safetensors-writer.js';
import { samEncoderConfigFromWeights } from '../src/model/sam/config.js';
import { plannedShapes } from '../src/model/sam/load.js';
import { readSafetensorsSimple } from '../test/helpers/read-safetensors-simple.js';
import { ourContext } from './harness/dawn.js';
import { fmtLoad } from './harness/report.js';
import { type Timing, measureInterleaved, summarize } from './harness/timing.js';
import { flag, has } from './harness/cli.js';
import { type BenchRow, timingFields, writeRows } from './harness/record.js';

const runs = Number(flag('--runs', '3'));
const warmup = Number(flag('--warmup', '1'));
const dir = flag('--dir', '/tmp/samclip-bench');
const imageName = flag('--image', 'truck') as 'truck' | 'dog';
const CLASSES = flag('--classes', 'truck,road,sky,tree,building').split(',');

const rows: [string, string][] = [];
const report = (name: string, t: Timing | number, note = '') => {
  const s = typeof t === 'number' ? `${(t / 1000).toFixed(3)} s` : `median ${(t.median / 1000).toFixed(3)} s (min ${(t.min / 1000).toFixed(3)}, ${t.runs} runs)`;
  rows.push([name, `${s}${note ? `  ${note}` : ''}`]);
  console.log(`${name.padEnd(58)} ${s}${note ? `  ${note}` : ''}`);
};
const ms = (t: Timing | number) => (typeof t === 'number' ? t : t.median);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function prepare(): Promise<{ sam: string; clip: string; bundle: string }> {
  mkdirSync(dir, { recursive: true });
  const sam = join(dir, 'sam_vit_b_random.safetensors');
  const clip = join(dir, 'clip_vit_b16_random.safetensors');
  const bundle = join(dir, 'samclip_vit_b_random.safetensors');
  if (!existsSync(sam)) {
    console.error(`writing ${sam} (random-weights sam-vit-b, seed 0) ...`);
    await writeRandomWeights(sam, { family: 'sam-vit-b', seed: 0 });
  }
  if (!existsSync(clip)) {
    console.error(`writing ${clip} (random-weights clip-vit-b-16, seed 0) ...`);
    await writeRandomWeights(clip, { family: 'clip-vit-b-16', seed: 0 });
  }
  if (!existsSync(bundle)) {
    console.error(`assembling ${bundle} (that SAM + that text tower + a random CLIP head, seed 0) ...`);
    const s = await SafetensorsFile.open(sam);
    const c = await SafetensorsFile.open(clip);
    const enc = samEncoderConfigFromWeights(plannedShapes(s, 'sam', null));
    const D = c.info('text_projection').shape[1]!;
    const head = SafetensorsFile.fromBytes(
      randomClipHead({ depth: 3, dim: enc.embedDim, numHeads: enc.numHeads, mlpDim: enc.mlpDim, relPosSize: enc.posEmbedGrid, blockEps: 1e-6, normEps: 1e-5, mlpWidths: [enc.embedDim, enc.embedDim, enc.embedDim, D] }, 0),
      'random CLIP head',
    );
    const plan = planBundle({ sam: s, clip: c, head }, { model: 'samclip_vit_b_random' });
    await writeSafetensorsFile(bundle, plan.entries, { metadata: plan.metadata });
    await s.close();
    await c.close();
  }
  return { sam, clip, bundle };
}

function photo(): ImageU8 {
  const t = readSafetensorsSimple(join(import.meta.dirname, '..', 'test', 'fixtures', 'images', 'decoded_rgb.safetensors')).get(imageName);
  return { height: t.shape[0]!, width: t.shape[1]!, channels: 3, data: t.bytes };
}

async function mergedBench(ctx: GpuContext, bundle: string, clip: ClipModel, img: ImageU8): Promise<void> {
  let t0 = performance.now();
  const model = await SamClip.load(ctx, bundle);
  report('merged: load bundle', performance.now() - t0);
  const be = model.backend as MergedBackend;
  const [H, W] = [img.height, img.width];

  // --- text
  be.text.clearCache();
  report(`text: ${CLASSES.length} classes x 1 template (cold)`, await timed(() => model.classEmbeddings(CLASSES, { templates: 'single' })));
  const templates = has('--no-text-ensemble') ? ('single' as const) : ('ensemble' as const);
  if (templates === 'ensemble') {
    report(`text: ${CLASSES.length} classes x 80 templates (cold)`, await timed(() => model.classEmbeddings(CLASSES)));
  }
  const T = await model.classEmbeddings(CLASSES, { templates }); // cached from here on
  const segOpts = { templates, masks: false };
  const C = CLASSES.length;
  const Tt = ctx.upload(T, [C, model.embedDim]);
  Tt.persistent = true;

  // --- head-only at 448, by stage
  const seg = model.resolutions.seg;
  // --ratio-only: skip the per-stage loops, keep the interleaved refined-vs-baseline rounds.
  const stages = !has('--ratio-only');
  const s448 = { backbone: [] as number[], head: [] as number[], labels: [] as number[] };
  for (let i = 0; stages && i < warmup + runs; i++) {
    let t = performance.now();
    const tokens = ctx.scope(() => be.tokens(ctx, be.squareInput(ctx, img, seg)));
    await ctx.sync();
    const b = performance.now() - t;
    t = performance.now();
    const dense = ctx.scope(() => be.head.forward(ctx, tokens, { pooled: false }).dense!);
    await ctx.sync();
    const h = performance.now() - t;
    t = performance.now();
    const labels = ctx.scope(() => labelMap(ctx, scoreMaps(ctx, dense, Tt, model.logitScale), { outSize: [H, W] }));
    finalizeLabels((await readTensor(ctx, labels)) as Uint32Array, { classes: C, background: -1 });
    const l = performance.now() - t;
    for (const x of [tokens, dense, labels]) x.dispose();
    if (i >= warmup) {
      s448.backbone.push(b);
      s448.head.push(h);
      s448.labels.push(l);
    }
  }
  if (stages) {
    report(`head-only ${seg}: backbone (resize + preprocess + 12 blocks)`, summarize(s448.backbone));
    report(`head-only ${seg}: CLIP head (3 global blocks, dense)`, summarize(s448.head));
    report(`head-only ${seg}: scores + upsample/argmax to ${W}x${H} + readback`, summarize(s448.labels));
    report(`head-only ${seg}: whole segmentSemantic (text cached)`, await timed(() => model.segmentSemantic(img, CLASSES, segOpts)));
  }

  // --- refined at 1024, by stage
  const sam = be.sam;
  const S = sam.imgSize;
  const g = sam.config.imageEmbeddingSize;
  const st = { backbone: [] as number[], head: [] as number[], prep: [] as number[], decode: [] as number[], post: [] as number[] };
  let decodedCount = 0;
  for (let i = 0; stages && i < warmup + runs; i++) {
    let t = performance.now();
    const [h, w] = samResizeShape(H, W, S);
    const resized = pilResize(img, w, h, { filter: 'bilinear' });
    const enc = ctx.scope(() => be.encoder.forward(ctx, sam.preprocess(ctx, resized), { returnTokens: true }));
    await ctx.sync();
    const tb = performance.now() - t;
    t = performance.now();
    const dense = ctx.scope(() => be.head.forward(ctx, enc.tokens!, { pooled: false }).dense!);
    await ctx.sync();
    const th = performance.now() - t;
    t = performance.now();
    const Sm = ctx.scope(() => scoreMaps(ctx, dense, Tt, model.logitScale));
    const fb = labelMap(ctx, Sm, { outSize: [H, W], frame: { size: S, inputSize: [h, w] } });
    const sHost = (await readTensor(ctx, Sm)) as Float32Array;
    const tm = new Float32Array(sHost.length);
    for (let c = 0; c < C; c++) for (let n = 0; n < g * g; n++) tm[n * C + c] = sHost[c * g * g + n]!;
    const plan = planRefinement(softmaxClasses(tm, g * g, C), C, g, g, [h, w], sam.config.patchSize, resolveRefinement({}, g));
    const prompts = maskPromptInputs(ctx, plan, g, g, sam.lowResSize);
    await ctx.sync();
    const tp = performance.now() - t;
    t = performance.now();
    const dec = await decodeClasses(ctx, sam, enc.embedding, prompts, plan.decoded.map((c) => plan.points[c]!.coords));
    await ctx.sync();
    const td = performance.now() - t;
    t = performance.now();
    const lab = labelMap(ctx, dec.lowRes, { outSize: [H, W], frame: { size: S, inputSize: [h, w] }, fallback: fb });
    finalizeLabels((await readTensor(ctx, lab)) as Uint32Array, { classes: C, background: -1, decoded: plan.decoded });
    const tpost = performance.now() - t;
    decodedCount = plan.decoded.length;
    for (const x of [enc.embedding, enc.tokens!, dense, Sm, fb, prompts, dec.lowRes, lab]) x.dispose();
    if (i >= warmup) {
      st.backbone.push(tb);
      st.head.push(th);
      st.prep.push(tp);
      st.decode.push(td);
      st.post.push(tpost);
    }
  }
  if (stages) {
    report(`refined ${S}: backbone (resize + preprocess + 12 blocks + neck)`, summarize(st.backbone));
    report(`refined ${S}: CLIP head (3 global blocks on ${g}x${g}, dense)`, summarize(st.head));
    report(`refined ${S}: refinement prep (S, fallback labels, P, points, prompts)`, summarize(st.prep));
    report(`refined ${S}: SAM head decode (${decodedCount} classes)`, summarize(st.decode));
    report(`refined ${S}: composite labels at ${W}x${H} + readback`, summarize(st.post));
  }

  // --- the comparison, interleaved
  const clipEncode = async () => {
    const pre = clipPreprocess(img, { size: clip.imageSize });
    const f = ctx.scope(() => clip.encodeImage(ctx, ctx.upload(pre.input, pre.shape)));
    await readTensor(ctx, f);
    f.dispose();
  };
  const samEncode = async () => {
    const [h, w] = samResizeShape(H, W, S);
    const e = ctx.scope(() => sam.encodeImage(ctx, sam.preprocess(ctx, pilResize(img, w, h, { filter: 'bilinear' }))));
    await ctx.sync();
    e.dispose();
  };
  // Baseline = one SAM encode + one CLIP encode; each round times the three in rotating order so
  // that load drift on a shared machine falls on every side, and pairs the round's SAM and CLIP.
  const competitors = new Map([
    ['refined', { run: async () => void (await model.segmentSemantic(img, CLASSES, { ...segOpts, refine: true })) }],
    ['sam', { run: samEncode }],
    ['clip', { run: clipEncode }],
  ]);
  const res = await measureInterleaved(competitors, { runs, warmup }, (k, e) => console.error(`${k}: ${(e as Error).message}`));
  const r = res.get('refined')!;
  const sa = res.get('sam')!;
  const cl = res.get('clip')!;
  const b = summarize(sa.samples.map((v, i) => v + cl.samples[i]!));
  report(`refined ${S}: whole segmentSemantic, ${C} classes (text cached)`, r);
  report('baseline: one SAM ViT-B encode (1024, resize + preprocess)', sa);
  report('baseline: one CLIP ViT-B/16 encode (224, preprocess)', cl);
  report('baseline: SAM ViT-B encode + CLIP ViT-B/16 encode (same rounds)', b);
  const ratio = r.median / b.median;
  const perRound = r.samples.map((v, i) => v / b.samples[i]!);
  rows.push(['ratio refined / (SAM + CLIP)', `${ratio.toFixed(3)}x of medians; per round ${perRound.map((x) => x.toFixed(3)).join(', ')} (goal < 1.3x) ${ratio < 1.3 ? 'MET' : 'NOT MET'}`]);
  console.log(`ratio refined / (SAM encode + CLIP encode): ${ratio.toFixed(3)}x (goal < 1.3x)`);

  if (has('--profile')) {
    const prof = ctx.enableProfiling();
    prof.clear();
    await model.segmentSemantic(img, CLASSES, { ...segOpts, refine: true });
    await ctx.sync();
    console.log(prof.formatTable(prof.stageTable(), 'stage'));
    console.log(prof.formatTable(prof.kernelTable().slice(0, 15), 'kernel'));
    prof.clear();
  }
  Tt.dispose();
  model.dispose();
}

async function compositeBench(ctx: GpuContext, samPath: string, clip: ClipModel, img: ImageU8): Promise<void> {
  let t0 = performance.now();
  const model = await SamClip.composite(ctx, { sam: samPath, clip });
  report('composite: load SAM ViT-B (CLIP ViT-B/16 already loaded)', performance.now() - t0);
  const templates = has('--no-text-ensemble') ? ('single' as const) : ('ensemble' as const);
  t0 = performance.now();
  await model.classEmbeddings(CLASSES, { templates });
  report(`composite text: ${CLASSES.length} classes x ${templates === 'ensemble' ? 80 : 1} template(s) (cold)`, performance.now() - t0);
  const { seg } = model.resolutions;
  t0 = performance.now();
  const e = await model.embed(img);
  report(`composite: embed (SAM encode + dense CLIP ${seg}, MaskCLIP, 224 windows)`, performance.now() - t0);
  t0 = performance.now();
  const r = await model.segmentSemantic(e, CLASSES, { templates });
  report(`composite: refined segmentation from the embedding (${CLASSES.length} classes)`, performance.now() - t0);
  const counts = Array.from(r.pixelCounts, (n, i) => `${CLASSES[i]} ${n}`).join(', ');
  rows.push(['composite refined result', `decoded ${r.decodedClasses!.length} classes, fallback ${r.fallbackPixels} px; ${counts}`]);
  console.log(`composite refined: decoded ${r.decodedClasses!.map((c) => CLASSES[c]).join(', ')}; ${counts}`);
  t0 = performance.now();
  const t = await model.segmentText(e, 'a truck', { templates });
  report('composite: segmentText("a truck") from the embedding', performance.now() - t0);
  rows.push(['composite segmentText("a truck")', `points ${JSON.stringify(t.points.map(([x, y]) => [Math.round(x), Math.round(y)]))}, IoU ${Array.from(t.iouPredictions, (v) => v.toFixed(3)).join(' ')}`]);
  e.dispose();
  t0 = performance.now();
  await model.segmentSemantic(img, CLASSES, { templates, masks: false });
  report(`composite: head-only segmentation ${seg} (whole pipeline)`, performance.now() - t0);
  model.dispose(); // the SAM it loaded; the CLIP model stays the caller's

}

async function refinedOnly(ctx: GpuContext, bundle: string, img: ImageU8): Promise<void> {
  const model = await SamClip.load(ctx, bundle);
  await model.classEmbeddings(CLASSES, { templates: 'single' });
  const opts = { templates: 'single' as const, masks: false, refine: true };
  const c0 = ctx.pipelines.compileMs;
  const d0 = ctx.dispatchCount;
  const firstMs = await timed(() => model.segmentSemantic(img, CLASSES, opts));
  const compileMs = ctx.pipelines.compileMs - c0;
  const dispatches = ctx.dispatchCount - d0;
  report(`refined ${model.resolutions.native}: first run (pipeline compilation included)`, firstMs);
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await timed(() => model.segmentSemantic(img, CLASSES, opts)));
  const t = samples.length ? summarize(samples) : undefined;
  if (t) report('refined: steady', t);
  const json: BenchRow[] = [{
    model: `SAM-CLIP refined 1024, ${CLASSES.length} classes`,
    variant: `ours ${ctx.useF16 ? 'f16' : 'f32'}`,
    ...timingFields(t),
    firstMs,
    compileMs,
    dispatches,
    note: 'no full-size reference (components validated in their rows; pipeline tested against fixtures)',
  }];
  writeRows(has('--json') ? flag('--json', 'samclip.json') : null, json, { adapter: ctx.description });
  model.dispose();
}

async function main(): Promise<void> {
  const files = await prepare();
  const ctx = await ourContext();
  if (has('--refined-only')) {
    await refinedOnly(ctx, files.bundle, photo());
    ctx.destroy();
    return;
  }
  console.log(`adapter: ${ctx.description}; ${fmtLoad()}; runs ${runs}, warmup ${warmup}; image ${imageName}; classes ${CLASSES.join(', ')}`);
  const img = photo();
  const cf = await SafetensorsFile.open(files.clip);
  const clip = await loadClip(ctx, cf, { dtype: 'f32' });
  await cf.close();
  if (!has('--no-merged')) await mergedBench(ctx, files.bundle, clip, img);
  if (!has('--no-composite')) await compositeBench(ctx, files.sam, clip, img);
  clip.dispose();
  console.log('\n| measurement | result |\n| --- | --- |');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
  console.log(`\n${fmtLoad()}`);
  ctx.destroy();
}

await main();
