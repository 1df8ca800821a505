/**
 * `samclip doctor`: is this machine ready? Node version, whether Dawn (`webgpu`) loads, the
 * adapter with its features and the limits the engine cares about, a tiny computation checked
 * against the CPU, and advice for whatever is missing.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import type { GpuContext } from '../../gpu/context.js';
import { NO_ADAPTER_HELP, REPORTED_LIMITS, acquireDevice, describeAdapter, loadDawn, type AdapterDescription } from '../../gpu/device.js';
import { defaultPolling } from '../../gpu/host-wait.js';
import { hostCpu } from '../../node/host-cpu.js';
import { withCommon } from '../common.js';
import { type CliEnv, type CommonOptions, tuneForCli } from '../env.js';
import { CliError } from '../errors.js';
import { formatBytes } from '../output.js';

export interface DoctorReport {
  ok: boolean;
  node: { version: string; ok: boolean; platform: string };
  webgpu: { loaded: boolean; version: string | null; error: string | null };
  adapter: (AdapterDescription & { summary: string }) | null;
  adapterError: string | null;
  features: string[];
  engine: { f16: boolean; timestamps: boolean; subgroups: boolean } | null;
  limits: Record<string, number>;
  smokeTest: { ok: boolean; maxAbsError: number | null; error: string | null } | null;
  /** How the host waits for Dawn on this adapter by default (src/gpu/host-wait.ts). */
  polling: string | null;
  /** Whether repeated model calls replay their recorded dispatches (src/gpu/dispatch-plan.ts). */
  dispatchPlans: boolean | null;
  /** Kernel choices for this adapter and host (measured once, then cached; SAMCLIP_TUNING overrides). */
  tuning: { source: string; choices: Record<string, string>; key: string; timings: Record<string, Record<string, number>>; rejected: Record<string, Record<string, string>> } | null;
  host: string;
  vulkanDrivers: string[];
  advice: string[];
}

async function webgpuVersion(): Promise<string | null> {
  try {
    const req = createRequire(import.meta.url);
    let dir = dirname(req.resolve('webgpu'));
    for (let i = 0; i < 4 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
    return pkg.name === 'webgpu' ? (pkg.version ?? null) : null;
  } catch {
    return null;
  }
}

/** Vulkan ICD manifests Dawn's Vulkan backend can load (Linux). */
function vulkanIcds(): string[] {
  const dirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  const out: string[] = [];
  for (const d of dirs) {
    try {
      for (const f of readdirSync(d)) if (f.endsWith('.json')) out.push(join(d, f));
    } catch {
      // absent directory
    }
  }
  return out;
}

/** y = x W^T for a 5×12 → 7 layer, compared with the CPU: proves shaders compile and run. */
async function smokeTest(ctx: GpuContext): Promise<number> {
  const { linear } = await import('../../kernels/matmul.js');
  const M = 5;
  const K = 12;
  const N = 7;
  const x = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i));
  const w = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 0.7));
  const y = await ctx.read(linear(ctx, ctx.upload(x, [M, K]), ctx.upload(w, [N, K])));
  let err = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      err = Math.max(err, Math.abs(s - y[m * N + n]!));
    }
  }
  return err;
}

export async function runDoctor(): Promise<DoctorReport> {
  const major = Number(process.versions.node.split('.')[0]);
  const report: DoctorReport = {
    ok: false,
    node: { version: process.version, ok: major >= 20, platform: `${process.platform} ${process.arch}` },
    webgpu: { loaded: false, version: await webgpuVersion(), error: null },
    adapter: null,
    adapterError: null,
    features: [],
    engine: null,
    limits: {},
    smokeTest: null,
    vulkanDrivers: process.platform === 'linux' ? vulkanIcds() : [],
    advice: [],
    polling: null,
    dispatchPlans: null,
    tuning: null,
    host: hostCpu().summary,
  };
  const advice = report.advice;
  if (!report.node.ok) advice.push(`Node ${process.version} is too old: samclip needs Node 20 or newer.`);
  try {
    await loadDawn();
    report.webgpu.loaded = true;
  } catch (e) {
    report.webgpu.error = (e as Error).message;
    advice.push("Install Dawn's Node binding: `npm i webgpu` (an optional peer dependency).");
    return report;
  }
  let ctx: GpuContext | null = null;
  try {
    const acq = await acquireDevice();
    report.adapter = { ...acq.info, summary: describeAdapter(acq.info) };
    report.features = [...acq.adapter.features].map(String).sort();
    report.engine = acq.features;
    for (const k of REPORTED_LIMITS) {
      const v = (acq.device.limits as unknown as Record<string, number | undefined>)[k];
      if (typeof v === 'number') report.limits[k] = v;
    }
    const { GpuContext } = await import('../../gpu/context.js');
    ctx = new GpuContext(acq.gpu, acq.device, acq.info, acq.features);
    report.polling = defaultPolling(ctx.tuning.cpuAdapter);
    report.dispatchPlans = ctx.dispatchPlansActive;
  } catch (e) {
    report.adapterError = (e as Error).message.split('\n')[0]!;
    advice.push(NO_ADAPTER_HELP);
    if (process.platform === 'linux' && report.vulkanDrivers.length === 0) {
      advice.push('No Vulkan driver manifest found in /usr/share/vulkan/icd.d: install one (a GPU vendor driver, or Mesa lavapipe as above).');
    }
    if (process.env.SAMCLIP_ADAPTER) advice.push(`SAMCLIP_ADAPTER=${process.env.SAMCLIP_ADAPTER} is set: unset it or pick one of the adapters Dawn lists.`);
    return report;
  }
  try {
    const err = await smokeTest(ctx);
    report.smokeTest = { ok: err < 1e-3, maxAbsError: err, error: null };
    if (report.smokeTest.ok) {
      const t = await tuneForCli(ctx);
      report.tuning = { source: t.source, choices: { ...t.choices }, key: t.key, timings: t.timings as Record<string, Record<string, number>>, rejected: (t.rejected ?? {}) as Record<string, Record<string, string>> };
    }
  } catch (e) {
    report.smokeTest = { ok: false, maxAbsError: null, error: (e as Error).message.split('\n')[0]! };
    advice.push('The adapter was found but a compute shader failed: update the GPU driver (or Mesa), or try SAMCLIP_BACKEND=vulkan.');
  } finally {
    ctx.destroy();
  }
  const a = report.adapter!;
  if (/llvmpipe|lavapipe|swiftshader/i.test(`${a.device} ${a.description}`)) {
    advice.push('This adapter is a CPU driver (lavapipe/SwiftShader): everything works, but full-size models take minutes; a real GPU is 100x faster.');
    const mesa = /Mesa (\d+)\./.exec(a.description);
    if (mesa && Number(mesa[1]) < 24) advice.push(`Mesa ${mesa[1]} is older than 24, which Dawn needs: on Debian 12 run \`apt-get install -t bookworm-backports mesa-vulkan-drivers\`.`);
  }
  if (!report.engine!.f16) advice.push('No shader-f16: weights are kept in f32 (twice the memory of --dtype f16).');
  if (!report.engine!.timestamps) advice.push('No timestamp-query: `samclip profile` cannot time kernels on this adapter.');
  const bind = report.limits.maxStorageBufferBindingSize ?? 0;
  if (bind < 128 * 2 ** 20) advice.push(`maxStorageBufferBindingSize is ${formatBytes(bind)}: below 128 MiB, large models may not fit.`);
  if (process.platform === 'linux' && !process.env.XDG_RUNTIME_DIR) advice.push('Set XDG_RUNTIME_DIR (e.g. /tmp) to silence a Mesa warning.');
  report.ok = report.node.ok && !!report.smokeTest?.ok;
  return report;
}

function formatReport(r: DoctorReport): string {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const lines = [
    `node        ${r.node.version} (${r.node.platform})${r.node.ok ? '' : '  TOO OLD (need >= 20)'}`,
    `webgpu      ${r.webgpu.loaded ? `loaded${r.webgpu.version ? ` (webgpu ${r.webgpu.version}, Dawn)` : ''}` : `NOT LOADED: ${r.webgpu.error}`}`,
  ];
  if (r.adapter) {
    lines.push(
      `adapter     ${r.adapter.summary}`,
      `  vendor ${r.adapter.vendor || '-'}, architecture ${r.adapter.architecture || '-'}, device ${r.adapter.device || '-'}`,
      `  description ${r.adapter.description || '-'}`,
      `runtime     ${r.adapter.runtime}`,
      `engine      shader-f16 ${yes(r.engine!.f16)}, timestamp-query ${yes(r.engine!.timestamps)}, subgroups ${yes(r.engine!.subgroups)}`,
      `features    ${r.features.join(', ')}`,
      'limits',
      ...Object.entries(r.limits).map(([k, v]) => `  ${k.padEnd(34)} ${v}${v >= 1 << 20 ? ` (${formatBytes(v)})` : ''}`),
    );
  } else if (r.webgpu.loaded) {
    lines.push(`adapter     NONE: ${r.adapterError}`);
  }
  if (r.vulkanDrivers.length) lines.push(`vulkan ICDs ${r.vulkanDrivers.join(', ')}`);
  lines.push(`host        ${r.host}`);
  if (r.tuning) {
    const ms = (k: string) => {
      const t = r.tuning!.timings[k];
      return t && Object.keys(t).length ? ` (${Object.entries(t).map(([c, v]) => `${c} ${v.toFixed(1)} ms`).join(', ')})` : '';
    };
    lines.push(`kernels     ${r.tuning.source} choices (SAMCLIP_TUNING overrides):`, ...Object.entries(r.tuning.choices).map(([k, v]) => `  ${k.padEnd(12)} ${v}${ms(k)}`));
    for (const [k, rej] of Object.entries(r.tuning.rejected)) {
      for (const [c, why] of Object.entries(rej)) lines.push(`  ${k.padEnd(12)} ${c} REJECTED: ${why}`);
    }
  }
  if (r.polling) lines.push(`host wait   ${r.polling} (${r.polling === 'timer' ? "Dawn's poll on a 1 ms timer, leaving the cores to the CPU adapter" : "Dawn's busy poll, lowest latency"}; SAMCLIP_POLLING overrides)`);
  if (r.dispatchPlans !== null) {
    lines.push(`plans       ${r.dispatchPlans ? 'on: repeated decoder and encoder calls replay their recorded dispatches (SAMCLIP_PLANS=0 turns them off)' : 'off (SAMCLIP_PLANS=0, SAMCLIP_SYNC=1 or profiling)'}`);
  }
  if (r.smokeTest) {
    lines.push(`smoke test  ${r.smokeTest.ok ? `ok (5x12 @ 12x7 on the GPU, max |error| ${r.smokeTest.maxAbsError!.toExponential(1)})` : `FAILED: ${r.smokeTest.error ?? `max |error| ${r.smokeTest.maxAbsError}`}`}`);
  }
  if (r.advice.length) lines.push('', 'advice', ...r.advice.map((a) => `  - ${a}`));
  lines.push('', r.ok ? 'ready: WebGPU works here.' : 'NOT READY: see the advice above.');
  return lines.join('\n');
}

export function registerDoctor(program: Command, env: CliEnv): void {
  withCommon(program.command('doctor').description('check Node, Dawn (webgpu), the GPU adapter, its features and limits')).action(async (opts: CommonOptions) => {
    const report = await runDoctor();
    env.emit(opts, report, () => formatReport(report));
    if (!report.ok) throw new CliError(report.adapter ? 'WebGPU adapter found but not usable (see above)' : 'no usable WebGPU adapter (see the advice above)');
  });
}
