/**
 * Device acquisition for browsers (`navigator.gpu`) and Node (Dawn through the optional `webgpu`
 * package, loaded on first use through the platform seam so browser bundles never see it).
 */
import { importWebgpu } from '#platform';
import { GpuUnavailableError } from './errors.js';

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** `node-dawn` or `browser`. */
  runtime: 'node-dawn' | 'browser' | 'custom';
}

export interface DeviceOptions {
  /** Use this GPU object instead of discovering one (e.g. a Dawn instance you created). */
  gpu?: GPU;
  /** Dawn only: adapter name to pick (see `samclip doctor` for the list). */
  adapter?: string;
  /** Dawn only: backend (`vulkan`, `metal`, `d3d12`, ...). */
  backend?: string;
  /** Dawn only: toggles to enable / disable. */
  enableToggles?: string[];
  disableToggles?: string[];
  powerPreference?: GPUPowerPreference;
  /** Optional features to request when offered. Default: shader-f16, timestamp-query, subgroups. */
  optionalFeatures?: GPUFeatureName[];
  /** Request no optional features at all (the portable f32 path). */
  plain?: boolean;
}

export interface AcquiredDevice {
  /**
   * The GPU object the adapter came from. Holders of the device must keep it referenced: when
   * Dawn's Node instance is garbage-collected it is torn down under the live device (the process
   * then aborts in a later mapAsync).
   */
  gpu: GPU;
  device: GPUDevice;
  adapter: GPUAdapter;
  info: AdapterDescription;
  features: DeviceFeatures;
}

/** What the engine's kernels may use on a device. */
export interface DeviceFeatures {
  f16: boolean;
  timestamps: boolean;
  /** The `subgroups` feature and the `subgroup_id` WGSL language feature (workgroup-wide reductions need both). */
  subgroups: boolean;
  /**
   * `chromium-experimental-subgroup-matrix` with an f16 x f16 -> f32 configuration (tensor cores):
   * its M, N, K, or null when absent. Dawn exposes it on recent NVIDIA / Apple / Intel drivers,
   * sometimes only with the `allow_unsafe_apis` toggle.
   */
  subgroupMatrix: { M: number; N: number; K: number } | null;
  /** The adapter's subgroup sizes [min, max] where it reports them. */
  subgroupSizes: [number, number] | null;
}

/** Adapter feature name of Chromium's subgroup-matrix extension (not in @webgpu/types). */
export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';

interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

function subgroupSizes(adapter: GPUAdapter): [number, number] | null {
  const i = adapter.info as unknown as { subgroupMinSize?: number; subgroupMaxSize?: number };
  return i.subgroupMinSize && i.subgroupMaxSize ? [i.subgroupMinSize, i.subgroupMaxSize] : null;
}

/** The f16 -> f32 subgroup-matrix shape an adapter offers, if any. */
function subgroupMatrixShape(adapter: GPUAdapter, device: GPUDevice): DeviceFeatures['subgroupMatrix'] {
  if (!device.features.has(SUBGROUP_MATRIX_FEATURE)) return null;
  const configs = (adapter.info as unknown as { subgroupMatrixConfigs?: SubgroupMatrixConfig[] }).subgroupMatrixConfigs ?? [];
  const c = configs.find((x) => x.componentType === 'f16' && x.resultComponentType === 'f32');
  return c ? { M: c.M, N: c.N, K: c.K } : null;
}

const DEFAULT_FEATURES: GPUFeatureName[] = ['shader-f16', 'timestamp-query', 'subgroups' as GPUFeatureName, SUBGROUP_MATRIX_FEATURE as GPUFeatureName];

/** Limits the engine wants as high as the adapter allows. */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export const NO_ADAPTER_HELP =
  'No WebGPU adapter was found. In a browser, use a recent Chrome/Edge (or Firefox/Safari with WebGPU ' +
  'enabled) on a secure origin. On Node, install Dawn with `npm i webgpu` and a Vulkan, Metal or D3D12 ' +
  'driver; without a GPU on Debian/Ubuntu install Mesa lavapipe >= 24 (Debian 12: enable ' +
  'bookworm-backports, then `apt-get install -t bookworm-backports mesa-vulkan-drivers`; Ubuntu 24.04: ' +
  '`apt-get install mesa-vulkan-drivers`). `samclip doctor` checks the setup.';

let dawnModule: Promise<{ create(flags: string[]): GPU; globals: object }> | null = null;

/**
 * Load Dawn's Node binding (the optional peer `webgpu`) once and install its WebGPU globals
 * (GPUBufferUsage, ...). The import itself lives in the platform seam (`#platform`, see
 * platform/node.js): browser builds resolve that to a module without it, so no bundler ever sees
 * the `webgpu` package.
 */
export async function loadDawn(): Promise<{ create(flags: string[]): GPU }> {
  if (!importWebgpu) {
    throw new GpuUnavailableError('Dawn (the `webgpu` package) is for Node; in a browser the library uses navigator.gpu');
  }
  if (!dawnModule) {
    dawnModule = importWebgpu().then(
      (m) => {
        for (const [k, v] of Object.entries(m.globals)) {
          if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
        }
        return m;
      },
      (e: unknown) => {
        dawnModule = null;
        throw new GpuUnavailableError(
          `WebGPU is not available in this Node process: the optional peer dependency 'webgpu' (Dawn) ` +
            `could not be loaded (${(e as Error).message}). Install it with \`npm i webgpu\`.`,
        );
      },
    );
  }
  return dawnModule;
}

function isNode(): boolean {
  return typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
}

async function findGpu(opts: DeviceOptions): Promise<{ gpu: GPU; runtime: AdapterDescription['runtime'] }> {
  if (opts.gpu) return { gpu: opts.gpu, runtime: 'custom' };
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu && !isNode()) return { gpu: nav.gpu, runtime: 'browser' };
  if (!isNode()) throw new GpuUnavailableError(NO_ADAPTER_HELP);
  const dawn = await loadDawn();
  const flags: string[] = [];
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  const adapter = opts.adapter ?? env.SAMCLIP_ADAPTER;
  const backend = opts.backend ?? env.SAMCLIP_BACKEND;
  if (adapter) flags.push(`adapter=${adapter}`);
  if (backend) flags.push(`backend=${backend}`);
  // Timestamps are quantised by default (a browser privacy measure); the profiler wants them exact.
  const disable = ['timestamp_quantization', ...(opts.disableToggles ?? [])];
  flags.push(`disable-dawn-features=${disable.join(',')}`);
  if (opts.enableToggles?.length) flags.push(`enable-dawn-features=${opts.enableToggles.join(',')}`);
  try {
    return { gpu: dawn.create(flags), runtime: 'node-dawn' };
  } catch (e) {
    throw new GpuUnavailableError(`Dawn rejected its options ${JSON.stringify(flags)}: ${(e as Error).message}`);
  }
}

export async function acquireDevice(opts: DeviceOptions = {}): Promise<AcquiredDevice> {
  const { gpu, runtime } = await findGpu(opts);
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter(
      opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined,
    );
  } catch (e) {
    throw new GpuUnavailableError(`${NO_ADAPTER_HELP} (requestAdapter failed: ${(e as Error).message})`);
  }
  if (!adapter) throw new GpuUnavailableError(NO_ADAPTER_HELP);
  const wanted = opts.plain ? [] : (opts.optionalFeatures ?? DEFAULT_FEATURES);
  const requiredFeatures = wanted.filter((f) => adapter!.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const k of RAISED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'samclip' });
  const i = adapter.info;
  return {
    gpu,
    device,
    adapter,
    info: {
      vendor: i.vendor,
      architecture: i.architecture,
      device: i.device,
      description: i.description,
      runtime,
    },
    features: {
      f16: device.features.has('shader-f16'),
      timestamps: device.features.has('timestamp-query'),
      subgroups: device.features.has('subgroups') && !!(gpu as { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures?.has('subgroup_id'),
      subgroupMatrix: subgroupMatrixShape(adapter, device),
      subgroupSizes: subgroupSizes(adapter),
    },
  };
}

export function describeAdapter(info: AdapterDescription): string {
  const parts = [info.vendor, info.architecture, info.device, info.description].filter(Boolean);
  return `${parts.join(' / ')} (${info.runtime})`;
}

/** The device limits that matter to this engine's kernels, as `samclip doctor` and the demo page report them. */
export const REPORTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'minStorageBufferOffsetAlignment',
] as const;
