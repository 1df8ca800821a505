/**
 * Every kernel variant, forced, on the browser's adapter (SwiftShader in Debian's Chromium), against
 * double-precision CPU references: the matmul variants, the row reductions (layernorm), the
 * attention algorithms (global and windowed, with SAM's rel-pos) and the conv2d variants. On Node
 * the same variants run against onnxruntime on lavapipe (test/kernels); this page checks them on a
 * second CPU adapter with its own subgroup size and compiler. The page measures; the test asserts.
 */
import type { GpuContext } from '../../../src/gpu/context.js';
import type { RowReduce } from '../../../src/gpu/tuning.js';
import { type AttentionAlgorithm, attention, gridSelfAttention } from '../../../src/kernels/attention.js';
import { conv2d, type Conv2dVariant } from '../../../src/kernels/conv2d.js';
import { attentionCpu } from '../../../src/kernels/cpu/attention.js';
import { conv2dCpu } from '../../../src/kernels/cpu/conv2d.js';
import { layerNormCpu } from '../../../src/kernels/cpu/layernorm.js';
import { matmulCpu } from '../../../src/kernels/cpu/matmul.js';
import { layerNorm } from '../../../src/kernels/layernorm.js';
import { type MatmulVariant, linear } from '../../../src/kernels/matmul.js';
import type { Tensor } from '../../../src/gpu/tensor.js';
import { compare } from '../../helpers/comparison.js';
import { Rng } from '../../helpers/random.js';
import { stamp } from './shared.js';

export interface VariantReport {
  op: string;
  variant: string;
  relL2?: number;
  maxAbs?: number;
  /** Why it did not run here (a feature the adapter lacks). */
  skipped?: string;
  error?: string;
}

export interface KernelVariantsReport {
  adapter: string;
  subgroups: boolean;
  subgroupSizes: [number, number] | null;
  reports: VariantReport[];
}

/** Seeded values in [-1, 1). */
const values = (n: number, seed: number) => Float32Array.from({ length: n }, ((r) => () => r.uniform(-1, 1))(new Rng(seed)));

export async function kernelVariants(ctx: GpuContext): Promise<KernelVariantsReport> {
  const reports: VariantReport[] = [];
  const sg = ctx.features.subgroups;
  const check = async (op: string, variant: string, needs: string | null, run: () => Tensor, want: ArrayLike<number>) => {
    if (needs) {
      reports.push({ op, variant, skipped: needs });
      return;
    }
    try {
      const t = run();
      const got = await ctx.read(t);
      t.dispose();
      const { relL2, maxAbs } = compare(got, want);
      reports.push({ op, variant, relL2, maxAbs });
    } catch (e) {
      reports.push({ op, variant, error: (e as Error).message });
    }
    stamp(`kernel variants: ${op} ${variant}`);
  };

  // nn.Linear layout with bias, GELU and residual; K = 76 is 19 vec4s: a partial last block for
  // subgroups of 4, 8 or 16 lanes (direct_sg_nt), and M, N off every tile size.
  {
    const [M, K, N] = [37, 76, 70];
    const [x, w, bias, res] = [values(M * K, 1), values(N * K, 2), values(N, 3), values(M * N, 4)];
    const wt = new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k]!;
    const want = matmulCpu(x, wt, 1, M, K, N, { bias, act: 'gelu', residual: res });
    const [tx, tw, tb, tr] = [ctx.upload(x, [M, K]), ctx.upload(w, [N, K]), ctx.upload(bias, [N]), ctx.upload(res, [M, N])];
    const variants: MatmulVariant[] = ['tiled', 'tiled_nt', 'direct_nt', 'direct_sg_nt', 'rows', 'tiled8_nt', 'rows_sg', 'splitk'];
    for (const v of variants) {
      const needs = (v === 'direct_sg_nt' || v === 'rows_sg') && !sg ? 'subgroups' : null;
      await check('matmul', v, needs, () => linear(ctx, tx, tw, tb, { act: 'gelu', residual: tr, variant: v }), want);
    }
    for (const t of [tx, tw, tb, tr]) t.dispose();
  }

  // Layernorm rows of 100 under each reduction and both adapter classes (workgroup sizes differ).
  {
    const [rows, n] = [9, 100];
    const [x, g, b] = [values(rows * n, 5), values(n, 6), values(n, 7)];
    const want = layerNormCpu(x, rows, n, g, b, 1e-5);
    const [tx, tg, tb] = [ctx.upload(x, [rows, n]), ctx.upload(g, [n]), ctx.upload(b, [n])];
    const saved = { ...ctx.tuning };
    try {
      for (const cpuAdapter of [true, false]) {
        for (const red of ['tree', 'subgroup', 'lane'] as RowReduce[]) {
          ctx.tuning.cpuAdapter = cpuAdapter;
          ctx.tuning.rowReduce = red;
          await check('layernorm', `${red}, ${cpuAdapter ? 'CPU' : 'GPU'} sizes`, red === 'subgroup' && !sg ? 'subgroups' : null,
            () => layerNorm(ctx, tx, tg, tb, 1e-5) as Tensor, want);
        }
      }
    } finally {
      Object.assign(ctx.tuning, saved);
    }
    for (const t of [tx, tg, tb]) t.dispose();
  }

  // Global attention with SAM's rel-pos on a 5x8 grid, and windowed attention (4x4 windows of an
  // 8x8 grid, 2 images) from a fused qkv grid, per algorithm.
  {
    const [B, H, gh, gw, D] = [1, 2, 5, 8, 16];
    const N = gh * gw;
    const [q, k, v] = [values(B * H * N * D, 8), values(B * H * N * D, 9), values(B * H * N * D, 10)];
    const [rh, rw] = [values((2 * gh - 1) * D, 11), values((2 * gw - 1) * D, 12)];
    const want = attentionCpu({ q, k, v, B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D), relPos: { h: rh, w: rw, grid: [gh, gw] } });
    const ts = [ctx.upload(q, [B, H, N, D]), ctx.upload(k, [B, H, N, D]), ctx.upload(v, [B, H, N, D]), ctx.upload(rh, [2 * gh - 1, D]), ctx.upload(rw, [2 * gw - 1, D])];
    const [tq, tk, tv, trh, trw] = ts as [Tensor, Tensor, Tensor, Tensor, Tensor];
    for (const alg of ['fused', 'flash', 'chunked'] as AttentionAlgorithm[]) {
      const needs = alg === 'flash' && !sg ? 'subgroups' : null;
      await check('attention', `${alg}, global rel-pos`, needs,
        () => attention(ctx, tq, tk, tv, { algorithm: alg, chunkRows: alg === 'chunked' ? 16 : undefined, relPos: { h: trh, w: trw, grid: [gh, gw] } }), want);
    }
    for (const t of ts) t.dispose();
  }
  {
    const [B, G, win, heads, D] = [2, 8, 4, 2, 16];
    const C = heads * D;
    const qkv = values(B * G * G * 3 * C, 13);
    const [rh, rw] = [values((2 * win - 1) * D, 14), values((2 * win - 1) * D, 15)];
    const want = windowedReference(qkv, B, G, win, heads, D, rh, rw);
    const ts = [ctx.upload(qkv, [B, G, G, 3 * C]), ctx.upload(rh, [2 * win - 1, D]), ctx.upload(rw, [2 * win - 1, D])];
    const [tqkv, trh, trw] = ts as [Tensor, Tensor, Tensor];
    for (const alg of ['fused', 'flash', 'chunked'] as AttentionAlgorithm[]) {
      const needs = alg === 'flash' && !sg ? 'subgroups' : null;
      await check('attention', `${alg}, ${win}x${win} windows rel-pos`, needs,
        () => gridSelfAttention(ctx, tqkv, heads, { window: win, algorithm: alg, relPos: { h: trh, w: trw } }), want);
    }
    for (const t of ts) t.dispose();
  }

  // 3x3 convolution with padding, bias and ReLU, NCHW.
  {
    const xs = [1, 5, 9, 11] as const;
    const ws = [12, 5, 3, 3] as const;
    const [x, w, bias] = [values(5 * 9 * 11, 16), values(12 * 5 * 9, 17), values(12, 18)];
    const want = conv2dCpu(x, xs, w, ws, bias, { padding: [1, 1, 1, 1], act: 'relu' }).data;
    const ts = [ctx.upload(x, xs), ctx.upload(w, ws), ctx.upload(bias, [12])];
    const [tx, tw, tb] = ts as [Tensor, Tensor, Tensor];
    for (const variant of ['tiled', 'direct', 'gemm'] as Conv2dVariant[]) {
      await check('conv2d', variant, null, () => conv2d(ctx, tx, tw, tb, { padding: 1, act: 'relu', variant }), want);
    }
    for (const t of ts) t.dispose();
  }
  return { adapter: ctx.description, subgroups: sg, subgroupSizes: ctx.features.subgroupSizes, reports };
}

/** Windowed self-attention from a qkv grid [B, G, G, 3 * heads * D], window by window on the CPU; [B, G, G, heads * D]. */
function windowedReference(qkv: Float32Array, B: number, G: number, win: number, heads: number, D: number, rh: Float32Array, rw: Float32Array): Float64Array {
  const C = heads * D;
  const N = win * win;
  const out = new Float64Array(B * G * G * C);
  const at = (b: number, wy: number, wx: number, n: number) => (b * G + wy * win + Math.floor(n / win)) * G + wx * win + (n % win);
  for (let b = 0; b < B; b++) for (let wy = 0; wy < G / win; wy++) for (let wx = 0; wx < G / win; wx++) {
    const part = (i: number) => {
      const a = new Float32Array(heads * N * D);
      for (let h = 0; h < heads; h++) for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) a[(h * N + n) * D + d] = qkv[at(b, wy, wx, n) * 3 * C + i * C + h * D + d]!;
      return a;
    };
    const o = attentionCpu({ q: part(0), k: part(1), v: part(2), B: 1, H: heads, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D), relPos: { h: rh, w: rw, grid: [win, win] } });
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) out[at(b, wy, wx, n) * C + c] = o[n * C + c]!;
  }
  return out;
}
