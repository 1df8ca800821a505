/**
 * The `samclip-tiny` random family (what `samclip demo` runs on without real weights, generated in
 * process so the npm package needs no 17.7 MB file): a valid SAM-CLIP bundle whose configuration,
 * key set and shapes equal those of the reference fixtures' `samclip_tiny` (the numbers differ: a
 * different generator).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateSamclipBundle } from '../../src/model/samclip/bundle.js';
import { planRandomWeights } from '../../src/weights/random.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { encodeSafetensors } from '../../src/weights/safetensors-writer.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'reference', 'samclip', 'samclip_tiny.safetensors');

describe('random samclip-tiny', () => {
  it('is a valid bundle with the configuration, keys and shapes of the fixture bundle', async () => {
    const plan = planRandomWeights({ family: 'samclip-tiny', seed: 5 });
    const tensors = await Promise.all(plan.entries.map(async (e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, data: await e.read() })));
    const bytes = encodeSafetensors(tensors, plan.metadata);
    const random = SafetensorsFile.fromBytes(bytes, 'samclip-tiny-seed5');
    const fixture = await SafetensorsFile.open(FIXTURE);
    try {
      expect(validateSamclipBundle(random)).toEqual(validateSamclipBundle(fixture));
      expect(random.keys().sort()).toEqual(fixture.keys().sort());
      for (const k of fixture.keys()) expect([random.info(k).dtype, random.info(k).shape], k).toEqual([fixture.info(k).dtype, fixture.info(k).shape]);
      // Seeded: the same seed gives the same bytes, another seed other ones.
      const one = (seed: number) => planRandomWeights({ family: 'samclip-tiny', seed }).entries.find((e) => e.name === 'clip_head.mlp.0.weight')!.read();
      const again = await one(5);
      const other = await one(6);
      expect(Buffer.from(again).equals(Buffer.from(await random.readRaw('clip_head.mlp.0.weight')))).toBe(true);
      expect(Buffer.from(other).equals(Buffer.from(again))).toBe(false);
    } finally {
      await fixture.close();
    }
  });
});
