/**
 * Smoke check of the bench's ORT Web wiring: a small MatMul + Add through onnxruntime-web's WebGPU
 * EP on the shared Dawn adapter, with host io and with GPU io, each compared to onnxruntime-node.
 * Exits non-zero on any failure. Takes a few seconds (ORT's wasm under Liftoff).
 *
 *   node --import tsx bench/smoke-ort-web.ts
 */
import { describeAdapterInfo, ourContext } from './harness/dawn.js';
import { buildModel, linearGraph } from './harness/onnx-graphs.js';
import { createOrtNodeSession } from './harness/ort-node.js';
import { createOrtWebSession, ortWebAdapter } from './harness/ort-web.js';
import { measure } from './harness/timing.js';
import { checkOutput, fmtCheck } from './harness/validate.js';
import { Rng } from '../test/helpers/random.js';

async function main(): Promise<number> {
  const t0 = performance.now();
  // Odd sizes: no dimension is a multiple of 4 or of a workgroup tile.
  const [M, K, N] = [37, 45, 29];
  const rng = new Rng(7);
  const weight = rng.randn(N * K, 0.2);
  const bias = rng.randn(N, 0.1);
  const feeds = { x: { data: rng.randn(M * K), dims: [1, M, K] } };
  const model = buildModel(linearGraph({ M, K, N, weight, bias, act: 'gelu' }));

  const ctx = await ourContext();
  const web = await ortWebAdapter();
  const sameAdapter = web === describeAdapterInfo(ctx.adapterInfo);
  console.log(`engine adapter:  ${ctx.description}`);
  console.log(`ORT Web adapter: ${web}${sameAdapter ? ' (same)' : '  ** DIFFERENT **'}`);

  const node = await createOrtNodeSession(model);
  const reference = (await node.run(feeds)).y!.data;
  await node.release();

  let failures = sameAdapter ? 0 : 1;
  for (const io of ['cpu', 'gpu'] as const) {
    const session = await createOrtWebSession(model, { io });
    let out: Float32Array;
    let timing;
    if (io === 'gpu') {
      const bound = session.bindGpu(feeds);
      out = (await bound.read()).y!.data;
      timing = await measure('smoke gpu io', () => bound.run(), { runs: 5, warmup: 1 });
      bound.dispose();
    } else {
      out = (await session.run(feeds)).y!.data;
      timing = await measure('smoke cpu io', () => session.run(feeds), { runs: 5, warmup: 1 });
    }
    const check = checkOutput(out, reference, 1e-5);
    const errors = session.takeGpuErrors();
    await session.release();
    const ok = check.ok && errors.length === 0;
    if (!ok) failures++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ORT Web WebGPU, ${io} io: ${fmtCheck(check)}; median ${timing.median.toFixed(2)} ms` +
      (errors.length ? `; GPU errors: ${errors.join(' | ')}` : ''));
  }
  await ctx.sync();
  console.log(`${failures ? 'FAILED' : 'passed'} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return failures ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
