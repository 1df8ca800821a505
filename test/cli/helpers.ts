/** Running the real `samclip` binary (bin/samclip.mjs) from tests, and checking its error output. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { expect } from 'vitest';
import { mismatches } from '../helpers/compare.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'samclip.mjs');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const DOG = join(FIXTURES, 'images', 'dog.jpg');
export const SAM_TINY = join(FIXTURES, 'reference', 'sam_tiny.weights.safetensors');
export const CLIP_TINY = join(FIXTURES, 'reference', 'clip_tiny.weights.safetensors');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Lines the CLI itself wrote to stderr about a failure. */
  errorLines: string[];
}

/** Run a command to completion, collecting its output (asynchronously, so a test's servers keep serving). */
export function runProcess(cmd: string, args: string[], opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Spawn `node bin/samclip.mjs ...args` (asynchronously, so a test's HTTP server keeps serving).
 * The environment is the test's plus `env`; the weights cache defaults to a path that does not
 * exist so a developer's real cache never leaks into a test.
 */
export async function samclip(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await runProcess(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { SAMCLIP_CACHE: '/nonexistent/samclip-test-cache', ...opts.env },
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
  const errorLines = r.stderr.split('\n').filter((l) => l.startsWith('samclip:') || l.startsWith('error:'));
  return { ...r, errorLines };
}

/** A failed run: the given exit code, exactly one error line matching `re`, and no stack trace. */
export function expectOneLineError(r: CliResult, code: number, re: RegExp): void {
  const ctx = `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  expect(r.code, ctx).toBe(code);
  expect(r.errorLines.length, ctx).toBe(1);
  expect(r.errorLines[0], ctx).toMatch(re);
  expect(r.stderr, ctx).not.toMatch(/^\s+at .+[:(]/m);
}

/** A successful run. */
export function expectOk(r: CliResult): void {
  expect(r.code, `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);
}

/**
 * Per-test limit for tests that spawn the CLI: a run takes seconds on an idle machine, but a CPU
 * adapter shared with other jobs can be ten times slower, and a slow machine is not a failure.
 */
export const CLI_TIMEOUT = 400_000;

/** Count of differing entries, with the first one, for a readable failure. */
export function expectSame(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const { diff, first } = mismatches(actual, expected);
  expect(diff, `${what}: ${diff} pixels differ from the library's result (first at index ${first}: ${actual[first]} vs ${expected[first]})`).toBe(0);
}

/** A grey mask PNG -> 0/1 per pixel, after checking its format and size. */
export function readMask(path: string, size: [number, number]): Uint8Array {
  const png = PNG.sync.read(readFileSync(path));
  expect([png.width, png.height, png.colorType], path).toEqual([...size, 0]);
  const out = new Uint8Array(png.width * png.height);
  for (let i = 0; i < out.length; i++) {
    const v = png.data[4 * i]!;
    if (v !== 0 && v !== 255) throw new Error(`${path}: pixel ${i} is ${v}, not 0 or 255`);
    out[i] = v ? 1 : 0;
  }
  return out;
}
