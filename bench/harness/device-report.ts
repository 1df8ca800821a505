/**
 * bench/device.ts's results file (bench/results/<adapter-slug>.json) and its Markdown form, which
 * tools/bench-tables.ts also uses to regenerate the tables at the top of bench/README.md.
 */
import type { HostCpu } from '../../src/node/host-cpu.js';
import type { BenchRow } from './record.js';

export interface KernelRow {
  name: string;
  shape: string;
  /** bench/harness/report.ts VARIANTS key: oursGpu, oursF16, webGpu, node, ... */
  variant: string;
  flops: number;
  bytes: number;
  memoryBound: boolean;
  medianMs?: number;
  valid?: boolean;
  relL2?: number;
  note?: string;
}

export interface DeviceReport {
  date: string;
  mode: 'quick' | 'full';
  command: string;
  /** `git describe --always --dirty` of the checkout that ran, where it is one. */
  commit?: string;
  node: string;
  doctor: {
    adapter: string;
    cpuAdapter: boolean;
    features: string[];
    limits: Record<string, number>;
    host: HostCpu;
    driverSimdBits: number | null;
    tuning: Record<string, unknown>;
  };
  loadStart: string;
  loadEnd: string;
  wallS: number;
  kernels: KernelRow[];
  models: BenchRow[];
  steps: { name: string; code: number; wallS: number; error?: string }[];
  /**
   * Steps not run yet: set in the copies written after each step, so a run stopped half-way (the
   * device tool's 10-minute command limit) still leaves its results so far; absent when complete.
   */
  pending?: string[];
}

/** File name for an adapter: lower-case words joined by '-'; CPU adapters add the host CPU. */
export function adapterSlug(adapter: string, host: string | null): string {
  const words = (s: string) => s.toLowerCase().replace(/\(.*?\)/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  const a = words(adapter).split('-').filter((w, i, all) => all.indexOf(w) === i).slice(0, 8).join('-');
  return host ? `${a}--${words(host)}` : a;
}

const ms = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(1)} ms` : `${v.toFixed(2)} ms`;

function rate(r: KernelRow): string {
  if (r.medianMs === undefined) return r.note ? r.note.slice(0, 50) : '-';
  const v = r.memoryBound ? r.bytes / (r.medianMs * 1e6) : r.flops / (r.medianMs * 1e6);
  const bad = r.valid === false ? ' ✗ invalid' : '';
  return `${ms(r.medianMs)}, ${v.toFixed(2)} ${r.memoryBound ? 'GB/s' : 'GF/s'}${bad}`;
}

function kernelTable(rows: readonly KernelRow[]): string[] {
  const names = [...new Set(rows.map((r) => r.name))];
  const out = [
    '| kernel | shape | ours f32 | ours f16 | ORT Web WebGPU (GPU io) | Web / ours f32 | rel L2 f32 / f16 / Web |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const n of names) {
    const by = (v: string) => rows.find((r) => r.name === n && r.variant === v);
    const o = by('oursGpu');
    const h = by('oursF16');
    const w = by('webGpu');
    const ratio = o?.medianMs && w?.medianMs && w.valid !== false ? `${(w.medianMs / o.medianMs).toFixed(2)}x` : '-';
    const l2 = (r?: KernelRow) => (r?.relL2 !== undefined ? r.relL2.toExponential(1) : '-');
    out.push(`| ${n} | ${o?.shape ?? ''} | ${o ? rate(o) : '-'} | ${h ? rate(h) : '-'} | ${w ? rate(w) : '-'} | ${ratio} | ${l2(o)} / ${l2(h)} / ${l2(w)} |`);
  }
  return out;
}

function modelTable(rows: readonly BenchRow[]): string[] {
  const out = [
    '| model | variant | steady median | per item | first run | pipeline creation (host) | dispatches | host ms / call | ORT Web / ours | check |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const web = rows.find((x) => x.model === r.model && x.variant.startsWith('ORT Web') && x.medianMs !== undefined && x.valid !== false);
    const ours = r.variant.startsWith('ours');
    const ratio = ours && web && r.medianMs ? `${(web.medianMs! / r.medianMs).toFixed(2)}x` : '-';
    const per = r.items && r.items > 1 && r.medianMs ? ms(r.medianMs / r.items) : '-';
    const unchecked = r.variant.startsWith('ORT node') ? 'the reference' : `**not validated**${r.note ? `: ${r.note}` : ''}`;
    const check = r.valid === undefined ? unchecked : `${r.valid ? 'valid' : '**INVALID**'}, rel L2 ${r.relL2!.toExponential(1)} vs ${r.reference} (gate ${r.gate})`;
    out.push(
      `| ${r.model} | ${r.variant} | ${ms(r.medianMs)} | ${per} | ${ms(r.firstMs)} | ${ms(r.compileMs)} | ${r.dispatches ?? '-'} | ${r.hostMs !== undefined ? r.hostMs.toFixed(1) : '-'} | ${ratio} | ${check}${r.valid !== undefined && r.note ? `; ${r.note}` : ''} |`,
    );
  }
  return out;
}

export function deviceMarkdown(r: DeviceReport): string {
  const d = r.doctor;
  const host = `${d.host.model}, ${d.host.cores} cores, ${d.host.arch}, vector ${d.host.vectorBits} bits, AVX-512 ${d.host.avx512 ? 'yes' : 'no'}`;
  const lines = [
    `### ${d.adapter}${r.mode === 'quick' ? ' (--quick)' : ''}`,
    '',
    `- ${r.date}, \`${r.command}\`${r.commit ? ` at ${r.commit}` : ''}, ${r.wallS.toFixed(0)} s, Node ${r.node}; load average ${r.loadStart} at the start, ${r.loadEnd} at the end`,
    `- ${d.cpuAdapter ? 'CPU adapter' : 'GPU'}; host CPU: ${host}${d.driverSimdBits ? `; driver SIMD ${d.driverSimdBits} bits` : ''}`,
    `- features: ${d.features.join(', ')}; maxStorageBufferBindingSize ${((d.limits.maxStorageBufferBindingSize ?? 0) / 2 ** 20).toFixed(0)} MiB`,
    `- kernel choices: ${JSON.stringify(d.tuning)}`,
    '',
    ...kernelTable(r.kernels),
    '',
    ...modelTable(r.models),
  ];
  const failed = r.steps.filter((s) => s.code !== 0);
  if (failed.length) lines.push('', `Failed steps: ${failed.map((s) => `${s.name} (exit ${s.code}${s.error ? `: ${s.error}` : ''})`).join(', ')}`);
  if (r.pending?.length) lines.push('', `**Incomplete run**: stopped before ${r.pending.join(', ')} (the file was last written after ${r.steps.at(-1)?.name ?? 'the doctor line'}).`);
  return lines.join('\n');
}
