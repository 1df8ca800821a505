/**
 * Intermediate-tensor capture for stage-by-stage parity tests and debugging. A model calls
 * `tap(name, tensor)` at each named stage when the caller asked for taps; the recorder keeps a
 * contiguous copy that survives the forward's scope (marked persistent: the caller disposes it).
 * Without taps the forward pays nothing.
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Tensor } from '../../gpu/tensor.js';
import { copy } from '../../kernels/copy.js';

export type TapFn = (name: string, t: Tensor) => void;

export class TapRecorder {
  readonly tensors = new Map<string, Tensor>();
  constructor(private readonly ctx: GpuContext) {}

  readonly tap: TapFn = (name, t) => {
    const c = copy(this.ctx, t, 'f32');
    c.persistent = true;
    this.tensors.get(name)?.dispose();
    this.tensors.set(name, c);
  };

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`no tap named '${name}' (have: ${[...this.tensors.keys()].join(', ')})`);
    return t;
  }

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }
}
