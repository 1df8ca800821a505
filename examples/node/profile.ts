/**
 * The profiler from code: time every GPU dispatch with timestamp queries, print the per-kernel and
 * per-stage tables, and write a Chrome trace.
 *
 *   npx tsx examples/node/profile.ts [weights.safetensors] [photo.jpg]
 *
 * Defaults: the tiny seeded SAM of test/fixtures and test/fixtures/images/dog.jpg. Writes
 * out/examples/profile-trace.json (open it in https://ui.perfetto.dev or chrome://tracing, or render it
 * with `npx tsx tools/render-trace.ts`). Needs the adapter's `timestamp-query` feature.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GpuContext, SamPredictor } from '../../src/index.js';
import { readImage } from '../../src/io/index.js';

const ROOT = join(import.meta.dirname, '..', '..');
const weights = process.argv[2] ?? join(ROOT, 'test/fixtures/reference/sam_tiny.weights.safetensors');
const photo = process.argv[3] ?? join(ROOT, 'test/fixtures/images/dog.jpg');

const ctx = await GpuContext.create({ profile: true }); // same as SAMCLIP_PROFILE=1
if (!ctx.profiler) throw new Error(`${ctx.description} has no 'timestamp-query': nothing to time`);
const predictor = await SamPredictor.load(ctx, weights);
const image = await readImage(photo);

// Warm-up run: the first dispatch of each pipeline compiles its shader (seconds on lavapipe).
const warm = await predictor.encode(image);
await predictor.predict(warm, { points: [[400, 300]], labels: [1] });
warm.dispose();
await ctx.sync();
ctx.profiler.clear(); // keep only the timed run below

const emb = await predictor.encode(image);
await predictor.predict(emb, { points: [[400, 300]], labels: [1] });
emb.dispose();
await ctx.sync(); // waits for the GPU and collects the timestamps

const p = ctx.profiler;
console.log(p.formatTable()); // per kernel: total ms, count, mean, %, GFLOP/s, GB/s
console.log();
console.log(p.formatTable(p.stageTable(), 'stage')); // per stage path
const total = p.records.reduce((s, r) => s + (r.endNs - r.startNs), 0) / 1e6;
console.log(`\n${p.records.length} dispatches, ${total.toFixed(1)} ms of GPU time`);

const out = join(ROOT, 'out', 'examples', 'profile-trace.json');
await mkdir(join(ROOT, 'out', 'examples'), { recursive: true });
await writeFile(out, JSON.stringify(p.chromeTrace()));
console.log(`trace: ${join('out', 'examples', 'profile-trace.json')}`);

predictor.dispose();
ctx.destroy();
