/**
 * After `destroy()` or a lost device every call rejects with a DeviceLostError that says what
 * happened; a call in flight when the device goes rejects too; `ctx.lost` resolves with the reason;
 * a new context and a reload work again (issue 12, deliverable 6). `device.destroy()` stands in
 * for a real loss (a driver reset or an unplugged GPU reaches the same `device.lost`).
 */
import { describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.js';
import { DeviceLostError } from '../../src/gpu/errors.js';
import { cropImage } from '../../src/image/image.js';
import { SamPredictor } from '../../src/pipelines/sam-predictor.js';
import { usePhotos } from '../helpers/photos.js';
import { TINY_WEIGHTS } from '../pipelines/sam-fixture.js';

/** The photos decoded from their .jpg files (test/helpers/photos.ts). */
const photoImage = usePhotos();

const image = () => cropImage(photoImage('dog'), 200, 150, 160, 120);
const prompt = { points: [[80, 60]] as [number, number][], labels: [1] };

describe('a destroyed context', () => {
  it('rejects sync, read, uploads and model calls with a named error', async () => {
    const ctx = await GpuContext.create();
    const predictor = await SamPredictor.load(ctx, TINY_WEIGHTS);
    const emb = await predictor.encode(image());
    const t = ctx.upload(new Float32Array([1, 2, 3, 4]), [4]);
    ctx.destroy();
    await expect(ctx.sync()).rejects.toThrow(DeviceLostError);
    await expect(ctx.sync()).rejects.toThrow(/destroy\(\) was called/);
    await expect(ctx.read(t)).rejects.toThrow(DeviceLostError);
    expect(() => ctx.upload(new Float32Array(4), [4])).toThrow(DeviceLostError);
    await expect(predictor.encode(image())).rejects.toThrow(DeviceLostError);
    await expect(predictor.predict(emb, prompt)).rejects.toThrow(DeviceLostError);
    expect(await ctx.lost).toEqual({ reason: 'context-destroyed', message: expect.stringMatching(/destroy\(\) was called/) });
    ctx.destroy(); // twice is harmless
  });
});

describe('a lost device', () => {
  it('rejects the calls in flight and every later call; ctx.lost says why; a new context works', async () => {
    const ctx = await GpuContext.create();
    const predictor = await SamPredictor.load(ctx, TINY_WEIGHTS);
    const emb = await predictor.encode(image());
    const reference = await predictor.predict(emb, prompt);

    const inFlight = [predictor.encode(image()), predictor.predict(emb, prompt), predictor.encode(image(), { onProgress: () => undefined })];
    ctx.device.destroy();
    const settled = await Promise.allSettled(inFlight);
    for (const r of settled) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(DeviceLostError);
    }
    const info = await ctx.lost;
    expect(info.reason).toBe('destroyed');
    expect(info.message).toMatch(/lost .*create a new GpuContext/);
    await expect(ctx.sync()).rejects.toThrow(DeviceLostError);
    await expect(predictor.predict(emb, prompt)).rejects.toThrow(/device was lost/);
    ctx.destroy();

    const fresh = await GpuContext.create();
    try {
      const again = await SamPredictor.load(fresh, TINY_WEIGHTS);
      const r = await again.predict(await again.encode(image()), prompt);
      expect(Array.from(r.iouPredictions)).toEqual(Array.from(reference.iouPredictions));
      r.masks.forEach((m, i) => expect(Buffer.from(m).equals(Buffer.from(reference.masks[i]!))).toBe(true));
    } finally {
      fresh.destroy();
    }
  });
});
