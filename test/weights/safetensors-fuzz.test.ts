/**
 * Seeded corruption fuzzing of the safetensors reader. Every corrupted file must either be rejected
 * with a SafetensorsError (nothing else: no TypeError, RangeError, hang) or be accepted and then
 * return, for every tensor, exactly the bytes its header points at.
 */
import { describe, expect, it } from 'vitest';
import { bf16BitsToF32, f16BitsToF32 } from '../../src/gpu/dtype.js';
import { SafetensorsError, SafetensorsFile } from '../../src/weights/safetensors.js';
import { MemorySource } from '../../src/weights/safetensors-source.js';
import {
  bf16Tensor,
  buildSafetensors,
  f16Tensor,
  f32Tensor,
  i32Tensor,
  i64Tensor,
  rng,
  u8Tensor,
} from '../helpers/safetensors-build.js';

const CASES = 3000;
const SEED = 20240611;

const base = buildSafetensors(
  [
    f32Tensor('enc.w', [3, 5], Array.from({ length: 15 }, (_, i) => i * 0.25 - 1)),
    f16Tensor('enc.b', [7], [0, 1, -1, 0.5, 65504, 1e-5, -3]),
    bf16Tensor('dec.norm', [2, 3], [1, 2, 3, -4, 5e20, -6e-20]),
    i32Tensor('ids', [4], [1, -2, 3, 2147483647]),
    i64Tensor('pos', [2], [5n, -6n]),
    u8Tensor('mask', [5], [0, 1, 2, 254, 255]),
    f32Tensor('scale', [], [100]),
    f16Tensor('empty', [0, 2], []),
  ],
  { metadata: { format: 'pt', model: 'fuzz' } },
);

const enc = new TextEncoder();
const dec = new TextDecoder();

function headerLen(b: Uint8Array): number {
  return Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
}

/** Rebuild a file from new header text and the base data section. */
function withHeader(text: string, data = base.subarray(8 + headerLen(base))): Uint8Array {
  const j = enc.encode(text);
  const out = new Uint8Array(8 + j.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(j.length), true);
  out.set(j, 8);
  out.set(data, 8 + j.length);
  return out;
}

const baseText = dec.decode(base.subarray(8, 8 + headerLen(base)));
const baseObj = JSON.parse(baseText) as Record<string, Record<string, unknown>>;
const GARBAGE = '{}[]",:0123456789-+.eE \\u/tfn\u00e9\ud83d\ude00'.split('');
const DTYPES = ['F32', 'F16', 'BF16', 'I32', 'I64', 'U8', 'I8', 'U16', 'I16', 'U32', 'F64', 'BOOL', 'F8_E4M3', 'F4', 'X32', 'f32', ''];

type Mutator = (r: () => number) => Uint8Array;
const int = (r: () => number, n: number): number => Math.floor(r() * n);
const pick = <T>(r: () => number, a: readonly T[]): T => a[int(r, a.length)]!;

const mutators: Record<string, Mutator> = {
  flipHeaderBytes: (r) => {
    const b = base.slice();
    const n = headerLen(b);
    for (let k = 1 + int(r, 4); k > 0; k--) b[8 + int(r, n)] ^= 1 << int(r, 8);
    return b;
  },
  randomHeaderByte: (r) => {
    const b = base.slice();
    b[8 + int(r, headerLen(b))] = pick(r, GARBAGE).charCodeAt(0) & 0xff;
    return b;
  },
  truncate: (r) => base.slice(0, int(r, base.length)),
  lengthField: (r) => {
    const b = base.slice();
    const dv = new DataView(b.buffer);
    const n = headerLen(b);
    const choice = int(r, 6);
    if (choice === 0) dv.setBigUint64(0, BigInt(Math.max(0, n + int(r, 41) - 20)), true);
    else if (choice === 1) dv.setUint32(0, int(r, 2 ** 32), true);
    else if (choice === 2) dv.setUint32(4, 1 + int(r, 2 ** 32 - 1), true);
    else if (choice === 3) dv.setBigUint64(0, BigInt(b.length - 8 + int(r, 3)), true);
    else if (choice === 4) dv.setBigUint64(0, 0n, true);
    else dv.setBigUint64(0, 0xffffffffffffffffn, true);
    return b;
  },
  spliceGarbage: (r) => {
    const at = int(r, baseText.length + 1);
    let junk = '';
    for (let k = 1 + int(r, 6); k > 0; k--) junk += pick(r, GARBAGE);
    const cut = int(r, 3);
    return withHeader(baseText.slice(0, at) + junk + baseText.slice(at + cut));
  },
  deleteSpan: (r) => {
    const at = int(r, baseText.length);
    return withHeader(baseText.slice(0, at) + baseText.slice(at + 1 + int(r, 12)));
  },
  duplicateField: (r) => {
    // Repeat one `"key":value` member right after itself (tensor entry, field, or metadata).
    const members = [...baseText.matchAll(/"[^"]+":("[^"]*"|\[[^\]]*\]|\{[^{}]*\})/g)];
    const m = pick(r, members);
    const end = m.index + m[0].length;
    return withHeader(`${baseText.slice(0, end)},${m[0]}${baseText.slice(end)}`);
  },
  changeNumber: (r) => {
    const nums = [...baseText.matchAll(/-?\d+/g)];
    const m = pick(r, nums);
    const v = Number(m[0]);
    const repl = pick(r, [String(v + 1), String(v - 1), String(v * 2), '0', '-1', '1.5', `${v}.0`, '1e3', '9007199254740993', '99999999999999999999999', String(int(r, 1000))]);
    return withHeader(baseText.slice(0, m.index) + repl + baseText.slice(m.index + m[0].length));
  },
  structured: (r) => {
    // Semantically plausible edits, many of which are still valid files.
    const obj = structuredClone(baseObj);
    const names = Object.keys(obj).filter((k) => k !== '__metadata__');
    const name = pick(r, names);
    const e = obj[name]!;
    switch (int(r, 9)) {
      case 0: e.dtype = pick(r, DTYPES); break;
      case 1: e.shape = [...(e.shape as number[])].reverse(); break;
      case 2: e.shape = [(e.shape as number[]).reduce((a, b) => a * b, 1)]; break;
      case 3: e.shape = [...(e.shape as number[]), 1]; break;
      case 4: obj[`${name}.renamed`] = e; delete obj[name]; break;
      case 5: delete obj.__metadata__; break;
      case 6: (obj.__metadata__ as Record<string, unknown>)[pick(r, ['k', 'format', '__proto__'])] = pick(r, ['v', 1, null, [], {}]); break;
      case 7: delete e[pick(r, ['dtype', 'shape', 'data_offsets'])]; break;
      default: {
        // Shuffle key order: must not matter.
        const keys = Object.keys(obj).sort(() => r() - 0.5);
        return withHeader(JSON.stringify(Object.fromEntries(keys.map((k) => [k, obj[k]]))));
      }
    }
    return withHeader(JSON.stringify(obj));
  },
  padding: (r) => withHeader(' '.repeat(int(r, 9)) + baseText + pick(r, [' ', '  \n', '\t', '\0', '\r\n', ' x'])),
  dataBytes: (r) => {
    const b = base.slice();
    const start = 8 + headerLen(b);
    for (let k = 1 + int(r, 8); k > 0; k--) b[start + int(r, b.length - start)] = int(r, 256);
    return b;
  },
  dataLength: (r) => {
    const data = base.subarray(8 + headerLen(base));
    const delta = int(r, 9) - 4;
    const d = delta >= 0 ? new Uint8Array([...data, ...new Uint8Array(delta)]) : data.subarray(0, data.length + delta);
    return withHeader(baseText, d);
  },
};

/** What an accepted file must return for a tensor, computed from the JSON.parse'd header. */
async function checkAccepted(f: SafetensorsFile, bytes: Uint8Array, label: string): Promise<void> {
  const n = headerLen(bytes);
  // Anything our strict reader accepts must be JSON that JSON.parse agrees with.
  const obj = JSON.parse(dec.decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const names = Object.keys(obj).filter((k) => k !== '__metadata__');
  expect(new Set(f.keys()), label).toEqual(new Set(names));
  expect(f.metadata, label).toEqual((obj.__metadata__ as unknown) ?? {});
  for (const name of names) {
    const e = obj[name]!;
    const info = f.info(name);
    expect(info.dtype, label).toBe(e.dtype);
    expect([...info.shape], label).toEqual(e.shape);
    const want = bytes.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    const raw = await f.readRaw(name);
    expect(raw.length, `${label} ${name}`).toBe(want.length);
    expect(Buffer.from(raw).equals(Buffer.from(want)), `${label} ${name} bytes`).toBe(true);
    const numel = e.shape.reduce((a, b) => a * b, 1);
    const copy = want.slice();
    if (e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16') {
      const got = await f.readF32(name);
      const exp =
        e.dtype === 'F32'
          ? new Float32Array(copy.buffer, 0, numel)
          : Float32Array.from(new Uint16Array(copy.buffer, 0, numel), e.dtype === 'F16' ? f16BitsToF32 : bf16BitsToF32);
      expect(got.length, label).toBe(numel);
      for (let i = 0; i < numel; i++) {
        if (!Object.is(got[i], exp[i]) && !(Number.isNaN(got[i]) && Number.isNaN(exp[i]))) {
          expect.fail(`${label} ${name}[${i}]: got ${got[i]}, want ${exp[i]}`);
        }
      }
    } else {
      await expect(f.readF32(name), label).rejects.toBeInstanceOf(SafetensorsError);
    }
    if (['I32', 'U8', 'I8', 'I16', 'U16', 'BOOL', 'I64', 'U32', 'U64'].includes(e.dtype)) {
      const r = await f.readI32(name).then((v) => v, (err: unknown) => err);
      if (r instanceof Int32Array) {
        expect(r.length, label).toBe(numel);
        if (e.dtype === 'I32') expect(Buffer.from(r.buffer, r.byteOffset, r.byteLength).equals(Buffer.from(want)), label).toBe(true);
      } else {
        expect(r, `${label} ${name} readI32`).toBeInstanceOf(SafetensorsError);
        expect(['I64', 'U32', 'U64'], label).toContain(e.dtype);
      }
    } else {
      await expect(f.readI32(name), label).rejects.toBeInstanceOf(SafetensorsError);
    }
  }
}

/** Source without zero-copy views: the path files and HTTP ranges take. */
function copyingSource(bytes: Uint8Array) {
  const m = new MemorySource(bytes, 'fuzz-src');
  return { name: m.name, size: m.size, view: () => null, read: m.read.bind(m), close: async () => {} };
}

describe('safetensors fuzz', () => {
  it(`${CASES} seeded corruptions: only SafetensorsError, and accepted files read back consistently`, async () => {
    const t0 = performance.now();
    const r = rng(SEED);
    const names = Object.keys(mutators);
    const tally: Record<string, { accepted: number; rejected: number }> = {};
    const reasons = new Map<string, number>();
    let slowest = 0;
    for (let c = 0; c < CASES; c++) {
      const kind = names[c % names.length]!;
      const bytes = mutators[kind]!(r);
      const label = `case ${c} (${kind}, seed ${SEED})`;
      const c0 = performance.now();
      let file: SafetensorsFile | null = null;
      try {
        file = SafetensorsFile.fromBytes(bytes, 'fuzz.safetensors');
      } catch (e) {
        if (!(e instanceof SafetensorsError)) {
          expect.fail(`${label}: threw ${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
        }
        expect(e.message.startsWith('safetensors fuzz.safetensors: '), label).toBe(true);
        const reason = e.message.slice('safetensors fuzz.safetensors: '.length).replace(/'[^']*'|"[^"]*"|\[[^\]]*\]|\d+/g, '#').slice(0, 48);
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      }
      // The header-only path (files, HTTP) must reach the same verdict.
      const viaSource = await SafetensorsFile.fromSource(copyingSource(bytes)).then(
        (f) => f,
        (e: unknown) => {
          if (!(e instanceof SafetensorsError)) expect.fail(`${label} via source: threw ${String(e)}`);
          return null;
        },
      );
      expect(viaSource !== null, `${label}: fromBytes and fromSource disagree`).toBe(file !== null);
      if (file) {
        await checkAccepted(file, bytes, label);
        await checkAccepted(viaSource!, bytes, `${label} via source`);
      }
      const tk = (tally[kind] ??= { accepted: 0, rejected: 0 });
      if (file) tk.accepted++;
      else tk.rejected++;
      slowest = Math.max(slowest, performance.now() - c0);
    }
    const seconds = (performance.now() - t0) / 1000;
    const accepted = Object.values(tally).reduce((s, t) => s + t.accepted, 0);
    const rejected = CASES - accepted;
    const lines = Object.entries(tally).map(([k, t]) => `  ${k.padEnd(18)} accepted ${String(t.accepted).padStart(4)}  rejected ${String(t.rejected).padStart(4)}`);
    const top = [...reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `  ${String(v).padStart(4)}  ${k}`);
    console.log(
      `safetensors fuzz: ${CASES} cases in ${seconds.toFixed(2)} s (slowest ${slowest.toFixed(1)} ms): ` +
        `${rejected} rejected, ${accepted} accepted\n${lines.join('\n')}\nmost common rejections:\n${top.join('\n')}`,
    );
    // A fuzz run that accepts nothing or rejects nothing is not exercising both paths.
    expect(accepted).toBeGreaterThan(CASES / 20);
    expect(rejected).toBeGreaterThan(CASES / 2);
    expect(seconds).toBeLessThan(20);
  }, 20_000);
});
