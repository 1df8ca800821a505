/**
 * `fromPretrained` on the three facades, against a Hub-like loopback server (`endpoint`), with the
 * tiny reference SAM and CLIP as the "pulled" files: each gives exactly what loading the same file
 * by path gives, and a second call is served from the cache without a request. Node's default
 * cache is the CLI's (SAMCLIP_CACHE), registered by loading src/node/index.ts.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistryEntry } from '../../src/hub/registry.js';
import type { ImageU8 } from '../../src/image/image.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { ClipClassifier } from '../../src/pipelines/clip-classifier.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { FileModelCache } from '../../src/node/hub-cache.js';
import '../../src/node/index.js';
import { useGpu } from '../helpers/gpu.js';
import { mulberry32 } from '../../src/util/mulberry32.js';
import { loadTiny, TINY_OPTS } from '../model/clip-helpers.js';
import { REFERENCE } from '../helpers/reference.js';
import { Loopback } from './loopback.js';

const gpu = useGpu();
const SAM_FILE = join(REFERENCE, 'sam_tiny.weights.safetensors');
const CLIP_FILE = join(REFERENCE, 'clip_tiny.weights.safetensors');
const SAM: RegistryEntry = { name: 'sam-tiny', kind: 'sam', description: 'tiny SAM', repo: 'test/sam-tiny', file: 'model.safetensors', sha256: null, size: null, family: 'sam-hf' };
const CLIP: RegistryEntry = { name: 'clip-tiny', kind: 'clip', description: 'tiny CLIP', repo: 'test/clip-tiny', file: 'model.safetensors', sha256: null, size: null, family: 'clip', act: 'quick_gelu' };

let srv: Loopback;
let endpoint = '';
const cacheDir = mkdtempSync(join(tmpdir(), 'samclip-pretrained-'));

function image(w: number, h: number, seed: number): ImageU8 {
  const rnd = mulberry32(seed);
  return { width: w, height: h, channels: 3, data: Uint8Array.from({ length: w * h * 3 }, () => Math.floor(rnd() * 256)) };
}

beforeAll(async () => {
  srv = await Loopback.start();
  srv.serve('/test/sam-tiny/resolve/main/model.safetensors', { body: readFileSync(SAM_FILE) });
  srv.serve('/test/clip-tiny/resolve/main/model.safetensors', { body: readFileSync(CLIP_FILE) });
  endpoint = srv.base;
  process.env.SAMCLIP_CACHE = cacheDir;
});
afterAll(async () => {
  delete process.env.SAMCLIP_CACHE;
  await srv.close();
});

describe('fromPretrained', () => {
  it('SamPredictor: same masks as loading the file by path; the CLI cache is the default on Node', async () => {
    const progress: number[] = [];
    const byName = await SamPredictor.fromPretrained(gpu(), SAM, { endpoint, onProgress: (p) => progress.push(p.fraction ?? -1) });
    const byPath = await SamPredictor.load(gpu(), SAM_FILE);
    try {
      expect(progress.at(-1)).toBe(1);
      expect(new FileModelCache(cacheDir).hasSync('sam-tiny', 'model.safetensors')).toBe(true);
      const img = image(80, 60, 7);
      const prompt = { points: [[30, 20]] as [number, number][], labels: [1] };
      const [a, b] = await Promise.all([byName.encode(img), byPath.encode(img)]);
      const [ra, rb] = [await byName.predict(a, prompt), await byPath.predict(b, prompt)];
      a.dispose();
      b.dispose();
      expect(Array.from(ra.iouPredictions)).toEqual(Array.from(rb.iouPredictions));
      expect(ra.masks.map((m) => Array.from(m))).toEqual(rb.masks.map((m) => Array.from(m)));
    } finally {
      byName.model.dispose();
      byPath.model.dispose();
    }
    const n = srv.log.length;
    const again = await SamPredictor.fromPretrained(gpu(), SAM, { endpoint });
    again.model.dispose();
    expect(srv.log.length).toBe(n);
    await expect(SamPredictor.fromPretrained(gpu(), CLIP, { endpoint })).rejects.toThrow(/'clip-tiny' is a CLIP model, not a SAM one/);
  });

  it('ClipClassifier: the registry entry supplies the activation; same embeddings as by path', async () => {
    const clf = await ClipClassifier.fromPretrained(gpu(), CLIP, { endpoint, textHeads: TINY_OPTS.textHeads });
    const ref = await loadTiny(gpu());
    try {
      expect(clf.model.config.act).toBe('quick_gelu');
      const img = image(64, 64, 3);
      const refClf = await ClipClassifier.create(gpu(), ref);
      expect(Array.from(await clf.encodeImage(img))).toEqual(Array.from(await refClf.encodeImage(img)));
    } finally {
      clf.model.dispose();
      ref.dispose();
    }
  });

  it('SamClip: composite mode from two names gives what SamClip.composite gives on the files', async () => {
    const opts = { dense: { window: 64, stride: 32 } };
    const byName = await SamClip.fromPretrained(gpu(), { sam: SAM, clip: CLIP }, { ...opts, endpoint });
    const byPath = await SamClip.composite(gpu(), { sam: SAM_FILE, clip: CLIP_FILE }, { ...opts, clipAct: 'quick_gelu' });
    try {
      const img = image(96, 72, 11);
      const [a, b] = [await byName.classify(img, ['dog', 'cat'], { templates: 'single' }), await byPath.classify(img, ['dog', 'cat'], { templates: 'single' })];
      expect(a).toEqual(b);
    } finally {
      byName.dispose();
      byPath.dispose();
    }
  });
});
