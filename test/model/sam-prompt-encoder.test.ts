/**
 * SAM prompt encoder vs the official PromptEncoder (tiny config, reference fixtures): sparse and
 * dense embeddings of every recorded prompt case on both photos, the dense positional encoding
 * (`image_pe`), and the errors for malformed prompts.
 *
 * Tolerance: the fixtures' rule (rel_l2 <= max(1e-4, 20 x fp32-vs-fp64 noise), max_abs gate), via
 * expectReference; the measured numbers are printed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Weights } from '../../src/weights/weights.js';
import { readTensor } from '../../src/kernels/copy.js';
import { PositionEmbeddingRandom, PromptEncoder, PromptError } from '../../src/model/sam/prompt-encoder.js';
import { useGpu } from '../helpers/gpu.js';
import { expectClose } from '../helpers/compare.js';
import { runModel } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';
import { FIXTURES, expectReference } from '../helpers/reference.js';
import { PhotoRef, SAM_PHOTOS, loadTinyWeights, logStage, tinySamConfigFromManifest, transformedPrompts } from '../pipelines/sam-fixture.js';

const gpu = useGpu();
const cfg = tinySamConfigFromManifest();
let weights: Weights;
let enc: PromptEncoder;

beforeAll(async () => {
  weights = await loadTinyWeights(gpu(), { include: (k) => k.startsWith('prompt_encoder.') });
  enc = await PromptEncoder.create(gpu(), weights, 'prompt_encoder', cfg);
});

describe('PromptEncoder vs official (tiny SAM)', () => {
  for (const photo of SAM_PHOTOS) {
    it(`${photo.name}: image_pe (get_dense_pe)`, async () => {
      const ref = await PhotoRef.open(photo);
      const ctx = gpu();
      const pe = enc.densePe();
      const r = expectReference(await readTensor(ctx, pe), await ref.f32('image_pe'), ref.entry('image_pe'), `${photo.name} image_pe`);
      pe.dispose();
      logStage(`${photo.name} image_pe`, r);
    });

    for (const c of photo.cases) {
      it(`${photo.name}/${c.name}: sparse and dense embeddings`, async () => {
        const ctx = gpu();
        const ref = await PhotoRef.open(photo);
        const p = transformedPrompts(c);
        const masks = c.mask_input ? await ref.upload(ctx, c.mask_input, [1, 1, cfg.imageEmbeddingSize * 4, cfg.imageEmbeddingSize * 4]) : undefined;
        const out = enc.forward(ctx, { ...p, masks });
        const sparseName = ref.caseTensor(c, 'sparse_embeddings');
        const sparseEntry = ref.entry(sparseName);
        expect(out.sparse?.shape ?? [p.batch, 0, cfg.promptEmbedDim]).toEqual(sparseEntry.shape);
        if (out.sparse) {
          const r = expectReference(await readTensor(ctx, out.sparse), await ref.f32(sparseName), sparseEntry, `${c.name} sparse`);
          logStage(`${photo.name}/${c.name} sparse_embeddings`, r);
        }
        const denseName = ref.caseTensor(c, 'dense_embeddings');
        expect([...out.dense.shape]).toEqual(ref.entry(denseName).shape);
        const r = expectReference(await readTensor(ctx, out.dense), await ref.f32(denseName), ref.entry(denseName), `${c.name} dense`);
        logStage(`${photo.name}/${c.name} dense_embeddings`, r);
        out.sparse?.dispose();
        out.dense.dispose();
        masks?.dispose();
      });
    }
  }
});

describe('PositionEmbeddingRandom', () => {
  it('encodes (0.5, 0.5) as sin(0) / cos(0) and the grid in C x H x W order', () => {
    const g = Float32Array.from([0.3, -1.2, 0.7, 2.0]);
    const pe = new PositionEmbeddingRandom(g, 2);
    const out = new Float32Array(4);
    pe.encodeInto(0.5, 0.5, out, 0);
    expect(Array.from(out)).toEqual([0, 0, 1, 1]);
    const grid = pe.grid(2, 3);
    // Cell (row 1, col 2): x = 2.5 / 3, y = 1.5 / 2.
    pe.encodeInto(Math.fround(2.5 / 3), Math.fround(1.5 / 2), out, 0);
    for (let c = 0; c < 4; c++) expect(grid[(c * 2 + 1) * 3 + 2]).toBe(out[c]);
  });
});

describe('PromptEncoder errors', () => {
  it('mismatched points and labels', () => {
    expect(() => enc.sparseEmbeddingsCpu({ batch: 1, points: { coords: [1, 2, 3, 4], labels: [1] } })).toThrow(PromptError);
    expect(() => enc.sparseEmbeddingsCpu({ batch: 1, points: { coords: [1, 2, 3, 4], labels: [1] } })).toThrow(/2 point coordinates .* but 1 labels/);
  });
  it('labels other than -1, 0, 1', () => {
    expect(() => enc.sparseEmbeddingsCpu({ batch: 1, points: { coords: [1, 2], labels: [2] } })).toThrow(/point label 2 at index 0/);
  });
  it('points that do not split into the batch, boxes of the wrong count, non-finite values', () => {
    expect(() => enc.sparseEmbeddingsCpu({ batch: 2, points: { coords: [1, 2, 3, 4, 5, 6], labels: [1, 1, 1] } })).toThrow(/3 point labels do not split into 2/);
    expect(() => enc.sparseEmbeddingsCpu({ batch: 2, boxes: [0, 0, 1, 1] })).toThrow(/4 box values for 2 prompt set/);
    expect(() => enc.sparseEmbeddingsCpu({ batch: 1, boxes: [0, NaN, 1, 1] })).toThrow(/box value NaN at index 1/);
  });
  it('mask input of the wrong size', () => {
    const ctx = gpu();
    const m = ctx.upload(new Float32Array(32 * 32), [1, 1, 32, 32]);
    expect(() => enc.forward(ctx, { batch: 1, masks: m })).toThrow(/mask input must be \[1, 1, 64, 64\].*got \[1, 1, 32, 32\]/);
    m.dispose();
  });
});

/**
 * The ONNX layer (DESIGN.md 7.2): ONNX Runtime (CPU) on the committed export of the prompt encoder
 * (tools/export-onnx-sam-decoder.py, a PyTorch re-implementation checked against the reference
 * fixtures) vs the engine, on seeded inputs: points with every label (the padding point included
 * as an ordinary -1 point), boxes, mask inputs. Tolerance: rel L2 <= 1e-5, |d| <= 1e-4 (f32 both;
 * the engine's Fourier features are float32-rounded arguments with sin/cos in double).
 */
describe('ONNX Runtime on the exported prompt encoder vs the engine', () => {
  it('points (labels 1/0/-1), boxes, mask input, image_pe', async () => {
    const ctx = gpu();
    const rng = new Rng(31);
    const B = 2;
    const N = 4;
    const S = cfg.imgSize;
    const L = 4 * cfg.imageEmbeddingSize;
    const coords = rng.uniformArray(B * N * 2, 0, S);
    const labels = Float32Array.from([1, 0, -1, 1, 0, 0, 1, -1]);
    const boxes = new Float32Array(B * 4);
    for (let b = 0; b < B; b++) {
      const [x0, x1] = [rng.uniform(0, S), rng.uniform(0, S)].sort((a, c) => a - c);
      const [y0, y1] = [rng.uniform(0, S), rng.uniform(0, S)].sort((a, c) => a - c);
      boxes.set([x0!, y0!, x1!, y1!], 4 * b);
    }
    const mask = rng.randn(B * L * L, 3);
    const model = new Uint8Array(readFileSync(join(FIXTURES, 'onnx', 'sam-decoder', 'sam_tiny_prompt_encoder.onnx')));
    const ort = await runModel(model, {
      point_coords: { data: coords, dims: [B, N, 2] },
      point_labels: { data: labels, dims: [B, N] },
      boxes: { data: boxes, dims: [B, 4] },
      mask_input: { data: mask, dims: [B, 1, L, L] },
    });
    const tol = { relL2: 1e-5, atol: 1e-4 };
    // Points followed by box corners: the engine's layout when a box is present (no padding point).
    const sparse = enc.sparseEmbeddingsCpu({ batch: B, points: { coords, labels }, boxes });
    const C = cfg.promptEmbedDim;
    const expected = new Float32Array(B * (N + 2) * C);
    for (let b = 0; b < B; b++) {
      expected.set(ort.sparse_points!.data.subarray(b * N * C, (b + 1) * N * C), b * (N + 2) * C);
      expected.set(ort.sparse_boxes!.data.subarray(b * 2 * C, (b + 1) * 2 * C), (b * (N + 2) + N) * C);
    }
    const c1 = expectClose(sparse.data, expected, tol, 'sparse vs ORT', [B, N + 2, C]);
    const m = ctx.upload(mask, [B, 1, L, L]);
    const dense = enc.denseEmbeddings(ctx, B, m);
    const c2 = expectClose(await readTensor(ctx, dense), ort.dense_mask!.data, tol, 'dense (mask downscaling) vs ORT', ort.dense_mask!.dims);
    const pe = enc.densePe();
    const c3 = expectClose(await readTensor(ctx, pe), ort.image_pe!.data, tol, 'image_pe vs ORT', ort.image_pe!.dims);
    console.log(`prompt encoder vs ORT: sparse rel_l2 ${c1.relL2.toExponential(2)}, dense ${c2.relL2.toExponential(2)}, image_pe ${c3.relL2.toExponential(2)}`);
    for (const t of [m, dense, pe]) t.dispose();
  });
});
