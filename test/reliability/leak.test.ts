/**
 * Leak check: repeated encode -> predict -> dispose cycles must leave the GPU buffer pool and the
 * process's memory where they were. Runs leak-cycles.ts in a child process (its own GPU context,
 * a garbage collector to call). CI: 300 cycles on the 64-px micro SAM (the reference tiny SAM's
 * encode costs ~20x more on a CPU adapter); `npm run soak` (SAMCLIP_SOAK=1): 1,000 cycles on the
 * reference tiny SAM.
 *
 * Flat means: live pool bytes identical at every sample (only the weights stay live), reserved
 * pool bytes not growing after the first 50 cycles, JS heap within 4 MiB of its level at cycle 50,
 * and resident memory not trending up: the mean of the last three samples within 48 MiB of the
 * mean of the first three from cycle 50, no sample more than 96 MiB above cycle 50. Resident memory
 * is compared by means because lavapipe and Dawn keep per-process caches that swing it by tens of
 * MiB from one sample to the next on a busy machine (a single sample went 58 MiB above cycle 50 and
 * came back); a leak of one 96x72 mask per cycle would already exceed the heap bound.
 */
import { describe, expect, it } from 'vitest';
import { MiB, runNode } from './child.js';

const SOAK = process.env.SAMCLIP_SOAK === '1';
const [MODEL, CYCLES, EVERY] = SOAK ? ['tiny', 1000, 50] : ['micro', 300, 25];

interface Sample {
  cycle: number;
  ms: number;
  liveBytes: number;
  reservedBytes: number;
  rssBytes: number;
  heapBytes: number;
}

describe('leak check', () => {
  it(`${CYCLES} encode/predict cycles on the ${MODEL} SAM: pool and memory flat`, async () => {
    const code = `await import(${JSON.stringify(new URL('./leak-cycles.ts', import.meta.url).pathname)});`;
    const child = await runNode(code, { timeoutMs: SOAK ? 3_600_000 : 600_000, argv: ['leak-cycles.ts', MODEL, String(CYCLES), String(EVERY)] });
    const last = child.stdout.trim().split('\n').pop() ?? '';
    expect(child.code, child.stderr.slice(-2000)).toBe(0);
    const { samples, ms } = JSON.parse(last) as { samples: Sample[]; ms: number };
    const table = samples.map((s) => `${s.cycle}: live ${s.liveBytes} reserved ${s.reservedBytes} rss ${(s.rssBytes / MiB).toFixed(1)} MiB heap ${(s.heapBytes / MiB).toFixed(2)} MiB`);
    console.log(`leak check (${MODEL}, ${CYCLES} cycles, ${(ms / 1000).toFixed(1)} s):\n  ${table.join('\n  ')}`);
    const ref = samples.find((s) => s.cycle >= 50)!;
    const after = samples.filter((s) => s.cycle >= ref.cycle);
    expect(new Set(samples.map((s) => s.liveBytes)).size, 'live pool bytes change between cycles').toBe(1);
    for (const s of after) {
      expect(s.reservedBytes, `reserved pool bytes at cycle ${s.cycle}`).toBeLessThanOrEqual(ref.reservedBytes);
      expect(s.heapBytes - ref.heapBytes, `JS heap growth at cycle ${s.cycle}`).toBeLessThan(4 * MiB);
      expect(s.rssBytes - ref.rssBytes, `resident memory growth at cycle ${s.cycle}`).toBeLessThan(96 * MiB);
    }
    const meanRss = (list: Sample[]) => list.reduce((t, s) => t + s.rssBytes, 0) / list.length;
    expect(after.length, 'samples from cycle 50 on').toBeGreaterThanOrEqual(6);
    const trend = meanRss(after.slice(-3)) - meanRss(after.slice(0, 3));
    expect(trend, 'resident memory: mean of the last three samples minus the first three from cycle 50').toBeLessThan(48 * MiB);
    expect(samples[samples.length - 1]!.cycle).toBe(CYCLES);
  });
});
