/**
 * Dispatch plans in the CLIP towers (src/gpu/dispatch-plan.ts): each tower's call (the text
 * tower's once its ids are uploaded) is replayed from the third call with one input layout. Each
 * call here gets new data; each must give the bits of the same call run through the model code
 * (a tap, even a no-op one, always runs the code), and calls 3-4 must run no block code.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ClipModel } from '../../src/model/clip/clip.js';
import { ResidualAttentionBlock } from '../../src/model/clip/transformer.js';
import { useGpu } from '../helpers/gpu.js';
import { Rng } from '../helpers/random.js';
import { loadTiny, readF32 } from './clip-helpers.js';

const gpu = useGpu();
let model: ClipModel;

beforeAll(async () => {
  model = await loadTiny(gpu()); // its own towers: no call made before these tests
});
afterAll(() => model?.dispose());

const noTap = () => undefined;

describe('CLIP towers: replayed calls', () => {
  it('text: four batches of new token ids, calls 3-4 replayed, each equal to the code path', async () => {
    const ctx = gpu();
    const V = model.config.text!.vocabSize;
    const [B, L] = [3, 9];
    const rng = new Rng(21);
    for (let call = 1; call <= 4; call++) {
      // Ids below the end-of-text id, which sits at a different position in each row (its argmax).
      const ids = Int32Array.from({ length: B * L }, () => 1 + Math.floor(rng.uniform(0, 1) * (V - 3)));
      for (let b = 0; b < B; b++) ids[b * L + 3 + ((b + call) % (L - 3))] = V - 1;
      const tokens = { ids, shape: [B, L] as const };
      const blocks = vi.spyOn(ResidualAttentionBlock.prototype, 'forward');
      // The whole call replays, gathers included: neither the text tower's code nor its blocks run.
      const textCode = vi.spyOn(model.text! as unknown as { forwardCode: () => unknown }, 'forwardCode');
      const replayed = model.encodeText(ctx, tokens);
      const [ran, textRan] = [blocks.mock.calls.length, textCode.mock.calls.length];
      blocks.mockRestore();
      textCode.mockRestore();
      if (call >= 3) expect([ran, textRan], `text call ${call}: block code / text code ran`).toEqual([0, 0]);
      const code = model.encodeText(ctx, tokens, { tap: noTap });
      expect(await readF32(ctx, replayed), `text call ${call}`).toEqual(await readF32(ctx, code));
      replayed.dispose();
      code.dispose();
    }
  });

  it('vision: four batches of new pixels, calls 3-4 replayed, each equal to the code path', async () => {
    const ctx = gpu();
    const S = model.config.vision!.imageSize;
    const rng = new Rng(22);
    for (let call = 1; call <= 4; call++) {
      const pixels = ctx.upload(rng.randn(2 * 3 * S * S), [2, 3, S, S]);
      const blocks = vi.spyOn(ResidualAttentionBlock.prototype, 'forward');
      const replayed = model.encodeImage(ctx, pixels);
      const ran = blocks.mock.calls.length;
      blocks.mockRestore();
      if (call >= 3) expect(ran, `vision call ${call}: block code ran`).toBe(0);
      const code = model.encodeImage(ctx, pixels, { tap: noTap });
      expect(await readF32(ctx, replayed), `vision call ${call}`).toEqual(await readF32(ctx, code));
      for (const t of [replayed, code, pixels]) t.dispose();
    }
  });
});
