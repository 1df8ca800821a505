/**
 * A PyTorch checkpoint (`.pt` / `.pth`, read by the pickle-free reader in ./pth/) seen as a
 * safetensors file, so every loader (`Weights.load`, family detection, strict shape checks) reads
 * official checkpoints directly, with no conversion step and no copy of the file:
 *
 *   const file = await pthAsSafetensors(await openPthFile('sam2.1_hiera_tiny.pt'));
 *
 * The header is synthesised from the checkpoint's tensor list (names kept as stored; a state dict
 * nested under `model` / `state_dict` is unwrapped by the reader); data bytes are produced on
 * demand from the zip entries, one tensor at a time (the last tensor read is kept, so the
 * safetensors reader's chunked uploads of a tensor cost one read). Non-contiguous tensors come out
 * contiguous, as `readTensor` gives them. Closing the file closes the checkpoint.
 */
import { PTH_DTYPE_BYTES, type PthCheckpoint } from './pth/reader.js';
import { SafetensorsFile } from './safetensors.js';
import type { ByteSource } from './safetensors-source.js';

class PthByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private readonly header: Uint8Array;
  /** Data-section offsets of each tensor (ascending), and the tensor list in that order. */
  private readonly begins: number[];
  private cached: { index: number; bytes: Uint8Array } | null = null;

  constructor(private readonly ckpt: PthCheckpoint) {
    this.name = ckpt.file;
    const entries: Record<string, unknown> = { __metadata__: { format: 'pt', source: 'pth' } };
    this.begins = [];
    let at = 0;
    for (const t of ckpt.tensors) {
      this.begins.push(at);
      entries[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.byteLength] };
      at += t.byteLength;
    }
    let json = JSON.stringify(entries);
    // Pad the header with spaces to a multiple of 8 bytes, as writers do (aligned tensor data).
    const text = new TextEncoder().encode(json);
    json += ' '.repeat((8 - (text.length % 8)) % 8);
    const body = new TextEncoder().encode(json);
    this.header = new Uint8Array(8 + body.length);
    new DataView(this.header.buffer).setBigUint64(0, BigInt(body.length), true);
    this.header.set(body, 8);
    this.size = this.header.length + at;
  }

  view(): null {
    return null;
  }

  private async tensorBytes(index: number): Promise<Uint8Array> {
    if (this.cached?.index === index) return this.cached.bytes;
    const info = this.ckpt.tensors[index]!;
    const bytes = await this.ckpt.readTensor(info);
    if (bytes.length !== info.numel * PTH_DTYPE_BYTES[info.dtype]) {
      throw new Error(`${this.name}: tensor '${info.name}' read ${bytes.length} bytes, expected ${info.byteLength}`);
    }
    this.cached = { index, bytes };
    return bytes;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`${this.name}: read of ${length} bytes at ${offset} is outside the ${this.size}-byte view`);
    }
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    const H = this.header.length;
    if (offset < H) {
      const n = Math.min(length, H - offset);
      out.set(this.header.subarray(offset, offset + n), 0);
      done = n;
    }
    while (done < length) {
      const pos = offset + done - H; // in the data section
      // The last tensor starting at or before pos: never an empty one (a tensor with bytes follows
      // any empty tensor at the same start, and pos is below the data end).
      let lo = 0;
      let hi = this.begins.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (this.begins[mid]! <= pos) lo = mid;
        else hi = mid - 1;
      }
      const bytes = await this.tensorBytes(lo);
      const within = pos - this.begins[lo]!;
      const n = Math.min(length - done, bytes.length - within);
      if (n <= 0) throw new Error(`${this.name}: no tensor holds data-section byte ${pos}`);
      out.set(bytes.subarray(within, within + n), done);
      done += n;
    }
    return out;
  }

  async close(): Promise<void> {
    this.cached = null;
    await this.ckpt.close();
  }
}

/** The checkpoint's tensors as a safetensors file (see the module comment). */
export function pthAsSafetensors(ckpt: PthCheckpoint): Promise<SafetensorsFile> {
  return SafetensorsFile.fromSource(new PthByteSource(ckpt));
}
