/**
 * `samclip doctor`, `bench`, `profile` and the top-level help / usage behaviour, run through the
 * real binary.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { DOG, SAM_TINY, expectOk, expectOneLineError, samclip, CLI_TIMEOUT } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'samclip-tools-'));

describe('help and usage', { timeout: CLI_TIMEOUT }, () => {
  it('--help works everywhere and exits 0; no arguments or an unknown command exit 2', async () => {
    // Commander gives every command --help; a sample of levels and kinds keeps the spawns few.
    const cmds = [[], ['everything'], ['weights', 'pull'], ['profile']];
    const [none, unknown, ...helps] = await Promise.all([samclip([]), samclip(['segmnt', 'x']), ...cmds.map((c) => samclip([...c, '--help']))]);
    helps.forEach((r, i) => {
      expectOk(r);
      expect(r.stdout, cmds[i]!.join(' ')).toMatch(/^Usage: samclip/);
    });
    expect(helps[0]!.stdout).toMatch(/segment .*\n.*everything .*\n.*classify/s);
    expect(helps[2]!.stdout).toMatch(/--sha256 <hex>/);
    expect(none.code).toBe(2);
    expect(none.stdout).toMatch(/^Usage: samclip/);
    expectOneLineError(unknown, 2, /unknown command 'segmnt'/);
    // Every model command is listed in the top-level help.
    for (const c of ['semseg', 'text', 'demo']) expect(helps[0]!.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
  });
});

describe('doctor', { timeout: CLI_TIMEOUT }, () => {
  it('reports the adapter, features, limits and a passing smoke test', async () => {
    const r = await samclip(['doctor', '--json']);
    expectOk(r);
    const d = JSON.parse(r.stdout);
    expect(d.ok).toBe(true);
    expect(d.webgpu.loaded).toBe(true);
    expect(d.node.version).toBe(process.version);
    expect(d.adapter.summary.length).toBeGreaterThan(0);
    expect(d.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(d.smokeTest.ok).toBe(true);
    expect(Array.isArray(d.features)).toBe(true);
    // CPU adapters wait on timers (Dawn's busy poll would take a core from the driver), GPUs spin.
    const cpu = /llvmpipe|lavapipe|swiftshader/i.test(`${d.adapter.device} ${d.adapter.description}`);
    expect(d.polling).toBe(process.env.SAMCLIP_POLLING ?? (cpu ? 'timer' : 'spin'));
    // Dispatch plans are on unless a switch turns them off (or profiling / sync / dispatch logging).
    const off = process.env.SAMCLIP_PLANS === '0' || process.env.SAMCLIP_SYNC === '1' || process.env.SAMCLIP_PROFILE === '1' || Number(process.env.SAMCLIP_DEBUG ?? 0) > 0;
    expect(d.dispatchPlans).toBe(!off);
  });

  it('without an adapter: the Mesa / driver advice and exit 1', async () => {
    const r = await samclip(['doctor'], { env: { SAMCLIP_ADAPTER: 'no-such-adapter' } });
    expectOneLineError(r, 1, /no usable WebGPU adapter/);
    expect(r.stdout).toMatch(/adapter\s+NONE/);
    expect(r.stdout).toMatch(/mesa-vulkan-drivers/);
    expect(r.stdout).toMatch(/SAMCLIP_ADAPTER=no-such-adapter is set/);
  });
});

describe('bench', { timeout: CLI_TIMEOUT }, () => {
  it('times the built-in kernel cases', async () => {
    const r = await samclip(['bench', '--suite', 'tiny', '--iters', '2', '--warmup', '1', '--json', '--quiet']);
    expectOk(r);
    const b = JSON.parse(r.stdout);
    expect(b.results.map((x: { name: string }) => x.name)).toEqual(['linear 64x96->288', 'attention 3x64x32', 'layerNorm 64x96']);
    for (const x of b.results) expect(x.medianMs).toBeGreaterThan(0);
    expectOneLineError(await samclip(['bench', '--suite', 'huge']), 2, /--suite must be one of clip-b16, sam-b, tiny/);
  });
});

describe('profile', { timeout: CLI_TIMEOUT }, () => {
  it('profiles segment: kernel and stage tables, a Chrome trace, and the command still writes its mask', async () => {
    const trace = join(tmp, 'trace.json');
    const mask = join(tmp, 'mask.png');
    const r = await samclip(['profile', 'segment', DOG, '--point', '400,300', '--weights', SAM_TINY, '--out', mask, '--trace', trace]);
    expectOk(r);
    expect(r.stdout).toMatch(/^kernel\s+total ms\s+count/m);
    expect(r.stdout).toMatch(/^stage\s+total ms\s+count/m);
    expect(r.stdout).toMatch(/image_encoder/);
    expect(r.stdout).toMatch(/mask_decoder/);
    const t = JSON.parse(readFileSync(trace, 'utf8'));
    const events = t.traceEvents.filter((e: { ph: string }) => e.ph === 'X');
    expect(events.length).toBeGreaterThan(20);
    expect(events.some((e: { name: string }) => e.name === 'matmul')).toBe(true);
    const png = PNG.sync.read(readFileSync(mask));
    expect([png.width, png.height]).toEqual([800, 534]);
  });

  it('profile --json wraps the command result with the tables', async () => {
    const trace = join(tmp, 'bench-trace.json');
    const r = await samclip(['profile', '--json', '--trace', trace, 'bench', '--suite', 'tiny', '--iters', '1', '--warmup', '0', '--quiet']);
    expectOk(r);
    const p = JSON.parse(r.stdout);
    expect(p.command).toBe('bench');
    expect(p.result.results.length).toBe(3);
    expect(p.kernels.map((k: { name: string }) => k.name).sort()).toEqual(expect.arrayContaining(['attention', 'layernorm', 'matmul']));
    expect(p.stages.some((s: { name: string }) => s.name.startsWith('bench/'))).toBe(true);
    expectOneLineError(await samclip(['profile', 'doctor']), 2, /'doctor' does not run GPU work/);
  });
});
