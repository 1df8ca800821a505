/** Shared by the SAM-CLIP CLI tests: the tiny bundle, PNG readers, a bundle with a part removed. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { expect } from 'vitest';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { type SafetensorsDType, writeSafetensorsFile } from '../../src/weights/safetensors-writer.js';
import { type CliResult, FIXTURES } from './helpers.js';
export { expectSame, readMask } from './helpers.js';

/** The reference fixtures' tiny SAM-CLIP bundle (seeded random weights, 256-px native input). */
export const BUNDLE = join(FIXTURES, 'reference', 'samclip', 'samclip_tiny.safetensors');

/** A colour label-map PNG -> label per pixel, through the class colours the CLI reported. */
export function readLabelMap(path: string, colors: string[], size: [number, number]): Uint8Array {
  const png = PNG.sync.read(readFileSync(path));
  expect([png.width, png.height, png.colorType], path).toEqual([...size, 2]);
  const index = new Map(colors.map((c, i) => [parseInt(c.slice(1), 16), i]));
  expect(index.size, `class colours must be distinct: ${colors.join(' ')}`).toBe(colors.length);
  const out = new Uint8Array(png.width * png.height);
  for (let i = 0; i < out.length; i++) {
    const rgb = (png.data[4 * i]! << 16) | (png.data[4 * i + 1]! << 8) | png.data[4 * i + 2]!;
    const k = index.get(rgb);
    if (k === undefined) throw new Error(`${path}: pixel ${i} has colour #${rgb.toString(16).padStart(6, '0')}, not a class colour`);
    out[i] = k;
  }
  return out;
}

/** Size of a PNG (and that it decodes). */
export function pngSize(path: string): [number, number] {
  const png = PNG.sync.read(readFileSync(path));
  return [png.width, png.height];
}

/** A copy of the tiny bundle without the tensors `drop` matches (streamed with the safetensors writer). */
export async function bundleWithout(path: string, drop: RegExp): Promise<void> {
  const src = await SafetensorsFile.open(BUNDLE);
  try {
    const keys = src.keys().filter((k) => !drop.test(k));
    await writeSafetensorsFile(
      path,
      keys.map((name) => ({ name, dtype: src.info(name).dtype as SafetensorsDType, shape: src.info(name).shape, read: () => src.readRaw(name) })),
      { metadata: src.metadata, overwrite: true },
    );
  } finally {
    await src.close();
  }
}

/** A solid-grey PNG of the given size. */
export function greyPng(width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  png.data.fill(128);
  return PNG.sync.write(png);
}

/**
 * Runs the CLI in this process (the same `runCli` the binary calls), capturing its output: for the
 * bad-input cases, where spawning a process per case would cost more than the case itself. The
 * process's weights cache applies: cases that reach the cache pass `--cache`.
 */
export async function samclipInProcess(args: string[]): Promise<CliResult> {
  const { runCli } = await import('../../src/cli/main.js');
  const { CliEnv } = await import('../../src/cli/env.js');
  let stdout = '';
  let stderr = '';
  const env = new CliEnv({ stdout: (s) => (stdout += s), stderr: { write: (s) => (stderr += s), isTTY: false } });
  const code = await runCli(args, env);
  const errorLines = stderr.split('\n').filter((l) => l.startsWith('samclip:') || l.startsWith('error:'));
  return { code, stdout, stderr, errorLines };
}
