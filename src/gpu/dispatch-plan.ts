/**
 * Dispatch plans: record a model call's dispatches once, replay them on later calls.
 *
 * A call whose work depends only on the layouts of its input tensors (and on what the caller puts
 * in its key) encodes the same pipelines, bind groups, uniform values and workgroup counts every
 * time. Building them costs host time in the model code and in `GpuContext.run`: ~45 µs per
 * dispatch on a 2-core EPYC, ~5 ms per SAM decoder call of 99 dispatches, where the whole call is
 * meant to cost 1 ms of host time. A replay encodes each dispatch with three encoder calls.
 *
 * What keeps a replay identical to a fresh run:
 *  - the function only dispatches: a host write (upload) inside it refuses the recording;
 *  - every buffer it binds is an input (rebound when the caller passes a different tensor of the
 *    same layout), a tensor made inside (the plan keeps those buffers for good: intermediates are
 *    overwritten by the next replay, outputs are copied out so callers may keep them), or another
 *    live tensor (weights, cached tables), checked still alive before each replay;
 *  - the key names everything else the function depends on; the input layouts (shape, strides,
 *    offset, dtype, storage size) are added to it, since offsets and sizes reach the uniforms, and
 *    so are the context's kernel choices.
 * The first call with a key runs normally (lazy tables get built), the second records, later ones
 * replay. Plans are off while profiling, under SAMCLIP_SYNC=1 or SAMCLIP_DEBUG=2, with
 * SAMCLIP_PLANS=0 and with `ContextOptions.dispatchPlans: false`.
 */
import { sizeClass } from './buffer-pool.js';
import type { CachedPipeline } from './pipeline-cache.js';
import type { GpuContext } from './context.js';
import { type Storage, type StorageOwner, Tensor } from './tensor.js';
import { BufferUsage } from './webgpu-constants.js';

/** GPU bytes of intermediates and outputs one set of plans may keep (larger recordings are refused). */
const DEFAULT_BUDGET = 96 * 1024 * 1024;
/** Keys remembered per set (least recently used dropped first, with its plan). */
const MAX_KEYS = 16;
const UNIFORM_ALIGN = 256;

/** A call's result: named tensors (an interface of Tensor fields qualifies). */
export type PlanOutputs = Record<string, Tensor>;
type Outputs<T> = { [K in keyof T]: Tensor };

/** One recorded dispatch, ready to encode. */
export interface PlanStep {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** The dynamic offset of its uniforms in the plan's uniform buffer. */
  readonly offsets: readonly [number];
  readonly x: number;
  readonly y: number;
  readonly z: number;
}

interface RecordedStep {
  readonly name: string;
  readonly cached: CachedPipeline;
  readonly resources: GPUBufferBinding[];
  /** [binding slot, input index] for the slots bound to an input tensor's storage. */
  readonly inputSlots: [number, number][];
  readonly uniform: Uint8Array;
  readonly workgroups: readonly [number, number, number];
}

/** The layout part of a plan key: what reaches uniforms and binding sizes. */
function layoutKey(t: Tensor | null): string {
  return t ? `${t.dtype}${t.shape.join('x')}/${t.strides.join(',')}@${t.offset}#${t.storage.byteLength}` : '-';
}

/**
 * Collects a call's dispatches while it runs, and owns the buffers of the tensors it makes
 * (GpuContext.empty allocates through `reuse` / `take` while a recorder is set). Their buffers
 * come from the context's pool and leave its live count (BufferPool.disown) until the plan goes.
 */
export class PlanRecorder implements StorageOwner {
  readonly steps: RecordedStep[] = [];
  /** Storage bound by the call that is neither an input nor made inside: must stay alive. */
  readonly external = new Set<Storage>();
  refused: string | null = null;
  /** Bytes of the buffers this recorder took from the pool. */
  bytes = 0;
  private readonly free = new Map<number, Storage[]>();
  /** Buffers of the recorder's tensors still alive. */
  private readonly live = new Set<GPUBuffer>();
  private dead = false;

  constructor(
    private readonly ctx: GpuContext,
    private readonly inputs: readonly (Tensor | null)[],
  ) {}

  refuse(reason: string): void {
    this.refused ??= reason;
  }

  /** A released buffer of this size class, if the call freed one earlier. */
  reuse(bytes: number): GPUBuffer | undefined {
    const buffer = this.free.get(sizeClass(bytes))?.pop()?.buffer;
    if (buffer) this.live.add(buffer);
    return buffer;
  }

  /** A buffer just taken from the context's pool, now the plan's (outside the pool's live count). */
  take(buffer: GPUBuffer): GPUBuffer {
    this.ctx.pool.disown(buffer);
    this.bytes += buffer.size;
    this.live.add(buffer);
    return buffer;
  }

  releaseStorage(s: Storage): void {
    if (this.dead) {
      this.ctx.releaseStorage(s);
      return;
    }
    this.live.delete(s.buffer);
    const size = s.buffer.size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(s);
  }

  track(t: Tensor): void {
    this.ctx.track(t);
  }

  /** Called by GpuContext.run for each dispatch while recording. */
  dispatch(name: string, cached: CachedPipeline, resources: GPUBufferBinding[], bound: readonly Tensor[], uniform: Uint8Array, workgroups: readonly [number, number, number]): void {
    if (this.refused) return;
    const inputSlots: [number, number][] = [];
    for (let slot = 0; slot < bound.length; slot++) {
      const s = bound[slot]!.storage;
      const input = this.inputs.findIndex((t) => t?.storage === s);
      if (input >= 0) inputSlots.push([slot, input]);
      else if (s.owner !== this) this.external.add(s);
    }
    this.steps.push({ name, cached, resources: resources.slice(0, bound.length), inputSlots, uniform: uniform.slice(), workgroups: [...workgroups] as [number, number, number] });
  }

  /**
   * Give every buffer back to the context's pool: free ones as free, those of tensors still alive
   * (the outputs of a refused recording) as live, released to the pool when their tensors go.
   */
  close(): void {
    this.dead = true;
    const pool = this.ctx.pool;
    for (const list of this.free.values()) {
      for (const s of list) {
        pool.reown(s.buffer);
        pool.release(s.buffer);
      }
    }
    this.free.clear();
    for (const b of this.live) pool.reown(b);
    this.live.clear();
  }
}

/** A recorded call: its steps, its own uniform buffer, the outputs it keeps. */
class DispatchPlan {
  private readonly steps: PlanStep[];
  private readonly uniforms: GPUBuffer;
  /** The input buffers the bind groups were made with. */
  private readonly boundInputs: (GPUBuffer | null)[];

  constructor(
    private readonly ctx: GpuContext,
    private readonly recorder: PlanRecorder,
    private readonly recorded: readonly RecordedStep[],
    private readonly outputs: PlanOutputs,
    inputs: readonly (Tensor | null)[],
  ) {
    let size = 0;
    const offsets = recorded.map((r) => {
      const at = size;
      size += Math.ceil(r.uniform.byteLength / UNIFORM_ALIGN) * UNIFORM_ALIGN;
      return at;
    });
    const staging = new Uint8Array(Math.max(size, UNIFORM_ALIGN));
    recorded.forEach((r, i) => staging.set(r.uniform, offsets[i]));
    this.uniforms = ctx.device.createBuffer({ size: staging.byteLength, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: 'plan-uniforms' });
    ctx.device.queue.writeBuffer(this.uniforms, 0, staging);
    this.boundInputs = inputs.map((t) => t?.buffer ?? null);
    this.steps = recorded.map((r, i) => ({
      name: r.name,
      pipeline: r.cached.pipeline,
      bindGroup: this.bindGroup(r, this.boundInputs),
      offsets: [offsets[i]!],
      x: r.workgroups[0],
      y: r.workgroups[1],
      z: r.workgroups[2],
    }));
    for (const t of Object.values(outputs)) t.persistent = true;
  }

  /** The step's bind group over these input buffers and the plan's uniform buffer (its offset is dynamic). */
  private bindGroup(r: RecordedStep, inputs: readonly (GPUBuffer | null)[]): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = r.resources.map((resource, binding) => ({ binding, resource }));
    for (const [slot, input] of r.inputSlots) entries[slot] = { binding: slot, resource: { ...r.resources[slot]!, buffer: inputs[input]! } };
    entries.push({ binding: entries.length, resource: { buffer: this.uniforms, offset: 0, size: r.uniform.byteLength } });
    return this.ctx.device.createBindGroup({ layout: r.cached.layout, entries, label: `plan:${r.cached.key}` });
  }

  /** Whether every tensor the plan reads besides its inputs is still alive. */
  usable(): boolean {
    for (const s of this.recorder.external) if (s.refs <= 0) return false;
    return true;
  }

  replay(inputs: readonly (Tensor | null)[]): PlanOutputs {
    const now = inputs.map((t) => t?.buffer ?? null);
    if (now.some((b, i) => b !== this.boundInputs[i])) {
      this.recorded.forEach((r, i) => {
        if (r.inputSlots.some(([, input]) => now[input] !== this.boundInputs[input])) {
          this.steps[i]!.bindGroup = this.bindGroup(r, now);
        }
      });
      now.forEach((b, i) => (this.boundInputs[i] = b));
    }
    this.ctx.encodePlan(this.steps);
    return copyOutputs(this.ctx, this.outputs);
  }

  dispose(): void {
    this.ctx.flush();
    for (const t of Object.values(this.outputs)) {
      t.persistent = false;
      t.dispose();
    }
    this.recorder.close();
    this.uniforms.destroy();
  }
}

function copyOutputs(ctx: GpuContext, outputs: PlanOutputs): PlanOutputs {
  const copies: PlanOutputs = {};
  for (const [name, t] of Object.entries(outputs)) copies[name] = ctx.copyStorage(t);
  return copies;
}

interface KeyState {
  calls: number;
  plan: DispatchPlan | null;
  /** GPU bytes the plan holds. */
  bytes: number;
  /** Why this key is not recorded (a refused recording is not tried again). */
  refused: string | null;
}

/**
 * The plans of one model part (e.g. a SAM mask decoder), by key. `run` is the whole interface;
 * `dispose` frees the plans' buffers (the model's dispose calls it).
 */
export class DispatchPlans {
  private readonly keys = new Map<string, KeyState>();
  private bytes = 0;

  constructor(private readonly budget = DEFAULT_BUDGET) {}

  /** Stats for tests and reports: plans held, refused keys and why, bytes held. */
  stats(): { plans: number; refused: string[]; bytes: number } {
    const states = [...this.keys.values()];
    return { plans: states.filter((s) => s.plan).length, refused: states.flatMap((s) => (s.refused ? [s.refused] : [])), bytes: this.bytes };
  }

  /**
   * `fn()`'s outputs, computed by `fn` or by replaying its recorded dispatches. `fn` must depend
   * only on `inputs` (read on the GPU) and on what `key` names; the outputs are fresh tensors
   * owned by the enclosing scope either way.
   */
  run<T extends Outputs<T>>(ctx: GpuContext, key: string, inputs: readonly (Tensor | null)[], fn: () => T): T {
    if (!ctx.dispatchPlansActive) return fn();
    // Kernel choices (ctx.tuning, which tests flip to force variants) pick the pipelines: part of the key.
    const full = `${key}|${inputs.map(layoutKey).join('|')}|${JSON.stringify(ctx.tuning)}`;
    let state = this.keys.get(full);
    if (state) {
      this.keys.delete(full);
    } else {
      state = { calls: 0, plan: null, bytes: 0, refused: null };
      this.evict();
    }
    this.keys.set(full, state);
    state.calls++;
    if (state.plan) {
      if (state.plan.usable()) return state.plan.replay(inputs) as unknown as T;
      this.drop(state);
    }
    if (state.refused || state.calls < 2) return fn();
    return this.record(ctx, state, inputs, fn);
  }

  private record<T extends Outputs<T>>(ctx: GpuContext, state: KeyState, inputs: readonly (Tensor | null)[], fn: () => T): T {
    const recorder = new PlanRecorder(ctx, inputs);
    let out: T;
    try {
      out = ctx.recordDispatches(recorder, () => ctx.scope(fn));
    } catch (e) {
      recorder.close();
      throw e;
    }
    const outputs = Object.values(out) as Tensor[];
    if (!recorder.refused && outputs.some((t) => t.storage.owner !== recorder)) recorder.refuse('an output is not made by the call');
    if (!recorder.refused && this.bytes + recorder.bytes > this.budget) {
      recorder.refuse(`its tensors need ${recorder.bytes} bytes, over the plans' budget of ${this.budget - this.bytes} left`);
    }
    if (recorder.refused) {
      state.refused = recorder.refused;
      recorder.close(); // the outputs stay the caller's; their buffers return to the pool when freed
      return out;
    }
    state.plan = new DispatchPlan(ctx, recorder, recorder.steps, out as PlanOutputs, inputs);
    state.bytes = recorder.bytes;
    this.bytes += recorder.bytes;
    return copyOutputs(ctx, out as PlanOutputs) as T;
  }

  private drop(state: KeyState): void {
    if (!state.plan) return;
    state.plan.dispose();
    state.plan = null;
    this.bytes -= state.bytes;
    state.bytes = 0;
  }

  private evict(): void {
    while (this.keys.size >= MAX_KEYS) {
      const [oldest, state] = this.keys.entries().next().value!;
      this.drop(state);
      this.keys.delete(oldest);
    }
  }

  dispose(): void {
    for (const state of this.keys.values()) this.drop(state);
    this.keys.clear();
  }
}
