/**
 * A minimal `torch.save` for tests: `{'model': OrderedDict(name -> float32 tensor)}` as the zip
 * archive torch 1.6+ writes (data.pkl in pickle protocol 2, one storage entry per tensor, version),
 * which is how the official SAM 2 checkpoints (`sam2.1_hiera_*.pt`) are laid out. Written here so
 * that the loader's `.pt` path can be tested on the reference weights without PyTorch.
 */
import { zipSync, type Zippable } from 'fflate';

class PickleWriter {
  private readonly out: number[] = [];
  private readonly text = new TextEncoder();
  raw(...ops: number[]): this {
    this.out.push(...ops);
    return this;
  }
  global(module: string, name: string): this {
    return this.raw(0x63, ...this.text.encode(`${module}\n${name}\n`)); // GLOBAL
  }
  string(s: string): this {
    const b = this.text.encode(s);
    return this.raw(0x58, b.length & 0xff, (b.length >>> 8) & 0xff, (b.length >>> 16) & 0xff, b.length >>> 24, ...b); // BINUNICODE
  }
  integer(n: number): this {
    if (n < 256) return this.raw(0x4b, n); // BININT1
    if (n < 65536) return this.raw(0x4d, n & 0xff, n >>> 8); // BININT2
    return this.raw(0x4a, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24); // BININT
  }
  tupleOf(items: number[]): this {
    this.raw(0x28); // MARK
    for (const i of items) this.integer(i);
    return this.raw(0x74); // TUPLE
  }
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').raw(0x29, 0x52); // EMPTY_TUPLE, REDUCE
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

export interface SavedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** The bytes of `torch.save({'model': state_dict}, f)` for float32 tensors. */
export function torchSaveModel(tensors: readonly SavedTensor[], archive = 'sam2_tiny'): Uint8Array {
  const p = new PickleWriter().raw(0x80, 2); // PROTO 2
  p.raw(0x7d, 0x28).string('model'); // EMPTY_DICT, MARK, key
  p.orderedDict().raw(0x28); // value: OrderedDict, MARK
  const files: Zippable = {};
  tensors.forEach((t, i) => {
    const strides = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    p.string(t.name);
    p.global('torch._utils', '_rebuild_tensor_v2').raw(0x28); // callable, MARK (args)
    p.raw(0x28).string('storage').global('torch', 'FloatStorage').string(String(i)).string('cpu').integer(t.data.length).raw(0x74, 0x51); // persistent id, BINPERSID
    p.integer(0).tupleOf(t.shape).tupleOf(strides).raw(0x89).orderedDict().raw(0x74, 0x52); // offset, size, stride, False, hooks; TUPLE, REDUCE
    files[`${archive}/data/${i}`] = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  });
  p.raw(0x75, 0x75, 0x2e); // SETITEMS (state dict), SETITEMS (outer), STOP
  // torch writes data.pkl first, then the storages, then the version record.
  return zipSync({ [`${archive}/data.pkl`]: p.bytes(), ...files, [`${archive}/version`]: new TextEncoder().encode('3\n') }, { level: 0 });
}
