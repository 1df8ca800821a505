/**
 * Reading a samclip Chrome trace (what `samclip profile --trace` and `Profiler.chromeTrace()`
 * write): its dispatches, one complete ('X') event each, in time order. Shared by the tools that
 * read traces (render-trace.ts, compile-cost.ts).
 */
import { readFileSync } from 'node:fs';

export interface TraceEvent {
  name: string;
  ph: string;
  ts: number;
  dur: number;
  cat?: string;
  args?: { key?: string; stage?: string; flops?: number; bytes?: number };
}

export function readEvents(path: string): TraceEvent[] {
  const json = JSON.parse(readFileSync(path, 'utf8')) as { traceEvents?: TraceEvent[] } | TraceEvent[];
  const all = Array.isArray(json) ? json : json.traceEvents;
  if (!Array.isArray(all)) throw new Error(`${path}: no traceEvents array; is it a Chrome trace?`);
  const events = all.filter((e) => e.ph === 'X' && typeof e.ts === 'number' && typeof e.dur === 'number');
  if (events.length === 0) throw new Error(`${path}: no complete ('X') events`);
  return events.sort((x, y) => x.ts - y.ts);
}
