/**
 * One pipeline cache per device. Pipelines are created synchronously on first use (dispatch is
 * synchronous); compile diagnostics are collected asynchronously and raised, with the compiler's
 * line:col messages, the key and the source, at the next synchronisation point. `warmup` compiles
 * a list of kernels ahead of time with createComputePipelineAsync, de-duplicating in-flight work.
 */
import { ShaderStage } from './webgpu-constants.js';
import { WgslCompileError } from './errors.js';
import { type KernelConfig, type KernelDef, pipelineKey, renderWgsl } from './kernel.js';
import type { UniformDecl } from './uniforms.js';
import { debugFlags } from './debug.js';

export interface CachedPipeline {
  readonly key: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /** The kernel's storage bindings for this config, and the scalar type each holds (checked per dispatch). */
  readonly bindings: readonly { readonly name: string; readonly scalar: string }[];
}

export class PipelineCache {
  private readonly cache = new Map<string, CachedPipeline>();
  /**
   * Dispatch-time lookup: per kernel, by the config's plain JSON (its keys in the caller's order,
   * which a call site keeps from call to call). A miss falls back to the order-independent key, so
   * two orders of one config still share a pipeline; the hit skips sorting keys on every dispatch.
   */
  private readonly byJson = new WeakMap<object, Map<string, CachedPipeline>>();
  private readonly inflight = new Map<string, Promise<CachedPipeline>>();
  private readonly checks: Promise<WgslCompileError | null>[] = [];
  compiled = 0;
  /** Milliseconds spent in synchronous pipeline creation (shader compiles), for host-cost reports. */
  compileMs = 0;

  constructor(private readonly device: GPUDevice) {}

  get<C extends KernelConfig, U extends UniformDecl>(def: KernelDef<C, U>, config: C): CachedPipeline {
    let perKernel = this.byJson.get(def);
    if (!perKernel) this.byJson.set(def, (perKernel = new Map()));
    const json = JSON.stringify(config);
    const fast = perKernel.get(json);
    if (fast) return fast;
    const entry = this.getByKey(def, config);
    perKernel.set(json, entry);
    return entry;
  }

  private getByKey<C extends KernelConfig, U extends UniformDecl>(def: KernelDef<C, U>, config: C): CachedPipeline {
    const key = pipelineKey(def.name, config);
    const hit = this.cache.get(key);
    if (hit) return hit;
    // Creation errors go to a scope of their own (reported by checkCompiles) rather than to
    // whatever batch happens to be open, or to the device's uncaptured-error handler.
    const t0 = performance.now();
    this.device.pushErrorScope('validation');
    const { module, layout, code, bindings } = this.prepare(def, config, key);
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout], label: key }),
      compute: { module, entryPoint: 'main' },
    });
    const scope = this.device.popErrorScope();
    this.checks.push(
      scope.then((e) => (e && !/parsing WGSL|WGSL/.test(e.message) ? new WgslCompileError(key, [e.message], code) : null)),
    );
    const entry: CachedPipeline = { key, pipeline, layout, bindings };
    this.cache.set(key, entry);
    this.compileMs += performance.now() - t0;
    return entry;
  }

  /** Compile ahead of time (async, parallel where the implementation allows). */
  async warmup<C extends KernelConfig, U extends UniformDecl>(
    def: KernelDef<C, U>,
    config: C,
  ): Promise<CachedPipeline> {
    const key = pipelineKey(def.name, config);
    const hit = this.cache.get(key);
    if (hit) return hit;
    let p = this.inflight.get(key);
    if (!p) {
      const { module, layout, bindings } = this.prepare(def, config, key);
      p = this.device
        .createComputePipelineAsync({
          label: key,
          layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout], label: key }),
          compute: { module, entryPoint: 'main' },
        })
        .then((pipeline) => {
          const entry: CachedPipeline = { key, pipeline, layout, bindings };
          this.cache.set(key, entry);
          this.inflight.delete(key);
          return entry;
        });
      this.inflight.set(key, p);
    }
    return p;
  }

  /** Resolve pending compile diagnostics; throws the first compile error found. */
  async checkCompiles(): Promise<void> {
    if (this.checks.length === 0) return;
    const results = await Promise.all(this.checks.splice(0));
    // A WGSL error also invalidates the pipeline: prefer the compiler's message over that echo.
    const err = results.find((r) => r !== null && !r.messages[0]?.includes('Invalid ShaderModule')) ?? results.find((r) => r !== null);
    if (err) throw err;
  }

  get size(): number {
    return this.cache.size;
  }

  private prepare<C extends KernelConfig, U extends UniformDecl>(
    def: KernelDef<C, U>,
    config: C,
    key: string,
  ) {
    const code = renderWgsl(def, config);
    if (debugFlags.dumpWgsl) debugFlags.dumpWgsl(key, code);
    const module = this.device.createShaderModule({ code, label: key });
    this.compiled++;
    this.checks.push(
      module.getCompilationInfo().then((info) => {
        const errors = info.messages.filter((m) => m.type === 'error');
        if (errors.length === 0) return null;
        return new WgslCompileError(
          key,
          errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`),
          code,
        );
      }),
    );
    const bindings = def.bindings(config);
    const entries: GPUBindGroupLayoutEntry[] = bindings.map((b, i) => ({
      binding: i,
      visibility: ShaderStage.COMPUTE,
      buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' },
    }));
    entries.push({
      binding: bindings.length,
      visibility: ShaderStage.COMPUTE,
      // The uniform block's offset in the context's uniform arena is a dynamic offset, so one bind
      // group serves every call on the same buffers (GpuContext's bind-group cache).
      buffer: { type: 'uniform', hasDynamicOffset: true },
    });
    const layout = this.device.createBindGroupLayout({ entries, label: key });
    const named = bindings.map((b) => ({ name: b.name, scalar: b.holds ?? b.type.replace(/^vec[234]<(\w+)>$/, '$1') }));
    return { module, layout, code, bindings: named };
  }
}
