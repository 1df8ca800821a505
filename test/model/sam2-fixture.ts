/**
 * Access to the SAM 2.1 reference fixtures (test/fixtures/reference/sam2/, official
 * facebookresearch/sam2 code on a tiny Hiera with seeded weights; see its README): manifest,
 * weights, per-photo tensors and prompt cases, and the comparison rule of the other fixtures.
 */
import { join } from 'node:path';
import type { GpuContext } from '../../src/gpu/context.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { type Sam2ConfigOverrides } from '../../src/model/sam2/config.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { Weights } from '../../src/weights/weights.js';
import { type ManifestTensor, REFERENCE, expectReference, readJson } from '../helpers/reference.js';

export const SAM2_DIR = join(REFERENCE, 'sam2');
export const SAM2_WEIGHTS = join(SAM2_DIR, 'sam2_tiny.weights.safetensors');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const SAM2_MANIFEST: any = readJson(join(SAM2_DIR, 'manifest.json'));

export interface Sam2Case {
  name: string;
  point_coords?: number[][];
  point_labels?: number[];
  /** One box [x0, y0, x1, y1], or several (a batch). */
  box?: number[] | number[][];
  mask_input?: string;
  multimask_output: boolean;
  transformed_point_coords?: number[][];
  transformed_box_corners?: number[][][];
  dynamic_multimask_via_stability?: { stability_score: number; stable: boolean; output: string; decision_flip_logit_distance: number }[];
  tensors: Record<string, string>;
}

export interface Sam2Photo {
  name: 'truck' | 'dog';
  file: string;
  original_size: [number, number];
  cases: Sam2Case[];
  tensors: Record<string, ManifestTensor>;
}

export const SAM2_PHOTOS: Sam2Photo[] = SAM2_MANIFEST.photos.map((p: Omit<Sam2Photo, 'name'>) => ({
  ...p,
  name: p.file.includes('truck') ? 'truck' : 'dog',
}));

/** What the tiny config's shapes cannot tell (the file has no `sam2` metadata): from the manifest. */
export function tinyOverrides(): Sam2ConfigOverrides {
  const c = SAM2_MANIFEST.config_args;
  return {
    imageSize: c.image_size,
    numHeads: c.trunk.num_heads,
    windowSpec: c.trunk.window_spec,
    globalAttBlocks: c.trunk.global_att_blocks,
  };
}

export async function loadSam2TinyWeights(ctx: GpuContext, include?: (k: string) => boolean): Promise<Weights> {
  const file = await SafetensorsFile.open(SAM2_WEIGHTS);
  try {
    return await Weights.load(ctx, file, null, { dtype: 'f32', include });
  } finally {
    await file.close();
  }
}

/** One photo's reference file, opened once per test process. */
export class Sam2Ref {
  private static readonly cache = new Map<string, Promise<Sam2Ref>>();
  private constructor(
    readonly photo: Sam2Photo,
    readonly file: SafetensorsFile,
  ) {}

  static open(photo: Sam2Photo): Promise<Sam2Ref> {
    let p = Sam2Ref.cache.get(photo.file);
    if (!p) {
      p = SafetensorsFile.open(join(SAM2_DIR, photo.file)).then((f) => new Sam2Ref(photo, f));
      Sam2Ref.cache.set(photo.file, p);
    }
    return p;
  }

  entry(name: string): ManifestTensor {
    const e = this.photo.tensors[name];
    if (!e) throw new Error(`${this.photo.file}: no manifest entry for '${name}'`);
    return e;
  }

  has(name: string): boolean {
    return name in this.photo.tensors;
  }

  f32(name: string): Promise<Float32Array> {
    return this.file.readF32(name);
  }

  async upload(ctx: GpuContext, name: string, shape?: number[]): Promise<Tensor> {
    return ctx.upload(await this.f32(name), shape ?? this.entry(name).shape);
  }

  caseTensor(c: Sam2Case, stage: string): string {
    const n = c.tensors[stage];
    if (!n) throw new Error(`case ${c.name}: no tensor for stage '${stage}'`);
    return n;
  }
}

/** Per-tensor parity figures collected for the report (max rel L2 against its gate). */
export const PARITY: { name: string; relL2: number; gate: number; maxAbs: number; maxAbsGate: number }[] = [];

/** Compare under the fixtures' rule and log the figures. */
export async function checkAgainst(ref: Sam2Ref, actual: ArrayLike<number>, name: string, label = `${ref.photo.name} ${name}`) {
  const r = expectReference(actual, await ref.f32(name), ref.entry(name), label);
  PARITY.push({ name: label, relL2: r.relL2, gate: r.relL2Gate, maxAbs: r.maxAbs, maxAbsGate: r.maxAbsGate });
  console.log(`${label}: rel_l2 ${r.relL2.toExponential(2)} (gate ${r.relL2Gate.toExponential(1)}), max_abs ${r.maxAbs.toExponential(2)} (gate ${r.maxAbsGate.toExponential(1)})`);
  return r;
}
