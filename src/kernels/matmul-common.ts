/**
 * What every matmul variant shares (src/kernels/matmul.ts: the CPU-adapter and classic tiled
 * variants and the dispatch; src/kernels/matmul-gpu.ts: the GPU variants): the uniform block, the
 * compile-time config, the fused epilogue and the binding list.
 */
import type { DType } from '../gpu/dtype.js';
import { type BindingDecl, defineKernel } from '../gpu/kernel.js';
import { type UniformValues, defineUniforms } from '../gpu/uniforms.js';
import { ACTIVATION_BY_CODE_WGSL, ACTIVATION_WGSL } from './activation.js';

export type MatmulVariant =
  | 'tiled'
  | 'tiled_nt'
  | 'direct_nt'
  | 'direct_sg_nt'
  | 'rows'
  | 'tiled8_nt'
  | 'rows_sg'
  | 'splitk'
  | 'subgroup_matrix';

/** Variants that read both operands as vec4 along K (the nn.Linear layout). */
export const NT_VARIANTS: readonly MatmulVariant[] = ['tiled_nt', 'direct_nt', 'direct_sg_nt', 'tiled8_nt', 'rows_sg', 'splitk'];

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
  // The epilogue's choices (see EPILOGUE_WGSL): activation code, whether bias / residual are real
  // (has_bias: 0 none, 1 one [N] row, 2 one row per batch, [batch, N], the batch being o / (M * N)
  // since every variant's output index o is batch * M * N + row * N + col).
  act: 'u32',
  has_bias: 'u32',
  has_res: 'u32',
});

/** The uniform values of one matmul dispatch (matmul.ts fills them, the variant modules dispatch). */
export type MatmulValues = UniformValues<typeof uniforms.decl>;

export interface MatmulConfig {
  [k: string]: string | number | boolean;
  variant: MatmulVariant;
  a: DType;
  b: DType;
  out: DType;
  /** Element types of the bias and residual bindings (always bound; `has_bias` / `has_res` say whether they are real). */
  bias: DType;
  residual: DType;
  /** Store the register block in a loop the compiler cannot unroll (CPU adapters; see storeBlock). */
  store_loop: boolean;
}

/**
 * The fused epilogue, out = act(alpha * acc + bias) + residual, with the activation, bias and
 * residual chosen by uniforms rather than compiled in: one pipeline per matmul variant and dtype
 * set instead of one per combination. On lavapipe each direct_nt pipeline costs about a second of
 * LLVM compile, and a SAM encoder used five of them; the uniform branches cost nothing measurable
 * (they run once per output, after the K loop). A missing bias or residual is bound to operand A
 * (read-only, never read).
 */
export const EPILOGUE_WGSL = /* wgsl */ `${ACTIVATION_WGSL}
${ACTIVATION_BY_CODE_WGSL}
fn epilogue_value(x: f32, col: u32, o: u32) -> f32 {
  var y = x;
  if (u.has_bias == 1u) {
    y += f32(bias[col]);
  } else if (u.has_bias == 2u) {
    y += f32(bias[(o / (u.M * u.N)) * u.N + col]);
  }
  y = act_by_code(u.act, y);
  if (u.has_res != 0u) { y += f32(residual[u.r_offset + o]); }
  return y;
}
`;

/** WGSL statement storing accumulator `accExpr` of output column `colExpr` at `outIndex`, through the epilogue. */
export function epilogue(c: MatmulConfig, colExpr: string, accExpr: string, outIndex: string): string {
  return `out[${outIndex}] = ${c.out}(epilogue_value(u.alpha * ${accExpr}, ${colExpr}, ${outIndex}));`;
}

/** The epilogue's bindings (bias, residual, out), after the operands. */
export function epilogueBindings(c: MatmulConfig): BindingDecl[] {
  return [
    { name: 'bias', type: c.bias, access: 'read' as const },
    { name: 'residual', type: c.residual, access: 'read' as const },
    { name: 'out', type: c.out, access: 'read_write' as const },
  ];
}

export function commonBindings(c: MatmulConfig): BindingDecl[] {
  const vec = NT_VARIANTS.includes(c.variant);
  const operand = (name: 'a' | 'b', dtype: DType): BindingDecl =>
    packedF16(c, dtype)
      ? { name, type: 'vec2<u32>', access: 'read', holds: 'f16' }
      : { name, type: vec ? `vec4<${dtype}>` : dtype, access: 'read' };
  return [operand('a', c.a), operand('b', c.b), ...epilogueBindings(c)];
}

/**
 * Whether an f16 operand of this variant is bound as `vec2<u32>` (four halves per element) and
 * widened with unpack2x16float: `direct_sg_nt` only, whose time on CPU adapters goes to per-lane
 * scalar loads (two 32-bit ones instead of four 16-bit ones per vec4).
 */
export function packedF16(c: MatmulConfig, dtype: DType): boolean {
  return c.variant === 'direct_sg_nt' && dtype === 'f16';
}

/** WGSL for one vec4<f32> of an NT operand at vec4 index `idx` (see packedF16). */
export function loadVec4(c: MatmulConfig, name: 'a' | 'b', dtype: DType, idx: string): string {
  return packedF16(c, dtype) ? `unpack_f16x4(${name}[${idx}])` : `vec4<f32>(${name}[${idx}])`;
}

/** Four halves packed in two u32 (little-endian: the lower half first) to vec4<f32>. */
export const UNPACK_F16X4 = /* wgsl */ `
fn unpack_f16x4(p: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y));
}
`;

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
 * The store of a block of accumulators (`accs`, vec4 registers) to `rows` x `cols` outputs through
 * the epilogue. With `store_loop` (CPU adapters) one loop over the block whose trip count the
 * compiler cannot see, so the epilogue is compiled once; otherwise constant-bound loops that GPU
 * compilers unroll, keeping the accumulators in registers. `row` and `col` are WGSL in `i` and
 * `j`; rows must grow with `i` (the unrolled form stops at the first row past M); `at` picks the
 * accumulator of (i, j) from `accs`.
 */
export function storeBlock(
  c: MatmulConfig,
  block: { rows: number; cols: number; row: string; col: string; accs: string[]; at?: string },
): string {
  const at = block.at ?? 'accs[i][j]';
  if (c.store_loop) {
    // A trip count known only at run time keeps LLVM from unrolling the loop, so the epilogue
    // (every activation of act_by_code) is compiled once instead of once per output of the block:
    // direct_nt (32 outputs) compiles in 0.6 s instead of 3.6 s on lavapipe, tiled_nt (16) in 0.3
    // s instead of 1.5 s, at the same speed (the loop runs once per invocation, after the K loop).
    return `  var accs = array<vec4<f32>, ${block.accs.length}>(${block.accs.join(', ')});
  let n_store = min(${block.rows * block.cols}u, u.M * ${block.cols}u);
  for (var t = 0u; t < n_store; t++) {
    let i = t / ${block.cols}u;
    let j = t % ${block.cols}u;
    let row = ${block.row};
    let col = ${block.col};
    if (row < u.M && col < u.N) { let o = bases.z + row * u.N + col; ${epilogue(c, 'col', at, 'o')} }
  }`;
  }
  return `  let accs = array<vec4<f32>, ${block.accs.length}>(${block.accs.join(', ')});
  for (var i = 0u; i < ${block.rows}u; i++) {
    let row = ${block.row};
    if (row >= u.M) { break; }
    for (var j = 0u; j < ${block.cols}u; j++) {
      let col = ${block.col};
      if (col < u.N) { let o = bases.z + row * u.N + col; ${epilogue(c, 'col', at, 'o')} }
    }
  }`;
}

/**
 * A matmul kernel over the common bindings: `body` is its WGSL after the activation and batch
 * helpers; `enables` names WGSL extensions it needs beyond f16 (e.g. subgroups).
 */
export function matmulKernel<C extends MatmulConfig>(body: (c: C) => string, enables: readonly string[] = []) {
  return defineKernel({
    name: 'matmul',
    uniforms,
    bindings: commonBindings,
    enables: () => enables,
    source: (c: C) => `${EPILOGUE_WGSL}\n${BATCH_BASE}\n${body(c)}`,
  });
}
