/**
 * Reads PyTorch checkpoints written by `torch.save` (the zip format of torch ≥ 1.6), such as the
 * official `sam_vit_{b,l,h}_*.pth`, without Python and without executing the pickle.
 *
 * Archive layout (facts of the format): `<name>/data.pkl` (the object, pickled), `<name>/data/<key>`
 * (one raw little-endian storage per key), `<name>/version`, optionally `<name>/byteorder`. Tensors
 * in the pickle are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` calls whose
 * storage is a persistent id `('storage', torch.<T>Storage, key, location, numel)`.
 *
 * Opening a checkpoint reads the directory and data.pkl only; `readTensor` then reads exactly the
 * byte range one tensor spans (strided views are made contiguous), so converting a 2.5 GB ViT-H
 * file holds one tensor in memory at a time.
 *
 * Which tensors: a plain state dict, or the dict found under a top-level `state_dict` or `model`
 * key (training checkpoints). Entries that are not tensors are listed in `skipped`. Integer and
 * bool tensors (e.g. BatchNorm's `num_batches_tracked`, I64) are kept as they are: they are real
 * checkpoint entries and a strict loader decides what to do with them.
 */
import { fmtShape } from '../../gpu/errors.js';
import { PthError, PthLimitError } from './errors.js';
import { PyCallable, PyDict, PyList, PyOpaque, PyTuple, typeName, unpickle, type PyValue } from './pickle.js';
import { fileSource, memorySource, ZipArchive, type PthByteSource, type ZipEntry } from './zip.js';

/** Default cap on a view that reads fewer bytes than it yields (stride 0, overlapping strides). */
export const DEFAULT_MAX_EXPANDED_BYTES = 64 * 2 ** 20;

/** Element types, named as in safetensors. */
export type PthDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const PTH_DTYPE_BYTES: Readonly<Record<PthDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** `torch.<Name>Storage` classes and what they hold. */
const STORAGE_TYPES: Readonly<Record<string, PthDType>> = {
  DoubleStorage: 'F64', FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

interface StorageRef {
  readonly key: string;
  readonly dtype: PthDType;
  readonly location: string;
  readonly numel: number;
}

interface TensorRef {
  readonly storage: StorageRef;
  readonly offset: number;
  readonly shape: number[];
  readonly stride: number[];
}

export interface PthTensorInfo {
  readonly name: string;
  readonly dtype: PthDType;
  readonly shape: readonly number[];
  /** Strides in elements, as saved (the output of `readTensor` is always contiguous). */
  readonly stride: readonly number[];
  readonly storageKey: string;
  /** Offset into the storage, in elements. */
  readonly storageOffset: number;
  readonly numel: number;
  /** Bytes of the contiguous tensor (`numel × element size`). */
  readonly byteLength: number;
  readonly contiguous: boolean;
}

export interface PthSkipped {
  readonly key: string;
  readonly reason: string;
}

export interface PthOpenOptions {
  /**
   * Check the CRC-32 of data.pkl and of every storage read whole (default true). Costs about one
   * extra pass over the bytes; turn off only when the file is known good and speed matters.
   */
  verifyCrc?: boolean;
  /** Largest deflate-compressed zip entry inflated into memory (default 1 GiB; torch.save never compresses). */
  maxInflatedBytes?: number;
  /**
   * Largest contiguous copy of a tensor stored as an expanding view (stride 0 or overlapping
   * strides: fewer stored bytes than the tensor has), default 64 MiB. Such views are legal in
   * torch but rare in checkpoints; a 517-byte file can otherwise ask for a 4 TiB tensor.
   */
  maxExpandedBytes?: number;
}

export class PthCheckpoint {
  private readonly byName = new Map<string, PthTensorInfo>();

  /** @internal use openPth / openPthFile */
  constructor(
    private readonly zip: ZipArchive,
    private readonly prefix: string,
    /** Tensors in the order the checkpoint lists them. */
    readonly tensors: readonly PthTensorInfo[],
    /** Top-level entries that were not tensors, with the reason. */
    readonly skipped: readonly PthSkipped[],
    /** 'state_dict' or 'model' when the tensors were found under that key, else null. */
    readonly stateDictKey: string | null,
    private readonly verifyCrc: boolean,
  ) {
    for (const t of tensors) this.byName.set(t.name, t);
  }

  get file(): string {
    return this.zip.file;
  }

  /** Total size of the input in bytes. */
  get sourceBytes(): number {
    return this.zip.source.size;
  }

  tensor(name: string): PthTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new PthError(this.file, `no tensor named '${name}' (the checkpoint has ${this.tensors.length} tensors)`, name);
    return t;
  }

  /**
   * The tensor's elements as contiguous (row-major) little-endian bytes. For a checkpoint opened
   * from bytes in memory this may be a view into those bytes: copy it before modifying.
   */
  async readTensor(nameOrInfo: string | PthTensorInfo): Promise<Uint8Array> {
    const t = typeof nameOrInfo === 'string' ? this.tensor(nameOrInfo) : nameOrInfo;
    if (t.numel === 0) return new Uint8Array(0);
    const entry = this.storageEntry(t);
    const size = PTH_DTYPE_BYTES[t.dtype];
    let last = t.storageOffset;
    for (let i = 0; i < t.shape.length; i++) last += (t.shape[i]! - 1) * t.stride[i]!;
    const begin = t.storageOffset * size;
    const end = (last + 1) * size;
    const whole = begin === 0 && end === entry.size;
    const span = whole && this.verifyCrc ? await this.zip.readAll(entry) : await this.zip.readRange(entry, begin, end - begin);
    if (t.contiguous) return span;
    try {
      return gatherStrided(span, size, t.shape, t.stride);
    } catch (e) {
      // Only reachable with maxExpandedBytes raised past what this runtime can allocate.
      if (e instanceof RangeError) throw new PthError(this.file, `tensor '${t.name}': cannot allocate its ${t.byteLength}-byte contiguous copy (${e.message})`, t.name);
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.zip.source.close?.();
  }

  private storageEntry(t: PthTensorInfo): ZipEntry {
    const e = this.zip.entry(`${this.prefix}data/${t.storageKey}`);
    if (!e) throw new PthError(this.file, `tensor '${t.name}': its storage entry ${this.prefix}data/${t.storageKey} is missing from the archive`, t.name);
    return e;
  }
}

/** Open a checkpoint held in memory (or behind any random-access byte source). */
export async function openPth(input: Uint8Array | PthByteSource, name = 'checkpoint.pth', options: PthOpenOptions = {}): Promise<PthCheckpoint> {
  const source = input instanceof Uint8Array ? memorySource(input, name) : input;
  const zip = await ZipArchive.open(source, options);
  return readCheckpoint(zip, options.verifyCrc ?? true, options.maxExpandedBytes ?? DEFAULT_MAX_EXPANDED_BYTES);
}

/** Open a checkpoint file on disk (Node only): reads the directory and data.pkl now, tensors on demand. */
export async function openPthFile(path: string, options: PthOpenOptions = {}): Promise<PthCheckpoint> {
  const source = await fileSource(path);
  try {
    return await openPth(source, path, options);
  } catch (e) {
    await source.close?.();
    throw e;
  }
}

async function readCheckpoint(zip: ZipArchive, verifyCrc: boolean, maxExpandedBytes: number): Promise<PthCheckpoint> {
  const file = zip.file;
  const pkls = zip.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkls.length === 0) {
    const some = zip.entries.slice(0, 5).map((e) => e.name).join(', ');
    throw new PthError(file, `zip archive has no <name>/data.pkl entry, so it is not a torch.save checkpoint (entries: ${some}${zip.entries.length > 5 ? ', ...' : ''})`);
  }
  if (pkls.length > 1) throw new PthError(file, `zip archive has ${pkls.length} data.pkl entries (${pkls.map((e) => e.name).join(', ')}); expected one`);
  const prefix = pkls[0]!.name.slice(0, -'data.pkl'.length);
  if (zip.entries.some((e) => e.name.startsWith(`${prefix}code/`))) {
    throw new PthError(file, 'this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; save model.state_dict() with torch.save instead');
  }
  const byteorder = zip.entry(`${prefix}byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(await zip.readAll(byteorder)).trim();
    if (order !== 'little') throw new PthError(file, `byteorder entry says '${order}'; only little-endian checkpoints are supported`);
  }
  const pkl = verifyCrc ? await zip.readAll(pkls[0]!) : await zip.readRange(pkls[0]!, 0, pkls[0]!.size);
  const root = unpickle(pkl, torchHooks(file), file, pkls[0]!.name);
  const { dict, key } = pickStateDict(root, file);

  const tensors: PthTensorInfo[] = [];
  const skipped: PthSkipped[] = [];
  for (const [k, v] of dict.map) {
    if (typeof k !== 'string') {
      skipped.push({ key: String(k), reason: `key of type ${typeName(k)}` });
      continue;
    }
    if (!(v instanceof PyOpaque) || v.kind !== 'tensor') {
      skipped.push({ key: k, reason: `${typeName(v)}, not a tensor` });
      continue;
    }
    tensors.push(tensorInfo(k, v.value as TensorRef, zip, prefix, maxExpandedBytes));
  }
  if (key !== null) {
    // A training checkpoint: say what else was next to the weights (epoch, optimizer, ...).
    for (const [k, v] of (root as PyDict).map) {
      if (k !== key) skipped.push({ key: String(k), reason: `top-level ${typeName(v)} next to '${key}'` });
    }
  }
  if (tensors.length === 0) {
    const keys = [...dict.map.keys()].slice(0, 8).map(String).join(', ');
    throw new PthError(file, `found no tensors${key ? ` under '${key}'` : ''} (keys: ${keys || 'none'})`);
  }
  return new PthCheckpoint(zip, prefix, tensors, skipped, key, verifyCrc);
}

function pickStateDict(root: PyValue, file: string): { dict: PyDict; key: string | null } {
  if (!(root instanceof PyDict)) {
    throw new PthError(file, `the pickled object is a ${typeName(root)}, not a dict of tensors (state dict)`);
  }
  for (const key of ['state_dict', 'model']) {
    const v = root.get(key);
    if (v instanceof PyDict) return { dict: v, key };
  }
  return { dict: root, key: null };
}

function tensorInfo(name: string, t: TensorRef, zip: ZipArchive, prefix: string, maxExpandedBytes: number): PthTensorInfo {
  const file = zip.file;
  const { storage, shape, stride, offset } = t;
  const size = PTH_DTYPE_BYTES[storage.dtype];
  const entryName = `${prefix}data/${storage.key}`;
  const entry = zip.entry(entryName);
  if (!entry) {
    throw new PthError(file, `tensor '${name}' (${storage.dtype} ${fmtShape(shape)}) uses storage '${storage.key}', but the archive has no entry ${entryName}`, name);
  }
  if (entry.size !== storage.numel * size) {
    throw new PthError(file, `storage ${entryName} holds ${entry.size} bytes, but the pickle says ${storage.numel} ${storage.dtype} elements (${storage.numel * size} bytes)`, name);
  }
  let numel = 1;
  for (const d of shape) numel *= d;
  // Sizes a computer cannot hold are an error naming the shape, not a RangeError from an allocation.
  if (!Number.isSafeInteger(numel * size)) {
    throw new PthError(file, `tensor '${name}' has shape ${fmtShape(shape)}: ${numel} elements of ${size} bytes is beyond any addressable size`, name);
  }
  if (numel > 0) {
    let last = offset;
    for (let i = 0; i < shape.length; i++) last += (shape[i]! - 1) * stride[i]!;
    if (last >= storage.numel) {
      throw new PthError(file, `tensor '${name}' (shape ${fmtShape(shape)}, stride ${fmtShape(stride)}, offset ${offset}) reaches element ${last} of storage '${storage.key}', which has ${storage.numel}`, name);
    }
    // The bytes the view spans in its storage; a contiguous copy larger than that is an expansion.
    const spanBytes = (last - offset + 1) * size;
    if (numel * size > spanBytes && numel * size > maxExpandedBytes) {
      throw new PthLimitError(
        file,
        `tensor '${name}' (shape ${fmtShape(shape)}, stride ${fmtShape(stride)}) reads ${spanBytes} stored bytes but expands to ${numel * size}`,
        'expanded size',
        numel * size,
        maxExpandedBytes,
        'maxExpandedBytes',
        name,
      );
    }
  }
  return {
    name,
    dtype: storage.dtype,
    shape,
    stride,
    storageKey: storage.key,
    storageOffset: offset,
    numel,
    byteLength: numel * size,
    contiguous: numel === 0 || isContiguous(shape, stride),
  };
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

/**
 * Copy a strided view into a contiguous array. `src` starts at the view's first element (strides
 * are non-negative, so that is also its lowest address).
 */
export function gatherStrided(src: Uint8Array, itemSize: number, shape: readonly number[], stride: readonly number[]): Uint8Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(numel * itemSize);
  if (numel === 0) return out;
  // Work in whole elements (8-byte ones as two 32-bit words) through aligned typed views.
  const words = itemSize === 8 ? 2 : 1;
  const unit = itemSize === 8 ? 4 : itemSize;
  // A copy starts at offset 0 (new Uint8Array copies; a Node Buffer's slice() would not).
  const aligned = src.byteOffset % unit === 0 ? src : new Uint8Array(src);
  const make = (b: Uint8Array, n: number) =>
    unit === 4 ? new Uint32Array(b.buffer, b.byteOffset, n) : unit === 2 ? new Uint16Array(b.buffer, b.byteOffset, n) : b;
  const s = make(aligned, Math.floor(aligned.length / unit));
  const d = make(out, numel * words);
  const nd = shape.length;
  const inner = nd ? shape[nd - 1]! : 1;
  const innerStride = (nd ? stride[nd - 1]! : 0) * words;
  const idx = new Array<number>(Math.max(nd - 1, 0)).fill(0);
  let base = 0; // element offset (in units) of the current row
  let o = 0;
  for (let row = 0, rows = numel / inner; row < rows; row++) {
    let p = base;
    if (words === 1) {
      for (let j = 0; j < inner; j++, p += innerStride) d[o++] = s[p]!;
    } else {
      for (let j = 0; j < inner; j++, p += innerStride) {
        d[o++] = s[p]!;
        d[o++] = s[p + 1]!;
      }
    }
    // Advance the odometer over the outer dimensions.
    for (let k = nd - 2; k >= 0; k--) {
      idx[k]!++;
      base += stride[k]! * words;
      if (idx[k]! < shape[k]!) break;
      base -= stride[k]! * words * shape[k]!;
      idx[k] = 0;
    }
  }
  return out;
}

// ---- the torch-specific part of the unpickler: allow-listed globals and persistent ids ----

function int(v: PyValue, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  throw new Error(`${what} must be a non-negative integer, got ${typeof v === 'bigint' ? `${v} (too large)` : typeName(v)}`);
}

function intTuple(v: PyValue, what: string): number[] {
  if (!(v instanceof PyTuple) && !(v instanceof PyList)) throw new Error(`${what} must be a tuple of ints, got ${typeName(v)}`);
  return (v instanceof PyTuple ? v.items : v.items).map((x, i) => int(x, `${what}[${i}]`));
}

function rebuildTensorV2(args: readonly PyValue[]): PyValue {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.length < 6 || args.length > 7) throw new Error(`expected 6 or 7 arguments, got ${args.length}`);
  const [storage, offset, size, stride, , hooks] = args;
  if (!(storage instanceof PyOpaque) || storage.kind !== 'storage') throw new Error(`first argument must be a storage, got ${typeName(storage!)}`);
  const shape = intTuple(size!, 'size');
  const strides = intTuple(stride!, 'stride');
  if (shape.length !== strides.length) throw new Error(`size ${fmtShape(shape)} and stride ${fmtShape(strides)} have different lengths`);
  if (hooks instanceof PyDict && hooks.map.size > 0) throw new Error('tensor has backward hooks; they cannot be restored');
  const ref: TensorRef = { storage: storage.value as StorageRef, offset: int(offset!, 'storage_offset'), shape, stride: strides };
  return new PyOpaque('tensor', ref);
}

function torchHooks(file: string) {
  const allowed = new Map<string, PyValue>([
    ['collections.OrderedDict', new PyCallable('collections.OrderedDict', (args) => {
      if (args.length === 0) return new PyDict('OrderedDict');
      throw new Error('only OrderedDict() with no arguments is supported');
    })],
    ['torch._utils._rebuild_tensor_v2', new PyCallable('torch._utils._rebuild_tensor_v2', rebuildTensorV2)],
    // nn.Parameter saved directly (torch.save(model.named_parameters()) style): keep its tensor.
    ['torch._utils._rebuild_parameter', new PyCallable('torch._utils._rebuild_parameter', (args) => {
      const t = args[0];
      if (!(t instanceof PyOpaque) || t.kind !== 'tensor') throw new Error(`first argument must be a tensor, got ${typeName(t)}`);
      return t;
    })],
  ]);
  for (const [cls, dtype] of Object.entries(STORAGE_TYPES)) allowed.set(`torch.${cls}`, new PyOpaque('storage type', dtype));
  return {
    global(module: string, name: string): PyValue | undefined {
      return allowed.get(`${module}.${name}`);
    },
    persistentLoad(pid: PyValue): PyValue {
      const items = pid instanceof PyTuple ? pid.items : null;
      if (!items || items.length !== 5 || items[0] !== 'storage') {
        throw new PthError(file, `unexpected persistent id ${typeName(pid)}${items ? ` of ${items.length} items starting ${JSON.stringify(String(items[0]))}` : ''}; expected ('storage', type, key, location, numel)`);
      }
      const [, type, key, location, numel] = items;
      if (!(type instanceof PyOpaque) || type.kind !== 'storage type') {
        throw new PthError(file, `storage '${String(key)}' has type ${typeName(type!)}; supported: ${Object.keys(STORAGE_TYPES).map((s) => `torch.${s}`).join(', ')}`);
      }
      if (typeof key !== 'string' || typeof location !== 'string' || typeof numel !== 'number' || !Number.isInteger(numel) || numel < 0) {
        throw new PthError(file, `storage persistent id has bad fields (key ${typeName(key!)}, location ${typeName(location!)}, numel ${String(numel)})`);
      }
      const ref: StorageRef = { key, dtype: type.value as PthDType, location, numel };
      return new PyOpaque('storage', ref);
    },
  };
}
