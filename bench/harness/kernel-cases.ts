/**
 * The kernel benchmark table: each case is one op at a shape SAM ViT-B or CLIP ViT-B/16 really runs
 * (origin in `origin`), with our implementation and the ONNX graph ORT runs for the same result.
 *
 * Our kernels are imported dynamically, so a case whose module does not exist yet is listed as
 * "not implemented yet" and picked up as soon as the file lands. The calls follow each module's
 * exported API; when an API changes, the case reports the error and the rest of the bench goes on.
 */
import type { GpuContext } from '../../src/gpu/context.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import type { Activation } from '../../src/kernels/activation.js';
import type { OnnxGraph } from '../../test/helpers/onnx.js';
import { Rng } from '../../test/helpers/random.js';
import { attentionGraph, conv2dGraph, layerNormGraph, linearGraph, samAttentionGraph, softmaxGraph } from './onnx-graphs.js';
import type { Feeds } from './session.js';

/** Our side of a case: inputs (same names as the graph inputs) and weights already on the GPU. */
export type OursFn = (ctx: GpuContext, inputs: Record<string, Tensor>, weights: Record<string, Tensor>) => Tensor;

export interface PreparedCase {
  /** Activations: graph inputs for ORT, uploaded per run for our end-to-end figure. */
  feeds: Feeds;
  /** Parameters: initializers in the graph, uploaded once for us. */
  weights: Record<string, { data: Float32Array; dims: number[] }>;
  graph: OnnxGraph;
  ours: OursFn;
}

export interface KernelCase {
  name: string;
  /** Human-readable problem size. */
  shape: string;
  /** Where the shape comes from in the real model. */
  origin: string;
  flops: number;
  /** Minimum memory traffic: every input, weight and output once. */
  bytes: number;
  /** Report GB/s rather than GFLOP/s. */
  memoryBound?: boolean;
  /** Several GFLOP per run on lavapipe: fewer default runs. */
  heavy?: boolean;
  /** Validation bound (relative L2 against onnxruntime-node); default 1e-4 (the f32 gate). */
  relL2?: number;
  /** Known limits worth printing next to the row. */
  note?: string;
  /**
   * Bytes ORT Web's graph binds as one tensor (the attention scores): on an adapter whose
   * maxStorageBufferBindingSize is smaller, ORT Web runs but returns garbage, so the bench skips it.
   */
  ortWebBinding?: number;
  /** Our implementation, or why there is none. */
  load(): Promise<((rng: Rng) => PreparedCase) | string>;
}

type AnyFn = (...args: never[]) => unknown;

/**
 * `src/kernels/<file>.ts`'s export `name`, or a reason it is unavailable. The specifier is built at
 * run time so the type checker does not require modules that have not been written yet.
 */
async function kernelExport<F extends AnyFn>(file: string, name: string): Promise<F | string> {
  const spec = `../../src/kernels/${file}.js`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(`kernels/${file}`)) {
      return `not implemented yet (src/kernels/${file}.ts does not exist)`;
    }
    return `src/kernels/${file}.ts failed to load: ${err.message ?? String(e)}`;
  }
  const fn = mod[name];
  if (typeof fn !== 'function') return `src/kernels/${file}.ts has no export '${name}' (exports: ${Object.keys(mod).join(', ')})`;
  return fn as F;
}

const f32Bytes = (elements: number) => elements * 4;

// ------------------------------------------------------------------------------------- linear

type LinearFn = (ctx: GpuContext, x: Tensor, w: Tensor, b?: Tensor, opts?: { act?: Activation }) => Tensor;

function linearCase(name: string, M: number, K: number, N: number, act: Activation, origin: string): KernelCase {
  return {
    name,
    shape: `${M}x${K} -> ${N}${act === 'none' ? '' : ` +${act}`}`,
    origin,
    flops: 2 * M * K * N,
    bytes: f32Bytes(M * K + K * N + N + M * N),
    heavy: 2 * M * K * N > 5e9,
    async load() {
      const linear = await kernelExport<LinearFn>('matmul', 'linear');
      if (typeof linear === 'string') return linear;
      return (rng) => {
        const weight = rng.randn(N * K, 1 / Math.sqrt(K));
        const bias = rng.randn(N, 0.02);
        return {
          feeds: { x: { data: rng.randn(M * K), dims: [1, M, K] } },
          weights: { w: { data: weight, dims: [N, K] }, b: { data: bias, dims: [N] } },
          graph: linearGraph({ M, K, N, weight, bias, act }),
          ours: (ctx, i, w) => linear(ctx, i.x!, w.w!, w.b!, { act }),
        };
      };
    },
  };
}

// ------------------------------------------------------------------------------------- conv

type Conv2dFn = (ctx: GpuContext, x: Tensor, w: Tensor, b: Tensor | undefined, opts?: { stride?: number }) => Tensor;

function patchEmbedConvCase(): KernelCase {
  const [C, H, W, O, k] = [3, 1024, 1024, 768, 16];
  const pixels = (H / k) * (W / k);
  return {
    name: 'sam.patch_embed.conv',
    shape: `1x${C}x${H}x${W} * ${O}x${C}x${k}x${k} /${k}`,
    origin: 'SAM ViT-B patch_embed.proj: Conv2d(3, 768, 16, stride 16) on the 1024x1024 input',
    flops: 2 * pixels * O * C * k * k,
    bytes: f32Bytes(C * H * W + O * C * k * k + O + O * pixels),
    heavy: true,
    async load() {
      const conv2d = await kernelExport<Conv2dFn>('conv2d', 'conv2d');
      if (typeof conv2d === 'string') return conv2d;
      return (rng) => {
        const weight = rng.randn(O * C * k * k, 1 / Math.sqrt(C * k * k));
        const bias = rng.randn(O, 0.02);
        return {
          feeds: { x: { data: rng.randn(C * H * W), dims: [1, C, H, W] } },
          weights: { w: { data: weight, dims: [O, C, k, k] }, b: { data: bias, dims: [O] } },
          graph: conv2dGraph({ input: [1, C, H, W], weight, weightDims: [O, C, k, k], bias, stride: k }),
          ours: (ctx, i, w) => conv2d(ctx, i.x!, w.w!, w.b!, { stride: k }),
        };
      };
    },
  };
}

// ------------------------------------------------------------------------------------- norms

type LayerNormFn = (ctx: GpuContext, x: Tensor, w: Tensor | null, b: Tensor | null, eps: number) => Tensor;

function layerNormCase(name: string, rows: number, C: number, eps: number, origin: string): KernelCase {
  return {
    name,
    shape: `${rows}x${C} eps ${eps}`,
    origin,
    flops: 8 * rows * C,
    bytes: f32Bytes(2 * rows * C + 2 * C),
    memoryBound: true,
    async load() {
      const layerNorm = await kernelExport<LayerNormFn>('layernorm', 'layerNorm');
      if (typeof layerNorm === 'string') return layerNorm;
      return (rng) => {
        const gamma = rng.randn(C, 0.2, 1);
        const beta = rng.randn(C, 0.1);
        return {
          // Token features with a non-zero mean and a large spread, as residual streams have.
          feeds: { x: { data: rng.randn(rows * C, 3, 0.5), dims: [rows, C] } },
          weights: { gamma: { data: gamma, dims: [C] }, beta: { data: beta, dims: [C] } },
          graph: layerNormGraph({ rows, C, gamma, beta, eps }),
          ours: (ctx, i, w) => layerNorm(ctx, i.x!, w.gamma!, w.beta!, eps),
        };
      };
    },
  };
}

type SoftmaxFn = (ctx: GpuContext, x: Tensor) => Tensor;

function softmaxCase(name: string, dims: number[], origin: string): KernelCase {
  const n = dims.reduce((a, b) => a * b, 1);
  return {
    name,
    shape: `[${dims.join(', ')}] last axis`,
    origin,
    flops: 5 * n,
    bytes: f32Bytes(2 * n),
    memoryBound: true,
    async load() {
      const softmax = await kernelExport<SoftmaxFn>('softmax', 'softmax');
      if (typeof softmax === 'string') return softmax;
      return (rng) => ({
        feeds: { x: { data: rng.randn(n, 3), dims } },
        weights: {},
        graph: softmaxGraph(dims),
        ours: (ctx, i) => softmax(ctx, i.x!),
      });
    },
  };
}

// ------------------------------------------------------------------------------------- attention

type AttentionFn = (
  ctx: GpuContext,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: { relPos: { h: Tensor; w: Tensor; grid: [number, number] } },
) => Tensor;

function attentionCase(name: string, B: number, H: number, grid: number, D: number, origin: string, note?: string): KernelCase {
  const N = grid * grid;
  const scoreBytes = B * H * N * N * 4;
  return {
    name,
    shape: `${B > 1 ? `${B} win x ` : ''}${H} heads x ${N} tok x ${D}, rel-pos ${grid}x${grid}`,
    origin,
    // q k^T and p v, plus the two rel-pos products of the unscaled q with gh + gw table rows
    flops: 4 * B * H * N * N * D + 2 * B * H * N * D * 2 * grid,
    bytes: f32Bytes(4 * B * H * N * D + 2 * (2 * grid - 1) * D),
    heavy: 4 * B * H * N * N * D > 5e9,
    note: note ?? `ORT materialises the ${(scoreBytes / 2 ** 20).toFixed(0)} MiB score tensor`,
    ortWebBinding: scoreBytes,
    async load() {
      const attention = await kernelExport<AttentionFn>('attention', 'attention');
      if (typeof attention === 'string') return attention;
      return (rng) => {
        const relPosH = rng.randn((2 * grid - 1) * D, 0.1);
        const relPosW = rng.randn((2 * grid - 1) * D, 0.1);
        const dims = [B, H, N, D];
        const size = B * H * N * D;
        return {
          feeds: {
            q: { data: rng.randn(size), dims },
            k: { data: rng.randn(size), dims },
            v: { data: rng.randn(size), dims },
          },
          weights: { rel_h: { data: relPosH, dims: [2 * grid - 1, D] }, rel_w: { data: relPosW, dims: [2 * grid - 1, D] } },
          graph: samAttentionGraph({ B, H, gh: grid, gw: grid, D, relPosH, relPosW }),
          ours: (ctx, i, w) => attention(ctx, i.q!, i.k!, i.v!, { relPos: { h: w.rel_h!, w: w.rel_w!, grid: [grid, grid] } }),
        };
      };
    },
  };
}

type PlainAttentionFn = (ctx: GpuContext, q: Tensor, k: Tensor, v: Tensor) => Tensor;

/** Self-attention without rel-pos (CLIP): q, k, v [B, H, N, D]. */
function plainAttentionCase(name: string, B: number, H: number, N: number, D: number, origin: string): KernelCase {
  return {
    name,
    shape: `${B > 1 ? `${B} x ` : ''}${H} heads x ${N} tok x ${D}`,
    origin,
    flops: 4 * B * H * N * N * D,
    bytes: f32Bytes(4 * B * H * N * D),
    ortWebBinding: B * H * N * N * 4,
    async load() {
      const attention = await kernelExport<PlainAttentionFn>('attention', 'attention');
      if (typeof attention === 'string') return attention;
      return (rng) => {
        const dims = [B, H, N, D];
        const size = B * H * N * D;
        return {
          feeds: { q: { data: rng.randn(size), dims }, k: { data: rng.randn(size), dims }, v: { data: rng.randn(size), dims } },
          weights: {},
          graph: attentionGraph({ B, H, N, D }),
          ours: (ctx, i) => attention(ctx, i.q!, i.k!, i.v!),
        };
      };
    },
  };
}

// ------------------------------------------------------------------------------------- the table

export const KERNEL_CASES: KernelCase[] = [
  linearCase('sam.qkv', 4096, 768, 2304, 'none',
    'SAM ViT-B global block (2, 5, 8, 11) attn.qkv: 64x64 tokens at 1024 px, width 768'),
  linearCase('sam.mlp.lin1', 4096, 768, 3072, 'gelu',
    'SAM ViT-B block mlp.lin1 + exact GELU: 64x64 tokens, 768 -> 3072'),
  linearCase('sam.mlp.lin2', 4096, 3072, 768, 'none',
    'SAM ViT-B block mlp.lin2: 64x64 tokens, 3072 -> 768'),
  linearCase('sam.patch_embed.matmul', 4096, 768, 768, 'none',
    'SAM ViT-B patch embedding as a matmul: 64x64 patches of 3x16x16 = 768 values -> 768 (im2col of the 16/16 conv)'),
  linearCase('clip.qkv', 197, 768, 2304, 'none',
    'CLIP ViT-B/16 vision block attn in_proj: 14x14 patches + class token = 197 tokens at 224 px'),
  linearCase('clip.mlp.c_fc', 197, 768, 3072, 'quick_gelu',
    'CLIP ViT-B/16 (OpenAI) vision block mlp.c_fc + QuickGELU: 197 tokens, 768 -> 3072'),
  patchEmbedConvCase(),
  layerNormCase('sam.layernorm', 4096, 768, 1e-6,
    'SAM ViT-B block norm1 / norm2 (eps 1e-6): 64x64 tokens x 768'),
  softmaxCase('sam.softmax.window', [25 * 12, 196, 196],
    'SAM ViT-B windowed block attention probabilities: 25 windows (64x64 grid padded to 70x70) x 12 heads, 14x14 = 196 tokens'),
  attentionCase('sam.attn.global', 1, 12, 64, 64,
    'SAM ViT-B global block (2, 5, 8, 11): 12 heads over all 64x64 = 4096 tokens, head dim 64, decomposed rel-pos',
    'ORT materialises the 768 MiB score tensor: over the adapter\'s 128 MiB maxStorageBufferBindingSize'),
  attentionCase('sam.attn.global.1024', 1, 12, 32, 64,
    'same block at 512 px input (32x32 = 1024 tokens): the largest global case ORT Web can bind (48 MiB scores)'),
  attentionCase('sam.attn.window', 25, 12, 14, 64,
    'SAM ViT-B windowed block: 25 windows of 14x14 = 196 tokens, 12 heads, head dim 64, rel-pos per window'),
  plainAttentionCase('clip.attn', 1, 12, 197, 64,
    'CLIP ViT-B/16 vision block self-attention: 197 tokens, 12 heads, head dim 64, no rel-pos'),
];

export function seededRng(caseName: string): Rng {
  let h = 2166136261;
  for (const ch of caseName) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return new Rng(h >>> 0);
}
