/**
 * No silent wrong answer from a checkpoint that is not the model it claims to be: a SAM or CLIP with
 * its last block removed is refused naming the missing tensors (it used to load as a shallower
 * model and `segment` exited 0), full-size layouts are checked on the header alone (sparse files,
 * nothing uploaded), and a non-standard model loads only with an explicit configuration.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clipConfigFrom } from '../../src/model/clip/clip.js';
import { ClipError } from '../../src/model/clip/config.js';
import { loadClip } from '../../src/model/clip/load.js';
import { SAM_ARCHITECTURES, resolveSamArchitecture } from '../../src/model/sam/architectures.js';
import { samConfigFromWeights, samTensorSpec } from '../../src/model/sam/config.js';
import { checkSamWeights, loadSamWeights, plannedShapes } from '../../src/model/sam/load.js';
import { samHfRenameTable, samOfficialToHf } from '../../src/weights/families/sam-hf.js';
import { CLIP_PRESETS, clipTensorSpec } from '../../src/weights/random.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { WeightError, Weights } from '../../src/weights/weights.js';
import { samclip } from '../cli/helpers.js';
import { useGpu } from '../helpers/gpu.js';
import { REFERENCE } from '../helpers/reference.js';
import { buildSafetensors, f32Tensor, writeSparseSafetensors } from '../helpers/safetensors-build.js';

const gpu = useGpu();
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'arch-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const VIT_B = samTensorSpec(SAM_ARCHITECTURES['sam-vit-b']);
const withoutBlock = <T extends { name: string }>(spec: readonly T[], prefix: string) => spec.filter((t) => !t.name.startsWith(prefix));

describe('SAM', () => {
  it('a full ViT-B layout passes the header checks (official and Hugging Face names)', async () => {
    for (const [name, rename] of [['official', (k: string) => k], ['hf', samOfficialToHf]] as const) {
      const path = join(dir, `vit-b-${name}.safetensors`);
      await writeSparseSafetensors(path, VIT_B.map((t) => ({ name: rename(t.name), shape: t.shape })));
      const f = await SafetensorsFile.open(path);
      const shapes = plannedShapes(f, name === 'hf' ? 'sam-hf' : 'sam', name === 'hf' ? samHfRenameTable(f.keys()) : null);
      const arch = resolveSamArchitecture(shapes, samConfigFromWeights(shapes));
      expect(arch.source).toMatch(/^sam-vit-b \(the standard SAM of width 768\)/);
      expect(() => checkSamWeights(shapes, arch.config, arch.source)).not.toThrow();
      await f.close();
    }
  });

  it('ViT-B with its last block removed is refused, naming the block (both name styles)', async () => {
    for (const [name, rename] of [['official', (k: string) => k], ['hf', samOfficialToHf]] as const) {
      const path = join(dir, `vit-b-cut-${name}.safetensors`);
      await writeSparseSafetensors(path, withoutBlock(VIT_B, 'image_encoder.blocks.11.').map((t) => ({ name: rename(t.name), shape: t.shape })));
      const err = await loadSamWeights(gpu(), path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WeightError);
      expect((err as Error).message).toMatch(/14 missing tensors: 'image_encoder\.blocks\.11\.norm1\.weight' \[768\], 'image_encoder\.blocks\.11\.norm1\.bias' \[768\], 'image_encoder\.blocks\.11\.attn\.rel_pos_h' \[127, 64\]/);
      expect((err as Error).message).toMatch(/checked against sam-vit-b \(the standard SAM of width 768\): depth 12, width 768, 12 heads, MLP 3072/);
    }
  });

  it('a ViT-L whose MLP is the ViT-B ratio is refused naming the misshaped tensors', async () => {
    const L = SAM_ARCHITECTURES['sam-vit-l'];
    const path = join(dir, 'vit-l-narrow.safetensors');
    await writeSparseSafetensors(path, samTensorSpec({ ...L, mlpDim: 3072 }));
    await expect(loadSamWeights(gpu(), path)).rejects.toThrow(/tensor 'image_encoder\.blocks\.0\.mlp\.lin1\.weight' has shape \[3072, 1024\], expected \[4096, 1024\]/);
  });

  it('the tiny fixture with a block removed: refused; with an explicit config saying so: loaded', async () => {
    const src = await SafetensorsFile.open(join(REFERENCE, 'sam_tiny.weights.safetensors'));
    const kept = src.keys().filter((k) => !k.startsWith('image_encoder.blocks.3.'));
    const tensors = await Promise.all(kept.map(async (k) => f32Tensor(k, [...src.info(k).shape], await src.readF32(k))));
    await src.close();
    const bytes = buildSafetensors(tensors, { metadata: { model: 'sam_tiny' } });
    await expect(loadSamWeights(gpu(), SafetensorsFile.fromBytes(bytes, 'cut.safetensors'))).rejects.toThrow(
      /cut\.safetensors \(sam\): 14 missing tensors: 'image_encoder\.blocks\.3\.norm1\.weight' \[96\].*checked against sam-tiny \(named by the file's metadata 'model'\)/,
    );
    // Unnamed, it is a non-standard SAM: refused unless the caller gives the architecture.
    const unnamed = SafetensorsFile.fromBytes(buildSafetensors(tensors), 'unnamed.safetensors');
    await expect(loadSamWeights(gpu(), unnamed)).rejects.toThrow(/a SAM of width 96 \(depth 3, 3 heads\) is not one of the standard ViT-B\/L\/H .* explicit configuration/);
    const config = { ...SAM_ARCHITECTURES['sam-tiny'], depth: 3, globalAttnIndexes: [1] };
    const { weights, config: got } = await loadSamWeights(gpu(), unnamed, { config });
    expect(got.depth).toBe(3);
    weights.dispose();
  });

  it('samclip segment on a checkpoint with a block removed exits 1 naming the missing tensors', async () => {
    const src = await SafetensorsFile.open(join(REFERENCE, 'sam_tiny.weights.safetensors'));
    const kept = src.keys().filter((k) => !k.startsWith('image_encoder.blocks.3.'));
    const tensors = await Promise.all(kept.map(async (k) => f32Tensor(k, [...src.info(k).shape], await src.readF32(k))));
    await src.close();
    const path = join(dir, 'cut-cli.safetensors');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, buildSafetensors(tensors, { metadata: { model: 'sam_tiny' } }));
    const r = await samclip(['segment', join(REFERENCE, '..', 'images', 'dog.jpg'), '--point', '100,100', '--weights', path, '--out', join(dir, 'm.png')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/samclip: error: .*14 missing tensors: 'image_encoder\.blocks\.3\.norm1\.weight'/);
  });
});

describe('CLIP', () => {
  const B16 = clipTensorSpec(CLIP_PRESETS['clip-vit-b-16']);

  it('ViT-B/16 passes the header checks; with its last vision block removed it is refused before any upload', async () => {
    const full = join(dir, 'clip-b16.safetensors');
    await writeSparseSafetensors(full, B16);
    const f = await SafetensorsFile.open(full);
    const cfg = clipConfigFrom(Weights.planShapes(f, null, 'canonical'));
    expect([cfg.vision!.layers, cfg.vision!.heads, cfg.text!.layers, cfg.text!.heads]).toEqual([12, 12, 12, 8]);
    await f.close();
    const cut = join(dir, 'clip-b16-cut.safetensors');
    await writeSparseSafetensors(cut, withoutBlock(B16, 'visual.transformer.resblocks.11.'));
    const g = await SafetensorsFile.open(cut);
    const err = await loadClip(gpu(), g).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClipError);
    expect((err as Error).message).toMatch(
      /the vision tower does not match ViT-B \(the standard vision tower of width 768\) \(width 768, 12 layers, 12 heads, MLP 3072\): 12 missing tensor\(s\): 'visual\.transformer\.resblocks\.11\.attn\.in_proj_weight' \[2304, 768\]/,
    );
    expect(g.loadStats.bytesUploaded).toBe(0);
    await g.close();
    // A text tower given 4 heads by metadata is not ViT-B/16's (8): an error, not a different model.
    const h = join(dir, 'clip-b16-heads.safetensors');
    await writeSparseSafetensors(h, B16, { 'clip.text_heads': '4' });
    const hf = await SafetensorsFile.open(h);
    await expect(loadClip(gpu(), hf)).rejects.toThrow(/text tower does not match ViT-B text .*: 4 heads were given, the architecture has 8/);
    await hf.close();
  });
});
