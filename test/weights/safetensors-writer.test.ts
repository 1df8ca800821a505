/**
 * safetensors writer: exact bytes for the reference library's own test vectors, layout rules
 * (alignment order, header padding, names kept in data order), input validation, and the streaming
 * file writer's guarantees (no half-written target, no silent overwrite, one tensor at a time).
 * Output is checked with a minimal parser written here, independent of src/weights/safetensors.ts.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeSafetensors,
  planSafetensors,
  SAFETENSORS_DTYPE_BYTES,
  writeSafetensorsFile,
  type SafetensorsDType,
  type SafetensorsTensor,
} from '../../src/weights/safetensors-writer.js';

const enc = new TextEncoder();

function u64le(n: number): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return Array.from(b);
}

/** Minimal parser: 8-byte LE length, JSON header (names kept in text order), data section. */
function parse(file: Uint8Array) {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const raw = new TextDecoder().decode(file.subarray(8, 8 + n));
  const text = raw.trimEnd();
  expect(raw.slice(text.length), 'padding is spaces only').toMatch(/^ *$/);
  const header = JSON.parse(text) as Record<string, unknown>;
  // Names in the order they appear in the text (JSON.parse would reorder integer-like keys).
  const order = [...text.matchAll(/"((?:[^"\\]|\\.)*)":\{"dtype"/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
  const data = file.subarray(8 + n);
  const tensors = order.map((name) => {
    const t = header[name] as { dtype: SafetensorsDType; shape: number[]; data_offsets: [number, number] };
    return { name, ...t, bytes: data.subarray(t.data_offsets[0], t.data_offsets[1]) };
  });
  let end = 0;
  for (const t of tensors) {
    expect(t.data_offsets[0], `${t.name} follows the previous tensor`).toBe(end);
    expect(t.data_offsets[1] - t.data_offsets[0]).toBe(t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_BYTES[t.dtype]);
    end = t.data_offsets[1];
  }
  expect(end, 'data section ends with the last tensor').toBe(data.length);
  return { n, metadata: header.__metadata__ as Record<string, string> | undefined, tensors, firstKey: /^\{"((?:[^"\\]|\\.)*)"/.exec(text)?.[1] };
}

const f32 = (...v: number[]) => new Float32Array(v);

describe('encodeSafetensors', () => {
  // Test vectors of the reference implementation (huggingface/safetensors, tensor.rs tests).
  it('one F32 tensor: header of exactly 64 bytes, no padding', () => {
    const out = encodeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: f32(0, 1, 2, 3, 4, 5) }]);
    const json = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(json.length).toBe(64);
    expect(Array.from(out)).toEqual([...u64le(64), ...enc.encode(json), ...new Uint8Array(f32(0, 1, 2, 3, 4, 5).buffer)]);
  });

  it('pads the header with spaces to a multiple of 8 (forced alignment case)', () => {
    const out = encodeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: f32(0, 1, 2, 3, 4, 5) }]);
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect(Array.from(out)).toEqual([...u64le(72), ...enc.encode(json.padEnd(72, ' ')), ...new Uint8Array(f32(0, 1, 2, 3, 4, 5).buffer)]);
  });

  it('empty file, with and without metadata', () => {
    expect(Array.from(encodeSafetensors([]))).toEqual([...u64le(8), ...enc.encode('{}      ')]);
    const withMeta = encodeSafetensors([], { framework: 'pt' });
    expect(Array.from(withMeta)).toEqual([...u64le(40), ...enc.encode('{"__metadata__":{"framework":"pt"}}     ')]);
  });

  it('orders by decreasing alignment then name, keeps that order in the header, aligns every tensor', () => {
    const entries: SafetensorsTensor[] = [
      { name: 'b', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
      { name: 'a', dtype: 'F16', shape: [3], data: new Uint16Array([1, 2, 3]) },
      { name: '10', dtype: 'F32', shape: [1], data: f32(10) },
      { name: '2', dtype: 'F32', shape: [1], data: f32(2) },
      { name: 'z', dtype: 'I64', shape: [1], data: new BigInt64Array([-1n]) },
      { name: 'y', dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) },
      { name: 'x', dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
      { name: 'w', dtype: 'F64', shape: [1], data: new Float64Array([0.5]) },
      { name: 'v', dtype: 'I32', shape: [2], data: new Int32Array([7, -7]) },
      { name: 'scalar', dtype: 'F32', shape: [], data: f32(3) },
      { name: 'empty', dtype: 'F32', shape: [0, 5], data: f32() },
    ];
    const out = encodeSafetensors(entries, { format: 'pt' });
    const p = parse(out);
    // I64 and F64 are both 8 bytes; the reference enum puts I64 after F64, so I64 comes first.
    expect(p.tensors.map((t) => t.name)).toEqual(['z', 'w', '10', '2', 'empty', 'scalar', 'v', 'y', 'a', 'b', 'x']);
    expect(p.firstKey, '__metadata__ leads the header').toBe('__metadata__');
    expect(p.metadata).toEqual({ format: 'pt' });
    for (const t of p.tensors) {
      expect((8 + p.n + t.data_offsets[0]) % SAFETENSORS_DTYPE_BYTES[t.dtype], `${t.name} aligned in the file`).toBe(0);
      const src = entries.find((e) => e.name === t.name)!;
      expect(Array.from(t.bytes), t.name).toEqual(Array.from(new Uint8Array(src.data.buffer, src.data.byteOffset, src.data.byteLength)));
      expect(t.shape).toEqual(src.shape);
    }
  });

  it('sorts names by UTF-8 bytes (code points), not UTF-16 units', () => {
    const names = ['\u{1F600}', '\uFFFF', 'a', 'é'];
    const out = encodeSafetensors(names.map((name) => ({ name, dtype: 'U8' as const, shape: [1], data: new Uint8Array([1]) })));
    expect(parse(out).tensors.map((t) => t.name)).toEqual(['a', 'é', '\uFFFF', '\u{1F600}']);
  });

  it('uses the bytes of typed-array views with offsets', () => {
    const backing = new Float32Array([9, 1, 2, 9]);
    const out = encodeSafetensors([{ name: 't', dtype: 'F32', shape: [2], data: backing.subarray(1, 3) }]);
    expect(Array.from(new Float32Array(parse(out).tensors[0]!.bytes.slice().buffer))).toEqual([1, 2]);
  });

  it('rejects bad input with messages naming the tensor', () => {
    const t = (o: Partial<SafetensorsTensor>): SafetensorsTensor => ({ name: 'w', dtype: 'F32', shape: [2], data: f32(1, 2), ...o });
    expect(() => encodeSafetensors([t({}), t({})])).toThrow(/tensor 'w' appears twice/);
    expect(() => encodeSafetensors([t({ name: '__metadata__' })])).toThrow(/'__metadata__' is reserved/);
    expect(() => encodeSafetensors([t({ name: '' })])).toThrow(/name must be a non-empty string/);
    expect(() => encodeSafetensors([t({ shape: [3] })])).toThrow(/tensor 'w' \(F32 \[3\]\) needs 12 bytes, got 8/);
    expect(() => encodeSafetensors([t({ shape: [-2] })])).toThrow(/shape \[-2\] has a dimension that is not a non-negative integer/);
    expect(() => encodeSafetensors([t({ shape: [1.5] })])).toThrow(/not a non-negative integer/);
    expect(() => encodeSafetensors([t({ dtype: 'F8' as SafetensorsDType })])).toThrow(/unsupported dtype 'F8'/);
    expect(() => encodeSafetensors([t({})], { n: 3 as unknown as string })).toThrow(/metadata 'n' must be a string/);
  });

  it('the plan agrees with the encoded file', () => {
    const entries: SafetensorsTensor[] = [
      { name: 'h', dtype: 'F16', shape: [3], data: new Uint16Array(3) },
      { name: 'f', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) },
    ];
    const plan = planSafetensors(entries);
    const out = encodeSafetensors(entries);
    expect(plan.totalBytes).toBe(out.length);
    expect(Array.from(out.subarray(0, plan.header.length))).toEqual(Array.from(plan.header));
    expect(plan.order).toEqual([1, 0]);
    expect(plan.offsets).toEqual([[16, 22], [0, 16]]);
  });
});

describe('writeSafetensorsFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'st-writer-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const entries = () => [
    { name: 'b', dtype: 'F16' as const, shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
    { name: 'a', dtype: 'F32' as const, shape: [2, 1], data: f32(1.5, -2) },
    { name: 'c', dtype: 'I64' as const, shape: [1], data: new BigInt64Array([42n]) },
  ];
  const bytes = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

  it('streams the same bytes as encodeSafetensors, reading one tensor at a time in file order', async () => {
    const path = join(dir, 'stream.safetensors');
    const calls: string[] = [];
    let active = 0;
    const res = await writeSafetensorsFile(
      path,
      entries().map((e) => ({
        ...e,
        read: async () => {
          expect(++active, 'only one tensor is in flight').toBe(1);
          calls.push(e.name);
          await new Promise((r) => setTimeout(r, 2));
          active--;
          return bytes(e.data);
        },
      })),
      { metadata: { format: 'pt' } },
    );
    expect(calls).toEqual(['c', 'a', 'b']);
    const file = new Uint8Array(await readFile(path));
    expect(Buffer.compare(Buffer.from(file), Buffer.from(encodeSafetensors(entries(), { format: 'pt' })))).toBe(0);
    expect(res.bytes).toBe(file.length);
    expect(res.tensors).toBe(3);
    expect(await readdir(dir)).toEqual(['stream.safetensors']);
  });

  it('never overwrites without overwrite: true, and replaces with it', async () => {
    const path = join(dir, 'existing.safetensors');
    await writeFile(path, 'precious');
    const src = entries().map((e) => ({ ...e, read: () => bytes(e.data) }));
    await expect(writeSafetensorsFile(path, src)).rejects.toThrow(/existing\.safetensors already exists; pass overwrite: true/);
    expect(await readFile(path, 'utf8')).toBe('precious');
    await writeSafetensorsFile(path, src, { overwrite: true });
    expect(parse(new Uint8Array(await readFile(path))).tensors.length).toBe(3);
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a failing or wrong-sized tensor leaves no target and no temporary file', async () => {
    const path = join(dir, 'fail.safetensors');
    const failing = entries().map((e) => ({
      ...e,
      read: () => {
        if (e.name === 'a') throw new Error('disk on fire');
        return bytes(e.data);
      },
    }));
    await expect(writeSafetensorsFile(path, failing)).rejects.toThrow(/reading tensor 'a' failed: disk on fire/);
    const short = entries().map((e) => ({ ...e, read: () => bytes(e.data).subarray(1) }));
    await expect(writeSafetensorsFile(path, short)).rejects.toThrow(/tensor 'c' \(I64 \[1\]\) needs 8 bytes, got 7/);
    expect((await readdir(dir)).filter((f) => f.startsWith('fail.'))).toEqual([]);
  });

  it('reports a missing folder clearly', async () => {
    await expect(writeSafetensorsFile(join(dir, 'no', 'such', 'x.safetensors'), [])).rejects.toThrow(/cannot create temporary file/);
  });
});
