/**
 * The built-in benchmark cases of `samclip bench`: the kernels a ViT spends its time in, at the
 * shapes of real models (each case names where its shape comes from). Loaded only when `bench` runs.
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Tensor } from '../../gpu/tensor.js';
import { attention } from '../../kernels/attention.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { linear } from '../../kernels/matmul.js';
import type { SuiteName } from './bench.js';

export interface BenchCase {
  name: string;
  /** Where the shape comes from. */
  origin: string;
  flops: number;
  setup(ctx: GpuContext): { run: () => Tensor; inputs: Tensor[] };
}

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function linearCase(name: string, origin: string, M: number, K: number, N: number, act?: 'gelu'): BenchCase {
  return {
    name,
    origin,
    flops: 2 * M * K * N,
    setup: (ctx) => {
      const x = ctx.upload(rand(M * K, 1), [M, K]);
      const w = ctx.upload(rand(N * K, 2), [N, K]);
      const b = ctx.upload(rand(N, 3), [N]);
      return { inputs: [x, w, b], run: () => linear(ctx, x, w, b, act ? { act } : {}) };
    },
  };
}

function attentionCase(name: string, origin: string, H: number, N: number, D: number): BenchCase {
  return {
    name,
    origin,
    flops: 4 * H * N * N * D,
    setup: (ctx) => {
      const [q, k, v] = [1, 2, 3].map((s) => ctx.upload(rand(H * N * D, s), [1, H, N, D]));
      return { inputs: [q!, k!, v!], run: () => attention(ctx, q!, k!, v!) };
    },
  };
}

function layerNormCase(name: string, origin: string, M: number, C: number): BenchCase {
  return {
    name,
    origin,
    flops: 8 * M * C,
    setup: (ctx) => {
      const x = ctx.upload(rand(M * C, 1), [M, C]);
      const w = ctx.upload(rand(C, 2), [C]);
      const b = ctx.upload(rand(C, 3), [C]);
      return { inputs: [x, w, b], run: () => layerNorm(ctx, x, w, b, 1e-5) };
    },
  };
}

export const BENCH_SUITES: Record<SuiteName, BenchCase[]> = {
  // CLIP ViT-B/16 at 224 px: 197 tokens, width 768, 12 heads of 64.
  'clip-b16': [
    linearCase('linear qkv 197x768->2304', 'CLIP ViT-B/16 attn.in_proj', 197, 768, 2304),
    linearCase('linear mlp 197x768->3072 gelu', 'CLIP ViT-B/16 mlp.c_fc', 197, 768, 3072, 'gelu'),
    attentionCase('attention 12x197x64', 'CLIP ViT-B/16 self-attention', 12, 197, 64),
    layerNormCase('layerNorm 197x768', 'CLIP ViT-B/16 ln_1', 197, 768),
  ],
  // SAM ViT-B at 1024 px: a 64x64 token grid, width 768, 12 heads of 64.
  'sam-b': [
    linearCase('linear qkv 4096x768->2304', 'SAM ViT-B attn.qkv', 4096, 768, 2304),
    linearCase('linear mlp 4096x768->3072 gelu', 'SAM ViT-B mlp.lin1', 4096, 768, 3072, 'gelu'),
    attentionCase('attention 12x4096x64', 'SAM ViT-B global block', 12, 4096, 64),
    layerNormCase('layerNorm 4096x768', 'SAM ViT-B norm1', 4096, 768),
  ],
  // Seconds even on a CPU driver: a smoke run of the same code paths.
  tiny: [
    linearCase('linear 64x96->288', 'tiny SAM attn.qkv', 64, 96, 288),
    attentionCase('attention 3x64x32', 'tiny SAM block', 3, 64, 32),
    layerNormCase('layerNorm 64x96', 'tiny SAM norm1', 64, 96),
  ],
};
