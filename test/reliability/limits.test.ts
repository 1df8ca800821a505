/**
 * The resource limits of issue 12 one by one, in process and small: each fires as a named error
 * carrying the value and the limit, and each option lets a genuine input through.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_IMAGE_BYTES, ImageLimitError, decodeImage } from '../../src/io/index.js';
import { PthError, PthLimitError, openPth } from '../../src/weights/pth.js';
import { SafetensorsError, SafetensorsFile, SafetensorsLimitError } from '../../src/weights/safetensors.js';
import { FIXTURES } from '../helpers/reference.js';
import { buildSafetensors, f32Tensor, rawFile } from '../helpers/safetensors-build.js';
import { blackPng, deflatePth, jpegHeaderOnly, stride0Pth } from './hostile.js';

const MiB = 1 << 20;

function errorOf(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return null;
}

describe('safetensors header limits', () => {
  const file = buildSafetensors(Array.from({ length: 10 }, (_, i) => f32Tensor(`t${i}`, [1], [i])), { metadata: { note: 'a {brace} in a string' } });

  it('entries: refused over maxHeaderEntries, accepted at it', () => {
    const e = errorOf(() => SafetensorsFile.fromBytes(file, 'ten.safetensors', { maxHeaderEntries: 5 }));
    expect(e).toBeInstanceOf(SafetensorsLimitError);
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e).toMatchObject({ quantity: 'tensor entries in the header', limit: 5, option: 'maxHeaderEntries' });
    expect((e as SafetensorsLimitError).value).toBeGreaterThanOrEqual(10);
    expect(SafetensorsFile.fromBytes(file, 'ten.safetensors', { maxHeaderEntries: 10 }).keys()).toHaveLength(10);
  });

  it('parse time: a budget of 0 ms stops a long header at the first check', () => {
    const many = buildSafetensors(Array.from({ length: 3000 }, (_, i) => f32Tensor(`t${i}`, [1], [i])));
    const e = errorOf(() => SafetensorsFile.fromBytes(many, 'many.safetensors', { maxHeaderParseMs: 0 }));
    expect(e).toBeInstanceOf(SafetensorsLimitError);
    expect((e as Error).message).toMatch(/header parse time: \d+ ms is over the limit of 0 ms; raise it with the maxHeaderParseMs option/);
    expect(SafetensorsFile.fromBytes(many, 'many.safetensors').keys()).toHaveLength(3000);
  });

  it('a shape of 5000 dims is a syntax-level refusal, not 5000 numbers held', () => {
    const text = JSON.stringify({ w: { dtype: 'F32', shape: new Array(5000).fill(1), data_offsets: [0, 4] } });
    expect(() => SafetensorsFile.fromBytes(rawFile(text, new Uint8Array(4)), 'dims.safetensors')).toThrow(/array of more than 4096 elements/);
  });
});

describe('URL whole-file fallback', () => {
  const file = buildSafetensors([f32Tensor('w', [1000], new Float32Array(1000).fill(2))]);
  const noRange = async () => new Response(file.slice(), { status: 200, headers: { 'content-length': String(file.length) } });

  it('refused over maxUnrangedBytes, loaded under it', async () => {
    const e = await SafetensorsFile.fromUrl('http://x.test/m.safetensors', { fetch: noRange, maxUnrangedBytes: 1000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SafetensorsLimitError);
    expect(e).toMatchObject({ value: file.length, limit: 1000, option: 'maxUnrangedBytes' });
    const f = await SafetensorsFile.fromUrl('http://x.test/m.safetensors', { fetch: noRange, maxUnrangedBytes: file.length });
    expect((await f.readF32('w'))[999]).toBe(2);
  });

  it('a body shorter than its header accounts for is a truncation error', async () => {
    const short = async () => new Response(file.slice(0, file.length - 10), { status: 200 });
    await expect(SafetensorsFile.fromUrl('http://x.test/m.safetensors', { fetch: short })).rejects.toThrow(/download ended after \d+ of the \d+ bytes the header accounts for/);
  });

  it('a range answer shorter than asked is an error naming both counts', async () => {
    const dataStart = 8 + new DataView(file.buffer, file.byteOffset).getUint32(0, true);
    // Honest for the header's ranges, 10 bytes for any range in the data section.
    const liar = async (_u: string, init?: { headers?: Record<string, string> }) => {
      const [a, b] = (/bytes=(\d+)-(\d+)/.exec(init?.headers?.Range ?? '') ?? []).slice(1).map(Number) as [number, number];
      const body = a >= dataStart ? new Uint8Array(10) : file.slice(a, b + 1);
      return new Response(body, { status: 206, headers: { 'content-range': `bytes ${a}-${b}/${file.length}` } });
    };
    const f = await SafetensorsFile.fromUrl('http://x.test/m.safetensors', { fetch: liar, probeBytes: 16 });
    await expect(f.readF32('w')).rejects.toThrow(/range request for 4000 bytes at \d+ returned 10 bytes, expected 4000/);
  });
});

describe('.pth limits', () => {
  it('deflated entries: declared size over maxInflatedBytes, and past the 1032:1 deflate bound', async () => {
    const pth = await deflatePth(4 * MiB);
    const ckpt = await openPth(pth, 'z.pth', { maxInflatedBytes: MiB });
    const e = await ckpt.readTensor('w').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PthLimitError);
    expect(e).toMatchObject({ quantity: 'inflated size', value: 4 * MiB, limit: MiB, option: 'maxInflatedBytes' });
    expect((await (await openPth(pth, 'z.pth')).readTensor('w')).length).toBe(4 * MiB);
    // 4 MiB of zeros deflate to ~4 KB: declaring 1 GiB for them is impossible for deflate.
    await expect(openPth(await deflatePth(4 * MiB, 2 ** 30), 'lie.pth')).rejects.toThrow(/declares 1073741824 bytes from \d+ compressed bytes: more than deflate can expand \(1032:1\)/);
  });

  it('stride-0 expansion: refused over maxExpandedBytes, read correctly under a raised limit', async () => {
    const pth = stride0Pth([1024, 1024]); // one F32 element seen as 4 MiB
    const e = await openPth(pth, 's.pth', { maxExpandedBytes: MiB }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PthLimitError);
    expect(e).toBeInstanceOf(PthError);
    expect(e).toMatchObject({ value: 4 * MiB, limit: MiB, option: 'maxExpandedBytes' });
    const ok = await openPth(pth, 's.pth');
    const bytes = await ok.readTensor('w');
    expect(bytes.length).toBe(4 * MiB);
    expect(new Float32Array(bytes.buffer, bytes.byteOffset, 1024 * 1024).every((v) => v === 0)).toBe(true);
  });
});

describe('image limits', () => {
  it('a PNG over maxImageBytes is refused from its header; under it, decoded', async () => {
    const png = await blackPng(64, 48);
    const e = await decodeImage(png, 'small.png', { maxImageBytes: 64 * 48 * 4 - 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ImageLimitError);
    expect(e).toMatchObject({ quantity: 'decoded pixel memory', value: 64 * 48 * 4, option: 'maxImageBytes' });
    expect((await decodeImage(png, 'small.png', { maxImageBytes: 64 * 48 * 4 })).width).toBe(64);
  });

  it('a JPEG whose frame header declares 14000x14000 is refused before the decoder runs', async () => {
    const e = await decodeImage(jpegHeaderOnly(14000, 14000), 'huge.jpg').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ImageLimitError);
    expect((e as Error).message).toMatch(/huge\.jpg: JPEG of 14000x14000 pixels: decoded pixel memory: 784000000 .* over the limit of 536870912/);
    expect(DEFAULT_MAX_IMAGE_BYTES).toBe(512 * MiB);
    // maxMegapixels still applies on its own.
    await expect(decodeImage(jpegHeaderOnly(5000, 5000), 'big.jpg', { maxMegapixels: 20 })).rejects.toThrow(/megapixels: 25 is over the limit of 20/);
  });

  it('real photos decode with the default limits', async () => {
    const img = await decodeImage(readFileSync(join(FIXTURES, 'images', 'dog.jpg')), 'dog.jpg');
    expect(img.width * img.height).toBeGreaterThan(0);
  });
});
