/**
 * Seeded fuzzing of the file readers as an attacker would feed them, on top of the header fuzzer
 * of test/weights/safetensors-fuzz.test.ts:
 *  - safetensors over HTTP, from a server that misbehaves at random (ignores Range, sends more or
 *    fewer bytes, lies in Content-Range, fails);
 *  - `.pth` archives with random byte flips, zeroed and duplicated ranges, truncations and junk;
 *  - PNG and JPEG bytes with the same kinds of damage.
 * Each input must end in the reader's named error or a result that is consistent (the bytes the
 * header points at, an image whose buffer matches its size); never a TypeError, RangeError or hang.
 * SAMCLIP_SOAK=1 runs ten times as many cases.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SamclipError } from '../../src/gpu/errors.js';
import { decodeImage } from '../../src/io/decode.js';
import { encodePng } from '../../src/io/encode.js';
import { ImageFileError } from '../../src/io/errors.js';
import { mulberry32 } from '../../src/util/mulberry32.js';
import { PthError, openPth } from '../../src/weights/pth.js';
import { SafetensorsError, SafetensorsFile } from '../../src/weights/safetensors.js';
import { FIXTURES } from '../helpers/reference.js';
import { buildSafetensors, f16Tensor, f32Tensor, i32Tensor } from '../helpers/safetensors-build.js';

const SCALE = process.env.SAMCLIP_SOAK === '1' ? 10 : 1;

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** One random kind of damage to a byte array (copy). */
function damage(r: Rand, src: Uint8Array): Uint8Array {
  const b = new Uint8Array(src);
  const at = Math.floor(r() * b.length);
  switch (pick(r, ['flip', 'flips', 'zero', 'ff', 'truncate', 'junk', 'duplicate', 'swap'])) {
    case 'flip':
      b[at] ^= 1 << Math.floor(r() * 8);
      return b;
    case 'flips':
      for (let i = 0; i < 1 + Math.floor(r() * 16); i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      return b;
    case 'zero':
      b.fill(0, at, at + 1 + Math.floor(r() * 64));
      return b;
    case 'ff':
      b.fill(0xff, at, at + 1 + Math.floor(r() * 8));
      return b;
    case 'truncate':
      return b.subarray(0, at);
    case 'junk': {
      const out = new Uint8Array(b.length + 1 + Math.floor(r() * 300));
      out.set(b);
      for (let i = b.length; i < out.length; i++) out[i] = Math.floor(r() * 256);
      return out;
    }
    case 'duplicate': {
      const len = 1 + Math.floor(r() * 200);
      const from = Math.floor(r() * b.length);
      const out = new Uint8Array(b.length + len);
      out.set(b.subarray(0, at));
      out.set(b.subarray(from, from + len), at);
      out.set(b.subarray(at), at + Math.min(len, b.length - from));
      return out.subarray(0, b.length + Math.min(len, b.length - from));
    }
    default: {
      const j = Math.floor(r() * b.length);
      [b[at], b[j]] = [b[j]!, b[at]!];
      return b;
    }
  }
}

/** Named errors by class; anything that is not the expected class is a failure. */
function tally(): { named: Map<string, number>; ok: number; bad: string[]; add(e: unknown, expected: new (...a: never[]) => Error, what: string): void } {
  return {
    named: new Map(),
    ok: 0,
    bad: [],
    add(e, expected, what) {
      if (e === null) this.ok++;
      else if (e instanceof expected) this.named.set((e as Error).name, (this.named.get((e as Error).name) ?? 0) + 1);
      else this.bad.push(`${what}: ${(e as Error)?.name}: ${(e as Error)?.message}`);
    },
  };
}

async function errorOf(f: () => Promise<unknown>): Promise<unknown> {
  try {
    await f();
    return null;
  } catch (e) {
    return e;
  }
}

describe('safetensors from a misbehaving server', () => {
  const file = buildSafetensors([
    f32Tensor('a', [3, 5], Array.from({ length: 15 }, (_, i) => i / 7)),
    f16Tensor('b', [9], [1, 2, 3, 4, 5, 6, 7, 8, 9]),
    i32Tensor('c', [4], [1, -1, 7, 2 ** 31 - 1]),
  ]);

  it(`${300 * SCALE} seeded servers: SafetensorsError or the exact bytes`, async () => {
    const r = mulberry32(777);
    const t = tally();
    for (let i = 0; i < 300 * SCALE; i++) {
      const behaviour = () => pick(r, ['honest', 'honest', 'honest', 'ignore-range', 'more', 'fewer', 'wrong-start', 'wrong-total', 'no-content-range', 'status-500', 'throws', 'chunked']);
      const fetch = async (_u: string, init?: { headers?: Record<string, string> }): Promise<Response> => {
        const m = /bytes=(\d+)-(\d+)/.exec(init?.headers?.Range ?? '');
        const [a, b] = m ? [Number(m[1]), Math.min(Number(m[2]), file.length - 1)] : [0, file.length - 1];
        const kind = behaviour();
        const cr = (s: number, e: number, total = file.length) => ({ 'content-range': `bytes ${s}-${e}/${total}` });
        switch (kind) {
          case 'ignore-range':
            return new Response(file.slice(), { status: 200 });
          case 'more':
            return new Response(file.slice(a, b + 1 + 1 + Math.floor(r() * 50)), { status: 206, headers: cr(a, b) });
          case 'fewer':
            return new Response(file.slice(a, Math.max(a, b - Math.floor(r() * 10))), { status: 206, headers: cr(a, b) });
          case 'wrong-start':
            return new Response(file.slice(a + 1, b + 2), { status: 206, headers: cr(a + 1, b + 1) });
          case 'wrong-total':
            return new Response(file.slice(a, b + 1), { status: 206, headers: cr(a, b, file.length + 7) });
          case 'no-content-range':
            return new Response(file.slice(a, b + 1), { status: 206 });
          case 'status-500':
            return new Response('oops', { status: 500, statusText: 'Internal Server Error' });
          case 'throws':
            throw new TypeError('fetch failed: connection reset');
          case 'chunked': {
            const body = file.slice(a, b + 1);
            const stream = new ReadableStream<Uint8Array>({
              start(c) {
                for (let k = 0; k < body.length; k += 3) c.enqueue(body.slice(k, k + 3));
                c.close();
              },
            });
            return new Response(stream, { status: 206, headers: cr(a, b) });
          }
          default:
            return new Response(file.slice(a, b + 1), { status: 206, headers: cr(a, b) });
        }
      };
      const e = await errorOf(async () => {
        const f = await SafetensorsFile.fromUrl('http://fuzz.test/m.safetensors', { fetch, probeBytes: pick(r, [8, 16, 64, 4096]) });
        for (const k of f.keys()) {
          const got = await f.readRaw(k);
          const { dataOffsets } = f.info(k);
          const start = 8 + new DataView(file.buffer).getUint32(0, true) + dataOffsets[0];
          expect(Buffer.from(got).equals(Buffer.from(file.subarray(start, start + got.length))), `${k} bytes`).toBe(true);
        }
      });
      t.add(e, SafetensorsError, `server ${i}`);
    }
    console.log(`safetensors URL fuzz: ${t.ok} read whole, named errors ${JSON.stringify(Object.fromEntries(t.named))}`);
    expect(t.bad, t.bad.slice(0, 5).join('\n')).toEqual([]);
    expect(t.ok).toBeGreaterThan(10);
  });
});

describe('.pth damage', () => {
  const inputs = ['state-dict.pth', 'protocol4.pth', 'nested-model.pth'].map((f) => readFileSync(join(FIXTURES, 'pth', f)));

  it(`${600 * SCALE} damaged archives: PthError or tensors of their declared size`, async () => {
    const r = mulberry32(4242);
    const t = tally();
    let slowest = 0;
    for (let i = 0; i < 600 * SCALE; i++) {
      let bytes: Uint8Array = new Uint8Array(pick(r, inputs));
      for (let k = 0; k < 1 + Math.floor(r() * 3); k++) bytes = damage(r, bytes);
      const t0 = performance.now();
      const e = await errorOf(async () => {
        const ckpt = await openPth(bytes, `fuzz-${i}.pth`, { maxExpandedBytes: 1 << 20, maxInflatedBytes: 1 << 20 });
        for (const info of ckpt.tensors) expect((await ckpt.readTensor(info)).length).toBe(info.byteLength);
      });
      slowest = Math.max(slowest, performance.now() - t0);
      t.add(e, PthError, `archive ${i}`);
    }
    console.log(`pth fuzz: ${t.ok} read whole, named errors ${JSON.stringify(Object.fromEntries(t.named))}, slowest ${slowest.toFixed(0)} ms`);
    expect(t.bad, t.bad.slice(0, 5).join('\n')).toEqual([]);
    expect(slowest).toBeLessThan(2000);
  });
});

describe('image damage', () => {
  const jpeg = readFileSync(join(FIXTURES, 'images', 'dog.jpg'));
  const r0 = mulberry32(3);
  const png = encodePng({ width: 40, height: 30, channels: 3, data: Uint8Array.from({ length: 40 * 30 * 3 }, () => Math.floor(r0() * 256)) });

  it(`${150 * SCALE} damaged JPEG / PNG files: ImageFileError or a consistent image`, async () => {
    const r = mulberry32(9001);
    const t = tally();
    for (let i = 0; i < 150 * SCALE; i++) {
      const src = i % 3 === 0 ? jpeg : png;
      let bytes: Uint8Array = new Uint8Array(src);
      for (let k = 0; k < 1 + Math.floor(r() * 2); k++) bytes = damage(r, bytes);
      const e = await errorOf(async () => {
        const img = await decodeImage(bytes, `fuzz-${i}`, { maxImageBytes: 64 << 20 });
        expect(img.width * img.height * img.channels).toBe(img.data.length);
        expect(img.width).toBeGreaterThan(0);
      });
      t.add(e, ImageFileError, `image ${i} (${src === jpeg ? 'jpeg' : 'png'})`);
    }
    console.log(`image fuzz: ${t.ok} decoded, named errors ${JSON.stringify(Object.fromEntries(t.named))}`);
    expect(t.bad, t.bad.slice(0, 5).join('\n')).toEqual([]);
    expect(SamclipError).toBeDefined();
  });
});
