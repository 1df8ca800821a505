/**
 * SAM-CLIP bundle validation and the CLIP head against the reference fixtures: every head stage
 * (3 blocks, max-pool, pooled MLP output, pooled and dense embeddings) at 256 / 160 / 112 px, each
 * stage fed the stored upstream tensor (`rR.tokens` -> blocks; stored `head.block2` -> pooled and
 * dense), on the synthetic inputs and both photos. Gate: the fixtures' rule; rel_l2 printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/gpu/tensor.js';
import { ClipHead } from '../../src/model/samclip/clip-head.js';
import { type SamclipConfig, SamclipBundleError, loadSamclipBundle, samclipConfigFromShapes, validateSamclipBundle } from '../../src/model/samclip/bundle.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import type { Weights } from '../../src/weights/weights.js';
import { useGpu } from '../helpers/gpu.js';
import { openReference } from '../helpers/reference.js';
import { BUNDLE, MS, PHOTOS, SYN, checkRef, readHeaderSync, uploadRef } from './samclip-fixture.js';

const gpu = useGpu();

let weights: Weights;
let config: SamclipConfig;
let head: ClipHead;

beforeAll(async () => {
  ({ weights, config } = await loadSamclipBundle(gpu(), BUNDLE));
  head = new ClipHead(weights, 'clip_head', config.clipHead);
});
afterAll(() => {
  head?.dispose();
  weights?.dispose();
});

/** Shapes-only view of a key -> shape map (what validation reads from a header). */
function shapesOf(file: string, map: Map<string, number[]>, metadata: Record<string, string>) {
  return { file, family: 'samclip', metadata, has: (k: string) => map.has(k), shape: (k: string) => map.get(k), keys: () => [...map.keys()] };
}

describe('bundle format', () => {
  it('derives the configuration the metadata records', () => {
    const c = MS.config;
    expect(config.clipHead).toEqual({
      depth: 3, dim: 96, numHeads: 3, mlpDim: 384, relPosSize: 16, blockEps: 1e-6, normEps: 1e-5, mlpWidths: c.clip_head.mlp_widths,
    });
    expect([config.text.width, config.text.layers, config.text.heads, config.text.act, config.text.contextLength, config.text.vocabSize]).toEqual([64, 2, 4, 'gelu', 77, 49408]);
    expect(config.embedDim).toBe(64);
    expect(config.resolutions).toEqual({ native: 256, seg: 160, cls: 112 });
    expect(config.sam.decoderHeads).toBe(4);
    expect(config.sam.globalAttnIndexes).toEqual([1, 3]);
  });

  it('validates from the header alone', async () => {
    const f = await SafetensorsFile.open(BUNDLE);
    expect(validateSamclipBundle(f).clipHead.depth).toBe(3);
    await f.close();
  });

  describe('clear errors', () => {
    const { shapes: base, metadata: meta } = readHeaderSync(BUNDLE);
    const without = (re: RegExp) => new Map([...base].filter(([k]) => !re.test(k)));
    const cases: [string, Map<string, number[]>, RegExp, Record<string, string>?][] = [
      ['a bundle missing its CLIP head', without(/^clip_head\./), /missing its CLIP head \('clip_head\.\*' keys\).*SamClip\.composite/],
      ['a bundle missing its SAM head', without(/^(prompt_encoder|mask_decoder)\./), /missing its SAM head/],
      ['a bundle missing its text tower', without(/^text\./), /missing its text tower/],
      ['no logit scale', without(/^logit_scale$/), /no 'logit_scale'/],
      ['a missing head block tensor', without(/^clip_head\.blocks\.2\.mlp\.lin2\.bias$/), /missing tensor 'clip_head\.blocks\.2\.mlp\.lin2\.bias' \[96\]/],
      ['an extra tensor', new Map([...base, ['clip_head.extra', [3]]]), /unexpected tensor.*'clip_head\.extra' \[3\]/],
      ['a wrongly shaped MLP layer', new Map([...base, ['clip_head.mlp.4.bias', [63]]]), /'clip_head\.mlp\.4\.bias' has shape \[63\], expected \[64\]/],
      ['metadata that disagrees', base, /mlp_widths \[96, 128, 64\] disagrees/, { samclip: JSON.stringify({ ...JSON.parse(meta.samclip!), clip_head: { mlp_widths: [96, 128, 64] } }) }],
      ['bad metadata JSON', base, /not valid JSON/, { samclip: '{oops' }],
    ];
    for (const [what, map, re, m] of cases) {
      it(what, () => {
        expect(() => samclipConfigFromShapes(shapesOf('tiny.safetensors', map, m ?? meta))).toThrow(re);
        expect(() => samclipConfigFromShapes(shapesOf('tiny.safetensors', map, m ?? meta))).toThrow(SamclipBundleError);
      });
    }
  });
});

describe('CLIP head vs the reference fixtures', () => {
  const runStages = async (file: SafetensorsFile, R: number, entries: Record<string, { shape: number[] }>, label: string) => {
    const ctx = gpu();
    const E = entries as Record<string, import('../helpers/reference.js').ManifestTensor>;
    // Blocks from the stored tokens.
    const tokens = await uploadRef(ctx, file, `r${R}.tokens`);
    const taps: Record<string, Tensor> = {};
    const h = head.blocksForward(ctx, tokens, taps);
    for (let i = 0; i < 3; i++) await checkRef(ctx, taps[`head.block${i}`]!, file, `r${R}.head.block${i}`, E[`r${R}.head.block${i}`]!, `${label}:r${R}.head.block${i}`);
    // Pooled / dense from the stored block-2 output (stage isolation).
    const stored = await uploadRef(ctx, file, `r${R}.head.block2`);
    const etaps: Record<string, Tensor> = {};
    const out = head.embed(ctx, stored, { taps: etaps });
    await checkRef(ctx, etaps['head.maxpool']!, file, `r${R}.head.maxpool`, E[`r${R}.head.maxpool`]!, `${label}:r${R}.head.maxpool`);
    await checkRef(ctx, etaps['head.pooled_raw']!, file, `r${R}.head.pooled_raw`, E[`r${R}.head.pooled_raw`]!, `${label}:r${R}.head.pooled_raw`);
    await checkRef(ctx, out.pooled!, file, `r${R}.pooled`, E[`r${R}.pooled`]!, `${label}:r${R}.pooled`);
    await checkRef(ctx, out.dense!, file, `r${R}.dense`, E[`r${R}.dense`]!, `${label}:r${R}.dense`);
    expect(out.dense!.shape).toEqual([1, R / 16, R / 16, 64]);
    for (const t of [tokens, h, stored, out.pooled!, out.dense!, ...Object.values(taps), ...Object.values(etaps)]) t.dispose();
  };

  for (const R of [256, 160, 112]) {
    it(`synthetic input at ${R} px: blocks, max-pool, pooled, dense`, async () => {
      const f = await openReference('samclip/samclip_tiny.synthetic.safetensors');
      await runStages(f, R, SYN, 'synthetic');
      await f.close();
    });
  }

  for (const photo of PHOTOS) {
    it(`photo ${photo.name}: every stage at 256 / 160 / 112 px`, async () => {
      const f = await openReference(`samclip/${photo.file}`);
      for (const R of [256, 160, 112]) await runStages(f, R, photo.tensors, photo.name);
      await f.close();
    });
  }

  it('rejects tokens of the wrong width', () => {
    const ctx = gpu();
    const t = ctx.empty([1, 4, 4, 64]);
    expect(() => head.forward(ctx, t)).toThrow(/ClipHead: tokens must be \[B, g, g, 96\].*\[1, 4, 4, 64\]/);
    t.dispose();
  });
});
