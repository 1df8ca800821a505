/**
 * Reuses GPU buffers by size class. Fresh allocations are expensive (page faults on CPU adapters,
 * driver calls everywhere), and a model run asks for the same sizes again and again, so released
 * buffers go to a free list and are handed out again.
 *
 * Safety of reuse rests on WebGPU's queue ordering: every use of a buffer is encoded into the single
 * command stream in program order, so a buffer released after its last encoded use can be written
 * by a later encoded dispatch. CPU-side writes (`queue.writeBuffer`) bypass the encoder, so the
 * owning context flushes pending work before any upload.
 */
import { BufferUsage } from './webgpu-constants.js';
export interface PoolStats {
  liveBytes: number;
  peakLiveBytes: number;
  /** Bytes held by the pool, live plus free. */
  reservedBytes: number;
  allocations: number;
  reuses: number;
}

const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;

/** Size classes: multiples of 256 B up to 64 KiB, then 8 steps per power of two (waste < 12.5%). */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, bytes);
  if (b <= 65536) return Math.ceil(b / 256) * 256;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 8;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  /**
   * Free buffers per size class, highest creation number first, so that `pop` hands out the oldest.
   * Handing out by age rather than last-released makes a repeated computation meet the same buffers
   * in the same roles call after call, whatever order its scopes released them in: its bind groups
   * (cached by buffer identity in the context) are then reused instead of created again.
   */
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly born = new WeakMap<GPUBuffer, number>();
  private created = 0;
  private readonly stats: PoolStats = {
    liveBytes: 0,
    peakLiveBytes: 0,
    reservedBytes: 0,
    allocations: 0,
    reuses: 0,
  };

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
  ) {}

  acquire(bytes: number, label?: string): GPUBuffer {
    const size = sizeClass(bytes);
    if (size > this.maxBufferSize) {
      throw new RangeError(
        `buffer of ${bytes} bytes exceeds the adapter's maxBufferSize (${this.maxBufferSize})`,
      );
    }
    const list = this.free.get(size);
    let buf = list?.pop();
    if (buf) {
      this.stats.reuses++;
    } else {
      buf = this.device.createBuffer({ size, usage: STORAGE_USAGE, label: label ?? `pool-${size}` });
      this.born.set(buf, this.created++);
      this.stats.allocations++;
      this.stats.reservedBytes += size;
    }
    this.stats.liveBytes += size;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    this.stats.liveBytes -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    // Insert keeping the list ordered from youngest to oldest (binary search; lists are short).
    const age = this.born.get(buf) ?? -1;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.born.get(list[mid]!) ?? -1) > age) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, buf);
  }

  /** Destroy every free buffer. The caller must have flushed work that may still use them. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.stats.reservedBytes -= b.size;
        b.destroy();
      }
    }
    this.free.clear();
  }

  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
  }

  getStats(): Readonly<PoolStats> {
    return { ...this.stats };
  }
}
