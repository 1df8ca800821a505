/**
 * Which pipelines cost shader-compile time, per pipeline key: runs a `samclip` command under
 * `samclip profile` twice, once with Mesa's shader cache disabled (every pipeline compiled at its
 * first dispatch) and once with the cache warm, and prints, per key, the GPU time of the cold run
 * minus the warm one. On lavapipe the JIT compile happens inside the first dispatch, so it lands in
 * that dispatch's timestamps; the difference is the compile (plus noise of a few ms per key).
 *
 *   npx tsx tools/compile-cost.ts [--top N] -- segment photo.jpg --point 400,300 --weights sam.safetensors --out /tmp/m.png
 *
 * Meaningful on Mesa drivers (MESA_SHADER_CACHE_DISABLE); on other adapters both runs are warm or
 * both cold and the differences are noise.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readEvents } from './trace-events.js';

const ROOT = join(import.meta.dirname, '..');
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
if (dash < 0 || dash === argv.length - 1) {
  console.error('usage: npx tsx tools/compile-cost.ts [--top N] -- <samclip command and arguments>');
  process.exit(2);
}
const own = argv.slice(0, dash);
const command = argv.slice(dash + 1);
const topAt = own.indexOf('--top');
const top = topAt >= 0 ? Number(own[topAt + 1]) : 20;
if (!Number.isInteger(top) || top < 1) {
  console.error(`--top: a whole number of rows >= 1, got ${own[topAt + 1]}`);
  process.exit(2);
}

interface KeyTime {
  ms: number;
  count: number;
}

const dir = mkdtempSync(join(tmpdir(), 'compile-cost-'));

/** Run the command under `samclip profile`; returns GPU ms per pipeline key and the wall time. */
function profiled(name: string, env: Record<string, string>): { keys: Map<string, KeyTime>; wallMs: number } {
  const trace = join(dir, `${name}.json`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'samclip.mjs'), 'profile', '--quiet', '--trace', trace, ...command], {
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`samclip profile ${command.join(' ')} exited ${r.status} (${name} run):\n${r.stderr}`);
  const keys = new Map<string, KeyTime>();
  for (const e of readEvents(trace)) {
    const key = e.args?.key;
    if (!key) continue;
    const k = keys.get(key) ?? { ms: 0, count: 0 };
    k.ms += e.dur / 1000;
    k.count++;
    keys.set(key, k);
  }
  return { keys, wallMs };
}

try {
  const cold = profiled('cold', { MESA_SHADER_CACHE_DISABLE: 'true' });
  profiled('fill', {}); // puts every pipeline in the cache
  const warm = profiled('warm', {});
  const rows = [...cold.keys].map(([key, c]) => ({ key, count: c.count, extra: c.ms - (warm.keys.get(key)?.ms ?? 0) })).sort((a, b) => b.extra - a.extra);
  const total = rows.reduce((s, r) => s + r.extra, 0);
  console.log(`samclip ${command.join(' ')}`);
  console.log(`wall: ${(cold.wallMs / 1000).toFixed(1)} s cold cache, ${(warm.wallMs / 1000).toFixed(1)} s warm; ${rows.length} pipelines, ${(total / 1000).toFixed(1)} s of GPU time more when cold`);
  console.log('extra ms  dispatches  pipeline key');
  for (const r of rows.slice(0, top)) console.log(`${r.extra.toFixed(0).padStart(8)}  ${String(r.count).padStart(10)}  ${r.key}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
