/**
 * The bundle assembly tool: the reference bundle split into its three sources (an official-named
 * SAM checkpoint, an OpenAI-named or Hugging Face-named CLIP text tower, a bare-named CLIP head)
 * and assembled again must give back every tensor bit for bit and the same configuration; the
 * tool validates bundles and names what is wrong with bad sources. The random-head path gives a
 * loadable bundle.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { samConfigMetadata } from '../../src/model/sam/config.js';
import { planBundle, randomClipHead } from '../../src/model/samclip/assemble.js';
import { type SamclipConfig, validateSamclipBundle } from '../../src/model/samclip/bundle.js';
import { SamClip } from '../../src/pipelines/samclip.js';
import { clipHfNamesFor } from '../../src/weights/families/clip-hf.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { encodeSafetensors, writeSafetensorsFile } from '../../src/weights/safetensors-writer.js';
import { main } from '../../tools/assemble-samclip-bundle.js';
import { useGpu } from '../helpers/gpu.js';
import { BUNDLE } from './samclip-fixture.js';

const gpu = useGpu();
let bundle: SafetensorsFile;
let config: SamclipConfig;
let dir: string;

beforeAll(async () => {
  bundle = await SafetensorsFile.open(BUNDLE);
  config = validateSamclipBundle(bundle);
  dir = mkdtempSync(join(tmpdir(), 'samclip-assemble-'));
});
afterAll(async () => {
  await bundle?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An in-memory safetensors file of some bundle tensors, renamed. */
async function part(name: string, pick: (k: string) => string | string[] | null, metadata: Record<string, string>, split?: (k: string, data: Float32Array) => Float32Array[]): Promise<SafetensorsFile> {
  const entries = [];
  for (const k of bundle.keys()) {
    const to = pick(k);
    if (to === null) continue;
    const data = await bundle.readF32(k);
    const shape = [...bundle.info(k).shape];
    if (Array.isArray(to)) {
      const pieces = split!(k, data);
      to.forEach((n, i) => entries.push({ name: n, dtype: 'F32' as const, shape: [pieces[i]!.length / (shape[1] ?? 1), ...shape.slice(1)].slice(0, shape.length), data: pieces[i]! }));
    } else {
      entries.push({ name: to, dtype: 'F32' as const, shape, data: Float32Array.from(data) });
    }
  }
  return SafetensorsFile.fromBytes(encodeSafetensors(entries, metadata), name);
}

const samPart = () => part('sam.safetensors', (k) => (/^(image_encoder|prompt_encoder|mask_decoder)\./.test(k) ? k : null), { sam: samConfigMetadata(config.sam) });
const textPart = () =>
  part('clip-text.safetensors', (k) => (k === 'logit_scale' ? k : k.startsWith('text.') ? k.slice(5) : null), { 'clip.act': 'gelu', 'clip.text_heads': '4' });
const headPart = () => part('head.safetensors', (k) => (k.startsWith('clip_head.') ? k.slice('clip_head.'.length) : null), {});

async function assembleTo(file: string, sources: { sam: SafetensorsFile; clip: SafetensorsFile; head: SafetensorsFile }, opts = {}) {
  const plan = planBundle(sources, opts);
  await writeSafetensorsFile(file, plan.entries, { metadata: plan.metadata });
  return plan;
}

async function expectSameTensors(path: string) {
  const f = await SafetensorsFile.open(path);
  try {
    expect(f.keys().sort()).toEqual(bundle.keys().sort());
    for (const k of bundle.keys()) expect(Buffer.compare(Buffer.from(await f.readRaw(k)), Buffer.from(await bundle.readRaw(k))), k).toBe(0);
    expect(validateSamclipBundle(f)).toEqual(config);
  } finally {
    await f.close();
  }
}

describe('assembling a bundle', () => {
  it('from official SAM, OpenAI-named text tower and a bare-named head: bit-identical tensors, same configuration', async () => {
    const out = join(dir, 'a.safetensors');
    await assembleTo(out, { sam: await samPart(), clip: await textPart(), head: await headPart() }, { resolutions: { seg: 160, cls: 112 } });
    await expectSameTensors(out);
  });

  it('from a Hugging Face-named text tower (q/k/v split, projection transposed)', async () => {
    const hf = await part(
      'clip-hf.safetensors',
      (k) => {
        if (k === 'logit_scale') return k;
        if (!k.startsWith('text.')) return null;
        const n = clipHfNamesFor(k.slice(5));
        if (!n) throw new Error(`no HF name for ${k}`);
        return n.split ? n.keys : n.keys[0]!;
      },
      { 'clip.act': 'gelu', 'clip.text_heads': '4' },
      (_k, d) => [0, 1, 2].map((i) => d.slice((i * d.length) / 3, ((i + 1) * d.length) / 3)),
    );
    // The one transposed tensor: HF stores text_projection as a Linear weight [out, in].
    const bytes = await hf.readF32('text_projection.weight');
    expect(bytes.length).toBe(64 * 64);
    const fixed = await transposeInFile(hf, 'text_projection.weight');
    const out = join(dir, 'hf.safetensors');
    await assembleTo(out, { sam: await samPart(), clip: fixed, head: await headPart() }, { resolutions: { seg: 160, cls: 112 } });
    await expectSameTensors(out);
  });

  it('names bad sources', async () => {
    const sam = await samPart();
    const text = await textPart();
    const head = await headPart();
    expect(() => planBundle({ sam: text, clip: text, head })).toThrow(/SAM source is a clip checkpoint|not a checkpoint this engine knows/);
    expect(() => planBundle({ sam, clip: head, head })).toThrow(/no CLIP text tower/);
    expect(() => planBundle({ sam, clip: text, head: text })).toThrow(/no CLIP-head tensors/);
    const noHeads = await part('t.safetensors', (k) => (k === 'logit_scale' ? k : k.startsWith('text.') ? k.slice(5) : null), { 'clip.act': 'gelu' });
    // Width 64 -> 1 head by the width rule: valid, but not the fixture's 4 heads; an explicit option fixes it.
    expect(planBundle({ sam, clip: noHeads, head }).config.text.heads).toBe(1);
    expect(planBundle({ sam, clip: noHeads, head }, { textHeads: 4 }).config.text.heads).toBe(4);
    expect(() => planBundle({ sam, clip: noHeads, head }, { textHeads: 5 })).toThrow(/does not split into 5 heads/);
  });

  it('the command line validates bundles and reports errors', async () => {
    expect(await main(['--validate', BUNDLE])).toBe(0);
    expect(await main(['--validate', BUNDLE.replace('samclip/samclip_tiny.safetensors', 'sam_tiny.weights.safetensors')])).toBe(1);
    expect(await main(['--sam', 'x'])).toBe(2);
  });

  it('a random CLIP head on a real SAM + text tower gives a loadable bundle', async () => {
    const head = SafetensorsFile.fromBytes(randomClipHead({ ...config.clipHead, mlpWidths: [96, 80, 64] }, 3), 'random head');
    const out = join(dir, 'random.safetensors');
    const plan = await assembleTo(out, { sam: await samPart(), clip: await textPart(), head });
    expect(plan.config.clipHead.mlpWidths).toEqual([96, 80, 64]);
    const m = await SamClip.load(gpu(), out);
    const img = { width: 64, height: 48, channels: 3, data: new Uint8Array(64 * 48 * 3).fill(128) };
    const r = await m.classify(img, ['a', 'b'], { templates: 'name' });
    expect(r.probs.length).toBe(2);
    m.dispose();
  });
});

/** Copy of an in-memory file with one 2-D tensor transposed. */
async function transposeInFile(f: SafetensorsFile, name: string): Promise<SafetensorsFile> {
  const entries = [];
  for (const k of f.keys()) {
    const d = await f.readF32(k);
    const shape = [...f.info(k).shape];
    if (k === name) {
      const [r, c] = shape as [number, number];
      const t = new Float32Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = d[i * c + j]!;
      entries.push({ name: k, dtype: 'F32' as const, shape: [c, r], data: t });
    } else entries.push({ name: k, dtype: 'F32' as const, shape, data: Float32Array.from(d) });
  }
  return SafetensorsFile.fromBytes(encodeSafetensors(entries, { ...f.metadata }), f.name);
}
