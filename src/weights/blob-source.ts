/**
 * Safetensors bytes from a Blob (a picked File, a cached Response body, an OPFS file): each read is
 * one slice, so a multi-GB checkpoint never sits in the JS heap whole, only the tensor being read.
 */
import { SafetensorsError } from './safetensors-header.js';
import type { ByteSource } from './safetensors-source.js';

export class BlobSource implements ByteSource {
  readonly size: number;

  constructor(
    private readonly blob: Blob,
    readonly name: string,
  ) {
    this.size = blob.size;
  }

  view(): null {
    return null;
  }

  async read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new SafetensorsError(this.name, `read of ${length} bytes at ${offset} is outside the ${this.size}-byte file`);
    }
    const bytes = new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
    if (bytes.length !== length) throw new SafetensorsError(this.name, `read ${bytes.length} bytes at ${offset}, expected ${length} (changed since it was opened?)`);
    if (!into) return bytes;
    into.set(bytes);
    return into.subarray(0, length);
  }

  async close(): Promise<void> {}
}
