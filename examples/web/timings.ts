/**
 * Per-stage timings of the page. Wall-clock times are performance.now() around the awaited worker
 * calls (each answers after its GPU work is done). When the adapter has `timestamp-query` and
 * profiling is on, the worker sends each call's profiler records, grouped here per model stage
 * (image_encoder, prompt_encoder, mask_decoder, postprocess_masks, ...) and per kernel. Browsers
 * quantise timestamps (Chrome: to 100 us unless its "WebGPU Developer Features" flag is on), fine at
 * the scale of these stages.
 */
import { type ProfileRecord, summarise } from '../../src/gpu/profiler.js';

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
export function stageSummary(records: readonly ProfileRecord[]): StageRow[] {
  return summarise(records, (r) => r.stage.split('/')[0] || '(other)').map((row) => ({ stage: row.name, gpuMs: row.totalMs, dispatches: row.count }));
}

export class Timings {
  readonly entries = new Map<string, TimingEntry>();

  /**
   * Time `fn`, which hands `onProfile` to the worker call it makes: the records that come back
   * belong to this operation alone.
   */
  async measure<T>(name: string, fn: (onProfile: (records: ProfileRecord[]) => void) => Promise<T>): Promise<T> {
    let records: ProfileRecord[] = [];
    const t0 = performance.now();
    const out = await fn((r) => (records = records.concat(r)));
    const entry: TimingEntry = { name, wallMs: performance.now() - t0 };
    if (records.length) {
      entry.stages = stageSummary(records);
      entry.kernels = summarise(records, (r) => r.name).slice(0, 6).map((k) => ({ name: k.name, gpuMs: k.totalMs, count: k.count }));
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
