/**
 * The engine's handle on one GPU device: buffer pool, pipeline cache, command batching, uniform
 * arena, profiler, error surfacing and tensor scopes. Every kernel dispatch goes through `run`.
 */
import { BufferUsage, MapMode } from './webgpu-constants.js';
import { BufferPool, type PoolStats } from './buffer-pool.js';
import { debugFlags } from './debug.js';
import { acquireDevice, describeAdapter, type AdapterDescription, type DeviceFeatures, type DeviceOptions } from './device.js';
import { BYTES, type DType, fromF16Array, toF16Array } from './dtype.js';
import { DeviceLostError, GpuError, ShapeError, fmtShape } from './errors.js';
import type { KernelConfig, KernelDef } from './kernel.js';
import { type CachedPipeline, PipelineCache } from './pipeline-cache.js';
import type { HostPolling } from './host-wait.js';
import type { PlanRecorder } from './dispatch-plan.js';
import { type KernelTuning, defaultTuning } from './tuning.js';
import { type KernelCost, Profiler } from './profiler.js';
import { Storage, type StorageOwner, Tensor, numel } from './tensor.js';
import type { UniformDecl, UniformValues } from './uniforms.js';

/** Bind part of a tensor's storage (for tensors larger than one binding allows). */
export interface BindingRange {
  tensor: Tensor;
  /** Multiple of the device's minStorageBufferOffsetAlignment (256). */
  byteOffset: number;
  byteSize: number;
}

export type Bindable = Tensor | BindingRange;

export interface ContextOptions extends DeviceOptions {
  /** Time every dispatch with timestamp queries (needs `timestamp-query`). */
  profile?: boolean;
  /** Use f16 storage where the adapter allows it (`shader-f16`). Models read this as their default. */
  preferF16?: boolean;
  /**
   * Activations between the layers of the image encoders and text towers (SAM, CLIP, SAM-CLIP
   * head): `f16` halves their memory traffic where the adapter has `shader-f16` (kernels still
   * accumulate, and compute softmax and layernorm statistics, in f32; model outputs are f32).
   * Default `f32`. See docs/api.md for the accuracy rule it is held to.
   */
  activations?: 'f32' | 'f16';
  /**
   * Node (Dawn) only: how the host waits for the GPU. `spin` is Dawn's busy poll (lowest latency,
   * one host core busy while waiting); `timer` spins 1 ms, then polls every millisecond, leaving the
   * cores to a CPU adapter's driver threads. Default: `timer` on CPU adapters, `spin` on GPUs
   * (env SAMCLIP_POLLING overrides the default). See src/gpu/host-wait.ts.
   */
  polling?: HostPolling;
  /**
   * Record repeated model calls (SAM and SAM 2 mask decoders, SAM image encoder, CLIP
   * towers) once and replay their dispatches instead of running the model code again
   * (src/gpu/dispatch-plan.ts). Default true; off while profiling, under SAMCLIP_SYNC=1 and
   * SAMCLIP_DEBUG=2, and with SAMCLIP_PLANS=0.
   */
  dispatchPlans?: boolean;
}

const UNIFORM_CHUNK = 64 * 1024;
const MAX_PENDING_DISPATCHES = 256;
/** Bind groups kept for reuse (least recently used dropped first). */
const BIND_GROUP_CACHE = 4096;

type TypedData = Float32Array | Uint16Array | Int32Array | Uint32Array;

/** A block of the uniform arena: a GPU buffer and its host staging, filled dispatch by dispatch. */
interface UniformChunk {
  buffer: GPUBuffer;
  /** Host staging (its ArrayBuffer goes to writeBuffer at flush). */
  view: DataView;
  used: number;
}

export class GpuContext implements StorageOwner {
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  profiler: Profiler | null = null;
  readonly limits: { maxStorageBufferBindingSize: number; maxBufferSize: number; maxWorkgroupStorage: number; maxInvocations: number; maxWorkgroupsPerDim: number; minStorageOffsetAlignment: number };

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** The pipeline last set on `pass` (consecutive dispatches of one pipeline set it once). */
  private passPipeline: GPUComputePipeline | null = null;
  private pendingDispatches = 0;
  private batchKernels: string[] = [];
  private readonly errorChecks: Promise<GpuError | null>[] = [];
  private readonly asyncErrors: GpuError[] = [];
  private lostError: DeviceLostError | null = null;
  private destroyed = false;
  /**
   * Resolves when the device is gone: lost (driver reset, GPU removed, `device.destroy()`) or
   * destroyed through `destroy()`. From then on every call rejects with a DeviceLostError; create a
   * new context and load the models again.
   */
  readonly lost: Promise<{ reason: DeviceLostError['reason']; message: string }>;
  private readonly scopes: Tensor[][] = [];
  private readonly stagePath: string[] = [];
  private uniformChunks: UniformChunk[] = [];
  /** Chunks whose contents were handed to writeBuffer (which copies them): buffer and host staging reused. */
  private readonly freeUniformChunks: UniformChunk[] = [];
  dispatchCount = 0;
  /** Bind groups created, and reused from the cache (host-overhead reports). */
  readonly bindGroupStats = { created: 0, reused: 0 };
  /**
   * Bind groups by pipeline and exact resources (buffers by identity, offsets, sizes; the uniform
   * block's offset is dynamic). Models call the same kernels on pooled buffers run after run, so
   * most dispatches find theirs here instead of creating one. Entries naming a buffer the pool
   * has since destroyed are never looked up again (a new buffer has a new id) and age out.
   */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  /** Kernel choices for this adapter (src/gpu/tuning.ts; tests flip fields to force variants). */
  readonly tuning: KernelTuning;
  /** How this context has the host wait for Dawn (ContextOptions.polling); null where there is no such choice (browsers). */
  polling: HostPolling | null = null;
  private releasePolling: () => void = () => {};
  /** Set while a dispatch plan is recorded: it sees every allocation, release, dispatch and host write. */
  private recorder: PlanRecorder | null = null;

  constructor(
    /** Kept referenced for the device's lifetime (see AcquiredDevice.gpu). */
    readonly gpu: GPU,
    readonly device: GPUDevice,
    readonly adapterInfo: AdapterDescription,
    readonly features: DeviceFeatures,
    readonly options: ContextOptions = {},
  ) {
    const l = device.limits;
    this.limits = {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxWorkgroupStorage: l.maxComputeWorkgroupStorageSize,
      maxInvocations: l.maxComputeInvocationsPerWorkgroup,
      maxWorkgroupsPerDim: l.maxComputeWorkgroupsPerDimension,
      minStorageOffsetAlignment: l.minStorageBufferOffsetAlignment,
    };
    this.tuning = defaultTuning(isCpuAdapter(adapterInfo), features);
    this.pool = new BufferPool(device, l.maxBufferSize);
    this.pipelines = new PipelineCache(device);
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      ev.preventDefault?.();
      this.asyncErrors.push(new GpuError(`GPU error: ${ev.error.message}`));
    };
    this.lost = device.lost.then((info) => {
      this.releasePolling();
      if (!this.lostError) {
        const reason = info.reason === 'destroyed' ? 'destroyed' : 'unknown';
        this.lostError = new DeviceLostError(`the GPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''}); create a new GpuContext and load the models again`, reason);
      }
      return { reason: this.lostError.reason, message: this.lostError.message };
    });
    if ((options.profile || debugFlags.profile) && features.timestamps) this.profiler = new Profiler(device);
  }

  static async create(options: ContextOptions = {}): Promise<GpuContext> {
    const acq = await acquireDevice(options);
    const ctx = new GpuContext(acq.gpu, acq.device, acq.info, acq.features, options);
    await ctx.setUpPolling();
    return ctx;
  }

  /**
   * Node: have the waits on Dawn follow ContextOptions.polling. The module is imported here, not
   * statically, so that browser bundles (which have no setImmediate and need none of it) leave it
   * in a chunk they never load.
   */
  private async setUpPolling(): Promise<void> {
    if (typeof (globalThis as { setImmediate?: unknown }).setImmediate !== 'function') return;
    let hostWait: typeof import('./host-wait.js');
    try {
      hostWait = await import('./host-wait.js');
    } catch {
      return; // a bundle that lost the chunk: Dawn's own polling, which only costs speed
    }
    this.polling = this.options.polling ?? hostWait.defaultPolling(this.tuning.cpuAdapter);
    this.releasePolling = hostWait.adoptPolling(this.polling);
  }

  get description(): string {
    return describeAdapter(this.adapterInfo);
  }

  /** Whether models should store weights/activations in f16 by default. */
  get useF16(): boolean {
    return !!this.options.preferF16 && this.features.f16;
  }

  /** Storage of the activations inside the encoders (ContextOptions.activations, where the adapter allows f16). */
  get activationDtype(): DType {
    return this.options.activations === 'f16' && this.features.f16 ? 'f16' : 'f32';
  }

  // ---------------------------------------------------------------- tensors

  empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    this.assertUsable();
    const bytes = numel(shape) * BYTES[dtype];
    if (bytes > this.limits.maxBufferSize) {
      throw new ShapeError(
        `tensor ${fmtShape(shape)} ${dtype} needs ${bytes} bytes, over the adapter's maxBufferSize ${this.limits.maxBufferSize}`,
      );
    }
    const storage = new Storage(this.pool.acquire(bytes), bytes, this);
    this.recorder?.allocated(storage, bytes);
    return new Tensor(storage, shape, dtype);
  }

  /** Upload host data. f32 data into an f16 tensor is converted on the way. */
  upload(data: TypedData | number[], shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const n = numel(shape);
    if (data.length !== n) {
      throw new ShapeError(`upload: ${data.length} values for shape ${fmtShape(shape)} (${n} expected)`);
    }
    const t = this.empty(shape, dtype);
    this.write(t, data);
    return t;
  }

  /** Overwrite a contiguous tensor's contents from the host. */
  write(t: Tensor, data: TypedData | number[]): void {
    if (!t.isContiguous) throw new ShapeError(`write: ${t} is a strided view`);
    if (data.length !== t.size) throw new ShapeError(`write: ${data.length} values for ${t}`);
    let bytes: ArrayBufferView;
    if (t.dtype === 'f16') bytes = data instanceof Uint16Array ? data : toF16Array(data);
    else if (t.dtype === 'f32') bytes = data instanceof Float32Array ? data : new Float32Array(data);
    else if (t.dtype === 'i32') bytes = data instanceof Int32Array ? data : new Int32Array(data);
    else bytes = data instanceof Uint32Array ? data : new Uint32Array(data);
    this.writeBytes(t, bytes, t.offset * BYTES[t.dtype]);
  }

  /** Raw byte upload at a byte offset of the tensor's storage. */
  writeBytes(t: Tensor, bytes: ArrayBufferView, byteOffset = 0): void {
    // writeBuffer bypasses the command stream: drain it first so a recycled buffer is not
    // overwritten before earlier, still unsubmitted commands have read it.
    this.flush();
    this.recorder?.refuse(`it writes ${t} from the host`);
    const src = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (byteOffset % 4 !== 0) {
      throw new ShapeError(`write: ${t} starts at byte ${byteOffset}, not 4-byte aligned (an odd f16 offset); write the whole tensor instead`);
    }
    const end = byteOffset + src.byteLength;
    if (end % 4 === 0) {
      this.device.queue.writeBuffer(t.buffer, byteOffset, src);
      return;
    }
    // writeBuffer moves whole 4-byte words: an odd number of f16 values needs its last word
    // padded. Only allowed where that padding falls outside every element of the storage.
    const padded = Math.ceil(end / 4) * 4;
    if (end < t.storage.byteLength) {
      throw new ShapeError(`write: ${t} ends at byte ${end}, inside a 4-byte word shared with other elements`);
    }
    const tmp = new Uint8Array(padded - byteOffset);
    tmp.set(src);
    this.device.queue.writeBuffer(t.buffer, byteOffset, tmp);
  }

  /** Download a contiguous tensor (f16 is widened to f32). */
  async read(t: Tensor): Promise<Float32Array | Int32Array | Uint32Array> {
    this.assertUsable();
    if (!t.isContiguous) throw new ShapeError(`read: ${t} is a strided view; make it contiguous first`);
    const elem = BYTES[t.dtype];
    const start = t.offset * elem;
    const end = start + t.size * elem;
    const a0 = Math.floor(start / 4) * 4;
    const a1 = Math.max(a0 + 4, Math.ceil(end / 4) * 4);
    const staging = this.device.createBuffer({
      size: a1 - a0,
      usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
      label: 'readback',
    });
    this.endPass();
    this.ensureEncoder().copyBufferToBuffer(t.buffer, a0, staging, 0, a1 - a0);
    this.flush();
    try {
      await staging.mapAsync(MapMode.READ);
    } catch (e) {
      staging.destroy();
      this.assertUsable(); // a lost device rejects the map: name the loss, not the symptom
      await this.sync();
      const err = e as Error;
      throw new GpuError(`readback of ${t} failed: ${err.name}${err.message ? `: ${err.message}` : ''}`);
    }
    const raw = staging.getMappedRange().slice(start - a0, end - a0);
    staging.destroy();
    await this.sync();
    if (t.dtype === 'f16') return fromF16Array(new Uint16Array(raw));
    if (t.dtype === 'f32') return new Float32Array(raw);
    if (t.dtype === 'i32') return new Int32Array(raw);
    return new Uint32Array(raw);
  }

  releaseStorage(s: Storage): void {
    this.recorder?.released(s);
    this.pool.release(s.buffer);
  }

  track(t: Tensor): void {
    this.scopes[this.scopes.length - 1]?.push(t);
  }

  /**
   * Run `fn`; every tensor created inside and not part of its result is disposed at the end.
   * Tensors in the result (a tensor, or arrays / plain objects holding tensors) move to the parent scope.
   */
  scope<T>(fn: () => T): T {
    return this.syncScope(fn, undefined);
  }

  /**
   * Tensors owned by one asynchronous call. `task.run(fn)` is a scope whose surviving tensors
   * belong to the task (not to any enclosing scope) until `task.dispose()`. Unlike `scopeAsync`,
   * tasks are safe when calls overlap: every scope stays synchronous, so no other call's tensors
   * can land in it. The library's own async calls (encode, predict, ...) use tasks.
   */
  task(): TensorTask {
    return new TensorTask(this);
  }

  /** A synchronous scope; survivors go to `into` when given, else to the enclosing scope. */
  syncScope<T>(fn: () => T, into: Tensor[] | undefined): T {
    this.scopes.push([]);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.closeScope(undefined);
      throw e;
    }
    if (result instanceof Promise) {
      this.closeScope(undefined);
      throw new Error('scope(): the function returned a promise; use ctx.task() for async work');
    }
    this.closeScope(result, into);
    return result;
  }

  /**
   * Like `scope` for an async function, for sequential scripts: every tensor created while it is
   * open, by anyone, is attributed to it. Do not use it while other calls on this context may be
   * in flight (use `task()`); the library never does.
   */
  async scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
    this.scopes.push([]);
    const depth = this.scopes.length;
    let result: T;
    try {
      result = await fn();
    } catch (e) {
      this.closeScope(undefined);
      throw e;
    }
    if (this.scopes.length !== depth) throw new Error('scopeAsync: interleaved scopes');
    this.closeScope(result);
    return result;
  }

  private closeScope(result: unknown, into?: Tensor[]): void {
    const created = this.scopes.pop()!;
    const keep = new Set<Tensor>();
    collectTensors(result, keep, 0);
    const parent = into ?? this.scopes[this.scopes.length - 1];
    for (const t of created) {
      if (keep.has(t) || t.persistent) parent?.push(t);
      else t.dispose();
    }
  }

  /** Label dispatches encoded inside `fn` with a stage name (profiler tables and traces). */
  stage<T>(name: string, fn: () => T): T {
    this.stagePath.push(name);
    try {
      return fn();
    } finally {
      this.stagePath.pop();
    }
  }

  // ---------------------------------------------------------------- dispatch

  run<C extends KernelConfig, U extends UniformDecl>(
    def: KernelDef<C, U>,
    config: C,
    bindings: Readonly<Record<string, Bindable>>,
    uniforms: UniformValues<U>,
    workgroups: readonly [number, number, number],
    cost: KernelCost = {},
  ): void {
    this.assertUsable();
    const cached = this.pipelines.get(def, config);
    const decls = cached.bindings;
    for (const w of workgroups) {
      if (!Number.isInteger(w) || w < 0 || w > this.limits.maxWorkgroupsPerDim) {
        throw new ShapeError(`${def.name}: workgroup count ${fmtShape(workgroups)} outside [0, ${this.limits.maxWorkgroupsPerDim}]`);
      }
    }
    if (workgroups[0] * workgroups[1] * workgroups[2] === 0) return;

    const resources: GPUBufferBinding[] = [];
    const rec = this.recorder;
    const boundTensors: Tensor[] | null = rec ? [] : null;
    for (const d of decls) {
      const b = bindings[d.name];
      if (!b) throw new ShapeError(`${def.name}: binding '${d.name}' not supplied`);
      const whole = b instanceof Tensor;
      const t = whole ? b : b.tensor;
      if (d.scalar !== t.dtype) {
        throw new ShapeError(`${def.name}: binding '${d.name}' expects ${d.scalar}, got ${t}`);
      }
      const offset = whole ? 0 : b.byteOffset;
      const size = whole ? Math.ceil(t.storage.byteLength / 16) * 16 : b.byteSize;
      if (size > this.limits.maxStorageBufferBindingSize) {
        throw new ShapeError(
          `${def.name}: binding '${d.name}' (${t}) spans ${size} bytes, over the adapter's ` +
            `maxStorageBufferBindingSize ${this.limits.maxStorageBufferBindingSize}; split it`,
        );
      }
      const buffer = t.buffer;
      const bound = Math.min(size, buffer.size - offset);
      resources.push({ buffer, offset, size: bound });
      boundTensors?.push(t);
    }
    const u = this.allocUniform(def.uniforms.byteSize);
    def.uniforms.pack(uniforms, u.chunk.view, u.offset);
    rec?.dispatch(def.name, cached, resources, boundTensors!, new Uint8Array(u.chunk.view.buffer, u.offset, def.uniforms.byteSize), workgroups);
    resources.push({ buffer: u.chunk.buffer, offset: 0, size: def.uniforms.byteSize });

    if (debugFlags.sync || this.profiler?.full) this.flush();
    this.openBatch();
    this.encodeStep(cached, this.bindGroupFor(cached, resources), [u.offset], workgroups, def.name, cost);
  }

  /** Submit everything encoded so far. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    const enc = this.encoder;
    this.encoder = null;
    this.profiler?.resolve(enc);
    for (const c of this.uniformChunks) {
      if (c.used > 0) this.device.queue.writeBuffer(c.buffer, 0, c.view.buffer, 0, c.used);
    }
    this.device.queue.submit([enc.finish()]);
    for (const c of this.uniformChunks) {
      c.used = 0;
      this.freeUniformChunks.push(c);
    }
    this.uniformChunks = [];
    this.pendingDispatches = 0;
    const kernels = this.batchKernels;
    this.batchKernels = [];
    const oom = this.device.popErrorScope();
    const validation = this.device.popErrorScope();
    this.errorChecks.push(
      Promise.all([validation, oom]).then(([v, o]) => {
        const e = v ?? o;
        if (!e) return null;
        const names = [...new Set(kernels)].join(', ');
        return new GpuError(`GPU error in a batch running [${names}]: ${e.message}`);
      }),
    );
  }

  // ---------------------------------------------------------------- dispatch plans

  /** Whether dispatch plans may record and replay now (not while profiling, syncing or logging dispatches, nor inside a recording). */
  get dispatchPlansActive(): boolean {
    return this.options.dispatchPlans !== false && debugFlags.plans && !this.profiler && !debugFlags.sync && debugFlags.level < 2 && !this.recorder;
  }

  /** Run `fn` with its allocations, releases, dispatches and host writes reported to `recorder` (src/gpu/dispatch-plan.ts). */
  recordDispatches<T>(recorder: PlanRecorder, fn: () => T): T {
    this.recorder = recorder;
    try {
      return fn();
    } finally {
      this.recorder = null;
    }
  }

  /**
   * Encode one dispatch with its bind group (uniforms at `offsets`): `run`'s last step, and each
   * step of a replayed dispatch plan.
   */
  encodeStep(cached: CachedPipeline, bindGroup: GPUBindGroup, offsets: readonly number[], workgroups: readonly [number, number, number], name: string, cost: KernelCost = {}): void {
    this.openBatch();
    let pass: GPUComputePassEncoder;
    if (this.profiler) {
      this.endPass();
      pass = this.ensureEncoder().beginComputePass({
        label: cached.key,
        timestampWrites: this.profiler.passTimestamps(name, cached.key, this.stagePath.join('/'), cost),
      });
    } else {
      pass = this.pass ??= this.ensureEncoder().beginComputePass({ label: 'samclip' });
    }
    // Each encoder call costs ~1-2 µs in Dawn's Node binding; a third of the SAM decoder's
    // dispatches repeat the pipeline before them. (A profiled step's new pass starts unset.)
    if (this.passPipeline !== cached.pipeline) {
      pass.setPipeline(cached.pipeline);
      this.passPipeline = cached.pipeline;
    }
    pass.setBindGroup(0, bindGroup, offsets);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    if (this.profiler) pass.end();
    this.dispatchCount++;
    this.batchKernels.push(name);
    if (debugFlags.level >= 2) console.error(`[samclip] dispatch ${cached.key} ${fmtShape(workgroups)} ${this.stagePath.join('/')}`);
    if (++this.pendingDispatches >= MAX_PENDING_DISPATCHES || debugFlags.sync) this.flush();
  }

  /** A bind group of `cached`'s layout over these resources (uniforms last): the cached one for exactly these, or a new one. */
  bindGroupFor(cached: CachedPipeline, resources: GPUBufferBinding[]): GPUBindGroup {
    let key = cached.key;
    for (const r of resources) key += `|${this.bufferId(r.buffer)}:${r.offset}:${r.size}`;
    return this.bindGroup(key, cached.layout, resources, cached.key);
  }

  /**
   * Flush, wait for the GPU, and raise any compile, validation or device-loss error. Every pending
   * error is consumed: the most specific one (a WGSL compile error) is thrown, the others, which
   * are usually its consequences, are dropped, so the context is clean afterwards.
   */
  async sync(): Promise<void> {
    this.assertUsable();
    this.flush();
    const compile = await this.pipelines.checkCompiles().then(() => null, (e: unknown) => e as Error);
    await this.device.queue.onSubmittedWorkDone();
    const checks = await Promise.all(this.errorChecks.splice(0));
    const asyncErr = this.asyncErrors.splice(0)[0];
    const err = this.lostError ?? compile ?? checks.find((e) => e !== null) ?? asyncErr;
    if (this.profiler) await this.profiler.collect().catch(() => undefined);
    if (err) throw err;
    if (this.profiler && debugFlags.level >= 1 && this.profiler.records.length) {
      console.error(this.profiler.formatTable());
      this.profiler.clear();
    }
  }

  enableProfiling(): Profiler {
    if (!this.features.timestamps) {
      throw new GpuError(`profiling needs the 'timestamp-query' feature, which ${this.description} does not offer`);
    }
    this.flush();
    this.profiler ??= new Profiler(this.device);
    return this.profiler;
  }

  poolStats(): Readonly<PoolStats> {
    return this.pool.getStats();
  }

  destroy(): void {
    if (this.destroyed) return;
    if (!this.lostError) this.flush();
    this.destroyed = true;
    this.lostError ??= new DeviceLostError('the GPU context was destroyed (destroy() was called); create a new GpuContext and load the models again', 'context-destroyed');
    this.profiler?.destroy();
    this.pool.trim();
    this.device.destroy();
    this.releasePolling();
  }

  // ---------------------------------------------------------------- internals

  /** Throws the DeviceLostError once the context was destroyed or its device lost. */
  assertUsable(): void {
    if (this.lostError) throw this.lostError;
  }

  private openBatch(): void {
    if (this.encoder) return;
    this.device.pushErrorScope('validation');
    this.device.pushErrorScope('out-of-memory');
    this.encoder = this.device.createCommandEncoder({ label: 'samclip' });
  }

  private ensureEncoder(): GPUCommandEncoder {
    this.openBatch();
    return this.encoder!;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.passPipeline = null;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(b, id);
    }
    return id;
  }

  /** A cached bind group for exactly these resources, or a new one (kept, LRU-bounded). */
  private bindGroup(key: string, layout: GPUBindGroupLayout, resources: GPUBufferBinding[], label: string): GPUBindGroup {
    const hit = this.bindGroups.get(key);
    if (hit) {
      this.bindGroups.delete(key);
      this.bindGroups.set(key, hit);
      this.bindGroupStats.reused++;
      return hit;
    }
    const entries = resources.map((resource, binding) => ({ binding, resource }));
    const bg = this.device.createBindGroup({ layout, entries, label });
    this.bindGroupStats.created++;
    this.bindGroups.set(key, bg);
    if (this.bindGroups.size > BIND_GROUP_CACHE) this.bindGroups.delete(this.bindGroups.keys().next().value!);
    return bg;
  }

  private newUniformChunk(): UniformChunk {
    const buffer = this.device.createBuffer({ size: UNIFORM_CHUNK, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: 'uniforms' });
    return { buffer, view: new DataView(new ArrayBuffer(UNIFORM_CHUNK)), used: 0 };
  }

  private allocUniform(byteSize: number): { chunk: UniformChunk; offset: number } {
    const size = Math.ceil(byteSize / 256) * 256;
    let chunk = this.uniformChunks[this.uniformChunks.length - 1];
    if (!chunk || chunk.used + size > UNIFORM_CHUNK) {
      chunk = this.freeUniformChunks.pop() ?? this.newUniformChunk();
      this.uniformChunks.push(chunk);
    }
    const offset = chunk.used;
    chunk.used += size;
    return { chunk, offset };
  }
}

/** See `GpuContext.task()`. */
export class TensorTask {
  private readonly owned: Tensor[] = [];

  constructor(private readonly ctx: GpuContext) {}

  /** A synchronous scope: temporaries are freed at its end, the tensors in its result kept by this task. */
  run<T>(fn: () => T): T {
    return this.ctx.syncScope(fn, this.owned);
  }

  /** Hand a tensor made elsewhere to this task. */
  own<T extends Tensor>(t: T): T {
    this.owned.push(t);
    return t;
  }

  /** Free every tensor the task holds (persistent ones, such as embeddings, stay). */
  dispose(): void {
    for (const t of this.owned.splice(0)) if (!t.persistent) t.dispose();
  }
}

function collectTensors(v: unknown, into: Set<Tensor>, depth: number): void {
  if (depth > 3 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    into.add(v);
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) collectTensors(x, into, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(v) === Object.prototype || v instanceof Map) {
    const values = v instanceof Map ? [...v.values()] : Object.values(v);
    for (const x of values) collectTensors(x, into, depth + 1);
  }
}

/** Software adapters that run shaders on the CPU, known by what they report of themselves. */
export function isCpuAdapter(info: AdapterDescription): boolean {
  return /llvmpipe|lavapipe|swiftshader|microsoft basic render|\bwarp\b/i.test(
    [info.vendor, info.architecture, info.device, info.description].join(' '),
  );
}
