// A browser app using the package as the README shows: SAM on navigator.gpu, weights by URL
// (relative to the page), the photo as raw RGB pixels (public/dog.json + public/dog.rgb, so the
// page and Node segment the very same pixels). The result lands in window.__samclip.
import { GpuContext, SamPredictor } from 'samclip-webgpu';

const result = (window.__samclip = { done: false });
const status = document.getElementById('status');
try {
  const ctx = await GpuContext.create();
  const predictor = await SamPredictor.load(ctx, 'sam_tiny.weights.safetensors');
  const { width, height, point } = await (await fetch('dog.json')).json();
  const data = new Uint8Array(await (await fetch('dog.rgb')).arrayBuffer());
  const embedding = await predictor.encode({ width, height, channels: 3, data });
  const r = await predictor.predict(embedding, { points: [point], labels: [1] }, { multimaskOutput: false });
  embedding.dispose();
  let bin = '';
  for (const v of r.masks[0]) bin += String.fromCharCode(v);
  Object.assign(result, { adapter: ctx.description, mask: btoa(bin), iouPredictions: Array.from(r.iouPredictions) });
  status.textContent = `mask: ${r.masks[0].reduce((s, v) => s + v, 0)} pixels`;
} catch (e) {
  result.error = String(e?.stack ?? e);
  status.textContent = result.error;
}
result.done = true;
