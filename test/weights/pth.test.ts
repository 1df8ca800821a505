/**
 * `.pth` reader and `.pth` → safetensors conversion, checked bit for bit against what torch itself
 * saved and loaded (test/fixtures/pth, written by tools/make-pth-fixture.py), plus hand-made
 * archives and pickles for every way a file can be wrong. Nothing here runs Python or executes a
 * pickle.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bf16BitsToF32, f16BitsToF32 } from '../../src/gpu/dtype.js';
import {
  convertPthBytes,
  convertPthToSafetensors,
  openPth,
  openPthFile,
  PickleError,
  PthError,
  type PthDType,
} from '../../src/weights/pth.js';
import { convertTensorBytes, f32BitsToF16Bits } from '../../src/weights/pth/convert.js';
import { unpickle, PyDict, PyList, PyTuple, type UnpickleHooks } from '../../src/weights/pth/pickle.js';
import { gatherStrided } from '../../src/weights/pth/reader.js';
import { crc32 } from '../../src/weights/pth/zip.js';
import { Pickle, enc, f32Bytes, makeArchive, stateDictPickle, tensorOps, u32 } from '../helpers/pth-build.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'pth');

interface ExpectedTensor {
  name: string;
  dtype: PthDType;
  shape: number[];
  stride: number[];
  storage_offset: number;
  contiguous: boolean;
  bytes: string;
  as_f32?: string;
  as_f16?: string;
}

interface Expected {
  torch_version: string;
  seed: number;
  tensors: ExpectedTensor[];
  nested_prefix: Record<string, string>;
}

const expected = JSON.parse(await readFile(join(FIXTURES, 'expected.json'), 'utf8')) as Expected;
const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const ITEM: Record<PthDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Decoded value of element i, for failure messages. */
function valueAt(b: Uint8Array, dtype: PthDType, i: number): string {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const at = i * ITEM[dtype];
  switch (dtype) {
    case 'F64': return String(dv.getFloat64(at, true));
    case 'F32': return String(dv.getFloat32(at, true));
    case 'F16': return String(f16BitsToF32(dv.getUint16(at, true)));
    case 'BF16': return String(bf16BitsToF32(dv.getUint16(at, true)));
    case 'I64': return String(dv.getBigInt64(at, true));
    case 'I32': return String(dv.getInt32(at, true));
    case 'I16': return String(dv.getInt16(at, true));
    case 'I8': return String(dv.getInt8(at));
    default: return String(b[at]);
  }
}

/** Bitwise equality, element by element; the failure names the count and first differing element. */
function expectSameBits(label: string, got: Uint8Array, want: Uint8Array, dtype: PthDType): void {
  const size = ITEM[dtype];
  if (got.length !== want.length) throw new Error(`${label}: got ${got.length} bytes, expected ${want.length}`);
  let bad = 0;
  let first = -1;
  for (let e = 0; e < got.length / size; e++) {
    for (let k = 0; k < size; k++) {
      if (got[e * size + k] !== want[e * size + k]) {
        if (first < 0) first = e;
        bad++;
        break;
      }
    }
  }
  if (bad) {
    const hex = (b: Uint8Array) => Buffer.from(b.subarray(first * size, (first + 1) * size)).reverse().toString('hex');
    throw new Error(`${label} (${dtype}): ${bad} of ${got.length / size} elements differ bitwise; first at element ${first}: ` +
      `got ${valueAt(got, dtype, first)} (0x${hex(got)}), expected ${valueAt(want, dtype, first)} (0x${hex(want)})`);
  }
}

/** A minimal, independent safetensors parser for checking converter output. */
function parseSafetensors(file: Uint8Array) {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  expect(n % 8, 'header length is a multiple of 8').toBe(0);
  const text = new TextDecoder().decode(file.subarray(8, 8 + n));
  type Info = { dtype: PthDType; shape: number[]; data_offsets: [number, number] };
  const parsed = JSON.parse(text) as Record<string, unknown>;
  const meta = parsed.__metadata__ as Record<string, string> | undefined;
  delete parsed.__metadata__;
  const header = parsed as Record<string, Info>;
  const data = file.subarray(8 + n);
  let end = 0;
  const tensors = new Map<string, { dtype: PthDType; shape: number[]; bytes: Uint8Array }>();
  for (const [name, t] of Object.entries(header).sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])) {
    expect(t.data_offsets[0], `${name} starts where the previous tensor ends`).toBe(end);
    expect(t.data_offsets[0] % ITEM[t.dtype], `${name} is aligned to its element size`).toBe(0);
    end = t.data_offsets[1];
    tensors.set(name, { dtype: t.dtype, shape: t.shape, bytes: data.subarray(t.data_offsets[0], t.data_offsets[1]) });
  }
  expect(end, 'data section ends at the last tensor').toBe(data.length);
  return { meta, tensors };
}

// ---- fixtures written by torch ----

describe('pth reader on torch.save fixtures', () => {
  const files = ['state-dict.pth', 'nested-model.pth', 'nested-state-dict.pth', 'protocol4.pth'];

  it('fixture provenance is recorded', () => {
    expect(expected.torch_version).toMatch(/^\d+\.\d+/);
    expect(expected.seed).toBeTypeOf('number');
    expect(expected.tensors.length).toBe(17);
  });

  for (const file of files) {
    it(`${file}: tensor list, dtypes, shapes, strides and bytes equal torch's`, async () => {
      const ckpt = await openPthFile(join(FIXTURES, file));
      try {
        expect(ckpt.stateDictKey).toBe(expected.nested_prefix[file] ?? null);
        expect(ckpt.tensors.map((t) => t.name)).toEqual(expected.tensors.map((t) => t.name));
        for (const want of expected.tensors) {
          const t = ckpt.tensor(want.name);
          expect({ dtype: t.dtype, shape: t.shape, stride: t.stride, offset: t.storageOffset, contiguous: t.contiguous }, want.name)
            .toEqual({ dtype: want.dtype, shape: want.shape, stride: want.stride, offset: want.storage_offset, contiguous: want.contiguous });
          expectSameBits(`${file} ${want.name}`, await ckpt.readTensor(t), fromB64(want.bytes), want.dtype);
        }
      } finally {
        await ckpt.close();
      }
    });
  }

  it('reads the same from bytes in memory as from the file', async () => {
    const bytes = new Uint8Array(await readFile(join(FIXTURES, 'state-dict.pth')));
    const ckpt = await openPth(bytes, 'state-dict.pth');
    for (const want of expected.tensors) expectSameBits(want.name, await ckpt.readTensor(want.name), fromB64(want.bytes), want.dtype);
  });

  it('shared storage: three views of one storage read their own elements', async () => {
    const ckpt = await openPthFile(join(FIXTURES, 'state-dict.pth'));
    const names = ['prompt_encoder.pe_layer.positional_encoding_gaussian_matrix', 'prompt_encoder.point_embeddings.0.weight', 'prompt_encoder.point_embeddings.1.weight'];
    const keys = new Set(names.map((n) => ckpt.tensor(n).storageKey));
    expect(keys.size, 'torch.save wrote one storage for the three views').toBe(1);
    const base = new Float32Array((await ckpt.readTensor(names[2]!)).slice().buffer);
    const rows = new Float32Array((await ckpt.readTensor(names[0]!)).slice().buffer);
    const col = new Float32Array((await ckpt.readTensor(names[1]!)).slice().buffer);
    expect(Array.from(rows)).toEqual(Array.from(base.subarray(6, 18)));
    expect(Array.from(col)).toEqual([0, 1, 2, 3].map((r) => base[r * 6 + 2]));
    await ckpt.close();
  });

  it('lists what was next to the nested state dict', async () => {
    const m = await openPthFile(join(FIXTURES, 'nested-model.pth'));
    expect(m.skipped.map((s) => s.key)).toEqual(['epoch', 'step', 'big_neg', 'lr', 'flags', 'name', 'nested']);
    expect(m.skipped.find((s) => s.key === 'flags')!.reason).toMatch(/list/);
    await m.close();
    const s = await openPthFile(join(FIXTURES, 'nested-state-dict.pth'));
    expect(s.skipped.map((x) => x.key)).toEqual(['epoch', 'global_step', 'delta']);
    await s.close();
  });

  it('refuses the legacy (pre-zip) format with advice', async () => {
    await expect(openPthFile(join(FIXTURES, 'legacy.pth'))).rejects.toThrow(/legacy \(pre-1\.6, non-zip\) torch\.save file.*re-save/);
  });

  it('names a missing tensor', async () => {
    const ckpt = await openPthFile(join(FIXTURES, 'state-dict.pth'));
    expect(() => ckpt.tensor('image_encoder.nope')).toThrow(/no tensor named 'image_encoder\.nope'/);
    await ckpt.close();
  });
});

// ---- conversion ----

describe('pth → safetensors conversion', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pth-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cases: { dtype: 'keep' | 'f32' | 'f16'; field: 'bytes' | 'as_f32' | 'as_f16'; out: (d: PthDType) => PthDType }[] = [
    { dtype: 'keep', field: 'bytes', out: (d) => d },
    { dtype: 'f32', field: 'as_f32', out: (d) => (['F64', 'F32', 'F16', 'BF16'].includes(d) ? 'F32' : d) },
    { dtype: 'f16', field: 'as_f16', out: (d) => (['F64', 'F32', 'F16', 'BF16'].includes(d) ? 'F16' : d) },
  ];
  for (const c of cases) {
    it(`dtype ${c.dtype}: every tensor equals torch's ${c.field === 'bytes' ? 'saved values' : c.field === 'as_f32' ? '.float()' : '.half()'} bit for bit`, async () => {
      const out = join(dir, `state-dict.${c.dtype}.safetensors`);
      const r = await convertPthToSafetensors(join(FIXTURES, 'nested-model.pth'), out, { dtype: c.dtype });
      expect(r.tensors).toBe(17);
      expect(r.stateDictKey).toBe('model');
      expect(r.mbPerSecond).toBeGreaterThan(0);
      const file = new Uint8Array(await readFile(out));
      expect(r.outputBytes).toBe(file.length);
      const { meta, tensors } = parseSafetensors(file);
      expect(meta).toEqual({ format: 'pt' });
      expect([...tensors.keys()].sort()).toEqual(expected.tensors.map((t) => t.name).sort());
      for (const want of expected.tensors) {
        const got = tensors.get(want.name)!;
        const dtype = c.out(want.dtype);
        expect(got.dtype, want.name).toBe(dtype);
        expect(got.shape, want.name).toEqual(want.shape);
        const ref = want[c.field] ?? want.bytes;
        expectSameBits(`${c.dtype} ${want.name}`, got.bytes, fromB64(ref), dtype);
      }
      // Same bytes through the in-memory path.
      const mem = await convertPthBytes(new Uint8Array(await readFile(join(FIXTURES, 'nested-model.pth'))), { dtype: c.dtype });
      expect(Buffer.compare(Buffer.from(mem), Buffer.from(file))).toBe(0);
    });
  }

  it('does not overwrite an existing output unless asked', async () => {
    const out = join(dir, 'exists.safetensors');
    await writeFile(out, 'keep me');
    await expect(convertPthToSafetensors(join(FIXTURES, 'state-dict.pth'), out)).rejects.toThrow(/already exists/);
    expect(await readFile(out, 'utf8')).toBe('keep me');
    await convertPthToSafetensors(join(FIXTURES, 'state-dict.pth'), out, { overwrite: true });
    expect(parseSafetensors(new Uint8Array(await readFile(out))).tensors.size).toBe(17);
  });

  it('a finite value beyond the f16 range is an error naming the tensor, and no file is left', async () => {
    const pkl = stateDictPickle([{ name: 'big.weight', key: '0', numel: 3, shape: [3] }]);
    const zip = makeArchive(pkl, { '0': f32Bytes(1, 65519.99, 70000) });
    await expect(convertPthBytes(zip, { dtype: 'f16' })).rejects.toThrow(/tensor 'big\.weight': element 2 = 70000 is outside the f16 range/);
    const inPath = join(dir, 'big.pth');
    await writeFile(inPath, zip);
    const out = join(dir, 'big.safetensors');
    await expect(convertPthToSafetensors(inPath, out, { dtype: 'f16' })).rejects.toThrow(/big\.weight/);
    expect((await readdir(dir)).filter((f) => f.startsWith('big.safetensors'))).toEqual([]);
  });
});

// ---- f32 → f16 rounding, independently of torch ----

describe('f32 → f16 rounding', () => {
  it('every f16 value round-trips and midpoints round to even, in the scalar and the bulk converter', () => {
    // Inputs: every finite f16 value (both signs) and the exact midpoint above each one.
    const inputs: number[] = [];
    const want: number[] = [];
    for (let h = 0; h < 0x7c00; h++) {
      for (const s of [0, 0x8000]) {
        inputs.push(f16BitsToF32(h | s));
        want.push(h | s);
        if (h < 0x7bff) {
          inputs.push((f16BitsToF32(h | s) + f16BitsToF32((h + 1) | s)) / 2);
          want.push((h & 1 ? h + 1 : h) | s); // ties go to the even neighbour
        }
      }
    }
    const f = new Float32Array(inputs);
    const bits = new Uint32Array(f.buffer);
    const bulk = new Uint16Array(convertTensorBytes(new Uint8Array(f.buffer), { name: 'sweep', dtype: 'F32' }, 'F16').buffer);
    let bad = 0;
    let first = '';
    for (let i = 0; i < f.length; i++) {
      const scalar = f32BitsToF16Bits(bits[i]!);
      if (scalar !== want[i] || bulk[i] !== want[i]) {
        bad++;
        first ||= `input ${f[i]} (0x${bits[i]!.toString(16)}): scalar 0x${scalar.toString(16)}, bulk 0x${bulk[i]!.toString(16)}, want 0x${want[i]!.toString(16)}`;
      }
    }
    expect(bad, `first: ${first}`).toBe(0);
    // Overflow boundary: 65519.99 → 65504, 65520 → Inf.
    f[0] = 65519.99;
    expect(f32BitsToF16Bits(bits[0]!)).toBe(0x7bff);
    f[0] = 65520;
    expect(f32BitsToF16Bits(bits[0]!)).toBe(0x7c00);
  });

  it('bulk and scalar converters agree on random f32 bit patterns (NaN, subnormals included)', () => {
    let seed = 0x12345678;
    const n = 1 << 18;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      // Keep magnitudes inside f16's range (or non-finite) so the converter does not refuse them.
      const x = seed >>> 0;
      const exp = ((x >>> 23) & 0xff) % 32 + 100;
      bits[i] = i % 97 === 0 ? (x | 0x7f800000) : (x & 0x807fffff) | (exp << 23);
    }
    const bulk = new Uint16Array(convertTensorBytes(new Uint8Array(bits.buffer), { name: 'rand', dtype: 'F32' }, 'F16').buffer);
    let bad = 0;
    for (let i = 0; i < n; i++) if (bulk[i] !== f32BitsToF16Bits(bits[i]!)) bad++;
    expect(bad).toBe(0);
  });
});

// ---- strided views ----

describe('gatherStrided', () => {
  it('matches a naive index walk for permuted, sliced and broadcast views of every element size', () => {
    // xorshift32: a full-period generator, so shapes and strides really vary.
    let seed = 0x9e3779b9;
    const rand = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    for (const size of [1, 2, 4, 8]) {
      for (let trial = 0; trial < 40; trial++) {
        const nd = rand(4) + 1;
        const shape = Array.from({ length: nd }, () => rand(4) + 1);
        const stride = shape.map(() => rand(7)); // includes 0 (broadcast) and gaps
        let last = 0;
        shape.forEach((d, i) => (last += (d - 1) * stride[i]!));
        const src = new Uint8Array((last + 1) * size).map(() => rand(256));
        const got = gatherStrided(src, size, shape, stride);
        const want: number[] = [];
        const idx = new Array<number>(nd).fill(0);
        const numel = shape.reduce((a, b) => a * b, 1);
        for (let e = 0; e < numel; e++) {
          let off = 0;
          idx.forEach((v, i) => (off += v * stride[i]!));
          for (let k = 0; k < size; k++) want.push(src[off * size + k]!);
          for (let k = nd - 1; k >= 0 && ++idx[k]! === shape[k]; k--) idx[k] = 0;
        }
        expect(Array.from(got), `size ${size} shape [${shape}] stride [${stride}]`).toEqual(want);
      }
    }
  });
});

// ---- the pickle VM on hand-made bytes ----

const noHooks: UnpickleHooks = { global: () => undefined, persistentLoad: () => { throw new Error('no persistent ids here'); } };

describe('pickle VM', () => {
  it('builds plain data: ints of every width, LONG1, floats, strings, containers, memo', () => {
    const p = new Pickle().proto().op(0x7d, 0x71, 0).mark();
    p.str('k1').op(0x4a, ...u32(-5 >>> 0)); // BININT -5
    p.str('k2').op(0x8a, 6, 0, 0, 0, 0, 0, 1); // LONG1 2^40
    p.str('k3').op(0x8a, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0x80); // LONG1 -2^71 + 1 (bigint)
    p.str('k4').op(0x47, 0x3f, 0x1a, 0x36, 0xe2, 0xeb, 0x1c, 0x43, 0x2d); // BINFLOAT 1e-4
    p.str('k5').op(0x5d).mark().op(0x88, 0x89, 0x4e).op(0x65); // [True, False, None]
    p.str('k6').op(0x8c, 2, 0xc3, 0xa9).op(0x94).op(0x68, 1); // SHORT_BINUNICODE 'é', MEMOIZE, BINGET 1 → pop the dup below
    p.op(0x86); // TUPLE2('é', 'é')
    p.str('k7').op(0x5d, 0x72, ...u32(70000)).op(0x4b, 9, 0x61).op(0x6a, ...u32(70000), 0x86); // [9] memoised at 70000 (LONG_BINPUT), APPEND, LONG_BINGET → TUPLE2(list, list)
    p.str('k8').op(0x8d, 2, 0, 0, 0, 0, 0, 0, 0, 0x68, 0x69); // BINUNICODE8 'hi'
    p.op(0x75).stop();
    const v = unpickle(p.bytes(), noHooks, 'test');
    expect(v).toBeInstanceOf(PyDict);
    const d = v as PyDict;
    expect(d.get('k1')).toBe(-5);
    expect(d.get('k2')).toBe(2 ** 40);
    expect(d.get('k3')).toBe(-(2n ** 71n) + 1n);
    expect(d.get('k4')).toBe(1e-4);
    expect((d.get('k5') as PyList).items).toEqual([true, false, null]);
    expect((d.get('k6') as PyTuple).items).toEqual(['é', 'é']);
    const k7 = d.get('k7') as PyTuple;
    expect(k7.items[0], 'LONG_BINGET returns the memoised list itself').toBe(k7.items[1]);
    expect((k7.items[0] as PyList).items).toEqual([9]);
    expect(d.get('k8')).toBe('hi');
  });

  it('refuses os.system through GLOBAL, naming it (nothing runs)', () => {
    // The classic exploit: os.system('echo pwned') via GLOBAL + REDUCE.
    const pkl = new Pickle().proto().global('os', 'system').str('echo pwned').op(0x85, 0x52).stop().bytes();
    expect(() => unpickle(pkl, noHooks, 'evil.pth')).toThrow(PickleError);
    expect(() => unpickle(pkl, noHooks, 'evil.pth')).toThrow(/global 'os\.system' is not on the allow-list/);
  });

  it('refuses builtins.eval through STACK_GLOBAL and unknown opcodes, naming them', () => {
    const sg = new Pickle().proto(4).op(0x8c, 8, ...enc.encode('builtins')).op(0x8c, 4, ...enc.encode('eval')).op(0x93).stop().bytes();
    expect(() => unpickle(sg, noHooks, 'evil.pth')).toThrow(/global 'builtins\.eval' is not on the allow-list/);
    const inst = new Pickle().proto().mark().op(0x69, ...enc.encode('os\nsystem\n')).stop().bytes();
    expect(() => unpickle(inst, noHooks, 'evil.pth')).toThrow(/at byte 3: INST \(0x69 'i'\) is not supported/);
    const newobj = new Pickle().proto().op(0x81).stop().bytes();
    expect(() => unpickle(newobj, noHooks, 'x')).toThrow(/NEWOBJ \(0x81\) is not supported/);
  });

  it('reports truncated and malformed pickles', () => {
    expect(() => unpickle(new Pickle().proto().str('abc').bytes().subarray(0, 8), noHooks, 'x')).toThrow(/truncated/);
    expect(() => unpickle(new Pickle().proto().str('abc').bytes(), noHooks, 'x')).toThrow(/without STOP/);
    expect(() => unpickle(new Pickle().proto().op(0x68, 3).stop().bytes(), noHooks, 'x')).toThrow(/memo slot 3 read before it was written/);
    expect(() => unpickle(new Pickle().proto().op(0x52).stop().bytes(), noHooks, 'x')).toThrow(/empty stack/);
  });
});

// ---- damaged and hostile archives ----

describe('pth reader errors', () => {
  const good = () => readFile(join(FIXTURES, 'state-dict.pth')).then((b) => new Uint8Array(b));

  it('forbidden GLOBAL inside a checkpoint archive is refused before any tensor is read', async () => {
    const pkl = new Pickle().proto().global('os', 'system').str('echo pwned').op(0x85, 0x52).stop().bytes();
    const err = await openPth(makeArchive(pkl, {}), 'evil.pth').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PickleError);
    expect(String(err)).toMatch(/evil\.pth: archive\/data\.pkl at byte 2: global 'os\.system' is not on the allow-list/);
  });

  it('a whole pickled nn.Module (a class global) is refused with a hint', async () => {
    const pkl = new Pickle().proto().global('segment_anything.modeling.sam', 'Sam').op(0x29, 0x52).stop().bytes();
    await expect(openPth(makeArchive(pkl, {}))).rejects.toThrow(/'segment_anything\.modeling\.sam\.Sam' is not on the allow-list.*plain state dict/);
  });

  it('truncated file', async () => {
    const b = await good();
    await expect(openPth(b.subarray(0, b.length - 10), 'cut.pth')).rejects.toThrow(/cut\.pth: .*truncated/);
    await expect(openPth(b.subarray(0, b.length >> 1), 'half.pth')).rejects.toThrow(/truncated/);
    await expect(openPth(b.subarray(0, 10), 'tiny.pth')).rejects.toThrow(/too short to be a zip archive/);
  });

  it('not a zip at all', async () => {
    await expect(openPth(enc.encode('this is not a checkpoint, just some text padding it out'), 'x.txt')).rejects.toThrow(/not a zip archive/);
  });

  it('corrupted central directory', async () => {
    const b = (await good()).slice();
    const eocd = Buffer.from(b).lastIndexOf(Buffer.from([0x50, 0x4b, 5, 6]));
    const cdOffset = new DataView(b.buffer).getUint32(eocd + 16, true);
    b[cdOffset] ^= 0xff;
    await expect(openPth(b, 'bad.pth')).rejects.toThrow(/central directory entry 0 of 17 is missing or damaged/);
  });

  it('corrupted bytes are caught by CRC-32 (data.pkl at open, storages on read)', async () => {
    const b = await good();
    const zip = unzipSync(b);
    // Find where each entry's bytes sit in the file: stored entries are verbatim.
    const at = (name: string) => Buffer.from(b).indexOf(Buffer.from(zip[name]!));
    const pkl = b.slice();
    pkl[at('state-dict/data.pkl') + 100] ^= 1;
    await expect(openPth(pkl, 'bad.pth')).rejects.toThrow(/entry state-dict\/data\.pkl: CRC-32 is 0x[0-9a-f]{8}, the directory says 0x[0-9a-f]{8} \(corrupted file\)/);
    const st = b.slice();
    st[at('state-dict/data/1') + 5] ^= 1;
    const ckpt = await openPth(st, 'bad.pth');
    await expect(ckpt.readTensor('image_encoder.blocks.0.attn.qkv.weight')).rejects.toThrow(/state-dict\/data\/1: CRC-32/);
    const unchecked = await openPth(st, 'bad.pth', { verifyCrc: false });
    expect((await unchecked.readTensor('image_encoder.blocks.0.attn.qkv.weight')).length).toBe(384);
  });

  it('missing storage entry names the tensor and the entry', async () => {
    const zip = unzipSync(await good());
    delete zip['state-dict/data/3'];
    const rezipped = zipSync(zip, { level: 0 });
    await expect(openPth(rezipped, 'gap.pth')).rejects.toThrow(/tensor 'image_encoder\.blocks\.0\.attn\.rel_pos_h' \(F16 \[7, 4\]\) uses storage '3', but the archive has no entry state-dict\/data\/3/);
  });

  it('storage shorter than the pickle says', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 4, shape: [4] }]);
    await expect(openPth(makeArchive(pkl, { '0': f32Bytes(1, 2, 3) }))).rejects.toThrow(/storage archive\/data\/0 holds 12 bytes, but the pickle says 4 F32 elements \(16 bytes\)/);
  });

  it('a view reaching past its storage', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 4, offset: 2, shape: [2, 2], stride: [2, 1] }]);
    await expect(openPth(makeArchive(pkl, { '0': f32Bytes(1, 2, 3, 4) }))).rejects.toThrow(/tensor 'w' \(shape \[2, 2\], stride \[2, 1\], offset 2\) reaches element 5 of storage '0', which has 4/);
  });

  it('unknown storage type is refused by name', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 1, shape: [1], storage: 'ComplexFloatStorage' }]);
    await expect(openPth(makeArchive(pkl, { '0': new Uint8Array(8) }))).rejects.toThrow(/'torch\.ComplexFloatStorage' is not on the allow-list/);
  });

  it('deflated (re-zipped) archives still read correctly', async () => {
    const zip = unzipSync(await good());
    const deflated = zipSync(zip, { level: 6 });
    const ckpt = await openPth(deflated, 'deflated.pth');
    for (const want of expected.tensors) expectSameBits(want.name, await ckpt.readTensor(want.name), fromB64(want.bytes), want.dtype);
  });

  it('big-endian checkpoints, TorchScript archives, non-dict pickles and dicts without tensors are refused clearly', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 1, shape: [1] }]);
    await expect(openPth(makeArchive(pkl, { '0': f32Bytes(1) }, { extra: { 'archive/byteorder': enc.encode('big') } })))
      .rejects.toThrow(/byteorder entry says 'big'/);
    await expect(openPth(makeArchive(pkl, { '0': f32Bytes(1) }, { extra: { 'archive/code/__torch__.py': enc.encode('') } })))
      .rejects.toThrow(/TorchScript archive/);
    await expect(openPth(makeArchive(new Pickle().proto().op(0x5d).stop().bytes(), {}))).rejects.toThrow(/pickled object is a list, not a dict of tensors/);
    await expect(openPth(makeArchive(new Pickle().proto().op(0x7d).str('epoch').int(3).op(0x73).stop().bytes(), {})))
      .rejects.toThrow(/found no tensors \(keys: epoch\)/);
    await expect(openPth(zipSync({ 'a.txt': enc.encode('hi') }))).rejects.toThrow(/no <name>\/data\.pkl entry/);
  });

  it('accepts a hand-written checkpoint nested under state_dict with a sibling', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 6, shape: [3, 2], stride: [1, 3] }], (p, body) => {
      p.op(0x7d).mark().str('epoch').int(300).str('state_dict');
      body();
      p.op(0x75);
    });
    const ckpt = await openPth(makeArchive(pkl, { '0': f32Bytes(0, 1, 2, 3, 4, 5) }));
    expect(ckpt.stateDictKey).toBe('state_dict');
    expect(ckpt.skipped).toEqual([{ key: 'epoch', reason: "top-level int next to 'state_dict'" }]);
    expect(Array.from(new Float32Array((await ckpt.readTensor('w')).buffer))).toEqual([0, 3, 1, 4, 2, 5]);
  });
});

describe('nn.Parameter entries', () => {
  it('_rebuild_parameter(tensor, requires_grad, hooks) yields the tensor', async () => {
    const p = new Pickle().proto().op(0x7d).str('w').global('torch._utils', '_rebuild_parameter').mark();
    tensorOps(p, { name: 'w', key: '0', numel: 2, shape: [2] });
    p.op(0x88).global('collections', 'OrderedDict').op(0x29, 0x52).tuple().op(0x52).op(0x73).stop();
    const ckpt = await openPth(makeArchive(p.bytes(), { '0': f32Bytes(1.5, -2) }));
    expect(Array.from(new Float32Array((await ckpt.readTensor('w')).slice().buffer))).toEqual([1.5, -2]);
  });
});

describe('crc32', () => {
  it('matches the standard check value', () => {
    expect(crc32(enc.encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    // Slicing-by-8 body and byte tail agree with a bytewise reference on odd lengths.
    const data = new Uint8Array(1037).map((_, i) => (i * 31 + 7) & 0xff);
    let c = ~0;
    for (const b of data) {
      c ^= b;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    expect(crc32(data)).toBe(~c >>> 0);
  });
});
