/**
 * SAM 2 through the web-worker wrapper (client and host over a MessageChannel, as in
 * worker-protocol.test.ts): a SAM 2 checkpoint is recognised by its keys and loaded as the
 * segmenter; encode, predict and automatic masks answer exactly what direct Sam2Predictor calls
 * answer; CLIP does not join a SAM 2 as a composite. The tiny SAM 2 fixture is given its `sam2`
 * metadata (head count, windows: what the shapes cannot tell), as a file for the page would carry.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sam2ConfigMetadata } from '../../src/model/sam2/config.js';
import { Sam2Predictor } from '../../src/pipelines/sam2-predictor.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { type SamWorker, createSamWorker } from '../../src/worker/index.js';
import { useGpu } from '../helpers/gpu.js';
import { usePhotos } from '../helpers/photos.js';
import { REFERENCE } from '../helpers/reference.js';
import { bytesOf, buildSafetensors } from '../helpers/safetensors-build.js';
import { channelWorker, expectSameAutomaticMasks } from '../helpers/worker-channel.js';
import { SAM2_WEIGHTS, tinyOverrides } from '../model/sam2-fixture.js';

const gpu = useGpu();
const photoImage = usePhotos();
const PROMPT = { points: [[400, 300]] as [number, number][], labels: [1] };

/** The tiny SAM 2 weights with their configuration in the `sam2` metadata entry. */
async function tinyWithMetadata(direct: Sam2Predictor): Promise<ArrayBuffer> {
  const file = await SafetensorsFile.open(SAM2_WEIGHTS);
  try {
    const tensors = await Promise.all(file.keys().map(async (name) => ({ name, dtype: 'F32' as const, shape: [...file.info(name).shape], data: bytesOf(await file.readF32(name)) })));
    const bytes = buildSafetensors(tensors, { metadata: { sam2: sam2ConfigMetadata(direct.model.config) } });
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  } finally {
    await file.close();
  }
}

describe('web-worker wrapper with SAM 2', () => {
  let ch: ReturnType<typeof channelWorker>;
  let sam: SamWorker;
  let direct: Sam2Predictor;
  let directEmb: Awaited<ReturnType<Sam2Predictor['encode']>>;

  // The direct side (the reference the worker is compared with) is encoded here: with a cold
  // shader cache each side compiles the tiny SAM 2 in its own context.
  beforeAll(async () => {
    ch = channelWorker();
    sam = createSamWorker(ch.worker);
    direct = await Sam2Predictor.load(gpu(), SAM2_WEIGHTS, { overrides: tinyOverrides(), dtype: 'f32' });
    directEmb = await direct.encode(photoImage('dog'));
  });

  afterAll(async () => {
    await sam.dispose().catch(() => undefined);
    sam.terminate();
    ch.close();
    directEmb?.dispose();
    direct?.dispose();
  });

  it('loads a SAM 2 checkpoint as the segmenter; encode and predict answer as direct calls do', async () => {
    const info = await sam.load(await tinyWithMetadata(direct), { name: 'sam2_tiny.safetensors', dtype: 'f32' });
    const t = direct.model.config.trunk;
    expect(info).toMatchObject({ family: 'sam2', role: 'sam2', sam: { embedDim: t.embedDim, depth: 8, imgSize: direct.model.imageSize } });
    const image = photoImage('dog');
    const emb = await sam.encode(image);
    expect(emb).toMatchObject({ originalSize: [534, 800], inputSize: [direct.model.imageSize, direct.model.imageSize] });
    for (const multimaskOutput of [true, false]) {
      const p = await sam.predict(PROMPT, { embedding: emb, multimaskOutput });
      const q = await direct.predict(directEmb, PROMPT, { multimaskOutput });
      expect(p.masks).toHaveLength(multimaskOutput ? 3 : 1);
      p.masks.forEach((m, i) => expect(Buffer.compare(m, q.masks[i]!), `mask ${i}`).toBe(0));
      expect(Array.from(p.iouPredictions)).toEqual(Array.from(q.iouPredictions));
      expect(Array.from(p.lowResLogits)).toEqual(Array.from(q.lowResLogits));
    }
    expect(await sam.release(emb)).toBe(true);
  });

  it('automatic masks on SAM 2 equal a direct SamAutomaticMaskGenerator over Sam2Predictor', async () => {
    await expectSameAutomaticMasks(sam, direct, photoImage('dog'));
  });

  it('CLIP does not join a SAM 2 as a composite (the SAM 2 stays loaded)', async () => {
    const clip = readFileSync(join(REFERENCE, 'clip_tiny.weights.safetensors'));
    const bytes = clip.buffer.slice(clip.byteOffset, clip.byteOffset + clip.byteLength) as ArrayBuffer;
    await expect(sam.load(bytes, { name: 'clip_tiny.safetensors' })).rejects.toMatchObject({ name: 'SamWorkerStateError', message: expect.stringMatching(/clip_tiny\.safetensors is a CLIP checkpoint: load a SAM checkpoint \(not SAM 2\) first/) });
    expect((await sam.predict(PROMPT, { embedding: await sam.encode(photoImage('truck')) })).masks).toHaveLength(3);
  });
});
