/**
 * The single Dawn `GPU` instance of a bench process, shared by our engine and ONNX Runtime Web so
 * that both run on the same adapter (the same physical device, the same driver, the same process).
 *
 * Each side gets its own GPUDevice from that instance: our GpuContext installs error scopes and an
 * uncaptured-error handler on its device, ORT's WebGPU EP manages its own; sharing one device would
 * let each see the other's errors.
 *
 * The instance lives in a module-level variable on purpose: when Dawn's Node `GPU` object is
 * garbage-collected, Dawn tears the instance down under live devices and the process aborts later
 * (typically in a mapAsync). Never let it go out of scope.
 */
import { GpuContext, type ContextOptions } from '../../src/gpu/context.js';
import { loadDawn } from '../../src/gpu/device.js';
import { tuneForCli } from '../../src/cli/env.js';

// Mesa's Vulkan loader warns on every start without it.
process.env.XDG_RUNTIME_DIR ??= '/tmp';

let sharedGpu: GPU | null = null;
let sharedFlags: string[] = [];
let ourCtx: Promise<GpuContext> | null = null;
let sabFixInstalled = false;

/**
 * The process-wide Dawn instance, created on first use with the same flags as the engine's own
 * discovery (SAMCLIP_ADAPTER / SAMCLIP_BACKEND, exact timestamps).
 */
export async function sharedDawn(): Promise<GPU> {
  if (sharedGpu) return sharedGpu;
  const dawn = await loadDawn();
  const flags: string[] = [];
  if (process.env.SAMCLIP_ADAPTER) flags.push(`adapter=${process.env.SAMCLIP_ADAPTER}`);
  if (process.env.SAMCLIP_BACKEND) flags.push(`backend=${process.env.SAMCLIP_BACKEND}`);
  flags.push('disable-dawn-features=timestamp_quantization');
  sharedGpu = dawn.create(flags);
  sharedFlags = flags;
  return sharedGpu;
}

export function dawnFlags(): readonly string[] {
  return sharedFlags;
}

/**
 * Our engine's context on the shared instance (one per process), with the per-adapter kernel
 * choices the CLI uses (measured once per adapter and host, then read from the samclip cache;
 * SAMCLIP_TUNING=default keeps the fixed rule).
 */
export function ourContext(opts: Omit<ContextOptions, 'gpu'> = {}): Promise<GpuContext> {
  ourCtx ??= sharedDawn().then(async (gpu) => {
    const ctx = await GpuContext.create({ ...opts, gpu });
    const t = await tuneForCli(ctx);
    console.log(`kernel choices (${t.source}): ${JSON.stringify(t.choices)}`);
    return ctx;
  });
  return ourCtx;
}

/**
 * A second device on the shared instance with every feature and the adapter's maximum limits (what
 * ORT's WebGPU EP asks for when it creates its own device), plus a one-line adapter description.
 */
export async function secondDevice(label: string): Promise<{ device: GPUDevice; adapter: string }> {
  const gpu = await sharedDawn();
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error(`${label}: the shared Dawn instance offers no adapter`);
  const requiredLimits: Record<string, number> = {};
  // GPUSupportedLimits exposes its values as prototype getters: walk them with for...in.
  for (const k in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const device = await adapter.requestDevice({
    requiredFeatures: [...adapter.features] as GPUFeatureName[],
    requiredLimits,
    label,
  });
  return { device, adapter: describeAdapterInfo(adapter.info) };
}

/** Same format as GpuContext.description, minus the runtime tag. */
export function describeAdapterInfo(i: { vendor: string; architecture: string; device: string; description: string }): string {
  return [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ');
}

/**
 * ORT Web's wasm heap is a SharedArrayBuffer (the build is "threaded" even with one thread) and its
 * emdawnwebgpu glue hands `queue.writeBuffer` views of that heap. Browsers accept them; Dawn's Node
 * binding throws "Invalid argument". Copy such views into a fresh ArrayBuffer first. Other callers
 * (our engine) never pass shared memory and go straight through.
 */
export function allowSharedArrayBufferWrites(): void {
  if (sabFixInstalled) return;
  const proto = (globalThis as unknown as { GPUQueue: { prototype: GPUQueue } }).GPUQueue.prototype;
  const original = proto.writeBuffer;
  type WriteArgs = [GPUBuffer, number, BufferSource | SharedArrayBuffer, number?, number?];
  proto.writeBuffer = function (this: GPUQueue, ...args: WriteArgs): undefined {
    const [buffer, offset, data, dataOffset, size] = args;
    if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
      const copy = new Uint8Array(data.byteLength);
      copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      // For typed arrays, dataOffset and size count elements; the copy counts bytes.
      const el = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      return original.call(this, buffer, offset, copy, dataOffset === undefined ? undefined : dataOffset * el,
        size === undefined ? undefined : size * el);
    }
    return (original as (...a: WriteArgs) => undefined).apply(this, args);
  } as GPUQueue['writeBuffer'];
  sabFixInstalled = true;
}

/** ORT Web finds WebGPU through `navigator.gpu`; Node 20 has no navigator at all. */
export async function installNavigatorGpu(): Promise<void> {
  const gpu = await sharedDawn();
  const g = globalThis as unknown as { navigator?: { gpu?: GPU } };
  if (g.navigator) {
    if (g.navigator.gpu !== gpu) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  } else {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }
}
