/**
 * A Worker look-alike for the web-worker wrapper's tests on Node: the client posts into one port
 * of a real MessageChannel (structured clone and transfer as between a page and a worker), the
 * host (serveSamWorker) serves the other.
 */
import { MessageChannel } from 'node:worker_threads';
import { expect } from 'vitest';
import type { ImageU8 } from '../../src/image/image.js';
import { type AmgEmbedding, type AmgPredictor, SamAutomaticMaskGenerator } from '../../src/pipelines/automatic-mask-generator.js';
import { type SamWorker, serveSamWorker } from '../../src/worker/index.js';

/** A Worker look-alike: the client posts into one port, the host serves the other. */
export function channelWorker(): { worker: Worker; close(): void } {
  const { port1, port2 } = new MessageChannel();
  serveSamWorker({
    postMessage: (m, t) => port2.postMessage(m, t as never),
    addEventListener: (type, l) => port2.on(type, (data) => l({ data } as MessageEvent)),
  });
  const events = new EventTarget();
  port1.on('message', (data) => events.dispatchEvent(Object.assign(new Event('message'), { data })));
  const worker = {
    postMessage: (m: unknown, t: Transferable[]) => port1.postMessage(m, t as never),
    addEventListener: (type: string, l: EventListener) => events.addEventListener(type, l),
    terminate: () => port1.close(),
    dispatchEvent: (e: Event) => events.dispatchEvent(e),
  };
  return { worker: worker as unknown as Worker, close: () => (port1.close(), port2.close()) };
}

/** The worker's automatic masks on `image` equal a direct SamAutomaticMaskGenerator over `direct` (a 2x2 grid, every mask kept). */
export async function expectSameAutomaticMasks<E extends AmgEmbedding>(worker: SamWorker, direct: AmgPredictor<E>, image: ImageU8): Promise<void> {
  // Thresholds off: random weights predict low IoUs, and every mask is wanted here.
  const opts = { pointsPerSide: 2, predIouThresh: 0, stabilityScoreThresh: 0, boxNmsThresh: 1 };
  const remote = await worker.generateMasks({ ...opts, image });
  const local = await new SamAutomaticMaskGenerator(direct, opts).generate(image);
  expect(remote.length).toBeGreaterThan(0);
  expect(remote.map((m) => [m.area, m.bbox, m.predictedIou])).toEqual(local.map((m) => [m.area, m.bbox, m.predictedIou]));
}
