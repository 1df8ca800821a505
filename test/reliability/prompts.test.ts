/**
 * Seeded fuzzing of everything a caller passes to the prompt and text APIs: random SAM prompts
 * (points, labels, boxes, mask inputs; in range, out of range, NaN, Inf, wrong types and sizes) on
 * the tiny SAM, and random class lists for the CLIP classifier. Every call must end in a named
 * SamclipError or a well-formed result; a TypeError, RangeError or hang is a failure. Also the
 * classes that only differ after CLIP's 77-token cut.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SamclipError } from '../../src/gpu/errors.js';
import { ClipError } from '../../src/model/clip/config.js';
import { loadClip } from '../../src/model/clip/load.js';
import { ClassListError, TextEmbedder } from '../../src/model/samclip/text-embeddings.js';
import { ClipClassifier } from '../../src/pipelines/clip-classifier.js';
import { type SamImageEmbedding, SamPredictor, type SamPrompt } from '../../src/pipelines/sam-predictor.js';
import { loadClipTokenizer } from '../../src/text/clip-vocabulary.js';
import type { ClipTokenizer } from '../../src/text/clip-tokenizer.js';
import { mulberry32 } from '../../src/util/mulberry32.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { useGpu } from '../helpers/gpu.js';
import { REFERENCE } from '../helpers/reference.js';

const gpu = useGpu();
const SOAK = process.env.SAMCLIP_SOAK === '1';
const PROMPT_CASES = SOAK ? 2000 : 100;
const CLASS_LISTS = SOAK ? 300 : 40;

let tokenizer: ClipTokenizer;
beforeAll(async () => {
  tokenizer = await loadClipTokenizer();
});

/** Outcome bookkeeping: named errors by class name, successes, and anything else (a failure). */
class Tally {
  readonly named = new Map<string, number>();
  ok = 0;
  readonly bad: string[] = [];
  async run(what: string, f: () => Promise<void>): Promise<void> {
    try {
      await f();
      this.ok++;
    } catch (e) {
      if (e instanceof SamclipError) this.named.set(e.name, (this.named.get(e.name) ?? 0) + 1);
      else this.bad.push(`${what}: ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
  }
}

describe('SAM prompt fuzzing', () => {
  let predictor: SamPredictor;
  let emb: SamImageEmbedding;
  const W = 160;
  const H = 120;
  beforeAll(async () => {
    predictor = await SamPredictor.load(gpu(), join(REFERENCE, 'sam_tiny.weights.safetensors'));
    const data = new Uint8Array(W * H * 3);
    const r = mulberry32(5);
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(r() * 256);
    emb = await predictor.encode({ width: W, height: H, channels: 3, data });
  });

  it(`${PROMPT_CASES} seeded prompts: a named error or a well-formed prediction, nothing else`, async () => {
    const r = mulberry32(1234);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const L = predictor.lowResSize;
    // Half the cases are valid prompts; the other half are valid prompts with one field corrupted
    // (a bad number, a wrong type, a wrong length), so both paths get exercised.
    const inRange = (max: number) => pick([r() * max, Math.round(r() * max), 0, max]);
    const badNumber = (max: number): unknown => pick<unknown>([-1 - r() * 10, max + 1 + r() * 10, Number.NaN, Infinity, -Infinity, '12', null, undefined, 1e308]);
    const validPrompt = (): Record<string, unknown> => {
      const p: Record<string, unknown> = {};
      const kind = pick(['points', 'box', 'both', 'mask+points']);
      if (kind !== 'box') {
        const n = pick([1, 1, 2, 3, 5]);
        p.points = r() < 0.5 ? Array.from({ length: n }, () => [inRange(W), inRange(H)]) : Float32Array.from({ length: 2 * n }, (_, i) => inRange(i % 2 ? H : W));
        p.labels = Array.from({ length: n }, () => pick([1, 1, 0, -1]));
      }
      if (kind === 'box' || kind === 'both') {
        const [x0, x1] = [inRange(W), inRange(W)].sort((a, b) => a - b);
        const [y0, y1] = [inRange(H), inRange(H)].sort((a, b) => a - b);
        p.box = [x0, y0, x1, y1];
      }
      if (kind === 'mask+points') p.maskInput = new Float32Array(L * L).map(() => (r() - 0.5) * 40);
      return p;
    };
    const corrupt = (p: Record<string, unknown>): void => {
      const field = pick(['points', 'labels', 'box', 'maskInput', 'coordinate']);
      if (field === 'coordinate' && Array.isArray(p.points) && p.points.length) (p.points[0] as unknown[])[Math.floor(r() * 2)] = badNumber(W);
      else if (field === 'coordinate' && Array.isArray(p.box)) p.box[Math.floor(r() * 4)] = badNumber(W);
      else if (field === 'points') p.points = pick<unknown>([null, 5, 'points', {}, [null], [[1, 2], 'x'], [[1]], [[1, 2, 3]], new Float32Array(3)]);
      else if (field === 'labels') p.labels = pick<unknown>([null, 7, 'fg', [2], [Number.NaN], ['1'], [], [1, 1, 1, 1, 1, 1, 1]]);
      else if (field === 'box') p.box = pick<unknown>([[10, 10, 5, 5], [1, 2, 3], null, 'box', [0, 0, W + 5, H], [Number.NaN, 0, 1, 1]]);
      else {
        const size = pick([L * L - 1, 4 * L * L, 0]);
        const m = new Float32Array(L * L);
        m[Math.floor(r() * L * L)] = pick([Number.NaN, Infinity, -Infinity]);
        p.maskInput = pick<unknown>([new Float32Array(size), m, null, 'mask', 5]);
      }
    };
    const prompt = (): SamPrompt => {
      const p = validPrompt();
      if (r() < 0.5) corrupt(p);
      return p as SamPrompt;
    };
    const tally = new Tally();
    for (let i = 0; i < PROMPT_CASES; i++) {
      const p = prompt();
      const multimaskOutput = r() < 0.5;
      await tally.run(`case ${i} ${JSON.stringify(p, (_k, v) => (v instanceof Float32Array ? `Float32Array(${v.length})` : v))}`, async () => {
        const out = await predictor.predict(emb, p, { multimaskOutput });
        expect(out.masks).toHaveLength(multimaskOutput ? 3 : 1);
        for (const m of out.masks) {
          expect(m.length).toBe(W * H);
          expect(m.every((v) => v === 0 || v === 1)).toBe(true);
        }
        expect(Array.from(out.iouPredictions).every(Number.isFinite), 'IoU predictions are finite').toBe(true);
        expect(out.lowResLogits.every(Number.isFinite), 'low-res logits are finite').toBe(true);
      });
    }
    console.log(`prompt fuzz: ${tally.ok} predictions, named errors ${JSON.stringify(Object.fromEntries(tally.named))}`);
    expect(tally.bad, tally.bad.slice(0, 5).join('\n')).toEqual([]);
    expect(tally.ok).toBeGreaterThan(PROMPT_CASES / 3);
    expect(tally.named.get('PromptError') ?? 0).toBeGreaterThan(PROMPT_CASES / 5);
  });
});

describe('class lists', () => {
  it(`${CLASS_LISTS} seeded class lists: a named error or one unit embedding per class`, async () => {
    const file = await SafetensorsFile.open(join(REFERENCE, 'clip_tiny.weights.safetensors'));
    const model = await loadClip(gpu(), file, { act: 'quick_gelu' });
    await file.close();
    const classifier = new ClipClassifier(gpu(), model, tokenizer);
    const r = mulberry32(99);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const word = () => pick(['cat', 'dog', 'a', 'the', 'ÉCOLE', 'école', '狗', '🐕', '  ', '', 'x'.repeat(200), 'truck', '<|endoftext|>', '{}', '$&', '\u0000', 'Cat']);
    const tally = new Tally();
    for (let i = 0; i < CLASS_LISTS; i++) {
      const n = pick([0, 1, 2, 3, 5]);
      const labels = Array.from({ length: n }, () => Array.from({ length: pick([1, 1, 2, 40]) }, word).join(' '));
      if (r() < 0.1) (labels as unknown[]).push(pick<unknown>([null, 3, {}]));
      const templates = pick<unknown>([['{}'], ['a photo of a {}.', '{}'], ['no placeholder'], ['{} and {}'], []]);
      await tally.run(`list ${i} ${JSON.stringify(labels).slice(0, 200)}`, async () => {
        const emb = await classifier.classEmbeddings(labels, templates as string[]);
        expect(emb).toHaveLength(labels.length);
        for (const e of emb) expect(Math.abs(Math.hypot(...e) - 1)).toBeLessThan(1e-5);
      });
    }
    model.dispose();
    console.log(`class-list fuzz: ${tally.ok} lists embedded, named errors ${JSON.stringify(Object.fromEntries(tally.named))}`);
    expect(tally.bad, tally.bad.slice(0, 5).join('\n')).toEqual([]);
    expect(tally.ok).toBeGreaterThan(0);
  });

  it('classes identical after the 77-token cut are an error naming both (classifier and SAM-CLIP text embedder)', async () => {
    const stem = Array.from({ length: 80 }, (_, i) => `word${i % 7}`).join(' ');
    const a = `${stem} cat`;
    const b = `${stem} dog`;
    const file = await SafetensorsFile.open(join(REFERENCE, 'clip_tiny.weights.safetensors'));
    const model = await loadClip(gpu(), file, { act: 'quick_gelu' });
    await file.close();
    const classifier = new ClipClassifier(gpu(), model, tokenizer);
    await expect(classifier.classEmbeddings(['short', a, b], ['{}'])).rejects.toThrow(
      /labels 1 \("word0 word1 .*"\.\.\.\) and 2 \(.*\) become identical when CLIP cuts each prompt to 77 tokens/,
    );
    await expect(classifier.classEmbeddings([a, b])).rejects.toThrow(ClipError);
    // Distinct within the first tokens under one template is enough to be told apart.
    const ok = await classifier.classEmbeddings([`cat ${stem}`, `dog ${stem}`], ['{}']);
    expect(ok).toHaveLength(2);
    model.dispose();
    const embedder = new TextEmbedder(tokenizer, () => {
      throw new Error('not reached: the class list is refused first');
    }, 64, 77, 256);
    await expect(embedder.classEmbeddings(gpu(), [a, b], ['a photo of a {}.'])).rejects.toThrow(ClassListError);
    await expect(embedder.classEmbeddings(gpu(), [a, b], ['a photo of a {}.'])).rejects.toThrow(/classes: 0 .* and 1 .* become identical when CLIP cuts each prompt to 77 tokens/);
  });
});
