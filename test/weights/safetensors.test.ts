import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.js';
import { loadDawn } from '../../src/gpu/device.js';
import { bf16BitsToF32, f16BitsToF32, f32ToF16Bits } from '../../src/gpu/dtype.js';
import { SafetensorsFile, SafetensorsError, type ByteSource } from '../../src/weights/safetensors.js';
import { narrowF32BitsToF16, widenF16 } from '../../src/weights/safetensors-convert.js';
import { MemorySource } from '../../src/weights/safetensors-source.js';
import {
  type BuildTensor,
  bf16Tensor,
  buildSafetensors,
  bytesOf,
  f16Tensor,
  f32Tensor,
  i32Tensor,
  i64Tensor,
  rawFile,
  rng,
  u8Tensor,
} from '../helpers/safetensors-build.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/reference/', import.meta.url));
const SAM_WEIGHTS = join(FIXTURES, 'sam_tiny.weights.safetensors');
const SAM_SPEC = JSON.parse(readFileSync(join(FIXTURES, 'sam_tiny.spec.json'), 'utf8')) as {
  model: string;
  tensors: { name: string; shape: number[]; dtype: string; sha256: string }[];
};

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Bit-exact equality of two float arrays; the failure names the first differing index, both values and the count. */
export function expectBitsEqual(actual: Float32Array, expected: Float32Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let first = -1;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    // NaN equals NaN (payloads may be canonicalised by f16 readback); everything else bit for bit.
    if (a[i] !== e[i] && !(Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (count) {
    expect.fail(`${what}: ${count}/${a.length} elements differ; first at ${first}: got ${actual[first]} (0x${a[first]!.toString(16)}), want ${expected[first]} (0x${e[first]!.toString(16)})`);
  }
}

const sample = (n: number, seed: number, scale = 1): number[] => {
  const r = rng(seed);
  return Array.from({ length: n }, () => (r() * 2 - 1) * scale);
};

/** Expect a SafetensorsError whose message matches `re` and names the file. */
function expectStError(fn: () => unknown, re: RegExp, file = 'bad.safetensors'): SafetensorsError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected a SafetensorsError matching ${re}`).toBeInstanceOf(SafetensorsError);
  const msg = (err as Error).message;
  expect(msg).toContain(file);
  expect(msg).toMatch(re);
  return err as SafetensorsError;
}

async function expectStErrorAsync(p: Promise<unknown>, re: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SafetensorsError);
  expect((err as Error).message).toMatch(re);
}

describe('reference fixture sam_tiny', () => {
  const check = async (f: SafetensorsFile): Promise<void> => {
    expect(f.metadata.model).toBe('sam_tiny');
    expect(new Set(f.keys())).toEqual(new Set(SAM_SPEC.tensors.map((t) => t.name)));
    for (const spec of SAM_SPEC.tensors) {
      const info = f.info(spec.name);
      expect(info.dtype, spec.name).toBe(spec.dtype);
      expect([...info.shape], spec.name).toEqual(spec.shape);
      const raw = await f.readRaw(spec.name);
      expect(sha256(raw), spec.name).toBe(spec.sha256);
      const f32 = await f.readF32(spec.name);
      expect(sha256(bytesOf(f32)), spec.name).toBe(spec.sha256);
    }
  };

  it('open(path): every tensor matches the spec sha256', async () => {
    const f = await SafetensorsFile.open(SAM_WEIGHTS);
    try {
      await check(f);
      expect(f.loadStats.bytesRead).toBe(2 * f.dataBytes);
    } finally {
      await f.close();
    }
    await expectStErrorAsync(f.readRaw(SAM_SPEC.tensors[0]!.name), /closed/);
  });

  it('fromBytes: every tensor matches, F32 reads are zero-copy views', async () => {
    const bytes = readFileSync(SAM_WEIGHTS);
    const f = SafetensorsFile.fromBytes(bytes, 'sam_tiny');
    await check(f);
    const name = SAM_SPEC.tensors[0]!.name;
    const v = await f.readF32(name);
    expect(v.buffer).toBe(bytes.buffer);
  });

  it('missing key suggests the closest names', async () => {
    const f = await SafetensorsFile.open(SAM_WEIGHTS);
    const e = expectStError(() => f.info('image_encoder.blocks.0.attn.qkv.weigth'), /no tensor 'image_encoder\.blocks\.0\.attn\.qkv\.weigth'.*did you mean 'image_encoder\.blocks\.0\.attn\.qkv\.weight'/, SAM_WEIGHTS);
    expect(e.key).toBe('image_encoder.blocks.0.attn.qkv.weigth');
    await f.close();
  });
});

describe('dtypes and reads', () => {
  const vals = [0, -0, 1, -2.5, 65504, 1e-7, 6e-5, 3.14159, -1e30, Infinity, -Infinity, NaN, ...sample(37, 1, 100)];
  const tensors: BuildTensor[] = [
    f32Tensor('f32', [7, 7], vals),
    f16Tensor('f16', [49], vals),
    bf16Tensor('bf16', [1, 49], vals),
    i32Tensor('i32', [3], [-2147483648, 0, 2147483647]),
    i64Tensor('i64', [2, 2], [-5n, 2147483647n, -2147483648n, 0n]),
    i64Tensor('i64big', [1], [2147483648n]),
    u8Tensor('u8', [5], [0, 1, 127, 128, 255]),
    { name: 'scalar', dtype: 'F32', shape: [], data: bytesOf(new Float32Array([42])) },
    { name: 'empty', dtype: 'F16', shape: [0, 3], data: new Uint8Array(0) },
  ];
  const file = buildSafetensors(tensors, { metadata: { format: 'pt', note: 'ünïcode ✓' } });
  const f = SafetensorsFile.fromBytes(file, 'mixed.safetensors');

  it('header: keys, info, metadata', () => {
    expect(f.keys()).toEqual(tensors.map((t) => t.name));
    expect(f.metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
    expect(f.info('bf16')).toEqual({ dtype: 'BF16', shape: [1, 49], byteLength: 98, dataOffsets: [98 + 196, 98 + 196 + 98] });
    expect(f.has('u8')).toBe(true);
    expect(f.has('nope')).toBe(false);
  });

  it('F16 and BF16 widen exactly', async () => {
    const h = new Uint16Array(tensors[1]!.data.buffer);
    expectBitsEqual(await f.readF32('f16'), Float32Array.from(h, f16BitsToF32), 'f16');
    const b = new Uint16Array(tensors[2]!.data.buffer);
    expectBitsEqual(await f.readF32('bf16'), Float32Array.from(b, bf16BitsToF32), 'bf16');
    expectBitsEqual(await f.readF32('f32'), Float32Array.from(vals), 'f32');
    expect([...(await f.readF32('scalar'))]).toEqual([42]);
    expect((await f.readF32('empty')).length).toBe(0);
  });

  it('integers: readI32, and readF32 refuses them', async () => {
    expect([...(await f.readI32('i32'))]).toEqual([-2147483648, 0, 2147483647]);
    expect([...(await f.readI32('i64'))]).toEqual([-5, 2147483647, -2147483648, 0]);
    expect([...(await f.readI32('u8'))]).toEqual([0, 1, 127, 128, 255]);
    await expectStErrorAsync(f.readI32('i64big'), /mixed\.safetensors.*'i64big'.*element 0 = 2147483648 does not fit in i32/);
    await expectStErrorAsync(f.readF32('i32'), /'i32' is I32; readF32 reads F32, F16 and BF16.*use readI32/);
    await expectStErrorAsync(f.readI32('f16'), /'f16' is F16; readI32 reads integer tensors/);
  });

  it('unaligned in-memory data is copied, aligned data is viewed', async () => {
    const big = new Uint8Array(file.length + 3);
    big.set(file, 1); // every tensor now sits at an odd address
    const g = SafetensorsFile.fromBytes(big.subarray(1, 1 + file.length), 'odd');
    const raw = await g.readRaw('f32');
    expect(raw.buffer).not.toBe(big.buffer);
    expectBitsEqual(await g.readF32('f32'), Float32Array.from(vals), 'f32 odd');
    expectBitsEqual(await g.readF32('f16'), await f.readF32('f16'), 'f16 odd');
    expect((await f.readRaw('f32')).buffer).toBe(file.buffer);
    // U8 needs no alignment: a view even at an odd address.
    expect((await g.readRaw('u8')).buffer).toBe(big.buffer);
    // The same from a Node Buffer (what readFileSync returns), whose slice() is a view, not a copy.
    const buf = Buffer.alloc(file.length + 3);
    buf.set(file, 1);
    const b = SafetensorsFile.fromBytes(buf.subarray(1, 1 + file.length), 'odd buffer');
    expectBitsEqual(await b.readF32('f32'), Float32Array.from(vals), 'f32 odd buffer');
  });

  it('file sources read only the header at open, then exactly the tensor asked for', async () => {
    const reads: [number, number][] = [];
    const mem = new MemorySource(file, 'counted');
    const counted: ByteSource = {
      name: 'counted',
      size: file.length,
      view: () => null,
      read: (o, l, into) => {
        reads.push([o, l]);
        return mem.read(o, l, into);
      },
      close: async () => {},
    };
    const g = await SafetensorsFile.fromSource(counted);
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(reads).toEqual([
      [0, 8],
      [8, n],
    ]);
    reads.length = 0;
    expectBitsEqual(await g.readF32('bf16'), await f.readF32('bf16'), 'bf16 via source');
    expect(reads).toEqual([[8 + n + 294, 98]]);
  });

  it('Node file: open, read, close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'st-'));
    try {
      const p = join(dir, 'mixed.safetensors');
      writeFileSync(p, file);
      const g = await SafetensorsFile.open(p);
      expectBitsEqual(await g.readF32('f16'), await f.readF32('f16'), 'f16 from disk');
      expect([...(await g.readI32('i64'))]).toEqual([-5, 2147483647, -2147483648, 0]);
      await g.close();
      await expectStErrorAsync(SafetensorsFile.open(join(dir, 'missing.safetensors')), /missing\.safetensors: cannot open/);
      writeFileSync(join(dir, 'short.safetensors'), new Uint8Array(5));
      await expectStErrorAsync(SafetensorsFile.open(join(dir, 'short.safetensors')), /5 bytes, shorter than the 8-byte/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('fromUrl', () => {
  const tensors = [f32Tensor('a', [3, 5], sample(15, 2)), f16Tensor('b', [9], sample(9, 3))];
  const file = buildSafetensors(tensors, { metadata: { k: 'v' } });
  const url = 'https://example.test/m.safetensors';

  /** A fake server: honours Range (or not), records requests. */
  function server(opts: { ranges: boolean; exposeRange?: boolean }): { fetch: (u: string, init?: { headers?: Record<string, string> }) => Promise<Response>; log: string[] } {
    const log: string[] = [];
    return {
      log,
      fetch: async (u, init) => {
        if (u !== url) return new Response('not found', { status: 404, statusText: 'Not Found' });
        const range = init?.headers?.Range;
        log.push(range ?? 'GET');
        const m = range && opts.ranges ? /^bytes=(\d+)-(\d+)$/.exec(range) : null;
        if (!m) return new Response(file.slice(), { status: 200 });
        const a = Number(m[1]);
        const b = Math.min(Number(m[2]), file.length - 1);
        const headers: Record<string, string> = opts.exposeRange === false ? {} : { 'Content-Range': `bytes ${a}-${b}/${file.length}` };
        return new Response(file.slice(a, b + 1), { status: 206, headers });
      },
    };
  }

  it('range requests: header in two requests when longer than the probe, then one per tensor', async () => {
    const s = server({ ranges: true });
    const f = await SafetensorsFile.fromUrl(url, { fetch: s.fetch, probeBytes: 16 });
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(s.log).toEqual(['bytes=0-15', `bytes=8-${8 + n - 1}`]);
    expect(f.metadata).toEqual({ k: 'v' });
    expectBitsEqual(await f.readF32('a'), Float32Array.from(sample(15, 2)), 'a');
    expect(s.log[2]).toBe(`bytes=${8 + n}-${8 + n + 59}`);
    expect(s.log.length).toBe(3);
  });

  it('one request when the probe covers the header', async () => {
    const s = server({ ranges: true });
    const f = await SafetensorsFile.fromUrl(url, { fetch: s.fetch });
    expect(s.log).toEqual([`bytes=0-${256 * 1024 - 1}`]);
    expect((await f.readF32('b')).length).toBe(9);
  });

  it('server without Range support: whole download, then in memory', async () => {
    const s = server({ ranges: false });
    const f = await SafetensorsFile.fromUrl(url, { fetch: s.fetch });
    expectBitsEqual(await f.readF32('a'), Float32Array.from(sample(15, 2)), 'a');
    expect(s.log.length).toBe(1);
  });

  it('206 without a readable Content-Range (CORS): falls back to a full download', async () => {
    const s = server({ ranges: true, exposeRange: false });
    const f = await SafetensorsFile.fromUrl(url, { fetch: s.fetch });
    expect(s.log).toEqual([`bytes=0-${256 * 1024 - 1}`, 'GET']);
    expect(f.keys()).toEqual(['a', 'b']);
  });

  it('HTTP errors name the URL', async () => {
    const s = server({ ranges: true });
    await expectStErrorAsync(SafetensorsFile.fromUrl('https://example.test/x', { fetch: s.fetch }), /example\.test\/x: HTTP 404 Not Found/);
  });
});

describe('strict validation', () => {
  const good = [f32Tensor('w', [2, 2], [1, 2, 3, 4]), f16Tensor('b', [2], [1, 2])];
  const d24 = new Uint8Array(20);
  const fromHeader = (h: unknown, data = d24): Uint8Array => rawFile(typeof h === 'string' ? h : JSON.stringify(h), data);
  const bad = (bytes: Uint8Array): (() => unknown) => () => SafetensorsFile.fromBytes(bytes, 'bad.safetensors');
  const W = { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] };
  const B = { dtype: 'F16', shape: [2], data_offsets: [16, 20] };

  it('accepts: any key order, space padding, zero-size tensors, no tensors, null metadata, __proto__ names', async () => {
    expect(SafetensorsFile.fromBytes(fromHeader({ b: B, w: W }), 'x').keys()).toEqual(['w', 'b']);
    expect(SafetensorsFile.fromBytes(fromHeader(`  ${JSON.stringify({ w: W, b: B })}     `), 'x').keys()).toEqual(['w', 'b']);
    const z = { dtype: 'F32', shape: [0, 4], data_offsets: [16, 16] };
    expect(SafetensorsFile.fromBytes(fromHeader({ w: W, z, b: B }), 'x').info('z').byteLength).toBe(0);
    expect(SafetensorsFile.fromBytes(fromHeader({}, new Uint8Array(0)), 'x').keys()).toEqual([]);
    expect(SafetensorsFile.fromBytes(fromHeader({ __metadata__: null, w: W, b: B }), 'x').metadata).toEqual({});
    const p = SafetensorsFile.fromBytes(fromHeader(`{"__proto__":${JSON.stringify(W)},"b":${JSON.stringify(B)}}`), 'x');
    expect(p.keys()).toEqual(['__proto__', 'b']);
    const m = SafetensorsFile.fromBytes(fromHeader(`{"__metadata__":{"__proto__":"x"},"w":${JSON.stringify(W)},"b":${JSON.stringify(B)}}`), 'x');
    expect(Object.keys(m.metadata)).toEqual(['__proto__']);
    // Unknown fields in an entry are ignored, as the reference implementation does.
    expect(SafetensorsFile.fromBytes(fromHeader({ w: { ...W, extra: 1 }, b: B }), 'x').has('w')).toBe(true);
    expect(SafetensorsFile.fromBytes(buildSafetensors(good), 'x').keys()).toEqual(['w', 'b']);
  });

  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /0 bytes, shorter than the 8-byte header length field/],
    ['7 bytes', new Uint8Array(7), /7 bytes, shorter than the 8-byte/],
    ['length past end', (() => { const b = fromHeader({ w: W, b: B }); new DataView(b.buffer).setUint32(0, b.length, true); return b; })(), /header length \d+ runs past the end of the file/],
    ['length > 100 MB', (() => { const b = fromHeader({ w: W, b: B }); new DataView(b.buffer).setUint32(0, 100_000_001, true); return b; })(), /header length 100000001 is over the 100000000-byte limit/],
    ['length high word', (() => { const b = fromHeader({ w: W, b: B }); new DataView(b.buffer).setUint32(4, 1, true); return b; })(), /header length 42\d+ is over/],
    ['not UTF-8', (() => { const b = fromHeader('{"w\u00ff":1}'); b[11] = 0xff; return b; })(), /not valid UTF-8/],
    ['not JSON', fromHeader('{"w": }'), /not valid JSON: unexpected character "}" at character 6/],
    ['trailing garbage', fromHeader('{} x'), /not valid JSON: unexpected content after the top-level value/],
    ['truncated JSON', fromHeader('{"w": {"dtype": "F32"'), /not valid JSON: expected ',' or '}'/],
    ['BOM', fromHeader('\ufeff{}', new Uint8Array(0)), /not valid JSON/],
    ['deep nesting', fromHeader('['.repeat(100_000)), /nesting deeper than 64/],
    ['array header', fromHeader('[1,2]'), /header JSON is an array of 2, not an object/],
    ['entry not object', fromHeader({ w: [0, 16] }), /tensor 'w': entry is an array of 2, not an object/],
    ['missing dtype', fromHeader({ w: { shape: [2, 2], data_offsets: [0, 16] }, b: B }), /tensor 'w': missing field 'dtype'/],
    ['missing shape', fromHeader({ w: { dtype: 'F32', data_offsets: [0, 16] }, b: B }), /tensor 'w': missing field 'shape'/],
    ['missing offsets', fromHeader({ w: { dtype: 'F32', shape: [4] }, b: B }), /tensor 'w': missing field 'data_offsets'/],
    ['dtype not string', fromHeader({ w: { ...W, dtype: 32 }, b: B }), /tensor 'w': 'dtype' is the number 32, not a string/],
    ['unknown dtype', fromHeader({ w: { ...W, dtype: 'float32' }, b: B }), /tensor 'w': unknown dtype 'float32' \(known: BOOL/],
    ['shape not array', fromHeader({ w: { ...W, shape: '2,2' }, b: B }), /tensor 'w': 'shape' is the string "2,2", not an array/],
    ['negative dim', fromHeader({ w: { ...W, shape: [-2, -2] }, b: B }), /tensor 'w': shape\[0\] is -2, not a non-negative integer/],
    ['fractional dim', fromHeader({ w: { ...W, shape: [2.5, 2] }, b: B }), /shape\[0\] is 2.5, not a non-negative integer/],
    ['2.0 literal', fromHeader('{"w":{"dtype":"F32","shape":[2.0,2],"data_offsets":[0,16]}}', new Uint8Array(16)), /shape\[0\] is 2.0, not a non-negative integer/],
    ['exponent literal', fromHeader('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16e0]}}', new Uint8Array(16)), /data_offsets\[1\] is 16e0/],
    ['dim is null', fromHeader({ w: { ...W, shape: [null, 4] }, b: B }), /shape\[0\] is null/],
    ['offsets length 3', fromHeader({ w: { ...W, data_offsets: [0, 8, 16] }, b: B }), /'data_offsets' is an array of 3; expected \[begin, end\]/],
    ['negative offset', fromHeader({ w: { ...W, data_offsets: [-16, 0] }, b: B }), /data_offsets\[0\] is -16/],
    ['offset > 2^53', fromHeader('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,99999999999999999999]}}', new Uint8Array(16)), /data_offsets\[1\] = 99999999999999999999 is beyond 2\^53/],
    ['begin > end', fromHeader({ w: { ...W, data_offsets: [16, 0] }, b: B }), /tensor 'w': data_offsets \[16, 0\] begin after end/],
    ['size mismatch', fromHeader({ w: { ...W, shape: [2, 3] }, b: B }), /tensor 'w': data_offsets \[0, 16\] hold 16 bytes but F32 \[2, 3\] needs 24/],
    ['huge shape', fromHeader({ w: { ...W, shape: [1e9, 1e9] }, b: B }), /more elements than can be addressed/],
    ['sub-byte', fromHeader({ w: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, new Uint8Array(2)), /3 elements of F4 \(4 bits\) do not fill whole bytes/],
    ['overlap', fromHeader({ w: W, b: { ...B, data_offsets: [12, 16] } }, new Uint8Array(16)), /tensor 'b' data_offsets \[12, 16\] overlap tensor 'w' \[0, 16\]/],
    ['same range twice', fromHeader({ w: W, v: W }, new Uint8Array(16)), /overlap/],
    ['gap', fromHeader({ w: W, b: { ...B, data_offsets: [20, 24] } }, new Uint8Array(24)), /gap of 4 bytes after tensor 'w' \(ends at 16\) before tensor 'b' \[20, 24\]/],
    ['gap at start', fromHeader({ b: { ...B, data_offsets: [4, 8] } }, new Uint8Array(8)), /gap of 4 bytes at the start of the data section before tensor 'b'/],
    ['truncated data', fromHeader({ w: W, b: B }, new Uint8Array(19)), /truncated: tensors need 20 data bytes \(tensor 'b' ends at 20\) but the file has 19/],
    ['trailing bytes', fromHeader({ w: W, b: B }, new Uint8Array(25)), /data section is 25 bytes but the tensors cover 20: 5 unaccounted trailing bytes/],
    ['metadata value not string', fromHeader({ __metadata__: { epoch: 3 }, w: W, b: B }), /__metadata__\['epoch'\] is the number 3; metadata values must be strings/],
    ['metadata not object', fromHeader({ __metadata__: ['a'], w: W, b: B }), /__metadata__ is an array of 1, not an object of strings/],
    ['duplicate tensor', fromHeader(`{"w":${JSON.stringify(W)},"b":${JSON.stringify(B)},"w":${JSON.stringify(W)}}`), /duplicate key "w"/],
    ['duplicate field', fromHeader('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"dtype":"I32"}}', new Uint8Array(16)), /duplicate key "dtype"/],
    ['duplicate metadata', fromHeader(`{"__metadata__":{"a":"1","a":"2"},"w":${JSON.stringify(W)},"b":${JSON.stringify(B)}}`), /duplicate key "a"/],
    ['duplicate __metadata__', fromHeader(`{"__metadata__":{},"__metadata__":{}}`, new Uint8Array(0)), /duplicate key "__metadata__"/],
    ['lone surrogate', fromHeader('{"\\ud800":1}'), /lone high surrogate/],
    ['control char', fromHeader('{"a\tb":1}'), /control character in a string/],
  ];
  it.each(cases)('rejects %s', (_name, bytes, re) => {
    expectStError(bad(bytes), re);
  });

  it('errors carry the tensor key', () => {
    const e = expectStError(bad(fromHeader({ w: { ...W, shape: [5] }, b: B })), /tensor 'w'/);
    expect(e.key).toBe('w');
    expect(e.file).toBe('bad.safetensors');
    expect(e.name).toBe('SafetensorsError');
  });
});

describe('bulk conversions match src/gpu/dtype.ts', () => {
  it('widenF16 over all 65,536 halves', () => {
    const h = new Uint16Array(65536).map((_, i) => i);
    const out = new Float32Array(65536);
    widenF16(h, out);
    for (let i = 0; i < 65536; i++) {
      const want = f16BitsToF32(i);
      if (Number.isNaN(want)) {
        expect(Number.isNaN(out[i]!), `half 0x${i.toString(16)}`).toBe(true);
        // Payload and sign survive the widening: narrowing back gives the quiet-NaN pattern with the sign.
      } else if (!Object.is(out[i], want)) {
        expect.fail(`half 0x${i.toString(16)}: got ${out[i]}, want ${want}`);
      }
    }
  });

  it('narrowF32BitsToF16 equals f32ToF16Bits on every exponent and rounding boundary', () => {
    const r = rng(7);
    const pats: number[] = [];
    for (let e = 0; e < 256; e++) {
      for (const s of [0, 1]) {
        for (const m of [0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fe000, 0x7ff000, 0x7fffff, 0x400000]) {
          pats.push(((s << 31) | (e << 23) | m) >>> 0);
        }
        for (let k = 0; k < 64; k++) pats.push(((s << 31) | (e << 23) | Math.floor(r() * 0x800000)) >>> 0);
      }
    }
    for (let k = 0; k < 200_000; k++) pats.push(Math.floor(r() * 2 ** 32) >>> 0);
    const src = Uint32Array.from(pats);
    const got = new Uint16Array(src.length);
    narrowF32BitsToF16(src, got);
    const f = new Float32Array(src.buffer);
    let bad = 0;
    let first = '';
    for (let i = 0; i < src.length; i++) {
      const want = f32ToF16Bits(f[i]!);
      if (got[i] !== want) {
        if (!bad) first = `0x${src[i]!.toString(16)}: got 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`;
        bad++;
      }
    }
    expect(bad, `${bad}/${src.length} differ; first ${first}`).toBe(0);
  });
});

describe('GPU upload', () => {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  let ctx: GpuContext;
  // Workaround: acquireDevice (src/gpu/device.ts) keeps no reference to Dawn's GPU object; when the
  // GC collects it, Dawn's instance is torn down under the live device and the process aborts
  // (futex / pthread assertions) on a later mapAsync. Holding the object here keeps it alive.
  let gpu: GPU | null = null;
  beforeAll(async () => {
    gpu = (await loadDawn()).create(['disable-dawn-features=timestamp_quantization']);
    ctx = await GpuContext.create({ gpu });
  });
  afterAll(() => {
    ctx?.destroy();
    gpu = null;
  });

  /** What an f16 GPU tensor must hold: the CPU's f16 rounding of the f32 values, widened back. */
  const viaF16 = (x: Float32Array): Float32Array => Float32Array.from(x, (v) => f16BitsToF32(f32ToF16Bits(v)));

  it('sam_tiny: every tensor as f32 (bit-exact) and f16 (CPU rounding), persistent', async () => {
    const f = await SafetensorsFile.open(SAM_WEIGHTS);
    for (const spec of SAM_SPEC.tensors) {
      const want = await f.readF32(spec.name);
      const t32 = await f.upload(ctx, spec.name, { dtype: 'f32', expectShape: spec.shape });
      expect(t32.persistent).toBe(true);
      expect([...t32.shape]).toEqual(spec.shape);
      expectBitsEqual((await ctx.read(t32)) as Float32Array, want, `${spec.name} f32`);
      const t16 = await f.upload(ctx, spec.name, { dtype: 'f16' });
      expect(t16.dtype).toBe('f16');
      expectBitsEqual((await ctx.read(t16)) as Float32Array, viaF16(want), `${spec.name} f16`);
      t32.dispose();
      t16.dispose();
    }
    const st = f.loadStats;
    expect(st.tensorsUploaded).toBe(2 * SAM_SPEC.tensors.length);
    expect(st.bytesUploaded).toBe(f.dataBytes * 1.5 + 2 * SAM_SPEC.tensors.filter((t) => t.shape.reduce((a, b) => a * b, 1) % 2).length);
    expect(st.seconds).toBeGreaterThan(0);
    expect(st.readGBps).toBeGreaterThan(0);
    await f.close();
  });

  const vals = [0, -0, 1, -2.5, 65504, 65520, 1e-7, 6e-5, 3.14159, -1e30, Infinity, NaN, ...sample(989, 11, 300)]; // 1001: odd
  const tensors: BuildTensor[] = [
    f32Tensor('f32', [7, 11, 13], vals),
    f16Tensor('f16', [1001], vals),
    bf16Tensor('bf16', [13, 77], vals),
    i64Tensor('i64', [3], [1n, -2n, 3n]),
  ];
  const file = buildSafetensors(tensors);
  const odd = new Uint8Array(file.length + 1);
  odd.set(file, 1);

  for (const [label, open] of [
    ['memory', async () => SafetensorsFile.fromBytes(file, 'mem')],
    ['memory at an odd address', async () => SafetensorsFile.fromBytes(odd.subarray(1), 'odd')],
    ['source without views', async () => SafetensorsFile.fromSource({ ...new MemorySource(file, 'src'), name: 'src', size: file.length, view: () => null, read: (o: number, l: number, i?: Uint8Array) => new MemorySource(file, 'src').read(o, l, i), close: async () => {} })],
  ] as const) {
    it(`F32/F16/BF16 → f32/f16, whole and in 36-byte chunks (${label})`, async () => {
      const f = await open();
      for (const name of ['f32', 'f16', 'bf16']) {
        const want = await f.readF32(name);
        for (const chunkBytes of [undefined, 36]) {
          const t32 = await f.upload(ctx, name, { dtype: 'f32', chunkBytes });
          expectBitsEqual((await ctx.read(t32)) as Float32Array, want, `${name}→f32 chunk ${chunkBytes}`);
          const t16 = await f.upload(ctx, name, { dtype: 'f16', chunkBytes });
          expectBitsEqual((await ctx.read(t16)) as Float32Array, viaF16(want), `${name}→f16 chunk ${chunkBytes}`);
          t32.dispose();
          t16.dispose();
        }
      }
      const ti = await f.upload(ctx, 'i64', { dtype: 'i32' });
      expect([...((await ctx.read(ti)) as Int32Array)]).toEqual([1, -2, 3]);
      ti.dispose();
    });
  }

  it('concurrent uploads (Promise.all) through a slow source do not share staging bytes', async () => {
    const r = rng(99);
    const mem = new MemorySource(file, 'slow');
    const slow: ByteSource = {
      name: 'slow',
      size: file.length,
      view: () => null,
      // Like a read on libuv's thread pool: the bytes land at some moment, completion is reported
      // later, and reads finish out of order.
      read: async (o, l, into) => {
        await new Promise((res) => setTimeout(res, r() * 3));
        const got = await mem.read(o, l, into);
        await new Promise((res) => setTimeout(res, r() * 3));
        return got;
      },
      close: async () => {},
    };
    const f = await SafetensorsFile.fromSource(slow);
    const jobs = ['f32', 'f16', 'bf16', 'f32', 'bf16'].map((name, i) => ({ name, dtype: (i % 2 ? 'f16' : 'f32') as 'f32' | 'f16' }));
    const out = await Promise.all(jobs.map((j) => f.upload(ctx, j.name, { dtype: j.dtype, chunkBytes: 64 })));
    for (const [i, j] of jobs.entries()) {
      const want = await f.readF32(j.name);
      expectBitsEqual((await ctx.read(out[i]!)) as Float32Array, j.dtype === 'f16' ? viaF16(want) : want, `${j.name}→${j.dtype} concurrent`);
      out[i]!.dispose();
    }
  });

  it('F16 → f16 uploads the bytes unchanged', async () => {
    const f = SafetensorsFile.fromBytes(file, 'mem');
    const t = await f.upload(ctx, 'f16', { dtype: 'f16' });
    const back = (await ctx.read(t)) as Float32Array;
    const want = Float32Array.from(new Uint16Array(tensors[1]!.data.buffer), f16BitsToF32);
    expectBitsEqual(back, want, 'f16 bytes');
    t.dispose();
  });

  it('refusals: shape mismatch names file, key and both shapes; integer to float; float to i32', async () => {
    const f = SafetensorsFile.fromBytes(file, 'model.safetensors');
    await expectStErrorAsync(f.upload(ctx, 'f32', { expectShape: [7, 143] }), /model\.safetensors: tensor 'f32' has shape \[7, 11, 13\] but \[7, 143\] was expected/);
    await expectStErrorAsync(f.upload(ctx, 'i64'), /tensor 'i64' is I64; only F32, F16 and BF16 tensors upload to f32 \(use \{ dtype: 'i32' \}\)/);
    await expectStErrorAsync(f.upload(ctx, 'f32', { dtype: 'i32' }), /'f32' is F32; readI32 reads integer tensors/);
    await expectStErrorAsync(f.upload(ctx, 'f32x'), /no tensor 'f32x' in the file; did you mean 'f32'/);
  });
});
