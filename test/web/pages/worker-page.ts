/**
 * Worker checks of the test page (test/web/pages/main.ts). The engine runs in
 * a worker started by `createSamWorker()` with its default script URL (the bundler pattern), and on
 * this page's thread for comparison: same bundle, same pixels, so the answers must agree. The page
 * also records its own long tasks (PerformanceObserver) during an encode on each side.
 */
import type { ImageU8 } from '../../../src/image/image.js';
import { createSamWorker } from '../../../src/worker/client.js';
import { SamWorkerError } from '../../../src/worker/protocol.js';
import { BPE, BUNDLE, PROMPT, type PageModels, countDiff, fetchBlob, maxAbsDiff, stamp } from './shared.js';

const CLASSES = ['dog', 'grass', 'sky'];

async function caught(p: Promise<unknown>): Promise<{ name: string; message: string; fromWorker: boolean } | null> {
  try {
    await p;
    return null;
  } catch (e) {
    return { name: (e as Error).name, message: (e as Error).message, fromWorker: e instanceof SamWorkerError };
  }
}

export interface LongTasks {
  count: number;
  totalMs: number;
  maxMs: number;
  /** Longest gap between two runs of a 0-ms timer on this thread (how long input would wait). */
  maxGapMs: number;
  wallMs: number;
}

/** Long tasks (> 50 ms) on this page's thread while `fn` runs. */
async function longTasks(fn: () => Promise<unknown>): Promise<LongTasks> {
  const entries: PerformanceEntry[] = [];
  const obs = new PerformanceObserver((l) => entries.push(...l.getEntries()));
  obs.observe({ type: 'longtask', buffered: false });
  let last = performance.now();
  let maxGapMs = 0;
  let ticking = true;
  const tick = () => {
    const t = performance.now();
    maxGapMs = Math.max(maxGapMs, t - last);
    last = t;
    if (ticking) setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  const t0 = performance.now();
  await fn();
  const wallMs = performance.now() - t0;
  ticking = false;
  // Entries are delivered after the task ends: give the observer a turn.
  await new Promise((r) => setTimeout(r, 100));
  obs.takeRecords().forEach((e) => entries.push(e));
  obs.disconnect();
  const inside = entries.filter((e) => e.startTime + e.duration >= t0 && e.startTime <= t0 + wallMs);
  return { count: inside.length, totalMs: inside.reduce((s, e) => s + e.duration, 0), maxMs: Math.max(0, ...inside.map((e) => e.duration)), maxGapMs, wallMs };
}

export async function workerChecks(m: PageModels) {
  const { refImage, samclip: sc } = m;
  const report: Record<string, unknown> = {};

  const client = createSamWorker();
  report.adapter = (await client.init()).description;
  report.model = await client.load(BUNDLE, { tokenizer: BPE });

  stamp('worker: loaded');
  // The reference: the same bundle on this page's thread.
  const pageEmb = await sc.embed(refImage);
  const bitmap = await createImageBitmap(await fetchBlob('pictures/dog.png'));
  const emb = await client.encode(bitmap);
  report.embedding = emb;
  report.bitmapTransferred = bitmap.width === 0 && bitmap.height === 0;

  const pred = await client.predict(PROMPT, { embedding: emb });
  const pagePred = await sc.predictor.predict(pageEmb.sam, PROMPT);
  report.predict = {
    masks: pred.masks.length,
    maskDiff: pred.masks.reduce((s, m, i) => s + countDiff(m, pagePred.masks[i]!), 0),
    iouMaxDiff: maxAbsDiff(pred.iouPredictions, pagePred.iouPredictions),
    lowResMaxDiff: maxAbsDiff(pred.lowResLogits, pagePred.lowResLogits),
    isUint8Array: pred.masks[0] instanceof Uint8Array,
  };

  stamp('worker: predict');
  const semRefined = await client.segmentSemantic(CLASSES, { refine: true, templates: 'single' });
  const pageRefined = await sc.segmentSemantic(pageEmb, CLASSES, { refine: true, templates: 'single' });
  const semHead = await client.segmentSemantic(CLASSES, { image: 'pictures/dog.png', templates: 'single' });
  const pageHead = await sc.segmentSemantic(refImage, CLASSES, { templates: 'single' });
  report.semantic = {
    refinedLabelDiff: countDiff(semRefined.labelMap, pageRefined.labelMap),
    headLabelDiff: countDiff(semHead.labelMap, pageHead.labelMap),
    classes: semRefined.classes,
  };
  stamp('worker: semantic');
  const txt = await client.segmentText('dog', { embedding: emb });
  const pageTxt = await sc.segmentText(pageEmb, 'dog');
  const cls = await client.classify(['dog', 'cat'], { templates: 'single' });
  const pageCls = await sc.classify(refImage, ['dog', 'cat'], { templates: 'single' });
  const T = await client.classEmbeddings(CLASSES, { templates: 'single' });
  const pageT = await sc.classEmbeddings(CLASSES, { templates: 'single' });
  report.others = {
    textMaskDiff: countDiff(txt.best, pageTxt.best),
    classifyProbMaxDiff: maxAbsDiff(cls.probs, pageCls.probs),
    classEmbeddingsMaxDiff: maxAbsDiff(T, pageT),
  };

  stamp('worker: text, classify');
  // Errors keep their name and message across the boundary.
  const badPrompt = { points: [[1, 2]] as [number, number][], labels: [1, 1] };
  report.errors = {
    worker: await caught(client.predict(badPrompt)),
    page: await caught(sc.predictor.predict(pageEmb.sam, badPrompt)),
    missingImage: await caught(client.encode('pictures/no-such.png')),
    unknownEmbedding: await caught(client.predict(PROMPT, { embedding: 9999 })),
    plainObject: await caught(client.encode({ width: 2, height: 2 } as unknown as ImageU8)),
  };

  // Cancellation: a queued call is dropped, a running one stops; nothing is left behind.
  const before = await client.stats();
  const ac1 = new AbortController();
  const first = client.encode(refImage);
  const second = client.encode(refImage, { signal: ac1.signal });
  const t0 = performance.now();
  ac1.abort();
  const secondErr = await caught(second);
  const rejectMs = performance.now() - t0;
  const firstEmb = await first;
  const ac2 = new AbortController();
  const third = client.encode(refImage, { signal: ac2.signal });
  setTimeout(() => ac2.abort(), 30);
  const thirdErr = await caught(third);
  // A round trip first: an answer to a cancelled encode that crossed the cancel is released by
  // the client when it arrives, and that release must be processed before counting.
  await client.stats();
  const afterCancel = await client.stats();
  await client.release(firstEmb);
  const preAborted = await caught(client.predict(PROMPT, { signal: AbortSignal.abort() }));
  const after = await client.stats();
  report.abort = { secondErr, rejectMs, thirdErr, preAborted, before, afterCancel, after };

  stamp('worker: errors, cancellation');
  // Long tasks on this page during an encode of the larger photo (decode included), page thread vs worker.
  const truck = await fetchBlob('pictures/truck.jpg');
  const pageSide: LongTasks[] = [];
  const workerSide: LongTasks[] = [];
  for (let i = 0; i < 2; i++) {
    pageSide.push(await longTasks(async () => (await sc.embed(truck)).dispose()));
    workerSide.push(await longTasks(async () => client.release(await client.encode(truck))));
  }
  report.longTasks = { pageThread: pageSide, worker: workerSide };

  stamp('worker: long tasks');
  pageEmb.dispose();
  await client.dispose();
  client.terminate();
  report.afterTerminate = await caught(client.stats());
  return report;
}
