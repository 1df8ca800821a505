/**
 * The web-worker wrapper (`samclip-webgpu/worker`): `createSamWorker()` on the page, and
 * `serveSamWorker()` for a worker script of your own. Not exported from the main entry, so apps
 * that do not use a worker never get the worker chunk emitted by their bundler.
 */
export { createSamWorker, SamWorker, wireImage, type CallOptions, type SendImageOptions, type ImageTarget, type WorkerLoadOptions } from './client.js';
export { serveSamWorker, SamWorkerHost, type ImageChoice, type LoadOptions } from './host.js';
export {
  SamWorkerError,
  type WorkerAdapterInfo,
  type WorkerContextOptions,
  type WorkerEmbedding,
  type WorkerModelInfo,
  type WorkerStats,
  type WireImage,
  type WireWeights,
} from './protocol.js';
