/**
 * Waiting for Dawn without a busy loop on CPU adapters (src/gpu/host-wait.ts): Dawn's poll callbacks
 * are recognised, moved onto 1 ms timers once a wait has spun its first millisecond, and nothing
 * else that goes through the global setImmediate changes.
 */
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GpuContext, isCpuAdapter } from '../../src/gpu/context.js';
import { isDawnPoll, timerPollingActive } from '../../src/gpu/host-wait.js';
import { linear } from '../../src/kernels/matmul.js';
import { requires, useGpu } from '../helpers/gpu.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu({ polling: 'timer' });

/** The callbacks handed to the global setImmediate while `fn` runs. */
async function immediatesDuring(fn: () => Promise<unknown>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const current = globalThis.setImmediate;
  const spy = vi.spyOn(globalThis, 'setImmediate').mockImplementation(((cb: unknown, ...args: unknown[]) => {
    seen.push(cb);
    return (current as unknown as (...a: unknown[]) => NodeJS.Immediate)(cb, ...args);
  }) as typeof setImmediate);
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
  return seen;
}

/** A matmul that keeps the adapter busy for some milliseconds (tens on lavapipe). */
function busyWork(ctx: GpuContext) {
  const rng = new Rng(3);
  const a = ctx.upload(rng.randn(256 * 512), [256, 512]);
  const w = ctx.upload(rng.randn(512 * 512), [512, 512]);
  return { a, w, run: () => linear(ctx, a, w) };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('host polling while waiting for Dawn', () => {
  it('recognises Dawn poll callbacks and nothing else', async () => {
    const ctx = gpu();
    const { a, w, run } = busyWork(ctx);
    const out = run();
    const seen = await immediatesDuring(() => ctx.read(out));
    for (const t of [a, w, out]) t.dispose();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter(isDawnPoll).length).toBe(seen.length);

    let resolver: unknown;
    void new Promise((r) => {
      resolver = r;
    });
    function plain() {}
    const notPolls: unknown[] = [resolver, plain, () => {}, plain.bind(null), Date.now, Math.max, class {}, async () => {}, 'text', null];
    for (const f of notPolls) expect(isDawnPoll(f), String(f)).toBe(false);
  });

  it('defaults to timer polling on CPU adapters, spin on GPUs, and follows the option', async () => {
    const ctx = gpu();
    expect(ctx.polling).toBe('timer');
    expect(timerPollingActive()).toBe(true);
    const other = await GpuContext.create({ gpu: ctx.gpu, polling: 'spin' });
    expect(other.polling).toBe('spin');
    other.destroy();
    const env = process.env.SAMCLIP_POLLING;
    delete process.env.SAMCLIP_POLLING;
    try {
      const auto = await GpuContext.create({ gpu: ctx.gpu });
      expect(auto.polling).toBe(isCpuAdapter(auto.adapterInfo) ? 'timer' : 'spin');
      auto.destroy();
    } finally {
      if (env !== undefined) process.env.SAMCLIP_POLLING = env;
    }
    // The test context still holds timer polling after the others are gone.
    expect(timerPollingActive()).toBe(true);
  });

  it('two copies of the library in one process count their contexts together', async () => {
    // A second instance of the module (another version, or the other of an ESM / CommonJS pair).
    const copy = '../../src/gpu/host-wait.js?copy=2';
    const other = (await import(/* @vite-ignore */ copy)) as typeof import('../../src/gpu/host-wait.js');
    expect(other.timerPollingActive).not.toBe(timerPollingActive);
    const users = () => (globalThis as Record<symbol, { timerUsers: number }>)[Symbol.for('samclip-webgpu.hostPollingState')]!.timerUsers;
    const before = users();
    const release = other.adoptPolling('timer');
    expect(users()).toBe(before + 1);
    expect(timerPollingActive()).toBe(true);
    release();
    release(); // idempotent
    expect(users()).toBe(before);
  });

  it('a long wait polls on 1 ms timers, and the result is right', async (t) => {
    const ctx = gpu();
    const { a, w, run } = busyWork(ctx);
    const expected = await ctx.read(run()); // also compiles the pipeline
    // Queue enough copies of the product for a wait of several milliseconds (one is tens of ms on
    // lavapipe, microseconds on a GPU).
    for (let copies = 1; copies <= 4096; copies *= 8) {
      const timers = vi.spyOn(globalThis, 'setTimeout');
      const t0 = performance.now();
      const outs = Array.from({ length: copies }, run);
      ctx.flush();
      const queued = performance.now();
      await ctx.sync();
      const waited = performance.now() - queued;
      const polls = timers.mock.calls.filter(([cb, ms]) => typeof cb === 'function' && ms === 1);
      timers.mockRestore();
      const last = outs[outs.length - 1]!;
      const got = await ctx.read(last);
      for (const o of outs) o.dispose();
      if (waited < 5 && copies < 4096) continue;
      if (!requires(t, waited >= 5, `a wait of 5 ms (4096 products took ${(performance.now() - t0).toFixed(1)} ms)`)) break;
      expect(polls.length).toBeGreaterThan(0);
      // A poll a millisecond at most, plus slack for timers that fire late: no busy loop.
      expect(polls.length).toBeLessThan(waited + 10);
      expect(got).toEqual(expected);
      break;
    }
    a.dispose();
    w.dispose();
  });

  it('leaves other setImmediate users alone: arguments, order and promisify, during a timer-polled wait', async () => {
    const ctx = gpu();
    const { a, w, run } = busyWork(ctx);
    const pending = run();
    const wait = ctx.sync(); // Dawn polls during this wait, on timers after its first millisecond
    await new Promise((r) => setTimeout(r, 3));
    // Scheduled synchronously here, so any setTimeout call in between would be the wrapper's.
    const timers = vi.spyOn(globalThis, 'setTimeout');
    const got: string[] = [];
    setImmediate((tag: string) => got.push(tag), 'first');
    const second = new Promise<void>((r) => setImmediate(() => r()));
    expect(timers).not.toHaveBeenCalled();
    timers.mockRestore();
    await second; // immediates run first in, first out: 'first' has run by now
    expect(got).toEqual(['first']);
    expect(await promisify(setImmediate)('value')).toBe('value');
    await wait;
    for (const t of [a, w, pending]) t.dispose();
  });
});
