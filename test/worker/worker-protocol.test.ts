/**
 * The web-worker wrapper's protocol on Node: the page-side client (SamWorker) and the worker-side
 * host (serveSamWorker) joined by a real MessageChannel (structured clone and transfer as between a
 * page and a worker), the engine on Dawn. Checks answers against direct calls, errors (name and
 * message kept), cancellation of queued and running calls with nothing left behind, transfers, and
 * a worker that fails to start. The same wrapper runs in a real worker in Chromium in
 * test/web/browser-api.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { type SamWorker, SamWorkerError, createSamWorker } from '../../src/worker/index.js';
import { useGpu } from '../helpers/gpu.js';
import { usePhotos } from '../helpers/photos.js';
import { channelWorker, expectSameAutomaticMasks } from '../helpers/worker-channel.js';
import { TINY_WEIGHTS } from '../pipelines/sam-fixture.js';

const gpu = useGpu();
const photoImage = usePhotos();
const PROMPT = { points: [[400, 300]] as [number, number][], labels: [1] };

describe('web-worker wrapper (client and host over a MessageChannel)', () => {
  let ch: ReturnType<typeof channelWorker>;
  let sam: SamWorker;
  let direct: SamPredictor;

  beforeAll(async () => {
    ch = channelWorker();
    sam = createSamWorker(ch.worker);
    direct = await SamPredictor.load(gpu(), TINY_WEIGHTS);
  });

  afterAll(async () => {
    await sam.dispose().catch(() => undefined);
    sam.terminate();
    ch.close();
    direct?.model.dispose();
  });

  it('loads by path (Node), encodes and predicts like direct calls', async () => {
    const info = await sam.load(TINY_WEIGHTS);
    expect(info).toMatchObject({ family: 'sam', role: 'sam', sam: { imgSize: 256 } });
    const image = photoImage('dog');
    const emb = await sam.encode(image);
    expect(image.data.byteLength, 'an ImageU8 is copied by default').toBeGreaterThan(0);
    expect(emb).toMatchObject({ originalSize: [534, 800] });
    const p = await sam.predict(PROMPT, { embedding: emb });
    const e = await direct.encode(image);
    const q = await direct.predict(e, PROMPT);
    e.dispose();
    expect(p.masks).toHaveLength(3);
    p.masks.forEach((m, i) => expect(Buffer.compare(m, q.masks[i]!), `mask ${i}`).toBe(0));
    expect(Array.from(p.iouPredictions)).toEqual(Array.from(q.iouPredictions));
    expect(Array.from(p.lowResLogits)).toEqual(Array.from(q.lowResLogits));
    // Without an embedding: the last one encoded.
    expect(Array.from((await sam.predict(PROMPT)).iouPredictions)).toEqual(Array.from(q.iouPredictions));
    expect(await sam.release(emb)).toBe(true);
    expect(await sam.release(emb)).toBe(false);
  });

  it('generates automatic masks like a direct SamAutomaticMaskGenerator', async () => {
    await expectSameAutomaticMasks(sam, direct, photoImage('dog'));
  });

  it('forwards progress: the encode reports rising fractions that end at 1', async () => {
    const seen: { stage: string; fraction: number }[] = [];
    const emb = await sam.encode(photoImage('dog'), { onProgress: (p) => seen.push(p) });
    expect(seen.length).toBeGreaterThan(1);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.fraction).toBeGreaterThanOrEqual(seen[i - 1]!.fraction);
    expect(seen.at(-1)!.fraction).toBeCloseTo(1, 6);
    expect(typeof seen[0]!.stage).toBe('string');
    await sam.release(emb);
  });

  it('transfers an ImageU8 when asked (the caller\'s buffer is detached)', async () => {
    const img = photoImage('dog');
    const copy = { ...img, data: img.data.slice() };
    const emb = await sam.encode(copy, { transfer: true });
    expect(copy.data.byteLength).toBe(0);
    await sam.release(emb);
  });

  it('re-throws worker errors with their name and message', async () => {
    await sam.encode(photoImage('dog'));
    const bad = { points: [[1, 2]] as [number, number][], labels: [1, 1] };
    const e = await direct.encode(photoImage('dog'));
    const direct_ = await direct.predict(e, bad).catch((err) => err);
    e.dispose();
    const remote = await sam.predict(bad).catch((e) => e);
    expect(remote).toBeInstanceOf(SamWorkerError);
    expect([remote.name, remote.message]).toEqual([direct_.name, direct_.message]);
    expect(remote.workerStack).toContain('PromptError');
    await expect(sam.predict(PROMPT, { embedding: 12345 })).rejects.toMatchObject({ name: 'SamWorkerStateError', message: expect.stringMatching(/embedding 12345 is not in the worker/) });
    await expect(sam.segmentSemantic(['dog'])).rejects.toThrow(/segmentSemantic: needs a SAM-CLIP bundle/);
    await expect(sam.encode('photo.jpg')).rejects.toMatchObject({ name: 'ImageError', message: expect.stringMatching(/readImage\(path\) from 'samclip-webgpu\/node'/) });
    await expect(sam.load('/no/such/file.safetensors')).rejects.toMatchObject({ name: 'SafetensorsError', message: expect.stringMatching(/no\/such\/file\.safetensors: cannot open/) });
    // The failed load left the model in place.
    expect((await sam.predict(PROMPT)).masks).toHaveLength(3);
  });

  it('cancels a queued call at once and a running one at its next step; nothing is left behind', async () => {
    const before = await sam.stats();
    const image = photoImage('dog');
    const first = sam.encode(image);
    const ac = new AbortController();
    const second = sam.encode(image, { signal: ac.signal });
    ac.abort(new DOMException('user left', 'AbortError'));
    await expect(second).rejects.toMatchObject({ name: 'AbortError', message: 'user left' });
    const kept = await first;
    const running = new AbortController();
    const third = sam.encode(image, { signal: running.signal });
    setTimeout(() => running.abort(), 5);
    await expect(third).rejects.toMatchObject({ name: 'AbortError' });
    await expect(sam.predict(PROMPT, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    await sam.stats(); // a round trip: an answer that crossed the cancel has been released by now
    expect((await sam.stats()).embeddings).toBe(before.embeddings + 1);
    await sam.release(kept);
    expect(await sam.stats()).toEqual(before);
  });

  it('a worker that fails to start rejects every call with a message saying so', async () => {
    const c = channelWorker();
    const w = createSamWorker(c.worker);
    const pending = w.stats();
    (c.worker as unknown as EventTarget).dispatchEvent(new Event('error'));
    await expect(pending).rejects.toThrow(/the worker script could not be started/);
    await expect(w.init()).rejects.toThrow(/the worker script could not be started/);
    c.close();
  });
});
