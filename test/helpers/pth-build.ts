/**
 * Hand-made torch.save archives for tests: a tiny pickle writer (the opcodes torch.save uses),
 * `_rebuild_tensor_v2` calls for fake tensors, and zips laid out like torch's (fflate).
 */
import { type Zippable, zipSync } from 'fflate';

export const enc = new TextEncoder();
export const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

export class Pickle {
  readonly b: number[] = [];
  op(...x: number[]) { this.b.push(...x); return this; }
  proto(v = 2) { return this.op(0x80, v); }
  global(m: string, n: string) { return this.op(0x63, ...enc.encode(`${m}\n${n}\n`)); }
  str(s: string) { const u = enc.encode(s); return this.op(0x58, ...u32(u.length), ...u); }
  int(n: number) {
    if (n >= 0 && n < 256) return this.op(0x4b, n);
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >> 8);
    return this.op(0x4a, ...u32(n >>> 0));
  }
  mark() { return this.op(0x28); }
  tuple() { return this.op(0x74); }
  stop() { return this.op(0x2e); }
  bytes() { return new Uint8Array(this.b); }
}

export interface FakeTensor {
  name: string;
  storage?: string;
  key: string;
  numel: number;
  offset?: number;
  shape: number[];
  stride?: number[];
}

export function contiguousStride(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) (s[i] = acc), (acc *= shape[i]!);
  return s;
}

/** Push one `_rebuild_tensor_v2(...)` call, as torch.save pickles a tensor. */
export function tensorOps(p: Pickle, t: FakeTensor): void {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', t.storage ?? 'FloatStorage').str(t.key).str('cpu').int(t.numel).tuple().op(0x51);
  p.int(t.offset ?? 0).mark();
  t.shape.forEach((d) => p.int(d));
  p.tuple().mark();
  (t.stride ?? contiguousStride(t.shape)).forEach((d) => p.int(d));
  p.tuple().op(0x89).global('collections', 'OrderedDict').op(0x29, 0x52).tuple().op(0x52);
}

/** A protocol-2 state-dict pickle laid out the way torch.save writes one. */
export function stateDictPickle(tensors: FakeTensor[], wrap?: (p: Pickle, body: () => void) => void): Uint8Array {
  const p = new Pickle().proto();
  const body = () => {
    p.global('collections', 'OrderedDict').op(0x29, 0x52).mark();
    for (const t of tensors) {
      p.str(t.name);
      tensorOps(p, t);
    }
    p.op(0x75);
  };
  if (wrap) wrap(p, body);
  else body();
  return p.stop().bytes();
}

export function makeArchive(pkl: Uint8Array, storages: Record<string, Uint8Array>, opts: { level?: 0 | 6; extra?: Record<string, Uint8Array>; prefix?: string } = {}): Uint8Array {
  const prefix = opts.prefix ?? 'archive';
  const files: Zippable = { [`${prefix}/data.pkl`]: pkl };
  for (const [k, v] of Object.entries(storages)) files[`${prefix}/data/${k}`] = v;
  files[`${prefix}/version`] = enc.encode('3\n');
  Object.assign(files, opts.extra ?? {});
  return zipSync(files, { level: opts.level ?? 0 });
}

export const f32Bytes = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);
