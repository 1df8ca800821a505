/**
 * Dispatch plans: record a model call once, replay it on later calls without the model code.
 *
 * A call whose work depends only on the layouts of its input tensors (and on what the caller puts
 * in its key) makes the same allocations and encodes the same pipelines, uniform values and
 * workgroup counts every time. Deciding them costs host time in the model code and in
 * `GpuContext.run`: ~45 µs per dispatch on a 2-core EPYC, 4.7 ms per SAM decoder call of 99
 * dispatches, where the whole call is meant to cost 1 ms of host time.
 *
 * A plan is the call's sequence of pool operations and dispatches. A replay walks it: it takes
 * buffers from the context's pool and gives them back at the recorded points (so plans hold no
 * memory of their own and share the pool with everything else), binds them, and encodes each
 * dispatch with three encoder calls. Each step keeps the bind group of its last replay and reuses
 * it when the same buffers come back, which the pool's oldest-first order makes the usual case.
 * The outputs are tensors over the buffers the call left taken, as the code would have returned.
 *
 * What keeps a replay identical to running the code:
 *  - the call only allocates, dispatches and frees its own temporaries: a host write (upload), or
 *    freeing a tensor it did not make, refuses the recording; so does a tensor it made that
 *    outlives it without being an output (a cache filled on the way);
 *  - every buffer it binds is an input (the caller's tensor of this call), one of its own
 *    temporaries, or another live tensor (weights, cached tables), checked still alive before each
 *    replay;
 *  - the key names everything else the call depends on; the input layouts (shape, strides, offset,
 *    dtype, storage size) are added to it, since offsets and sizes reach the uniforms, and so are
 *    the context's kernel choices.
 * The first call with a key runs normally (lazy tables get built), the second records, later ones
 * replay. Plans are off while profiling, under SAMCLIP_SYNC=1 or SAMCLIP_DEBUG=2, with
 * SAMCLIP_PLANS=0 and with `ContextOptions.dispatchPlans: false`.
 */
import type { CachedPipeline } from './pipeline-cache.js';
import type { GpuContext } from './context.js';
import { Storage, Tensor } from './tensor.js';
import { BufferUsage } from './webgpu-constants.js';

/**
 * Keys remembered per set of plans (least recently used dropped first, with its plan): enough for
 * one per block of a paced ViT-H encode (32) and the whole-call keys of a few input sizes.
 */
const MAX_KEYS = 64;
const UNIFORM_ALIGN = 256;

/** Where a binding's buffer comes from at replay. */
const enum From {
  /** The call's own temporary number `index`. */
  Temp,
  /** The caller's input number `index`. */
  Input,
  /** A tensor that lives outside the call (`fixed`). */
  Fixed,
}

interface PlanBinding {
  readonly from: From;
  readonly index: number;
  readonly fixed: GPUBuffer | null;
  readonly offset: number;
  readonly size: number;
}

/** One recorded dispatch. `buffers` / `bindGroup` are the last replay's (reused when equal). */
interface PlanStep {
  readonly name: string;
  readonly cached: CachedPipeline;
  readonly bindings: readonly PlanBinding[];
  readonly uniform: Uint8Array;
  readonly workgroups: readonly [number, number, number];
  /** The dynamic offset of its uniforms in the plan's uniform buffer. */
  offsets: [number];
  buffers: GPUBuffer[];
  bindGroup: GPUBindGroup | null;
}

/** Pool operations and dispatches, in call order. */
type Op = { readonly take: number; readonly bytes: number } | { readonly give: number } | { readonly step: PlanStep };

interface PlanOutput {
  readonly name: string;
  readonly temp: number;
  readonly byteLength: number;
  readonly shape: readonly number[];
  readonly dtype: Tensor['dtype'];
  readonly strides: readonly number[];
  readonly offset: number;
}

/** The layout part of a plan key: what reaches uniforms and binding sizes. */
function layoutKey(t: Tensor | null): string {
  return t ? `${t.dtype}${t.shape.join('x')}/${t.strides.join(',')}@${t.offset}#${t.storage.byteLength}` : '-';
}

/** Watches one call (GpuContext reports its allocations, frees, dispatches and host writes). */
export class PlanRecorder {
  readonly ops: Op[] = [];
  /** Storage bound by the call that is neither an input nor its own: must stay alive. */
  readonly external = new Set<Storage>();
  refused: string | null = null;
  private readonly temps = new Map<Storage, number>();
  private readonly live = new Set<number>();

  constructor(private readonly inputs: readonly (Tensor | null)[]) {}

  refuse(reason: string): void {
    this.refused ??= reason;
  }

  allocated(s: Storage, bytes: number): void {
    const temp = this.temps.size;
    this.temps.set(s, temp);
    this.live.add(temp);
    this.ops.push({ take: temp, bytes });
  }

  released(s: Storage): void {
    const temp = this.temps.get(s);
    if (temp === undefined) return this.refuse(`it frees a tensor it did not make (${s.byteLength} bytes)`);
    this.live.delete(temp);
    this.ops.push({ give: temp });
  }

  dispatch(name: string, cached: CachedPipeline, resources: readonly GPUBufferBinding[], bound: readonly Tensor[], uniform: Uint8Array, workgroups: readonly [number, number, number]): void {
    if (this.refused) return;
    const bindings = bound.map((t, slot): PlanBinding => {
      const { offset = 0, size = 0 } = resources[slot]!;
      const s = t.storage;
      const temp = this.temps.get(s);
      if (temp !== undefined) return { from: From.Temp, index: temp, fixed: null, offset, size };
      const input = this.inputs.findIndex((x) => x?.storage === s);
      if (input >= 0) return { from: From.Input, index: input, fixed: null, offset, size };
      this.external.add(s);
      return { from: From.Fixed, index: -1, fixed: s.buffer, offset, size };
    });
    const step: PlanStep = { name, cached, bindings, uniform: uniform.slice(), workgroups: [...workgroups] as [number, number, number], offsets: [0], buffers: [], bindGroup: null };
    this.ops.push({ step });
  }

  /** The outputs as temporaries, or a refusal when anything else the call made is still alive. */
  outputs(out: Record<string, Tensor | undefined>): PlanOutput[] | null {
    const list = Object.entries(out).filter((e): e is [string, Tensor] => e[1] !== undefined).map(([name, t]) => ({ name, temp: this.temps.get(t.storage) ?? -1, byteLength: t.storage.byteLength, shape: t.shape, dtype: t.dtype, strides: t.strides, offset: t.offset }));
    if (list.some((o) => o.temp < 0)) this.refuse('an output is not made by the call');
    const kept = new Set(list.map((o) => o.temp));
    if ([...this.live].some((temp) => !kept.has(temp))) this.refuse('a tensor it made outlives it without being an output');
    return this.refused ? null : list;
  }
}

/** A recorded call: its operations, its own uniform buffer, its outputs. */
class DispatchPlan {
  private readonly uniforms: GPUBuffer;
  private readonly temps: GPUBuffer[];

  constructor(
    private readonly ctx: GpuContext,
    private readonly ops: readonly Op[],
    private readonly external: ReadonlySet<Storage>,
    private readonly outputs: readonly PlanOutput[],
  ) {
    let size = 0;
    const steps = ops.flatMap((op) => ('step' in op ? [op.step] : []));
    for (const s of steps) {
      s.offsets = [size];
      size += Math.ceil(s.uniform.byteLength / UNIFORM_ALIGN) * UNIFORM_ALIGN;
    }
    const staging = new Uint8Array(Math.max(size, UNIFORM_ALIGN));
    for (const s of steps) staging.set(s.uniform, s.offsets[0]);
    this.uniforms = ctx.device.createBuffer({ size: staging.byteLength, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: 'plan-uniforms' });
    ctx.device.queue.writeBuffer(this.uniforms, 0, staging);
    this.temps = new Array<GPUBuffer>(ops.filter((op) => 'take' in op).length);
  }

  /** Whether every tensor the plan reads besides its inputs and temporaries is still alive. */
  usable(): boolean {
    for (const s of this.external) if (s.refs <= 0) return false;
    return true;
  }

  replay(inputs: readonly (Tensor | null)[]): Record<string, Tensor> {
    const { ctx, temps } = this;
    ctx.assertUsable();
    const pool = ctx.pool;
    const held = new Set<number>();
    try {
      for (const op of this.ops) {
        if ('step' in op) {
          const s = op.step;
          this.bind(s, inputs);
          ctx.encodeStep(s.cached, s.bindGroup!, s.offsets, s.workgroups, s.name);
        } else if ('take' in op) {
          temps[op.take] = pool.acquire(op.bytes);
          held.add(op.take);
        } else {
          pool.release(temps[op.give]!);
          held.delete(op.give);
        }
      }
    } catch (e) {
      // A failure half-way (out of memory, a lost device): give back what this replay took.
      for (const temp of held) pool.release(temps[temp]!);
      temps.fill(undefined as unknown as GPUBuffer);
      throw e;
    }
    const out: Record<string, Tensor> = {};
    const storages = new Map<number, Storage>();
    for (const o of this.outputs) {
      let s = storages.get(o.temp);
      if (s) s.refs++;
      else storages.set(o.temp, (s = new Storage(temps[o.temp]!, o.byteLength, ctx)));
      out[o.name] = new Tensor(s, o.shape, o.dtype, o.strides, o.offset);
    }
    temps.fill(undefined as unknown as GPUBuffer);
    return out;
  }

  /** The step's bind group for this replay's buffers: the last one when they are the same. */
  private bind(s: PlanStep, inputs: readonly (Tensor | null)[]): void {
    const n = s.bindings.length;
    let same = s.bindGroup !== null;
    for (let i = 0; i < n; i++) {
      const b = s.bindings[i]!;
      const buffer = b.from === From.Temp ? this.temps[b.index]! : b.from === From.Input ? inputs[b.index]!.buffer : b.fixed!;
      if (s.buffers[i] !== buffer) {
        s.buffers[i] = buffer;
        same = false;
      }
    }
    if (same) return;
    // An input's buffer may be smaller than the recorded one (a buffer not from the pool, sized
    // to the tensor): bind what it has, as GpuContext.run would.
    const resources: GPUBufferBinding[] = s.bindings.map((b, i) => {
      const buffer = s.buffers[i]!;
      return { buffer, offset: b.offset, size: b.from === From.Input ? Math.min(b.size, buffer.size - b.offset) : b.size };
    });
    resources.push({ buffer: this.uniforms, offset: 0, size: s.uniform.byteLength });
    s.bindGroup = this.ctx.bindGroupFor(s.cached, resources);
  }

  dispose(): void {
    this.ctx.flush();
    this.uniforms.destroy();
  }
}

interface KeyState {
  calls: number;
  plan: DispatchPlan | null;
  /** Why this key is not recorded (a refused recording is not tried again). */
  refused: string | null;
}

/**
 * The plans of one model part (e.g. a SAM mask decoder), by key. `run` is the whole interface;
 * `dispose` frees the plans (the model's dispose calls it).
 */
export class DispatchPlans {
  private readonly keys = new Map<string, KeyState>();

  /** For tests and reports: plans held, refused keys and why. */
  stats(): { plans: number; refused: string[] } {
    const states = [...this.keys.values()];
    return { plans: states.filter((s) => s.plan).length, refused: states.flatMap((s) => (s.refused ? [s.refused] : [])) };
  }

  /**
   * `fn()`'s outputs, computed by `fn` or by replaying its recorded dispatches. `fn` must depend
   * only on `inputs` (read on the GPU) and on what `key` names; either way the outputs are new
   * tensors of the enclosing scope.
   */
  run<T extends { [K in keyof T]: Tensor | undefined }>(ctx: GpuContext, key: string, inputs: readonly (Tensor | null)[], fn: () => T): T {
    if (!ctx.dispatchPlansActive) return fn();
    // Kernel choices (ctx.tuning, which tests flip to force variants) pick the pipelines: part of the key.
    const full = `${key}|${inputs.map(layoutKey).join('|')}|${JSON.stringify(ctx.tuning)}`;
    let state = this.keys.get(full);
    if (state) {
      this.keys.delete(full);
    } else {
      state = { calls: 0, plan: null, refused: null };
      this.evict();
    }
    this.keys.set(full, state);
    state.calls++;
    if (state.plan) {
      if (state.plan.usable()) return state.plan.replay(inputs) as unknown as T;
      this.drop(state);
    }
    if (state.refused || state.calls < 2) return fn();
    const recorder = new PlanRecorder(inputs);
    const out = ctx.recordDispatches(recorder, () => ctx.scope(fn));
    const outputs = recorder.outputs(out as Record<string, Tensor | undefined>);
    if (outputs) state.plan = new DispatchPlan(ctx, recorder.ops, recorder.external, outputs);
    else state.refused = recorder.refused;
    return out;
  }

  /** `run` for a call with one output tensor. */
  runOne(ctx: GpuContext, key: string, inputs: readonly (Tensor | null)[], fn: () => Tensor): Tensor {
    return this.run(ctx, key, inputs, () => ({ out: fn() })).out;
  }

  private drop(state: KeyState): void {
    state.plan?.dispose();
    state.plan = null;
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
