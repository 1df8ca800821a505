/**
 * Shared pieces of the CLIP model tests: the tiny reference model (openai/CLIP code, seeded
 * weights; test/fixtures/reference/README.md) and small layout helpers.
 */
import type { GpuContext } from '../../src/gpu/context.js';
import { readTensor } from '../../src/kernels/copy.js';
import type { ClipModel } from '../../src/model/clip/clip.js';
import { type LoadClipOptions, loadClip } from '../../src/model/clip/load.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { manifest, openReference } from '../helpers/reference.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const CLIP_MANIFEST: any = manifest().clip;

/**
 * Options that describe the tiny reference model: QuickGELU (the official code's) and 4 text heads.
 * The text head count is the one fact shapes cannot give (upstream `build_model` would derive
 * 64 // 64 = 1; the fixture's CLIP was constructed with transformer_heads = 4, manifest
 * `clip.text_heads`). The vision tower keeps the derived 96 // 64 = 1 head, as upstream.
 */
export const TINY_OPTS: LoadClipOptions = { textHeads: CLIP_MANIFEST.text_heads as number, act: 'quick_gelu' };

export async function tinyWeightsFile(): Promise<SafetensorsFile> {
  return openReference('clip_tiny.weights.safetensors');
}

export async function loadTiny(ctx: GpuContext, opts: LoadClipOptions = {}): Promise<ClipModel> {
  const file = await tinyWeightsFile();
  try {
    return await loadClip(ctx, file, { ...TINY_OPTS, ...opts });
  } finally {
    await file.close();
  }
}

/** One tensor of the tiny weights as f32 (the file is closed again). */
export async function tinyTensor(name: string): Promise<Float32Array> {
  const file = await tinyWeightsFile();
  try {
    return await file.readF32(name);
  } finally {
    await file.close();
  }
}

export async function readF32(ctx: GpuContext, t: Tensor): Promise<Float32Array> {
  return (await readTensor(ctx, t)) as Float32Array;
}

/** [A, B, C] row-major -> [B, A, C] (LND <-> NLD). */
export function swap01(x: ArrayLike<number>, a: number, b: number, c: number): Float32Array {
  const out = new Float32Array(a * b * c);
  for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) for (let k = 0; k < c; k++) out[(j * a + i) * c + k] = x[(i * b + j) * c + k]!;
  return out;
}

/** Rows `rows` of a row-major [n, width] array. */
export function pickRows<T extends Int32Array | Float32Array>(x: T, width: number, rows: readonly number[]): T {
  const out = new (x.constructor as { new (n: number): T })(rows.length * width);
  rows.forEach((r, i) => out.set(x.subarray(r * width, (r + 1) * width), i * width));
  return out;
}
