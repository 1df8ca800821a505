/**
 * ONNX Runtime Web's WebGPU execution provider, in Node, on the shared Dawn instance (dawn.ts): the
 * side-by-side competitor of our kernels on the same adapter.
 *
 * How it is wired (onnxruntime-web 1.30):
 *  - `onnxruntime-web/webgpu` resolves in Node to `dist/ort.webgpu.bundle.min.mjs`, which loads the
 *    *asyncify* wasm build (`ort-wasm-simd-threaded.asyncify.wasm`, found next to the bundle): ORT's
 *    native C++ WebGPU EP compiled to wasm, talking to WebGPU through emdawnwebgpu (not the older
 *    JS "JSEP" kernels). `env.webgpu.adapter` is ignored by this build; a device is passed per session
 *    as the EP option `{ name: 'webgpu', device }`, which must be an `instanceof GPUDevice` (Dawn's
 *    class, installed as a global by the engine's loadDawn).
 *  - The device is a second device on the shared instance's adapter (dawn.ts `secondDevice`), one
 *    per process, reused by every session (ORT registers it once).
 *  - `navigator.gpu` is set to the shared instance as well (ORT checks it exists).
 *  - `env.wasm.numThreads = 1`: no worker threads (the EP's CPU side is graph bookkeeping).
 *  - queue.writeBuffer gets views of ORT's SharedArrayBuffer heap; see allowSharedArrayBufferWrites.
 *  - V8 flag `--liftoff-only`: without it, the first `session.run` stalls ~40 s (V8 optimising the
 *    26 MB module with TurboFan, on 2 cores). Node refuses that flag in NODE_OPTIONS, so it is set
 *    here with v8.setFlagsFromString before ORT compiles its wasm; `node --import tsx ...` needs no
 *    extra flag. The price: ORT's wasm runs as baseline (Liftoff) code, which only affects its
 *    per-run CPU overhead (graph walk, kernel dispatch). SAMCLIP_BENCH_ORT_TIERUP=1 keeps TurboFan
 *    (and pays the stall once) to check that overhead.
 *  - Graph capture off (the default). IO: `io: 'cpu'` (default) feeds and returns host tensors, so
 *    a run includes upload and readback, like our end-to-end figure; `io: 'gpu'` binds GPU buffers
 *    (`Tensor.fromGpuBuffer`, `preferredOutputLocation: 'gpu-buffer'`) and waits for the queue,
 *    like our GPU-resident figure.
 */
import v8 from 'node:v8';
import type * as OrtWeb from 'onnxruntime-web';
import { allowSharedArrayBufferWrites, installNavigatorGpu, secondDevice } from './dawn.js';
import type { BenchSession, Feeds, Outputs } from './session.js';

type Ort = typeof OrtWeb;

export interface OrtWebOptions {
  /** Where inputs and outputs live: host memory (default) or GPU buffers on ORT's device. */
  io?: 'cpu' | 'gpu';
  /** Passed through (default 'all'). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

/** Inputs uploaded once; each `run` only runs the graph and waits for the queue. */
export interface GpuBoundRun {
  run(): Promise<void>;
  /** One more run whose outputs are read back (validation). */
  read(): Promise<Outputs>;
  dispose(): void;
}

export interface OrtWebSession extends BenchSession {
  readonly device: GPUDevice;
  readonly io: 'cpu' | 'gpu';
  /** `io: 'gpu'` sessions only. */
  bindGpu(feeds: Feeds): GpuBoundRun;
  /** GPU errors raised on ORT's device since the last call (validation, out-of-memory). */
  takeGpuErrors(): string[];
}

interface OrtWebRuntime {
  ort: Ort;
  device: GPUDevice;
  adapter: string;
  errors: string[];
}

let runtime: Promise<OrtWebRuntime> | null = null;

export const ORT_WEB_TIERUP = process.env.SAMCLIP_BENCH_ORT_TIERUP === '1';

async function loadOrtWeb(): Promise<OrtWebRuntime> {
  if (!ORT_WEB_TIERUP) v8.setFlagsFromString('--liftoff-only');
  await installNavigatorGpu();
  allowSharedArrayBufferWrites();
  const ort = (await import('onnxruntime-web/webgpu')) as unknown as Ort;
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  const { device, adapter } = await secondDevice('ort-web');
  const errors: string[] = [];
  device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
    ev.preventDefault?.();
    errors.push(ev.error.message);
  };
  console.error(
    `[ort-web] onnxruntime-web ${ort.env.versions.web} WebGPU EP (asyncify build, ${ORT_WEB_TIERUP ? 'TurboFan' : 'Liftoff-only'} wasm) ` +
      `on the shared Dawn instance: ${adapter}; features ${[...device.features].sort().join(', ')}; ` +
      `maxStorageBufferBindingSize ${device.limits.maxStorageBufferBindingSize}, maxBufferSize ${device.limits.maxBufferSize}`,
  );
  return { ort, device, adapter, errors };
}

export async function ortWebAdapter(): Promise<string> {
  runtime ??= loadOrtWeb();
  return (await runtime).adapter;
}

function toOutputs(entries: [string, OrtWeb.Tensor][], data: Float32Array[]): Outputs {
  const out: Outputs = {};
  entries.forEach(([k, t], i) => (out[k] = { data: data[i]!, dims: [...t.dims] }));
  return out;
}

async function download(result: OrtWeb.InferenceSession.OnnxValueMapType): Promise<Outputs> {
  const entries = Object.entries(result) as [string, OrtWeb.Tensor][];
  const data = await Promise.all(
    entries.map(async ([, t]) => {
      // GPU outputs are read back and released; host outputs are returned as they are.
      const d = t.location === 'cpu' ? t.data : await t.getData(true);
      return d as Float32Array;
    }),
  );
  return toOutputs(entries, data);
}

export async function createOrtWebSession(modelBytes: Uint8Array, opts: OrtWebOptions = {}): Promise<OrtWebSession> {
  runtime ??= loadOrtWeb();
  const { ort, device, adapter, errors } = await runtime;
  const io = opts.io ?? 'cpu';
  const session = await ort.InferenceSession.create(modelBytes, {
    executionProviders: [{ name: 'webgpu', device } as OrtWeb.InferenceSession.WebGpuExecutionProviderOption],
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    enableGraphCapture: false,
    ...(io === 'gpu' ? { preferredOutputLocation: 'gpu-buffer' as const } : {}),
  });
  const hostTensors = (feeds: Feeds) => {
    const t: Record<string, OrtWeb.Tensor> = {};
    for (const [k, f] of Object.entries(feeds)) t[k] = new ort.Tensor('float32', f.data, [...f.dims]);
    return t;
  };
  return {
    label: `onnxruntime-web ${ort.env.versions.web} WebGPU (${io} io) on ${adapter}`,
    device,
    io,
    async run(feeds: Feeds): Promise<Outputs> {
      return download(await session.run(hostTensors(feeds)));
    },
    bindGpu(feeds: Feeds): GpuBoundRun {
      if (io !== 'gpu') throw new Error('bindGpu needs a session created with io: "gpu"');
      const buffers: GPUBuffer[] = [];
      const inputs: Record<string, OrtWeb.Tensor> = {};
      for (const [k, f] of Object.entries(feeds)) {
        const buf = device.createBuffer({
          size: Math.ceil(f.data.byteLength / 16) * 16,
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
          label: `ort-web input ${k}`,
        });
        device.queue.writeBuffer(buf, 0, f.data);
        buffers.push(buf);
        inputs[k] = ort.Tensor.fromGpuBuffer(buf, { dataType: 'float32', dims: [...f.dims] });
      }
      return {
        async run() {
          const out = await session.run(inputs);
          // run() resolves once the work is submitted; the clock stops when the queue is drained.
          await device.queue.onSubmittedWorkDone();
          for (const t of Object.values(out)) (t as OrtWeb.Tensor).dispose();
        },
        async read() {
          return download(await session.run(inputs));
        },
        dispose() {
          for (const b of buffers) b.destroy();
        },
      };
    },
    takeGpuErrors: () => errors.splice(0),
    release: () => session.release(),
  };
}
