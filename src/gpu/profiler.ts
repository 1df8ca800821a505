/**
 * GPU-side profiling with timestamp queries: every dispatch gets its own compute pass with begin/end
 * timestamps. Gives a per-kernel table (total, count, mean, share, GFLOP/s, GB/s), per-stage totals,
 * and a Chrome-trace JSON (opens in chrome://tracing and ui.perfetto.dev).
 */
import { BufferUsage, MapMode } from './webgpu-constants.js';
export interface KernelCost {
  flops?: number;
  bytes?: number;
}

export interface ProfileRecord {
  /** Op name (kernel family), e.g. `matmul`. */
  name: string;
  /** Full pipeline key (variant). */
  key: string;
  /** Model stage path active when the dispatch was encoded, e.g. `image_encoder/block3`. */
  stage: string;
  startNs: number;
  endNs: number;
  flops: number;
  bytes: number;
}

export interface KernelRow {
  name: string;
  totalMs: number;
  count: number;
  meanMs: number;
  share: number;
  gflops: number | null;
  gbps: number | null;
}

interface PendingQuery {
  name: string;
  key: string;
  stage: string;
  cost: KernelCost;
}

export class Profiler {
  readonly records: ProfileRecord[] = [];
  private readonly querySet: GPUQuerySet;
  private readonly resolveBuffer: GPUBuffer;
  private pending: PendingQuery[] = [];
  private readonly inflight: Promise<void>[] = [];

  constructor(
    private readonly device: GPUDevice,
    readonly capacity = 2048, // WebGPU caps a query set at 4096 queries: two per dispatch
  ) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: capacity * 2, label: 'profiler' });
    this.resolveBuffer = device.createBuffer({
      size: capacity * 16,
      usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC,
      label: 'profiler-resolve',
    });
  }

  get full(): boolean {
    return this.pending.length >= this.capacity;
  }

  /** Timestamp writes for the next dispatch's pass. The caller flushes first when `full`. */
  passTimestamps(name: string, key: string, stage: string, cost: KernelCost): GPUComputePassTimestampWrites {
    const i = this.pending.length;
    this.pending.push({ name, key, stage, cost });
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Encode the query resolve; call right before `finish()` of the encoder that holds the passes. */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.pending.length;
    if (n === 0) return;
    const readback = this.device.createBuffer({
      size: n * 16,
      usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
      label: 'profiler-readback',
    });
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, this.resolveBuffer, 0);
    encoder.copyBufferToBuffer(this.resolveBuffer, 0, readback, 0, n * 16);
    const batch = this.pending;
    this.pending = [];
    // Mapping resolves once the submission holding the resolve has run.
    this.inflight.push(
      Promise.resolve().then(async () => {
        await readback.mapAsync(MapMode.READ);
        const t = new BigUint64Array(readback.getMappedRange().slice(0));
        readback.destroy();
        batch.forEach((q, i) => {
          this.records.push({
            name: q.name,
            key: q.key,
            stage: q.stage,
            startNs: Number(t[2 * i]!),
            endNs: Number(t[2 * i + 1]!),
            flops: q.cost.flops ?? 0,
            bytes: q.cost.bytes ?? 0,
          });
        });
      }),
    );
  }

  /** Wait for every submitted batch's timestamps. */
  async collect(): Promise<void> {
    await Promise.all(this.inflight.splice(0));
  }

  clear(): void {
    this.records.length = 0;
  }

  kernelTable(): KernelRow[] {
    return summarise(this.records, (r) => r.name);
  }

  stageTable(): KernelRow[] {
    return summarise(this.records, (r) => r.stage || '(none)');
  }

  formatTable(rows: KernelRow[] = this.kernelTable(), title = 'kernel'): string {
    const head = [title, 'total ms', 'count', 'mean ms', '%', 'GFLOP/s', 'GB/s'];
    const body = rows.map((r) => [
      r.name,
      r.totalMs.toFixed(3),
      String(r.count),
      r.meanMs.toFixed(4),
      (100 * r.share).toFixed(1),
      r.gflops === null ? '-' : r.gflops.toFixed(2),
      r.gbps === null ? '-' : r.gbps.toFixed(2),
    ]);
    const widths = head.map((h, c) => Math.max(h.length, ...body.map((b) => b[c]!.length)));
    const line = (cells: string[]) =>
      cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!))).join('  ');
    return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
  }

  /** Chrome trace-event JSON: one complete event per dispatch, GPU time in microseconds. */
  chromeTrace(): { traceEvents: object[]; displayTimeUnit: string } {
    const t0 = this.records.reduce((m, r) => Math.min(m, r.startNs), Infinity);
    const events: object[] = [
      { name: 'process_name', ph: 'M', pid: 1, args: { name: 'samclip-webgpu GPU' } },
      { name: 'thread_name', ph: 'M', pid: 1, tid: 1, args: { name: 'queue' } },
    ];
    for (const r of this.records) {
      events.push({
        name: r.name,
        cat: r.stage || 'kernel',
        ph: 'X',
        pid: 1,
        tid: 1,
        ts: (r.startNs - t0) / 1000,
        dur: Math.max(0, r.endNs - r.startNs) / 1000,
        args: { key: r.key, stage: r.stage, flops: r.flops, bytes: r.bytes },
      });
    }
    return { traceEvents: events, displayTimeUnit: 'ms' };
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuffer.destroy();
  }
}

/** Rows of records grouped by `group`, largest total first (also for records sent from a worker). */
export function summarise(records: readonly ProfileRecord[], group: (r: ProfileRecord) => string): KernelRow[] {
  const by = new Map<string, { ns: number; count: number; flops: number; bytes: number }>();
  let all = 0;
  for (const r of records) {
    const ns = Math.max(0, r.endNs - r.startNs);
    all += ns;
    const k = group(r);
    const e = by.get(k) ?? { ns: 0, count: 0, flops: 0, bytes: 0 };
    e.ns += ns;
    e.count++;
    e.flops += r.flops;
    e.bytes += r.bytes;
    by.set(k, e);
  }
  return [...by.entries()]
    .map(([name, e]) => ({
      name,
      totalMs: e.ns / 1e6,
      count: e.count,
      meanMs: e.ns / 1e6 / e.count,
      share: all > 0 ? e.ns / all : 0,
      gflops: e.flops > 0 && e.ns > 0 ? e.flops / e.ns : null,
      gbps: e.bytes > 0 && e.ns > 0 ? e.bytes / e.ns : null,
    }))
    .sort((a, b) => b.totalMs - a.totalMs);
}
