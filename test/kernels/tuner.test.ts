import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { defaultTuning, tuningCandidates } from '../../src/gpu/tuning.js';
import { type TuningStore, parseTuningSetting, tuneKernels, tuningKey } from '../../src/kernels/tuner.js';
import { fileTuningStore } from '../../src/node/tuning-store.js';
import { useGpu } from '../helpers/gpu.js';

const gpu = useGpu();

function memoryStore(): TuningStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, get: (k) => data.get(k) ?? null, set: (k, v) => void data.set(k, v) };
}

describe('per-adapter kernel tuning', () => {
  it('measures every choice once, caches it per adapter and host, and honours overrides and the default rule', async () => {
    const ctx = gpu();
    const saved = { ...ctx.tuning };
    try {
      const store = memoryStore();
      const first = await tuneKernels(ctx, { store, host: 'test-host' });
      expect(first.source).toBe('measured');
      const cand = tuningCandidates(ctx.tuning.cpuAdapter, ctx.features);
      for (const k of ['rowReduce', 'matmulNt', 'matmulSmall', 'attention'] as const) {
        // Every candidate this device can run was validated and timed; the choice is the fastest.
        const t = first.timings[k]!;
        expect(Object.keys(t).sort()).toEqual([...(cand[k] as string[])].sort());
        const fastest = Object.entries(t).sort((a, b) => a[1] - b[1])[0]![0];
        expect(first.choices[k]).toBe(fastest);
        expect(ctx.tuning[k]).toBe(first.choices[k]);
      }
      expect(store.data.get(tuningKey(ctx, 'test-host'))).toBe(JSON.stringify(first.choices));

      const again = await tuneKernels(ctx, { store, host: 'test-host' });
      expect(again).toMatchObject({ source: 'cached', choices: first.choices, timings: {} });

      const pinned = await tuneKernels(ctx, { store, host: 'test-host', override: { matmulNt: 'tiled_nt' } });
      expect(pinned.source).toBe('override');
      expect(ctx.tuning.matmulNt).toBe('tiled_nt');

      const dflt = await tuneKernels(ctx, { mode: 'default', store });
      const rule = defaultTuning(ctx.tuning.cpuAdapter, ctx.features);
      expect(dflt).toMatchObject({ source: 'default', timings: {} });
      for (const k of ['rowReduce', 'matmulNt', 'matmulSmall', 'attention'] as const) expect(ctx.tuning[k]).toBe(rule[k]);

      // Another host's entry is its own; an entry is used as cached when every choice is runnable here.
      const bad = memoryStore();
      const cfg = tuningCandidates(ctx.tuning.cpuAdapter, ctx.features);
      bad.data.set(tuningKey(ctx, 'h3'), JSON.stringify({ rowReduce: cfg.rowReduce[0], matmulNt: cfg.matmulNt[0], matmulSmall: cfg.matmulSmall[0], attention: cfg.attention[0] }));
      expect((await tuneKernels(ctx, { store: bad, host: 'h3' })).source).toBe('cached');
      expect(ctx.tuning.matmulNt).toBe(cfg.matmulNt[0]);
    } finally {
      Object.assign(ctx.tuning, saved);
    }
  });

  it('never chooses a candidate that misses the host reference, the deterministic default included', async () => {
    const ctx = gpu();
    const saved = { ...ctx.tuning };
    // Break the default nn.Linear kernel the way a miscompiled variant would: every product doubled.
    const broken = defaultTuning(ctx.tuning.cpuAdapter, ctx.features).matmulNt;
    const run = ctx.run.bind(ctx);
    const spy = vi.spyOn(ctx, 'run').mockImplementation((kernel, config, bindings, values, ...rest) =>
      run(kernel, config, bindings, config.variant === broken ? ({ ...values, alpha: 2 } as unknown as typeof values) : values, ...rest));
    try {
      const r = await tuneKernels(ctx, { store: memoryStore(), host: 'broken-kernel' });
      expect(r.rejected?.matmulNt?.[broken]).toMatch(/^rel L2 \S+ against the host reference \(tolerance 0\.0001\)$/);
      expect(r.timings.matmulNt?.[broken]).toBeUndefined();
      expect(r.choices.matmulNt).not.toBe(broken);
      expect(ctx.tuning.matmulNt).toBe(r.choices.matmulNt);
      // Kernels that do not run through the broken one pass (chunked attention runs on matmuls, so
      // it may be rejected too on CPU adapters).
      expect(r.rejected?.rowReduce).toBeUndefined();
    } finally {
      spy.mockRestore();
      Object.assign(ctx.tuning, saved);
    }
  });

  it('reads SAMCLIP_TUNING settings and rejects unknown ones by name', () => {
    expect(parseTuningSetting(undefined)).toEqual({ mode: 'measure' });
    expect(parseTuningSetting('default')).toEqual({ mode: 'default' });
    expect(parseTuningSetting('refresh')).toEqual({ mode: 'measure', refresh: true });
    expect(parseTuningSetting('{"matmulNt":"tiled8_nt"}')).toEqual({ mode: 'measure', override: { matmulNt: 'tiled8_nt' } });
    expect(() => parseTuningSetting('fast')).toThrow(/expected default, measure, refresh or a JSON object of choices, got 'fast'/);
    expect(() => parseTuningSetting('{"matmul":"x"}')).toThrow(/unknown choice 'matmul'/);
    expect(() => parseTuningSetting('{"attention":"magic"}')).toThrow(/attention must be one of fused, flash, chunked, got "magic"/);
  });

  it('the Node file store round-trips, keeps other keys and survives a malformed file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'samclip-tuning-'));
    const store = fileTuningStore(dir);
    expect(await store.get('a')).toBeNull();
    await store.set('a', '{"x":1}');
    await store.set('b', '{"y":2}');
    expect(await store.get('a')).toBe('{"x":1}');
    expect(JSON.parse(readFileSync(store.path, 'utf8'))).toEqual({ a: '{"x":1}', b: '{"y":2}' });
    writeFileSync(store.path, '{ not json');
    expect(await store.get('a')).toBeNull();
    await store.set('c', 'v');
    expect(JSON.parse(readFileSync(store.path, 'utf8'))).toEqual({ c: 'v' });
  });
});
