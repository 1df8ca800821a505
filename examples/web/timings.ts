/**
 * Per-stage timings of the page. Wall-clock times are performance.now() around awaited engine calls
 * (each ends in a readback or `ctx.sync()`, so the GPU work is included). When the adapter has
 * `timestamp-query`, the profiler adds GPU time per model stage (image_encoder, prompt_encoder,
 * mask_decoder, postprocess_masks, ...) and per kernel. Browsers quantise timestamps (Chrome: to
 * 100 us unless its "WebGPU Developer Features" flag is on), fine at the scale of these stages.
 */
import type { Profiler } from '../../src/gpu/profiler.js';

export interface StageRow {
  stage: string;
  gpuMs: number;
  dispatches: number;
}

export interface TimingEntry {
  /** What ran (e.g. 'encode', 'decode + post-process'). */
  name: string;
  wallMs: number;
  /** GPU time per top-level model stage, when the profiler ran. */
  stages?: StageRow[];
  /** The few most expensive kernels, when the profiler ran. */
  kernels?: { name: string; gpuMs: number; count: number }[];
}

/** Profiler records grouped by the first element of their stage path. */
export function stageSummary(p: Profiler): StageRow[] {
  const by = new Map<string, StageRow>();
  for (const r of p.records) {
    const stage = r.stage.split('/')[0] || '(other)';
    const row = by.get(stage) ?? { stage, gpuMs: 0, dispatches: 0 };
    row.gpuMs += Math.max(0, r.endNs - r.startNs) / 1e6;
    row.dispatches++;
    by.set(stage, row);
  }
  return [...by.values()];
}

export class Timings {
  readonly entries = new Map<string, TimingEntry>();

  constructor(private readonly profiler: () => Profiler | null) {}

  /**
   * Time `fn` (which must finish its GPU work before resolving). The profiler's records are cleared
   * before and summarised after, so they belong to this operation alone.
   */
  async measure<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const p = this.profiler();
    if (p) {
      await p.collect();
      p.clear();
    }
    const t0 = performance.now();
    const out = await fn();
    const wallMs = performance.now() - t0;
    const entry: TimingEntry = { name, wallMs };
    if (p) {
      await p.collect();
      if (p.records.length) {
        entry.stages = stageSummary(p);
        entry.kernels = p.kernelTable().slice(0, 6).map((k) => ({ name: k.name, gpuMs: k.totalMs, count: k.count }));
      }
      p.clear();
    }
    this.entries.set(name, entry);
    return out;
  }

  /** Record a CPU-only step (drawing) without the profiler. */
  record(name: string, wallMs: number): void {
    this.entries.set(name, { name, wallMs });
  }

  /** Render as an HTML table body. */
  render(tbody: HTMLElement): void {
    const rows: string[] = [];
    for (const e of this.entries.values()) {
      const gpu = e.stages ? e.stages.reduce((s, r) => s + r.gpuMs, 0) : null;
      rows.push(`<tr class="stage-total"><th scope="row">${esc(e.name)}</th><td>${e.wallMs.toFixed(1)}</td><td>${gpu === null ? '–' : gpu.toFixed(2)}</td><td></td></tr>`);
      for (const s of e.stages ?? []) {
        rows.push(`<tr class="stage-part"><th scope="row">${esc(s.stage)}</th><td></td><td>${s.gpuMs.toFixed(2)}</td><td>${s.dispatches}</td></tr>`);
      }
    }
    tbody.innerHTML = rows.join('');
  }
}

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
