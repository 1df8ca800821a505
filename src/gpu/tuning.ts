/**
 * Kernel choices for one adapter: which variant of each op family runs when a call does not force
 * one. `defaultTuning` is the deterministic rule (used when nothing was measured, and as the
 * fallback when timing is unavailable); src/gpu/tuner.ts replaces it with micro-benchmark results
 * cached per adapter and host. Tests flip fields to force each variant on any adapter.
 */
import type { DeviceFeatures } from './device.js';

export type RowReduce = 'tree' | 'subgroup' | 'lane';
/** nn.Linear-layout matmuls with enough rows for a tile (see src/kernels/matmul.ts). */
export type MatmulNtChoice = 'direct_nt' | 'direct_sg_nt' | 'tiled_nt' | 'tiled8_nt' | 'subgroup_matrix';
/** Matmuls with few rows (decoder tokens, pooled vectors). */
export type MatmulSmallChoice = 'rows' | 'rows_sg' | 'splitk' | 'direct_nt' | 'direct_sg_nt';
/** Global self-attention of many tokens (src/kernels/attention.ts). */
export type AttentionChoice = 'fused' | 'flash' | 'chunked';

export interface KernelTuning {
  /**
   * The adapter runs shaders on the CPU (Mesa lavapipe/llvmpipe, SwiftShader, WARP): a workgroup's
   * invocations are SIMD lanes of one core and every barrier is a pass over them. Row kernels pick
   * their workgroup size from it.
   */
  cpuAdapter: boolean;
  /** How the row kernels reduce a row: shared-memory tree, subgroup operations, or one row per invocation. */
  rowReduce: RowReduce;
  matmulNt: MatmulNtChoice;
  matmulSmall: MatmulSmallChoice;
  attention: AttentionChoice;
  /** Where these choices came from. */
  source: 'default' | 'measured' | 'cached' | 'override';
}

/** The fields a tuner measures and a caller may override. */
export type TunableKey = 'rowReduce' | 'matmulNt' | 'matmulSmall' | 'attention';

/** Every value each choice can name (an adapter runs a subset: tuningCandidates). */
export const ALL_CHOICES: { readonly [K in TunableKey]: readonly KernelTuning[K][] } = {
  rowReduce: ['tree', 'subgroup', 'lane'],
  matmulNt: ['direct_nt', 'direct_sg_nt', 'tiled_nt', 'tiled8_nt', 'subgroup_matrix'],
  matmulSmall: ['rows', 'rows_sg', 'splitk', 'direct_nt', 'direct_sg_nt'],
  attention: ['fused', 'flash', 'chunked'],
};

export function defaultTuning(cpuAdapter: boolean, features: DeviceFeatures): KernelTuning {
  const cpuMatmul = features.subgroups ? 'direct_sg_nt' : 'direct_nt';
  return {
    cpuAdapter,
    // CPU adapters: one row per invocation, no barrier (lavapipe: layernorm 4096x768 1.4x, window
    // softmax 2.5x faster than the tree). GPUs: subgroup operations where offered.
    rowReduce: cpuAdapter ? 'lane' : features.subgroups ? 'subgroup' : 'tree',
    // CPU adapters: the barrier-free kernels, A through subgroup shuffles where offered (lavapipe,
    // AVX2 host: 4096x768 -> 2304 in 1.31 s against 3.80 s for direct_nt and 4.3 s for ORT Web).
    // GPUs: 8x8 register blocks. Tensor cores (subgroup_matrix) are a tuning candidate where the
    // adapter exposes them, chosen only once they matched the tuner's host reference and won its
    // timing (or when pinned): this fixed rule must never pick a kernel nothing has checked here.
    matmulNt: cpuAdapter ? cpuMatmul : 'tiled8_nt',
    matmulSmall: cpuAdapter ? cpuMatmul : features.subgroups ? 'rows_sg' : 'rows',
    attention: cpuAdapter ? 'chunked' : 'flash',
    source: 'default',
  };
}

/**
 * The choices a tuner measures on an adapter. CPU adapters skip the GPU matmuls (tiled8_nt,
 * rows_sg, splitk): their large unrolled bodies take tens of seconds each to compile on llvmpipe,
 * a first-use cost out of proportion, and they were designed for GPUs. Flash attention is not a
 * candidate there either (slower than fused at head dim 64 on lavapipe), though attention.ts takes
 * it for head dims above 64, where the fused kernel's compile is the larger cost. Tests still
 * force every variant on every adapter.
 */
export function tuningCandidates(cpuAdapter: boolean, features: DeviceFeatures): { [K in TunableKey]: KernelTuning[K][] } {
  if (cpuAdapter) {
    return {
      rowReduce: features.subgroups ? ['lane', 'tree', 'subgroup'] : ['lane', 'tree'],
      matmulNt: features.subgroups ? ['direct_sg_nt', 'direct_nt', 'tiled_nt'] : ['direct_nt', 'tiled_nt'],
      matmulSmall: features.subgroups ? ['direct_sg_nt', 'direct_nt', 'rows'] : ['direct_nt', 'rows'],
      attention: ['chunked', 'fused'],
    };
  }
  return {
    rowReduce: features.subgroups ? ['tree', 'subgroup'] : ['tree'],
    matmulNt: ['tiled8_nt', 'tiled_nt', 'direct_nt', ...(features.subgroupMatrix && features.f16 ? ['subgroup_matrix' as const] : [])],
    matmulSmall: ['rows', 'splitk', ...(features.subgroups ? ['rows_sg' as const] : [])],
    attention: ['fused', ...(features.subgroups ? ['flash' as const] : [])],
  };
}
