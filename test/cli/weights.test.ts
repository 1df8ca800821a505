/**
 * `samclip weights inspect | convert | random | list` through the real binary: outputs checked
 * against the library (same safetensors bytes as `writeRandomWeights`, the `.pth` fixtures' recorded
 * tensor bytes, the header of the inspected file), and the refusal to overwrite without --force.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeRandomWeights } from '../../src/weights/random.js';
import { addCacheEntry } from '../helpers/model-cache.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { CLIP_TINY, DOG, FIXTURES, SAM_TINY, expectOk, expectOneLineError, samclip, CLI_TIMEOUT } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'samclip-weights-'));
const PTH = join(FIXTURES, 'pth', 'state-dict.pth');
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('weights inspect', { timeout: CLI_TIMEOUT }, () => {
  it('lists every tensor with shape and dtype, totals, family and metadata (JSON) of the tiny SAM and CLIP', async () => {
    const [sam, clip, text] = await Promise.all([
      samclip(['weights', 'inspect', SAM_TINY, '--json']),
      samclip(['weights', 'inspect', CLIP_TINY, '--json']),
      samclip(['weights', 'inspect', SAM_TINY, '--limit', '3']),
    ]);
    for (const r of [sam, clip, text]) expectOk(r);
    const s = JSON.parse(sam.stdout);
    const st = await SafetensorsFile.open(SAM_TINY);
    expect(s).toMatchObject({ format: 'safetensors', family: 'sam', tensors: st.keys().length, metadata: st.metadata });
    for (const row of s.keys) expect([row.dtype, row.shape], row.name).toEqual([st.info(row.name).dtype, [...st.info(row.name).shape]]);
    expect(s.params).toBe(st.keys().reduce((a, k) => a + st.info(k).shape.reduce((p, d) => p * d, 1), 0));
    expect(s.bytes).toBe(st.dataBytes);
    await st.close();
    expect(JSON.parse(clip.stdout).family).toBe('clip');
    expect(text.stdout).toMatch(/^family\s+sam$/m);
    expect(text.stdout).toMatch(/\.\.\. 199 more \(--limit\)/);
  });

  it('reads .pth checkpoints too, and names an unknown layout', async () => {
    const r = await samclip(['weights', 'inspect', PTH, '--json']);
    expectOk(r);
    const expected = JSON.parse(readFileSync(join(FIXTURES, 'pth', 'expected.json'), 'utf8'));
    const out = JSON.parse(r.stdout);
    expect(out.format).toBe('pth');
    expect(out.keys.map((k: { name: string }) => k.name).sort()).toEqual(expected.tensors.map((t: { name: string }) => t.name).sort());
  });

  it('refuses files that are not checkpoints in one line', async () => {
    const [img, missing] = await Promise.all([samclip(['weights', 'inspect', DOG]), samclip(['weights', 'inspect', join(tmp, 'none.safetensors')])]);
    expectOneLineError(img, 1, /dog\.jpg/);
    expectOneLineError(missing, 1, /checkpoint .*none\.safetensors: no such file/);
  });
});

describe('weights convert', { timeout: CLI_TIMEOUT }, () => {
  it('converts a .pth to safetensors with the recorded bytes (keep and f16), never overwriting without --force', async () => {
    const expected = JSON.parse(readFileSync(join(FIXTURES, 'pth', 'expected.json'), 'utf8')).tensors as { name: string; bytes: string; as_f16?: string; dtype: string }[];
    const out = join(tmp, 'converted.safetensors');
    const out16 = join(tmp, 'converted16.safetensors');
    const [keep, f16] = await Promise.all([
      samclip(['weights', 'convert', PTH, '--out', out, '--json']),
      samclip(['weights', 'convert', PTH, '-o', out16, '--dtype', 'f16', '--quiet']),
    ]);
    expectOk(keep);
    expectOk(f16);
    expect(JSON.parse(keep.stdout)).toMatchObject({ output: out, tensors: expected.length });
    for (const [file, field] of [[out, 'bytes'], [out16, 'as_f16']] as const) {
      const st = await SafetensorsFile.open(file);
      for (const t of expected) {
        const want = t[field] ?? t.bytes;
        expect(Buffer.from(await st.readRaw(t.name)).toString('base64'), `${file} ${t.name}`).toBe(want);
      }
      await st.close();
    }
    const before = sha(out);
    const again = await samclip(['weights', 'convert', PTH, '--out', out]);
    expectOneLineError(again, 1, /converted\.safetensors already exists; pass --force to overwrite it/);
    expect(sha(out)).toBe(before);
    expectOk(await samclip(['weights', 'convert', PTH, '--out', out, '--force', '--dtype', 'f32', '--quiet']));
  });

  it('a file that is not a .pth, and a bad --dtype, are one-line errors', async () => {
    const [bad, dtype] = await Promise.all([
      samclip(['weights', 'convert', DOG, '--out', join(tmp, 'x.safetensors')]),
      samclip(['weights', 'convert', PTH, '--dtype', 'f8']),
    ]);
    expectOneLineError(bad, 1, /dog\.jpg/);
    expectOneLineError(dtype, 2, /--dtype must be keep, f32 or f16, got 'f8'/);
  });
});

describe('weights random', { timeout: CLI_TIMEOUT }, () => {
  it('writes the same file as the library generator, which inspect detects as SAM', async () => {
    const out = join(tmp, 'random-tiny.safetensors');
    const r = await samclip(['weights', 'random', '--family', 'sam-tiny', '--seed', '7', '--out', out, '--json']);
    expectOk(r);
    expect(JSON.parse(r.stdout)).toMatchObject({ family: 'sam-tiny', seed: 7, dtype: 'F32', tensors: 202 });
    const lib = join(tmp, 'random-tiny-lib.safetensors');
    await writeRandomWeights(lib, { family: 'sam-tiny', seed: 7 });
    expect(sha(out)).toBe(sha(lib));
    const [inspect, again, family] = await Promise.all([
      samclip(['weights', 'inspect', out, '--json', '--summary']),
      samclip(['weights', 'random', '--family', 'sam-tiny', '--out', out]),
      samclip(['weights', 'random', '--family', 'sam-vit-z', '--out', join(tmp, 'z.safetensors')]),
    ]);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ family: 'sam', tensors: 202 });
    expectOneLineError(again, 1, /already exists; pass --force/);
    expectOneLineError(family, 2, /--family must be one of sam-vit-b, .*got 'sam-vit-z'/);
    expect(existsSync(join(tmp, 'z.safetensors'))).toBe(false);
  });
});

describe('weights list', { timeout: CLI_TIMEOUT }, () => {
  it('shows the registry and what the cache holds; --verify re-hashes each entry against its record', async () => {
    const cache = join(tmp, 'cache');
    addCacheEntry(cache, 'clip-vit-b-16', CLIP_TINY);
    // A file without a record (an interrupted or older pull) does not count as cached.
    const dir = join(cache, 'sam-vit-b');
    await import('node:fs').then((fs) => fs.mkdirSync(dir, { recursive: true }));
    writeFileSync(join(dir, 'model.safetensors'), 'x');
    const r = await samclip(['weights', 'list', '--cache', cache, '--json']);
    expectOk(r);
    const out = JSON.parse(r.stdout);
    const sam2 = ['t', 's', 'b-plus', 'l'].flatMap((s) => [`sam2.1-hiera-${s}`, `sam2.1-hiera-${s}-hf`]);
    expect(out.weights.map((w: { name: string }) => w.name)).toEqual(['sam-vit-b', 'sam-vit-l', 'sam-vit-h', ...sam2, 'clip-vit-b-16', 'openclip-vit-b-16-datacomp', 'openclip-vit-l-14-datacomp']);
    const clip = out.weights.findIndex((w: { name: string }) => w.name === 'clip-vit-b-16');
    expect(out.weights[3]).toMatchObject({ cached: false, state: 'no', url: 'https://huggingface.co/facebook/sam2.1-hiera-tiny/resolve/main/sam2.1_hiera_tiny.pt' });
    expect(out.weights[0]).toMatchObject({ cached: false, state: 'unrecorded', url: 'https://huggingface.co/facebook/sam-vit-base/resolve/main/model.safetensors' });
    expect(out.weights[0].sha256).toMatch(/^[0-9a-f]{64}$/); // pinned from the Hub's file page
    expect(out.weights[1]).toMatchObject({ cached: false, state: 'no' });
    expect(out.weights[clip]).toMatchObject({ cached: true, state: 'yes', sha256: null });

    const verify = await samclip(['weights', 'list', '--cache', cache, '--verify', '--json']);
    expectOneLineError(verify, 1, /1 cached file\(s\) failed verification: sam-vit-b \(no record of its download/);
    expect(JSON.parse(verify.stdout).weights[clip]).toMatchObject({ cached: true, state: 'verified' });
  });
});
