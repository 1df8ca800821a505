/**
 * Matmul variants for CPU adapters (lavapipe, SwiftShader), where a workgroup's invocations are the
 * SIMD lanes of one core, workgroup memory is ordinary memory and each barrier is a pass over every
 * invocation. Both read their operands straight from the buffers in the nn.Linear layout (both
 * contiguous along K, vec4 loads) with no workgroup memory and no barrier:
 *
 *  - `direct_nt`: the rows of A belong to the whole workgroup, so every lane reads the same A
 *    address and its own columns of B.
 *  - `direct_sg_nt`: the same block, with A fetched through subgroup shuffles. On lavapipe a load
 *    every lane makes from one address costs more than a gather of eight different ones (measured
 *    on a 1024x768 @ 768x2304 product: 8 such A loads per K step took 500 ms of an 890 ms run, the
 *    4 gathers of B 170 ms, the arithmetic 100 ms). Here each lane of a subgroup loads a different
 *    vec4 of the row at once (one gather), and the K loop takes them from lane s in turn
 *    (subgroupShuffle, a register permute): 2.5-3.5x faster than direct_nt there. Needs `subgroups`.
 *    f16 operands are bound as vec2<u32> and widened with unpack2x16float (packedF16): two 32-bit
 *    loads per vec4 instead of four 16-bit ones.
 */
import type { GpuContext } from '../gpu/context.js';
import type { KernelCost } from '../gpu/profiler.js';
import type { Tensor } from '../gpu/tensor.js';
import { type MatmulConfig, type MatmulValues, UNPACK_F16X4, loadVec4, matmulKernel, seq, span, storeBlock } from './matmul-common.js';

// direct_nt geometry, measured on lavapipe (1024x768 @ 768x2304): 8 rows x 4 columns x 16
// invocations ran 1.5-2.2x faster than tiled_nt; 4 rows 1.8x; 16 rows or 32 invocations slower.
const DR = 8; // rows per direct_nt workgroup (shared by its invocations)
const DC = 4; // columns per invocation (both variants)
const DWG = 16; // invocations per workgroup (both variants)

const directNtKernel = matmulKernel((c: MatmulConfig) => /* wgsl */ `
// No workgroup memory and no barrier: every invocation reads its operands straight from the
// buffers. The ${DR} rows of A belong to the whole workgroup (the same address in every lane: one
// load broadcast), each invocation owns ${DC} columns interleaved by ${DWG}. Row and column indices
// are clamped so loads stay unconditional; the clamped results are never written.
@compute @workgroup_size(${DWG}, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let bases = batch_bases(wid.z);
  let row0 = wid.y * ${DR}u;
  let col0 = wid.x * ${DWG * DC}u + lid.x;
  let kv_n = u.K / 4u;
${seq(DR, (i) => `  let ar${i} = (bases.x + min(row0 + ${i}u, u.M - 1u) * u.a_strides.z) / 4u;`)}
${seq(DC, (j) => `  let bc${j} = (bases.y + min(col0 + ${DWG * j}u, u.N - 1u) * u.b_strides.w) / 4u;`)}
${seq(DR, (i) => `  var acc${i} = vec4<f32>(0.0);`)}
  for (var kv = 0u; kv < kv_n; kv++) {
${seq(DC, (j) => `    let w${j} = vec4<f32>(b[bc${j} + kv]);`)}
${seq(DR, (i) => `    { let av = vec4<f32>(a[ar${i} + kv]); acc${i} += vec4<f32>(${seq(DC, (j) => `dot(av, w${j})`, ', ')}); }`)}
  }
${storeBlock(c, { rows: DR, cols: DC, row: 'row0 + i', col: `col0 + ${DWG}u * j`, accs: span(DR, (i) => `acc${i}`) })}
}
`);

// direct_sg_nt geometry, measured on lavapipe (1024x768 @ 768x2304, GFLOP/s): 12 rows x 4
// columns 14, 8 x 4 12, 16 x 2 11, 4 x 4 9, 4 x 8 7; 8, 16 or 32 invocations alike.
const SR = 12; // rows per direct_sg_nt workgroup

const directSgNtKernel = matmulKernel((c: MatmulConfig) => /* wgsl */ `${UNPACK_F16X4}
// As direct_nt, but the K loop runs in blocks of one vec4 per lane of the subgroup (at most the
// workgroup, so every lane of a block exists): lane l loads vec4 kb + l of each of the ${SR} rows
// (clamped at the end of K; the clamped copies are never shuffled in), then step s takes lane s's
// vec4. Block bounds depend only on uniforms and the subgroup size, so every lane shuffles together.
@compute @workgroup_size(${DWG}, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(subgroup_invocation_id) sl: u32, @builtin(subgroup_size) sg_size: u32) {
  let bases = batch_bases(wid.z);
  let row0 = wid.y * ${SR}u;
  let col0 = wid.x * ${DWG * DC}u + lid.x;
  let kv_n = u.K / 4u;
  let block = min(sg_size, ${DWG}u);
${seq(SR, (i) => `  let ar${i} = (bases.x + min(row0 + ${i}u, u.M - 1u) * u.a_strides.z) / 4u;`)}
${seq(DC, (j) => `  let bc${j} = (bases.y + min(col0 + ${DWG * j}u, u.N - 1u) * u.b_strides.w) / 4u;`)}
${seq(SR, (i) => `  var acc${i} = vec4<f32>(0.0);`)}
  for (var kb = 0u; kb < kv_n; kb += block) {
    let mine = min(kb + sl, kv_n - 1u);
${seq(SR, (i) => `    let ra${i} = ${loadVec4(c, 'a', c.a, `ar${i} + mine`)};`)}
    let steps = min(block, kv_n - kb);
    for (var s = 0u; s < steps; s++) {
${seq(DC, (j) => `      let w${j} = ${loadVec4(c, 'b', c.b, `bc${j} + kb + s`)};`)}
${seq(SR, (i) => `      { let av = subgroupShuffle(ra${i}, s); acc${i} += vec4<f32>(${seq(DC, (j) => `dot(av, w${j})`, ', ')}); }`)}
    }
  }
${storeBlock(c, { rows: SR, cols: DC, row: 'row0 + i', col: `col0 + ${DWG}u * j`, accs: span(SR, (i) => `acc${i}`) })}
}
`, ['subgroups']);

export function runCpuMatmul(
  ctx: GpuContext,
  config: MatmulConfig,
  bindings: Record<string, Tensor>,
  values: MatmulValues,
  dims: { M: number; N: number; batch: number },
  cost: KernelCost,
): void {
  const { M, N, batch } = dims;
  const cols = Math.ceil(N / (DWG * DC));
  if (config.variant === 'direct_nt') {
    ctx.run(directNtKernel, config, bindings, values, [cols, Math.ceil(M / DR), batch], cost);
  } else if (config.variant === 'direct_sg_nt') {
    ctx.run(directSgNtKernel, config, bindings, values, [cols, Math.ceil(M / SR), batch], cost);
  } else {
    throw new Error(`runCpuMatmul: ${config.variant} is not a CPU-adapter variant`);
  }
}
