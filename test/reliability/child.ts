/**
 * Running a scenario in a child process: a crash, a hang or a memory blow-up then belongs to the
 * child (the test sees an exit code, a timeout or a number), and the child's peak resident memory
 * can be measured around exactly one operation.
 *
 * Peak memory: the child resets the kernel's high-water mark (`/proc/self/clear_refs` <- 5) after a
 * garbage collection, reads VmRSS as the baseline, runs the operation, and reads VmHWM: the growth
 * is peak minus baseline, in bytes, measured by the kernel (not by a JS heap counter).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** `node --import tsx --expose-gc -e CODE` in the repository root; killed after `timeoutMs`. */
export function runNode(code: string, opts: { timeoutMs?: number; env?: Record<string, string>; nodeArgs?: string[]; argv?: string[] } = {}): Promise<ChildResult> {
  return new Promise((ok) => {
    // With -e, process.argv is [node, ...argv]: give a script name first so argv.slice(2) works as usual.
    const child = spawn(process.execPath, ['--import', 'tsx', '--expose-gc', ...(opts.nodeArgs ?? []), '--input-type=module', '-e', code, '--', ...(opts.argv ?? [])], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      ok({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** What `measurePeak` reports from inside the child. */
export interface PeakReport {
  /** Error name and message when the operation threw, else null. */
  error: { name: string; message: string } | null;
  /** What the operation returned: numbers, strings and booleans as they are, else the type name. */
  value: unknown;
  baselineBytes: number;
  peakBytes: number;
  growthBytes: number;
  ms: number;
}

function statusKb(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * Inside the child: run `op` once between a reset of the high-water mark and a read of it, and print
 * the report as the last line of stdout.
 */
export async function measurePeak(op: () => Promise<unknown>): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await new Promise((r) => setTimeout(r, 20));
  gc?.();
  writeFileSync('/proc/self/clear_refs', '5');
  const baseline = statusKb('VmRSS');
  const t0 = performance.now();
  let error: PeakReport['error'] = null;
  let value: unknown = null;
  try {
    const v = await op();
    value = typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean' ? v : (v?.constructor?.name ?? typeof v);
  } catch (e) {
    const err = e as Error;
    error = { name: err?.name ?? 'non-Error', message: String(err?.message ?? e) };
  }
  const ms = performance.now() - t0;
  const peak = statusKb('VmHWM');
  const report: PeakReport = { error, value, baselineBytes: baseline * 1024, peakBytes: peak * 1024, growthBytes: (peak - baseline) * 1024, ms };
  process.stdout.write(`\n${JSON.stringify(report)}\n`);
}

/** Run `body` (module code whose last statement awaits measurePeak) in a child; parse its report. */
export async function peakInChild(body: string, timeoutMs = 90_000): Promise<PeakReport & { child: ChildResult }> {
  const code = `import { measurePeak } from ${JSON.stringify(join(REPO, 'test/reliability/child.ts'))};\n${body}`;
  const child = await runNode(code, { timeoutMs });
  const last = child.stdout.trim().split('\n').pop() ?? '';
  let report: PeakReport;
  try {
    report = JSON.parse(last) as PeakReport;
  } catch {
    throw new Error(`child gave no report (exit ${child.code}${child.signal ? `, ${child.signal}` : ''}${child.timedOut ? ', timed out' : ''}):\n${child.stderr.slice(-2000)}`);
  }
  return { ...report, child };
}

export const MiB = 1 << 20;
