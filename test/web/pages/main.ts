/**
 * The test page driven by test/web/browser-api.test.ts: image inputs, the web-worker wrapper, then
 * every kernel variant forced, on one page so the page-thread kernels are compiled once. The page measures and reports; the
 * test asserts.
 */
import { imageInputs } from './image-inputs.js';
import { kernelVariants } from './kernel-variants.js';
import { loadPageModels, stamp } from './shared.js';
import { workerChecks } from './worker-page.js';

async function run() {
  const m = await loadPageModels();
  stamp('page models loaded');
  try {
    return { imageInputs: await imageInputs(m), worker: await workerChecks(m), kernels: await kernelVariants(m.ctx) };
  } finally {
    m.samclip.dispose();
    m.ctx.destroy();
  }
}

(window as unknown as { __browserApi: { run: typeof run } }).__browserApi = { run };
document.getElementById('status')!.textContent = 'ready';
