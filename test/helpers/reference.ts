/**
 * Access to the committed reference fixtures (outputs of the official PyTorch code; see
 * test/fixtures/reference/README.md) and their comparison rule:
 *   rel_l2 <= max(1e-4, 20 * noise.rel_l2) and max_abs <= max(1e-3 * absmax, 20 * noise.max_abs_err),
 * where `noise` is the fp32-vs-fp64 difference of the official code recorded in the manifest.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { compare, formatComparison, mismatches } from './compare.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const REFERENCE = join(FIXTURES, 'reference');

export interface ManifestTensor {
  shape: number[];
  dtype: string;
  absmax?: number;
  rms?: number;
  note?: string;
  fp32_vs_fp64?: { max_abs_err: number; rel_l2: number };
  unpacked_shape?: number[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function readJson(path: string): any {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** manifest.json of the reference folder, or of `samclip/`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function manifest(sub: '' | 'samclip' = ''): any {
  return readJson(join(REFERENCE, sub, 'manifest.json'));
}

export async function openReference(file: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(join(REFERENCE, file));
}

export interface ReferenceResult {
  relL2: number;
  maxAbs: number;
  relL2Gate: number;
  maxAbsGate: number;
}

/** The fixtures' rule for float tensors; `looser` multiplies both gates (declare why at the call). */
export function referenceGates(entry: ManifestTensor, looser = 1): { relL2: number; maxAbs: number } {
  const noise = entry.fp32_vs_fp64 ?? { max_abs_err: 0, rel_l2: 0 };
  const absmax = entry.absmax ?? 0;
  return {
    relL2: looser * Math.max(1e-4, 20 * noise.rel_l2),
    maxAbs: looser * Math.max(1e-3 * absmax, 20 * noise.max_abs_err),
  };
}

/** Assert `actual` matches the recorded tensor under the fixtures' comparison rule. */
export function expectReference(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  entry: ManifestTensor,
  name: string,
  looser = 1,
): ReferenceResult {
  const gates = referenceGates(entry, looser);
  const c = compare(actual, expected, { relL2: gates.relL2, atol: gates.maxAbs, rtol: 0 });
  if (c.failures > 0) {
    expect.fail(formatComparison(name, c, { relL2: gates.relL2, atol: gates.maxAbs }, entry.shape));
  }
  return { relL2: c.relL2, maxAbs: c.maxAbs, relL2Gate: gates.relL2, maxAbsGate: gates.maxAbs };
}

/** Unpack `np.packbits(bitorder="little")` along the last axis. */
export function unpackBits(bytes: Uint8Array, unpackedShape: number[]): Uint8Array {
  const w = unpackedShape[unpackedShape.length - 1]!;
  const rows = unpackedShape.slice(0, -1).reduce((a, d) => a * d, 1);
  const packedW = Math.ceil(w / 8);
  const out = new Uint8Array(rows * w);
  for (let r = 0; r < rows; r++) {
    for (let x = 0; x < w; x++) out[r * w + x] = (bytes[r * packedW + (x >> 3)]! >> (x & 7)) & 1;
  }
  return out;
}

/** Fraction of equal entries. */
export function agreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return 1 - mismatches(a, b).diff / a.length;
}

/**
 * The predictions' masks, in order, against the recorded bit-packed masks (`packed`, unpacked to
 * `unpackedShape`): logs and asserts the fraction of equal pixels (>= `min`). Returns it.
 */
export function expectMasksAgree(preds: readonly { masks: readonly Uint8Array[] }[], packed: Uint8Array, unpackedShape: number[], label: string, min: number): number {
  const expected = unpackBits(packed, unpackedShape);
  const actual = new Uint8Array(expected.length);
  let at = 0;
  for (const p of preds) {
    for (const m of p.masks) {
      actual.set(m, at);
      at += m.length;
    }
  }
  expect(at, `${label}: mask pixels`).toBe(expected.length);
  const a = agreement(actual, expected);
  console.log(`${label} masks: agreement ${(a * 100).toFixed(5)}% (${Math.round((1 - a) * expected.length)} of ${expected.length} pixels differ)`);
  expect(a, `${label} masks agreement`).toBeGreaterThanOrEqual(min);
  return a;
}
