/**
 * SAM 2's image encoder (Hiera trunk + FPN neck) against the official code's intermediates on the
 * truck photo (tiny config): every tensor under the fixtures' rule (rel L2 <= max(1e-4, 20 x noise),
 * max abs <= max(1e-3 x absmax, 20 x noise)), end to end from the recorded `preprocessed` input and
 * stage by stage (each block fed the recorded output of the previous one), so a failure names its
 * module. Also the configuration derived from the weights against the manifest's block geometry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTensor } from '../../src/kernels/copy.js';
import { type Sam2Config, hieraBlocks, sam2ConfigFromWeights } from '../../src/model/sam2/config.js';
import { ImageEncoder } from '../../src/model/sam2/image-encoder.js';
import type { Taps } from '../../src/model/sam2/hieradet.js';
import type { Weights } from '../../src/weights/weights.js';
import { useGpu } from '../helpers/gpu.js';
import { SAM2_MANIFEST, SAM2_PHOTOS, Sam2Ref, checkAgainst, loadSam2TinyWeights, tinyOverrides } from './sam2-fixture.js';

const gpu = useGpu();
let weights: Weights;
let cfg: Sam2Config;
let encoder: ImageEncoder;
const truck = SAM2_PHOTOS.find((p) => p.name === 'truck')!;

beforeAll(async () => {
  weights = await loadSam2TinyWeights(gpu());
  cfg = sam2ConfigFromWeights(weights, tinyOverrides());
  encoder = new ImageEncoder(weights, 'image_encoder', cfg);
});

afterAll(() => {
  encoder?.dispose();
  weights?.dispose();
});

describe('SAM 2 configuration from the weights', () => {
  it('derives the tiny Hiera: widths, stages, per-block geometry as the official constructor', () => {
    const c = SAM2_MANIFEST.config_args;
    expect(cfg.trunk.embedDim).toBe(c.trunk.embed_dim);
    expect(cfg.trunk.stages).toEqual(c.trunk.stages);
    expect(cfg.trunk.windowPosEmbedBkgSize).toEqual(c.trunk.window_pos_embed_bkg_spatial_size);
    expect(cfg.neck.dModel).toBe(c.neck.d_model);
    expect(cfg.neck.backboneChannelList).toEqual(c.neck.backbone_channel_list);
    expect(cfg.neck.fpnTopDownLevels).toEqual(c.neck.fpn_top_down_levels);
    expect(cfg.neck.scalp).toBe(c.scalp);
    const blocks = hieraBlocks(cfg.trunk);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const want = SAM2_MANIFEST.hiera_blocks.map((b: any) => ({ dim: b.dim, dimOut: b.dim_out, heads: b.heads, window: b.window, qPool: b.q_pool, stageEnd: b.stage_end }));
    expect(blocks.map(({ dim, dimOut, heads, window, qPool, stageEnd }) => ({ dim, dimOut, heads, window, qPool, stageEnd }))).toEqual(want);
  });

  it('names what the shapes cannot tell when the trunk is not a released model', () => {
    expect(() => sam2ConfigFromWeights(weights)).toThrow(/none of the released SAM 2 models .* cannot tell numHeads .*windowSpec .*globalAttBlocks/);
  });
});

describe('SAM 2 image encoder vs official (truck, tiny)', () => {
  it('end to end from the recorded input: every trunk and neck intermediate', async () => {
    const ctx = gpu();
    const ref = await Sam2Ref.open(truck);
    const taps: Taps = {};
    const input = await ref.upload(ctx, 'preprocessed');
    try {
      const levels = encoder.forward(ctx, input, taps);
      expect(levels.map((l) => l.shape)).toEqual([[1, 64, 64, 64], [1, 64, 32, 32], [1, 64, 16, 16]]);
      for (const l of levels) l.dispose();
      const names = ['trunk.patch_embed', 'trunk.pos_embed', 'trunk.pos_added'];
      for (let i = 0; i < encoder.trunk.blocks.length; i++) names.push(`trunk.block${i}.attn`, `trunk.block${i}`);
      names.push('neck.fpn0', 'neck.fpn1', 'neck.fpn2', 'neck.fpn3');
      for (const n of names) {
        const t = taps[n];
        expect(t, `tap ${n}`).toBeDefined();
        expect(t!.shape, n).toEqual(ref.entry(n).shape);
        await checkAgainst(ref, await readTensor(ctx, t!), n, `truck ${n} (end to end)`);
      }
    } finally {
      input.dispose();
      for (const t of Object.values(taps)) t.dispose();
    }
  });

  it('stage by stage: each block from the recorded output of the previous one', async () => {
    const ctx = gpu();
    const ref = await Sam2Ref.open(truck);
    for (const b of encoder.trunk.blocks) {
      const i = b.spec.index;
      const inputName = i === 0 ? 'trunk.pos_added' : `trunk.block${i - 1}`;
      const x = await ref.upload(ctx, inputName);
      const taps: Taps = {};
      try {
        const y = b.forward(ctx, x, taps, `trunk.block${i}`);
        await checkAgainst(ref, await readTensor(ctx, taps[`trunk.block${i}.attn`]!), `trunk.block${i}.attn`, `truck trunk.block${i}.attn (from ${inputName})`);
        await checkAgainst(ref, await readTensor(ctx, y), `trunk.block${i}`, `truck trunk.block${i} (from ${inputName})`);
        y.dispose();
      } finally {
        x.dispose();
        for (const t of Object.values(taps)) t.dispose();
      }
    }
  });

  it('stage by stage: the neck from the recorded stage outputs', async () => {
    const ctx = gpu();
    const ref = await Sam2Ref.open(truck);
    const ends = encoder.trunk.blocks.filter((b) => b.spec.stageEnd).map((b) => `trunk.block${b.spec.index}`);
    const xs = await Promise.all(ends.map((n) => ref.upload(ctx, n)));
    const taps: Taps = {};
    try {
      const levels = encoder.neck.forward(ctx, xs, taps);
      for (let i = 0; i < 4; i++) await checkAgainst(ref, await readTensor(ctx, levels[i]!), `neck.fpn${i}`, `truck neck.fpn${i} (from the recorded trunk)`);
      for (const l of levels) l.dispose();
    } finally {
      for (const x of xs) x.dispose();
      for (const t of Object.values(taps)) t.dispose();
    }
  });

  it('windowed blocks in horizontal bands give the same numbers (forced small binding budget)', async () => {
    const ctx = gpu();
    const ref = await Sam2Ref.open(truck);
    const b1 = encoder.trunk.blocks[1]!; // query pooling, window 8 on a 64 x 64 grid
    const x = await ref.upload(ctx, 'trunk.block0');
    const limits = ctx.limits as { maxStorageBufferBindingSize: number };
    const saved = limits.maxStorageBufferBindingSize;
    try {
      const whole = await readTensor(ctx, b1.forward(ctx, x));
      // One band of 16 rows (two window rows) per dispatch group: 4 bands.
      limits.maxStorageBufferBindingSize = 16 * 64 * 4 * 4 * 48;
      expect(b1.bandRows(ctx, 64, 64)).toBe(16);
      const banded = await readTensor(ctx, b1.forward(ctx, x));
      expect(Array.from(banded)).toEqual(Array.from(whole));
    } finally {
      limits.maxStorageBufferBindingSize = saved;
      x.dispose();
    }
  });
});
