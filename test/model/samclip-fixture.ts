/**
 * Shared access to the SAM-CLIP reference fixtures (test/fixtures/reference/samclip, see its
 * README): manifest entries, photos, uploads and the comparison helper that prints rel_l2 per stage.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { GpuContext } from '../../src/gpu/context.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { readTensor } from '../../src/kernels/copy.js';
import type { SafetensorsFile } from '../../src/weights/safetensors.js';
import { type ManifestTensor, REFERENCE, expectReference, manifest } from '../helpers/reference.js';

export const MS = manifest('samclip');
export const BUNDLE = `${REFERENCE}/samclip/samclip_tiny.safetensors`;
export const CLASSES: string[] = MS.classes;
export const SYN = MS.synthetic.tensors as Record<string, ManifestTensor>;
export const TEXT = MS.text.tensors as Record<string, ManifestTensor>;

export interface SamclipPhoto {
  name: 'truck' | 'dog';
  file: string;
  image: string;
  original_size: [number, number];
  input_size: [number, number];
  tensors: Record<string, ManifestTensor>;
  refinement_checks: Record<string, unknown>;
  decoded_classes: string[];
}

export const PHOTOS: SamclipPhoto[] = (MS.photos as Omit<SamclipPhoto, 'name'>[]).map((p) => ({
  ...p,
  name: p.file.includes('truck') ? 'truck' : 'dog',
}));

export async function uploadRef(ctx: GpuContext, file: SafetensorsFile, name: string): Promise<Tensor> {
  return ctx.upload(await file.readF32(name), file.info(name).shape);
}

/** Compare a GPU tensor (or host array) with a stored one under the fixtures' rule; logs rel_l2. */
export async function checkRef(
  ctx: GpuContext,
  actual: Tensor | Float32Array,
  file: SafetensorsFile,
  name: string,
  entry: ManifestTensor,
  label = name,
): Promise<void> {
  const a = actual instanceof Float32Array ? actual : ((await readTensor(ctx, actual)) as Float32Array);
  const r = expectReference(a, await file.readF32(name), entry, label);
  console.log(`${label}: rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)}), max_abs ${r.maxAbs.toExponential(2)} (gate ${r.maxAbsGate.toExponential(1)})`);
}

/** Decode the fixtures' bit-plane label maps: label = sum_b bit_b << b. */
export function decodeBitPlanes(packed: Uint8Array, planes: number, H: number, W: number): Uint8Array {
  const pw = Math.ceil(W / 8);
  const out = new Uint8Array(H * W);
  for (let b = 0; b < planes; b++) {
    const base = b * H * pw;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if ((packed[base + y * pw + (x >> 3)]! >> (x & 7)) & 1) out[y * W + x]! |= 1 << b;
      }
    }
  }
  return out;
}

/** A safetensors header read synchronously: key -> shape, and the metadata (for test case tables). */
export function readHeaderSync(path: string): { shapes: Map<string, number[]>; metadata: Record<string, string> } {
  const fd = openSync(path, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, 8);
    const header = JSON.parse(buf.toString('utf8')) as Record<string, { shape: number[] } | Record<string, string>>;
    const shapes = new Map<string, number[]>();
    for (const [k, v] of Object.entries(header)) if (k !== '__metadata__') shapes.set(k, (v as { shape: number[] }).shape);
    return { shapes, metadata: (header.__metadata__ ?? {}) as Record<string, string> };
  } finally {
    closeSync(fd);
  }
}
