/**
 * What every matmul variant shares (src/kernels/matmul.ts: the CPU-adapter and classic tiled
 * variants and the dispatch; src/kernels/matmul-gpu.ts: the GPU variants): the uniform block, the
 * compile-time config, the fused epilogue and the binding list.
 */
import type { DType } from '../gpu/dtype.js';
import { type BindingDecl, defineKernel } from '../gpu/kernel.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { ACTIVATION_WGSL, type Activation, applyActivation } from './activation.js';

export type MatmulVariant =
  | 'tiled'
  | 'tiled_nt'
  | 'direct_nt'
  | 'rows'
  | 'tiled8_nt'
  | 'rows_sg'
  | 'splitk'
  | 'subgroup_matrix';

/** Variants that read both operands as vec4 along K (the nn.Linear layout). */
export const NT_VARIANTS: readonly MatmulVariant[] = ['tiled_nt', 'direct_nt', 'tiled8_nt', 'rows_sg', 'splitk'];

export const uniforms = defineUniforms({
  M: 'u32',
  N: 'u32',
  K: 'u32',
  batch_inner: 'u32',
  alpha: 'f32',
  a_offset: 'u32',
  b_offset: 'u32',
  r_offset: 'u32',
  // strides: x = outer batch, y = inner batch, z = row, w = col
  a_strides: 'vec4u',
  b_strides: 'vec4u',
  // splitk: K elements per split
  k_split: 'u32',
});

export interface MatmulConfig {
  [k: string]: string | number | boolean;
  variant: MatmulVariant;
  a: DType;
  b: DType;
  out: DType;
  bias: DType | 'none';
  residual: DType | 'none';
  act: Activation;
}

export function epilogue(c: MatmulConfig, rowExpr: string, colExpr: string, accExpr: string, outIndex: string): string {
  const bias = c.bias === 'none' ? '' : ` + f32(bias[${colExpr}])`;
  const res = c.residual === 'none' ? '' : ` + f32(residual[u.r_offset + ${outIndex}])`;
  return `out[${outIndex}] = ${c.out}(${applyActivation(c.act, `u.alpha * ${accExpr}${bias}`)}${res});`;
}

/** The epilogue's bindings (bias, residual, out), after the operands. */
export function epilogueBindings(c: MatmulConfig): BindingDecl[] {
  const list: BindingDecl[] = [];
  if (c.bias !== 'none') list.push({ name: 'bias', type: c.bias, access: 'read' as const });
  if (c.residual !== 'none') list.push({ name: 'residual', type: c.residual, access: 'read' as const });
  list.push({ name: 'out', type: c.out, access: 'read_write' as const });
  return list;
}

export function commonBindings(c: MatmulConfig): BindingDecl[] {
  const vec = NT_VARIANTS.includes(c.variant);
  return [
    { name: 'a', type: vec ? `vec4<${c.a}>` : c.a, access: 'read' as const },
    { name: 'b', type: vec ? `vec4<${c.b}>` : c.b, access: 'read' as const },
    ...epilogueBindings(c),
  ];
}

export const BATCH_BASE = /* wgsl */ `
fn batch_bases(z: u32) -> vec3<u32> {
  let b_out = z / u.batch_inner;
  let b_in = z % u.batch_inner;
  let a0 = u.a_offset + b_out * u.a_strides.x + b_in * u.a_strides.y;
  let b0 = u.b_offset + b_out * u.b_strides.x + b_in * u.b_strides.y;
  return vec3<u32>(a0, b0, z * u.M * u.N);
}
`;

export const span = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i));
export const seq = (n: number, f: (i: number) => string, sep = '\n') => span(n, f).join(sep);

/**
 * The store of a block of accumulators (`accs`, vec4 registers) to `rows` x `cols` outputs, as a
 * loop over an array: one copy of the epilogue rather than rows*cols of them. An unrolled store
 * with an activation was most of a direct kernel's compile time on LLVM drivers (lavapipe: 1.5 s
 * -> 1.0 s for the 8x4 direct_nt with gelu) and costs nothing at run time. `row` and `col` are
 * WGSL in `i` and `j`; rows must grow with `i` (the loop stops at the first row past M); `at` picks
 * the accumulator of (i, j) from `accs`.
 */
export function storeBlock(
  c: MatmulConfig,
  block: { rows: number; cols: number; row: string; col: string; accs: string[]; at?: string },
): string {
  const at = block.at ?? 'accs[i][j]';
  return `  let accs = array<vec4<f32>, ${block.accs.length}>(${block.accs.join(', ')});
  for (var i = 0u; i < ${block.rows}u; i++) {
    let row = ${block.row};
    if (row >= u.M) { break; }
    for (var j = 0u; j < ${block.cols}u; j++) {
      let col = ${block.col};
      if (col < u.N) { let o = bases.z + row * u.N + col; ${epilogue(c, 'row', 'col', at, 'o')} }
    }
  }`;
}


/** A matmul kernel over the common bindings: `body` is its WGSL after the activation and batch helpers. */
export function matmulKernel<C extends MatmulConfig>(body: (c: C) => string) {
  return defineKernel({
    name: 'matmul',
    uniforms,
    bindings: commonBindings,
    source: (c: C) => `${ACTIVATION_WGSL}\n${BATCH_BASE}\n${body(c)}`,
  });
}
