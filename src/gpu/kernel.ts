/**
 * A kernel is a typed definition: compile-time config -> WGSL, bindings and a uniform block.
 * The pipeline key is derived from the config object (stable serialisation), never written by hand,
 * so everything baked into the shader text is necessarily part of the key. Shapes, strides and
 * other per-call values travel in uniforms.
 */
import type { DType } from './dtype.js';
import type { UniformDecl, UniformLayout } from './uniforms.js';

export type Access = 'read' | 'read_write';

export interface BindingDecl {
  readonly name: string;
  /** WGSL element type of the runtime-sized array, e.g. `f32`, `f16`, `vec4<f32>`, `u32`. */
  readonly type: string;
  readonly access: Access;
  /**
   * The tensor dtype the array reinterprets, where it differs from the element type: e.g.
   * `vec2<u32>` over f16 data, four halves per element, unpacked with unpack2x16float (two 32-bit
   * loads where `vec4<f16>` takes four on CPU adapters). The dispatch-time type check uses it.
   */
  readonly holds?: string;
}

export type KernelConfig = Readonly<Record<string, string | number | boolean | null | readonly (string | number)[]>>;

export interface KernelDef<C extends KernelConfig, U extends UniformDecl> {
  /** Op name: groups profiler rows, prefixes pipeline keys. */
  readonly name: string;
  readonly uniforms: UniformLayout<U>;
  bindings(config: C): readonly BindingDecl[];
  /** WGSL after the generated header (enables, uniform struct, bindings). Entry point: `main`. */
  source(config: C): string;
  /** WGSL extensions needed beyond what the binding types imply (e.g. `subgroups`). */
  enables?(config: C): readonly string[];
}

export function defineKernel<C extends KernelConfig, U extends UniformDecl>(
  def: KernelDef<C, U>,
): KernelDef<C, U> {
  return def;
}

/** Stable JSON: object keys sorted, so equal configs give equal keys. */
export function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .filter((k) => o[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
    .join(',')}}`;
}

export function pipelineKey(name: string, config: KernelConfig): string {
  return `${name}${stableStringify(config)}`;
}

/** Full WGSL of a kernel for a config: generated header plus the kernel's own source. */
export function renderWgsl<C extends KernelConfig, U extends UniformDecl>(
  def: KernelDef<C, U>,
  config: C,
): string {
  const bindings = def.bindings(config);
  const body = def.source(config);
  const enables = new Set(def.enables?.(config) ?? []);
  if (bindings.some((b) => b.type.includes('f16')) || /\bf16\b/.test(body)) enables.add('f16');
  const header = [...enables].map((e) => `enable ${e};`).join('\n');
  const decls = bindings
    .map((b, i) => {
      const access = b.access === 'read' ? 'read' : 'read_write';
      return `@group(0) @binding(${i}) var<storage, ${access}> ${b.name}: array<${b.type}>;`;
    })
    .join('\n');
  const uniformDecl = `@group(0) @binding(${bindings.length}) var<uniform> u: Uniforms;`;
  return `${header}\n${def.uniforms.wgslStruct}\n${decls}\n${uniformDecl}\n${body}`;
}

/** WGSL element type for a tensor dtype. */
export function wgslType(d: DType): string {
  return d;
}

/**
 * WGSL helper: flat workgroup index for dispatches that were split over x and y because one
 * dimension is limited to 65535 workgroups. Kernels declare `@builtin(workgroup_id) wid` and
 * `@builtin(num_workgroups) nwg` and call `flat_wg(wid, nwg)`.
 */
export const FLAT_WG = `fn flat_wg(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + wid.y * nwg.x; }`;

/** Split a 1-D workgroup count over x and y so that neither exceeds `max` (65535 by default). */
export function grid1d(count: number, max = 65535): [number, number, number] {
  if (count <= max) return [Math.max(1, count), 1, 1];
  const y = Math.ceil(count / max);
  return [Math.ceil(count / y), y, 1];
}
