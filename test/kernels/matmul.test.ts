import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import { ACTIVATIONS, type Activation } from '../../src/kernels/activation.js';
import { matmulCpu } from '../../src/kernels/cpu/matmul.js';
import { NT_VARIANTS } from '../../src/kernels/matmul-common.js';
import { linear, matmul, type MatmulVariant } from '../../src/kernels/matmul.js';
import { expectClose } from '../helpers/compare.js';
import { requires, useGpu } from '../helpers/gpu.js';
import { type OnnxConst, type OnnxNode, runOnnx } from '../helpers/onnx.js';
import { onnxActivation } from '../helpers/onnx-ops.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

interface Case {
  name: string;
  batch: number[];
  M: number;
  K: number;
  N: number;
  transA?: boolean;
  transB?: boolean;
  broadcastB?: boolean;
  bias?: boolean;
  act?: Activation;
  residual?: boolean;
  scale?: number;
  alpha?: number;
  tol: { relL2: number; atol: number; rtol: number };
}

const f32 = { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 };
const cases: Case[] = [
  { name: 'odd 2-D', batch: [], M: 45, K: 65, N: 37, tol: f32 },
  { name: 'size-1 dims', batch: [1], M: 1, K: 1, N: 1, tol: f32 },
  { name: 'vector x matrix', batch: [], M: 1, K: 130, N: 77, bias: true, tol: f32 },
  { name: 'transposed operands', batch: [3], M: 70, K: 33, N: 66, transA: true, transB: true, tol: f32 },
  { name: 'two batch dims, broadcast B', batch: [2, 3], M: 17, K: 19, N: 23, broadcastB: true, tol: f32 },
  { name: 'bias gelu residual', batch: [2], M: 67, K: 96, N: 129, bias: true, act: 'gelu', residual: true, tol: f32 },
  { name: 'quick_gelu', batch: [], M: 31, K: 48, N: 50, bias: true, act: 'quick_gelu', tol: f32 },
  { name: 'relu alpha', batch: [], M: 20, K: 9, N: 13, act: 'relu', alpha: 0.125, tol: f32 },
  { name: 'nn.Linear layout (B = W^T view)', batch: [2], M: 67, K: 132, N: 45, transB: true, bias: true, act: 'gelu', residual: true, tol: f32 },
  { name: 'linear layout, K = 36 across tiles', batch: [], M: 70, K: 36, N: 130, transB: true, tol: f32 },
  { name: 'linear layout, one row (pooled vector)', batch: [], M: 1, K: 64, N: 77, transB: true, bias: true, tol: f32 },
  { name: 'linear layout, 13 rows, N past a 64-column group', batch: [2], M: 13, K: 20, N: 65, transB: true, act: 'gelu', tol: f32 },
  // Same epilogue as the nn.Linear case (bias, GELU, residual): the GPU variants, whose large
  // kernels take seconds to compile on a CPU adapter, compile one pipeline for all three.
  { name: 'linear layout, 200x260 across 128-wide tiles, odd K steps', batch: [], M: 200, K: 76, N: 260, transB: true, bias: true, act: 'gelu', residual: true, tol: f32 },
  // Sums of 1028 products reach ~70: the f32 rounding of the order of summation is ~1e-4 there.
  { name: 'linear layout, long K over several splits', batch: [2], M: 5, K: 1028, N: 33, transB: true, bias: true, act: 'gelu', residual: true, tol: { relL2: 2e-6, atol: 5e-4, rtol: 1e-5 } },
  { name: 'linear layout, broadcast weight', batch: [3], M: 17, K: 8, N: 9, transB: true, broadcastB: true, tol: f32 },
  { name: 'large magnitudes', batch: [], M: 33, K: 257, N: 35, scale: 1e3, bias: true, tol: { relL2: 1e-6, atol: 100, rtol: 0 } }, // outputs ~1e7: f32 sums of 257 terms of 1e6,
];

async function reference(c: Case, a: Float32Array, b: Float32Array, bias: Float32Array, res: Float32Array): Promise<Float32Array> {
  const batchN = c.batch.reduce((p, d) => p * d, 1);
  const aDims = c.transA ? [...c.batch, c.K, c.M] : [...c.batch, c.M, c.K];
  const bBatch = c.broadcastB ? [] : c.batch;
  const bDims = c.transB ? [...bBatch, c.N, c.K] : [...bBatch, c.K, c.N];
  const perm = (n: number) => [...Array.from({ length: n - 2 }, (_, i) => i), n - 1, n - 2];
  const nodes: OnnxNode[] = [];
  const consts: OnnxConst[] = [];
  let A = 'A';
  let B = 'B';
  if (c.transA) nodes.push({ op: 'Transpose', inputs: ['A'], outputs: ['At'], attrs: { perm: perm(aDims.length) } }), (A = 'At');
  if (c.transB) nodes.push({ op: 'Transpose', inputs: ['B'], outputs: ['Bt'], attrs: { perm: perm(bDims.length) } }), (B = 'Bt');
  nodes.push({ op: 'MatMul', inputs: [A, B], outputs: ['mm'] });
  let cur = 'mm';
  if (c.alpha !== undefined) {
    consts.push({ name: 'alpha', dims: [], data: [c.alpha] });
    nodes.push({ op: 'Mul', inputs: [cur, 'alpha'], outputs: ['scaled'] });
    cur = 'scaled';
  }
  if (c.bias) nodes.push({ op: 'Add', inputs: [cur, 'bias'], outputs: ['biased'] }), (cur = 'biased');
  const act = onnxActivation(c.act ?? 'none', cur, 'act_out');
  nodes.push(...act.nodes);
  consts.push(...act.consts);
  cur = 'act_out';
  if (c.residual) nodes.push({ op: 'Add', inputs: [cur, 'res'], outputs: ['Y'] });
  else nodes.push({ op: 'Identity', inputs: [cur], outputs: ['Y'] });
  const outDims = [...c.batch, c.M, c.N];
  const inputs = [
    { name: 'A', dims: aDims },
    { name: 'B', dims: bDims },
    ...(c.bias ? [{ name: 'bias', dims: [c.N] }] : []),
    ...(c.residual ? [{ name: 'res', dims: outDims }] : []),
  ];
  const feeds: Record<string, { data: Float32Array; dims: number[] }> = { A: { data: a, dims: aDims }, B: { data: b, dims: bDims } };
  if (c.bias) feeds.bias = { data: bias, dims: [c.N] };
  if (c.residual) feeds.res = { data: res, dims: outDims };
  void batchN;
  return runOnnx({ nodes, inputs, outputs: ['Y'], initializers: consts }, feeds);
}

/** Every variant that runs f32 operands (subgroup_matrix takes f16 only: tested below). */
const ALL_VARIANTS: MatmulVariant[] = ['tiled', 'tiled_nt', 'direct_nt', 'direct_sg_nt', 'rows', 'tiled8_nt', 'rows_sg', 'splitk'];
/** Variants that need the `subgroups` feature. */
const SUBGROUP_VARIANTS: MatmulVariant[] = ['rows_sg', 'direct_sg_nt'];
const GPU_VARIANTS: MatmulVariant[] = ['tiled8_nt', 'rows_sg', 'splitk', 'subgroup_matrix'];

/** One case on one variant against the ONNX composition. */
async function checkCase(ctx: GpuContext, variant: MatmulVariant, c: Case): Promise<void> {
  const rng = new Rng(c.M * 1000 + c.K * 10 + c.N);
  const batchN = c.batch.reduce((p, d) => p * d, 1);
  const scale = c.scale ?? 1;
  const a = rng.randn(batchN * c.M * c.K, scale);
  const b = rng.randn((c.broadcastB ? 1 : batchN) * c.K * c.N, scale);
  const bias = rng.randn(c.N, scale);
  const res = rng.randn(batchN * c.M * c.N);
  const bBatch = c.broadcastB ? [] : c.batch;
  const ta = ctx.upload(a, c.transA ? [...c.batch, c.K, c.M] : [...c.batch, c.M, c.K]);
  const tb = ctx.upload(b, c.transB ? [...bBatch, c.N, c.K] : [...bBatch, c.K, c.N]);
  const A = c.transA ? ta.transpose(-1, -2) : ta;
  const B = c.transB ? tb.transpose(-1, -2) : tb;
  const out = matmul(ctx, A, B, {
    variant,
    act: c.act,
    alpha: c.alpha,
    bias: c.bias ? ctx.upload(bias, [c.N]) : undefined,
    residual: c.residual ? ctx.upload(res, [...c.batch, c.M, c.N]) : undefined,
  });
  expect(out.shape).toEqual([...c.batch, c.M, c.N]);
  const got = await ctx.read(out);
  const want = await reference(c, a, b, bias, res);
  expectClose(got, want, c.tol, `matmul ${variant} ${c.name}`, out.shape);
}

describe('matmul vs onnxruntime', () => {
  for (const variant of ALL_VARIANTS) {
    // The vec4 variants need both operands contiguous along K (A row-major, B a transposed [N, K] weight).
    // The GPU variants run the cases that share one epilogue (see above) plus the single-row one.
    const eligible = (c: Case) =>
      (!NT_VARIANTS.includes(variant) || (!!c.transB && !c.transA && c.K % 4 === 0)) &&
      (!GPU_VARIANTS.includes(variant) || (c.bias && c.act === 'gelu' && c.residual) || c.M === 1);
    for (const c of cases.filter(eligible)) {
      it(`${variant}: ${c.name}`, async (t) => {
        const ctx = gpu();
        if (!requires(t, !SUBGROUP_VARIANTS.includes(variant) || ctx.features.subgroups, 'subgroups')) return;
        await checkCase(ctx, variant, c);
      });
    }
  }

  // The register block's store has two forms (matmul-common.ts storeBlock): a loop the compiler
  // cannot unroll on CPU adapters, unrolled on GPUs. The adapter's own form runs above; here the
  // other one, by flipping the adapter class the config is derived from.
  const edges = cases.find((c) => c.name === 'linear layout, 200x260 across 128-wide tiles, odd K steps')!;
  for (const variant of ['tiled', 'tiled_nt', 'direct_nt', 'direct_sg_nt', 'tiled8_nt'] as MatmulVariant[]) {
    it(`${variant}: the other store form (unrolled on CPU adapters, a loop on GPUs), ${edges.name}`, async (t) => {
      const ctx = gpu();
      if (!requires(t, !SUBGROUP_VARIANTS.includes(variant) || ctx.features.subgroups, 'subgroups')) return;
      const was = ctx.tuning.cpuAdapter;
      ctx.tuning.cpuAdapter = !was;
      try {
        await checkCase(ctx, variant, edges);
      } finally {
        ctx.tuning.cpuAdapter = was;
      }
    });
  }

  it('matches the CPU reference (double precision) on every activation', async () => {
    const ctx = gpu();
    const rng = new Rng(7);
    const [M, K, N] = [19, 41, 27];
    const a = rng.randn(M * K);
    const w = rng.randn(N * K);
    const bias = rng.randn(N);
    for (const act of ACTIVATIONS) {
      const y = linear(ctx, ctx.upload(a, [M, K]), ctx.upload(w, [N, K]), ctx.upload(bias, [N]), { act });
      const wt = new Float32Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k]!;
      const want = matmulCpu(a, wt, 1, M, K, N, { bias, act });
      expectClose(await ctx.read(y), want, { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 }, `linear ${act}`, y.shape);
    }
  });

  for (const variant of [...ALL_VARIANTS, 'subgroup_matrix'] as MatmulVariant[]) {
    it(`${variant}: f16 weights and f16 activations, f32 accumulation`, async (t) => {
      const ctx = gpu();
      if (!requires(t, ctx.features.f16, 'shader-f16')) return;
      if (!requires(t, !SUBGROUP_VARIANTS.includes(variant) || ctx.features.subgroups, 'subgroups')) return;
      // Tensor cores: only where the adapter offers chromium-experimental-subgroup-matrix (never on lavapipe).
      if (!requires(t, variant !== 'subgroup_matrix' || !!ctx.features.subgroupMatrix, 'chromium-experimental-subgroup-matrix')) return;
      const rng = new Rng(99);
      const [M, K, N] = [37, 72, 45];
      const x = rng.randn(M * K);
      const w = rng.randn(N * K);
      const bias = rng.randn(N);
      const wt = new Float32Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k]!;
      const want = matmulCpu(x, wt, 1, M, K, N, { bias, act: 'gelu' });
      // f32 activations x f16 weights (the weights-only f16 path models use); the GPU variants run
      // the all-f16 configuration only (one compile each), tensor cores take f16 operands only.
      if (!GPU_VARIANTS.includes(variant)) {
      const y1 = linear(ctx, ctx.upload(x, [M, K]), ctx.upload(w, [N, K], 'f16'), ctx.upload(bias, [N]), { act: 'gelu', variant });
      expect(y1.dtype).toBe('f32');
      expectClose(await ctx.read(y1), want, { relL2: 1e-2, atol: 5e-2, rtol: 2e-2 }, 'f16 weights', y1.shape);
      }
      // all f16 storage
      const y2 = linear(ctx, ctx.upload(x, [M, K], 'f16'), ctx.upload(w, [N, K], 'f16'), ctx.upload(bias, [N], 'f16'), { act: 'gelu', variant });
      expect(y2.dtype).toBe('f16');
      expectClose(await ctx.read(y2), want, { relL2: 1e-2, atol: 1e-1, rtol: 2e-2 }, 'f16 storage', y2.shape);
    });
  }

  // Stacked Linears (the SAM decoder's hypernetworks): one bias row per batch entry, two batch dims
  // flattened in order; A is a transposed view of [rows, n, K] token rows, as the decoder passes it.
  for (const variant of ALL_VARIANTS) {
    it(`${variant}: one bias row per batch entry ([batch, N])`, async (t) => {
      const ctx = gpu();
      if (!requires(t, !SUBGROUP_VARIANTS.includes(variant) || ctx.features.subgroups, 'subgroups')) return;
      const rng = new Rng(11);
      const [B0, B1, M, K, N] = [2, 3, 5, 36, 20];
      const batch = B0 * B1;
      const x = rng.randn(M * batch * K); // [M, batch, K]: row m of batch entry z at (m * batch + z) * K
      const w = rng.randn(batch * N * K);
      const bias = rng.randn(batch * N);
      const a = ctx.upload(x, [M, B0, B1, K]).permute([1, 2, 0, 3]);
      const y = matmul(ctx, a, ctx.upload(w, [B0, B1, N, K]).transpose(2, 3), { bias: ctx.upload(bias, [batch, N]), act: 'relu', variant });
      expect(y.shape).toEqual([B0, B1, M, N]);
      const want = new Float64Array(batch * M * N);
      for (let z = 0; z < batch; z++) {
        const az = new Float32Array(M * K);
        for (let m = 0; m < M; m++) az.set(x.subarray((m * batch + z) * K, (m * batch + z + 1) * K), m * K);
        const wt = new Float32Array(K * N);
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[(z * N + n) * K + k]!;
        want.set(matmulCpu(az, wt, 1, M, K, N, { bias: bias.subarray(z * N, (z + 1) * N), act: 'relu' }), z * M * N);
      }
      expectClose(await ctx.read(y), want, { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 }, `matmul ${variant} per-batch bias`, y.shape);
      // A bias with another row count names both shapes.
      expect(() => matmul(ctx, a, ctx.upload(w, [B0, B1, N, K]).transpose(2, 3), { bias: ctx.empty([batch - 1, N]) })).toThrow(/bias must be contiguous \[20\] or \[6, 20\]/);
    });
  }

  it('linear on a strided view (the real tokens of a padded grid) needs no copy and matches the CPU reference', async () => {
    const ctx = gpu();
    const rng = new Rng(8);
    // [2, 7, 22, 24] padded grid, tokens [2, 5, 20, 24]: two batch dims (B, H), 20 rows of 24 features.
    const [B, Hp, Wp, H, W, K, N] = [2, 7, 22, 5, 20, 24, 20];
    const grid = rng.randn(B * Hp * Wp * K);
    const [w, bias, res] = [rng.randn(N * K), rng.randn(N), rng.randn(B * H * W * N)];
    const tokens = ctx.upload(grid, [B, Hp, Wp, K]).slice(1, 0, H).slice(2, 0, W);
    expect(tokens.isContiguous).toBe(false);
    const y = linear(ctx, tokens, ctx.upload(w, [N, K]), ctx.upload(bias, [N]), { act: 'gelu', residual: ctx.upload(res, [B, H, W, N]) });
    expect(y.shape).toEqual([B, H, W, N]);
    const a = new Float32Array(B * H * W * K);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let x = 0; x < W; x++) {
      a.set(grid.subarray(((b * Hp + h) * Wp + x) * K, ((b * Hp + h) * Wp + x + 1) * K), ((b * H + h) * W + x) * K);
    }
    const wt = new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k]!;
    const want = matmulCpu(a, wt, 1, B * H * W, K, N, { bias, act: 'gelu' }).map((v, i) => v + res[i]!);
    expectClose(await ctx.read(y), want, { relL2: 1e-6, atol: 1e-5, rtol: 1e-5 }, 'linear on padded-grid tokens', y.shape);
    // More leading dims than matmul has batch dims: the caller must copy.
    const five = ctx.empty([2, 2, 3, 4, 8]).slice(3, 0, 3);
    expect(() => linear(ctx, five, ctx.empty([5, 8]))).toThrow(/strided input needs 2 to 4 dims.*copy it first/);
  });

  it('rejects mismatched shapes before dispatch', () => {
    const ctx = gpu();
    expect(() => matmul(ctx, ctx.empty([8, 6]), ctx.empty([6, 8]), { variant: 'tiled_nt' })).toThrow(/tiled_nt needs both operands contiguous along K/);
    const a = ctx.empty([3, 4]);
    const b = ctx.empty([5, 6]);
    expect(() => matmul(ctx, a, b)).toThrow(/inner dims differ, A \[3, 4\] @ B \[5, 6\]/);
    expect(() => linear(ctx, a, ctx.empty([6, 5]))).toThrow(/has 4 features/);
  });
});
