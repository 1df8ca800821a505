/** Result records of the kernel bench and their printed forms (progress lines, markdown table). */
import { loadavg } from 'node:os';
import type { Timing } from './timing.js';
import { gbps, gflops } from './timing.js';
import { type Check, fmtCheck } from './validate.js';

/** The columns of a row, in print order. */
export const VARIANTS = {
  oursGpu: 'ours GPU-resident',
  oursE2e: 'ours end-to-end',
  oursF16: 'ours f16, GPU-resident',
  webGpu: 'ORT Web WebGPU, GPU io',
  webCpu: 'ORT Web WebGPU, CPU io',
  node: 'ORT node CPU',
} as const;

export type VariantKey = keyof typeof VARIANTS;

export interface VariantResult {
  timing?: Timing;
  check?: Check;
  error?: string;
  /** GPU errors raised during this variant (ORT Web: uncaptured errors on its device; ours: queued errors). */
  gpuErrors?: string[];
}

export interface CaseResult {
  name: string;
  shape: string;
  origin: string;
  flops: number;
  bytes: number;
  memoryBound: boolean;
  note?: string;
  skipped?: string;
  variants: Partial<Record<VariantKey, VariantResult>>;
  /** 1-minute load average when the case finished. */
  load1?: number;
  wallS?: number;
}

export function load1(): number {
  return loadavg()[0]!;
}

export function fmtLoad(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

function rate(c: CaseResult, ms: number): string {
  return c.memoryBound ? `${gbps(c.bytes, ms).toFixed(2)} GB/s` : `${gflops(c.flops, ms).toFixed(2)} GFLOP/s`;
}

export function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

/** One progress line for a finished variant. */
export function variantLine(c: CaseResult, key: VariantKey): string {
  const v = c.variants[key];
  const label = VARIANTS[key].padEnd(24);
  if (!v) return `  ${label} -`;
  const parts: string[] = [];
  if (v.timing) {
    const t = v.timing;
    parts.push(`${fmtMs(t.median).padStart(8)} ms median (min ${fmtMs(t.min)}, p90 ${fmtMs(t.p90)}, n=${t.runs})  ${rate(c, t.median)}`);
  }
  if (v.check) parts.push(fmtCheck(v.check));
  if (v.error) parts.push(`ERROR ${v.error}`);
  if (v.gpuErrors?.length) parts.push(`GPU errors: ${[...new Set(v.gpuErrors)].join(' | ').slice(0, 400)}`);
  return `  ${label} ${parts.join('  ')}`;
}

function cell(c: CaseResult, key: VariantKey): string {
  const v = c.variants[key];
  if (!v) return '-';
  if (!v.timing) return v.error ? `error: ${v.error.slice(0, 60)}` : '-';
  const invalid = v.check && !v.check.ok ? ' ✗ invalid' : '';
  const gpuErr = v.gpuErrors?.length ? ' (GPU errors)' : '';
  const r = rate(c, v.timing.median).replace('GFLOP/s', 'GF/s');
  return `${fmtMs(v.timing.median)} ms, ${r}${invalid}${gpuErr}`;
}

function ratio(c: CaseResult, web: VariantKey, ours: VariantKey): string {
  const w = c.variants[web]?.timing?.median;
  const o = c.variants[ours]?.timing?.median;
  return w && o ? (w / o).toFixed(2) : '-';
}

function relL2(c: CaseResult, key: VariantKey): string {
  const k = c.variants[key]?.check;
  return k ? k.relL2.toExponential(1) : '-';
}

export function markdownTable(cases: readonly CaseResult[]): string {
  const head = [
    'case', 'shape', ...Object.values(VARIANTS), 'Web/ours GPU', 'Web/ours e2e', 'relL2 ours / Web(gpu) / Web(cpu)',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const c of cases) {
    if (c.skipped) {
      lines.push(`| ${c.name} | ${c.shape} | ${c.skipped} |${' |'.repeat(head.length - 3)}`);
      continue;
    }
    const cells = (Object.keys(VARIANTS) as VariantKey[]).map((k) => cell(c, k));
    lines.push(
      `| ${c.name} | ${c.shape} | ${cells.join(' | ')} | ${ratio(c, 'webGpu', 'oursGpu')} | ${ratio(c, 'webCpu', 'oursE2e')} | ` +
        `${relL2(c, 'oursGpu')} / ${relL2(c, 'webGpu')} / ${relL2(c, 'webCpu')} |`,
    );
  }
  return lines.join('\n');
}
