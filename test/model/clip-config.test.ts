/**
 * Hyper-parameters from checkpoint shapes (no GPU): full-size layouts (ViT-B/16, ViT-L/14, the
 * OpenCLIP ViT-H/14 head width), activation resolution, and the errors for shapes that do not fit.
 */
import { describe, expect, it } from 'vitest';
import { ClipError, countBlocks, headsOverride, resolveAct, textConfigFromWeights, visionConfigFromWeights } from '../../src/model/clip/config.js';
import type { Weights } from '../../src/weights/weights.js';

/** Just enough of Weights for the config readers: names and shapes. */
function fakeWeights(shapes: Record<string, number[]>): Weights {
  return { file: 'fake.safetensors', family: 'clip', metadata: {}, shape: (k: string) => shapes[k], keys: () => Object.keys(shapes) } as unknown as Weights;
}

function vision(width: number, layers: number, patch: number, grid: number, embed: number): Record<string, number[]> {
  const s: Record<string, number[]> = {
    'visual.conv1.weight': [width, 3, patch, patch],
    'visual.positional_embedding': [grid * grid + 1, width],
    'visual.proj': [width, embed],
  };
  for (let i = 0; i < layers; i++) s[`visual.transformer.resblocks.${i}.mlp.c_fc.weight`] = [4 * width, width];
  return s;
}

function text(width: number, layers: number, embed: number): Record<string, number[]> {
  const s: Record<string, number[]> = {
    'token_embedding.weight': [49408, width],
    positional_embedding: [77, width],
    text_projection: [width, embed],
  };
  for (let i = 0; i < layers; i++) s[`transformer.resblocks.${i}.mlp.c_fc.weight`] = [4 * width, width];
  return s;
}

describe('CLIP config from shapes', () => {
  it('ViT-B/16 (DESIGN.md: vision 768/12/12 at 224, text 512/12/8, joint 512)', () => {
    const w = fakeWeights({ ...vision(768, 12, 16, 14, 512), ...text(512, 12, 512) });
    const v = visionConfigFromWeights(w, 'visual.', 'quick_gelu');
    expect(v).toMatchObject({ width: 768, layers: 12, heads: 12, patch: 16, grid: 14, imageSize: 224, embedDim: 512, mlpWidth: 3072 });
    expect(textConfigFromWeights(w, '', 'quick_gelu')).toMatchObject({ width: 512, layers: 12, heads: 8, contextLength: 77, vocabSize: 49408, embedDim: 512 });
  });

  it('ViT-L/14 (vision 1024/24/16, text 768/12/12, joint 768)', () => {
    const w = fakeWeights({ ...vision(1024, 24, 14, 16, 768), ...text(768, 12, 768) });
    expect(visionConfigFromWeights(w, 'visual.', 'quick_gelu')).toMatchObject({ heads: 16, layers: 24, imageSize: 224 });
    expect(textConfigFromWeights(w, '', 'quick_gelu').heads).toBe(12);
  });

  it('OpenCLIP ViT-H/14: vision head width 80 (16 heads), text 1024 / 64', () => {
    const w = fakeWeights({ ...vision(1280, 32, 14, 16, 1024), ...text(1024, 24, 1024) });
    expect(visionConfigFromWeights(w, 'visual.', 'gelu').heads).toBe(16);
    expect(textConfigFromWeights(w, '', 'gelu').heads).toBe(16);
    expect(visionConfigFromWeights(w, 'visual.', 'gelu', { heads: 20 }).heads).toBe(20);
  });

  it('shape errors name the key', () => {
    const bad = vision(96, 2, 16, 4, 64);
    bad['visual.positional_embedding'] = [18, 96];
    expect(() => visionConfigFromWeights(fakeWeights(bad), 'visual.', 'gelu')).toThrow(/'visual.positional_embedding' \[18, 96\] is not \[grid² \+ 1, 96\]/);
    const proj = vision(96, 2, 16, 4, 64);
    proj['visual.proj'] = [64, 64];
    expect(() => visionConfigFromWeights(fakeWeights(proj), 'visual.', 'gelu')).toThrow(/'visual.proj' \[64, 64\] does not take the tower width 96/);
    expect(() => textConfigFromWeights(fakeWeights(vision(96, 2, 16, 4, 64)), '', 'gelu')).toThrow(/missing tensor 'token_embedding.weight'/);
    expect(() => countBlocks(fakeWeights({ a: [1] }), '')).toThrow(ClipError);
  });

  it('activation: option, then metadata keys, then QuickGELU', () => {
    expect(resolveAct({}, 'f')).toBe('quick_gelu');
    expect(resolveAct({ 'clip.act': 'GELU' }, 'f')).toBe('gelu');
    expect(resolveAct({ hidden_act: 'quick_gelu' }, 'f')).toBe('quick_gelu');
    expect(resolveAct({ quick_gelu: 'false' }, 'f')).toBe('gelu');
    expect(resolveAct({ quick_gelu: 'false' }, 'f', 'quick_gelu')).toBe('quick_gelu');
    expect(() => resolveAct({ quick_gelu: 'maybe' }, 'f')).toThrow(/expected "true" or "false"/);
    expect(() => resolveAct({}, 'f', 'relu' as 'gelu')).toThrow(/option act: activation 'relu' is not supported/);
    // src/weights/random.ts writes its preset as JSON under `clip`.
    expect(resolveAct({ clip: JSON.stringify({ act: 'gelu', transformerHeads: 8 }) }, 'f')).toBe('gelu');
    expect(() => resolveAct({ clip: 'not json' }, 'f')).toThrow(/metadata 'clip': expected a JSON object/);
  });

  it('head counts: option, then metadata, then undefined (derived)', () => {
    expect(headsOverride({}, 'f', 'text')).toBeUndefined();
    expect(headsOverride({ 'clip.text_heads': '4' }, 'f', 'text')).toBe(4);
    expect(headsOverride({ 'clip.text_heads': '4' }, 'f', 'text', 2)).toBe(2);
    expect(headsOverride({ clip: JSON.stringify({ transformerHeads: 8 }) }, 'f', 'text')).toBe(8);
    expect(headsOverride({ clip: JSON.stringify({ transformerHeads: 8 }) }, 'f', 'vision')).toBeUndefined();
    expect(() => headsOverride({ 'clip.vision_heads': 'x' }, 'f', 'vision')).toThrow(/f metadata 'clip.vision_heads': expected a positive integer, got 'x'/);
  });
});
