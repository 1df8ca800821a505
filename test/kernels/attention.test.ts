import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.js';
import type { Tensor } from '../../src/gpu/tensor.js';
import { type AttentionAlgorithm, attention, flashEligible, gridSelfAttention } from '../../src/kernels/attention.js';
import { attentionCpu } from '../../src/kernels/cpu/attention.js';
import { expectClose } from '../helpers/compare.js';
import { requires, useGpu } from '../helpers/gpu.js';
import { type OnnxConst, type OnnxNode, runOnnx } from '../helpers/onnx.js';
import { Rng } from '../helpers/random.js';

const gpu = useGpu();

interface RefCase {
  B: number;
  H: number;
  Nq: number;
  Nk: number;
  D: number;
  scale: number;
  causal?: boolean;
  /** Full [B, H, Nq, Nk] bias. */
  bias?: Float32Array;
  relPos?: { h: Float32Array; w: Float32Array; grid: [number, number] };
}

/**
 * ONNX composition of the same attention: MatMul / Mul / Add / Softmax / MatMul, with SAM's
 * decomposed rel-pos as batched MatMuls against gathered tables. Output [B, Nq, H, D].
 */
async function onnxAttention(c: RefCase, q: Float32Array, k: Float32Array, v: Float32Array): Promise<Float32Array> {
  const { B, H, Nq, Nk, D } = c;
  const nodes: OnnxNode[] = [];
  const consts: OnnxConst[] = [{ name: 'scale', dims: [], data: [c.scale] }];
  nodes.push({ op: 'Transpose', inputs: ['K'], outputs: ['Kt'], attrs: { perm: [0, 1, 3, 2] } });
  nodes.push({ op: 'MatMul', inputs: ['Q', 'Kt'], outputs: ['qk'] });
  nodes.push({ op: 'Mul', inputs: ['qk', 'scale'], outputs: ['s0'] });
  let s = 's0';
  if (c.bias) {
    consts.push({ name: 'bias', dims: [B, H, Nq, Nk], data: c.bias });
    nodes.push({ op: 'Add', inputs: [s, 'bias'], outputs: ['s1'] });
    s = 's1';
  }
  if (c.causal) {
    const mask = new Float32Array(Nq * Nk);
    for (let i = 0; i < Nq; i++) for (let j = i + 1; j < Nk; j++) mask[i * Nk + j] = -1e30;
    consts.push({ name: 'mask', dims: [Nq, Nk], data: mask });
    nodes.push({ op: 'Add', inputs: [s, 'mask'], outputs: ['s2'] });
    s = 's2';
  }
  if (c.relPos) {
    const [gh, gw] = c.relPos.grid;
    // Rh^T[y] = table rows (y - kh + gh - 1), laid out [gh, D, gh] for a batched MatMul over y.
    const rhT = new Float32Array(gh * D * gh);
    for (let y = 0; y < gh; y++) for (let kh = 0; kh < gh; kh++) for (let d = 0; d < D; d++) rhT[(y * D + d) * gh + kh] = c.relPos.h[(y - kh + gh - 1) * D + d]!;
    const rwT = new Float32Array(gw * D * gw);
    for (let x = 0; x < gw; x++) for (let kw = 0; kw < gw; kw++) for (let d = 0; d < D; d++) rwT[(x * D + d) * gw + kw] = c.relPos.w[(x - kw + gw - 1) * D + d]!;
    consts.push(
      { name: 'rhT', dims: [gh, D, gh], data: rhT },
      { name: 'rwT', dims: [gw, D, gw], data: rwT },
      { name: 'shape5', dims: [5], data: [B, H, gh, gw, D], type: 'int64' },
      { name: 'shape6', dims: [6], data: [B, H, gh, gw, gh, gw], type: 'int64' },
      { name: 'shape4', dims: [4], data: [B, H, Nq, Nk], type: 'int64' },
      { name: 'ax_last', dims: [1], data: [-1], type: 'int64' },
      { name: 'ax_m2', dims: [1], data: [-2], type: 'int64' },
    );
    nodes.push(
      { op: 'Reshape', inputs: ['Q', 'shape5'], outputs: ['q5'] },
      { op: 'MatMul', inputs: ['q5', 'rhT'], outputs: ['relh'] }, // [B,H,gh,gw,gh]
      { op: 'Transpose', inputs: ['q5'], outputs: ['q5t'], attrs: { perm: [0, 1, 3, 2, 4] } },
      { op: 'MatMul', inputs: ['q5t', 'rwT'], outputs: ['relw_t'] }, // [B,H,gw,gh,gw]
      { op: 'Transpose', inputs: ['relw_t'], outputs: ['relw'], attrs: { perm: [0, 1, 3, 2, 4] } },
      { op: 'Unsqueeze', inputs: ['relh', 'ax_last'], outputs: ['relh6'] },
      { op: 'Unsqueeze', inputs: ['relw', 'ax_m2'], outputs: ['relw6'] },
      { op: 'Reshape', inputs: [s, 'shape6'], outputs: ['s6'] },
      { op: 'Add', inputs: ['s6', 'relh6'], outputs: ['s6a'] },
      { op: 'Add', inputs: ['s6a', 'relw6'], outputs: ['s6b'] },
      { op: 'Reshape', inputs: ['s6b', 'shape4'], outputs: ['s3'] },
    );
    s = 's3';
  }
  nodes.push({ op: 'Softmax', inputs: [s], outputs: ['p'], attrs: { axis: -1 } });
  nodes.push({ op: 'MatMul', inputs: ['p', 'V'], outputs: ['o'] });
  nodes.push({ op: 'Transpose', inputs: ['o'], outputs: ['Y'], attrs: { perm: [0, 2, 1, 3] } });
  return runOnnx(
    {
      nodes,
      inputs: [
        { name: 'Q', dims: [B, H, Nq, D] },
        { name: 'K', dims: [B, H, Nk, D] },
        { name: 'V', dims: [B, H, Nk, D] },
      ],
      outputs: ['Y'],
      initializers: consts,
    },
    { Q: { data: q, dims: [B, H, Nq, D] }, K: { data: k, dims: [B, H, Nk, D] }, V: { data: v, dims: [B, H, Nk, D] } },
  );
}

/** q (i = 0), k (1) or v (2) as [B, H, N, D] from a fused projection [B, N, 3, H, D]. */
function splitQkv(qkv: Float32Array, B: number, N: number, H: number, D: number, i: number): Float32Array {
  const C = H * D;
  const a = new Float32Array(B * H * N * D);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) a[((b * H + h) * N + n) * D + d] = qkv[(b * N + n) * 3 * C + i * C + h * D + d]!;
  return a;
}

const TOL = { relL2: 1e-5, atol: 1e-4, rtol: 1e-4 };

/** The pipeline keys come from the profiler, which needs timestamp queries. */
const keyed = (tc: { skip: (note?: string) => void }, ctx: GpuContext) => requires(tc, ctx.features.timestamps, 'timestamp-query (the pipeline keys come from the profiler)');

/** Run `fn` with the profiler on (restored after) and return its output, read, and the attention pipeline keys it used. */
async function withKeys(ctx: GpuContext, fn: () => Tensor): Promise<{ out: Tensor; got: Float32Array; keys: string[] }> {
  const had = ctx.profiler;
  const profiler = ctx.enableProfiling();
  profiler.clear();
  try {
    const out = fn();
    const got = (await ctx.read(out)) as Float32Array;
    await profiler.collect();
    return { out, got, keys: profiler.records.map((r) => r.key).filter((k) => k.startsWith('attention{')) };
  } finally {
    if (!had) {
      profiler.destroy();
      ctx.profiler = null;
    }
  }
}

// The one-query-per-invocation kernel and the GPU flash kernel (four subgroup lanes per query),
// each forced, on the same cases; flash runs where the device has subgroups and D % 16 == 0.
/**
 * SAM's windowed grid attention (2 images, a 14x21 grid of 7x7 windows, rel-pos) on the engine,
 * and the reference: the grid partitioned into windows on the CPU, the ONNX composition per window.
 */
async function windowedCase(ctx: GpuContext, opts: { algorithm: AttentionAlgorithm; chunkRows?: number; dtype?: 'f32' | 'f16' }) {
  const rng = new Rng(13);
  const [B, Hg, Wg, heads, D, win] = [2, 14, 21, 2, 16, 7];
  const C = heads * D;
  const qkv = rng.randn(B * Hg * Wg * 3 * C);
  const rh = rng.randn((2 * win - 1) * D, 0.5);
  const rw = rng.randn((2 * win - 1) * D, 0.5);
  const dt = opts.dtype ?? 'f32';
  const out = gridSelfAttention(ctx, ctx.upload(qkv, [B, Hg, Wg, 3 * C], dt), heads, {
    window: win,
    algorithm: opts.algorithm,
    chunkRows: opts.chunkRows,
    relPos: { h: ctx.upload(rh, [2 * win - 1, D], dt), w: ctx.upload(rw, [2 * win - 1, D], dt) },
  });
  expect(out.dtype).toBe(dt);
  const got = await ctx.read(out);
  const nW = (Hg / win) * (Wg / win);
  const N = win * win;
  const part = (i: number) => {
    const a = new Float32Array(B * nW * heads * N * D);
    for (let b = 0; b < B; b++) for (let wy = 0; wy < Hg / win; wy++) for (let wx = 0; wx < Wg / win; wx++) {
      const z = (b * (Hg / win) + wy) * (Wg / win) + wx;
      for (let h = 0; h < heads; h++) for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) {
        const y = wy * win + Math.floor(n / win);
        const x = wx * win + (n % win);
        a[((z * heads + h) * N + n) * D + d] = qkv[((b * Hg + y) * Wg + x) * 3 * C + i * C + h * D + d]!;
      }
    }
    return a;
  };
  const ref = await onnxAttention(
    { B: B * nW, H: heads, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D), relPos: { h: rh, w: rw, grid: [win, win] } },
    part(0), part(1), part(2),
  );
  const want = new Float32Array(B * Hg * Wg * C);
  for (let b = 0; b < B; b++) for (let wy = 0; wy < Hg / win; wy++) for (let wx = 0; wx < Wg / win; wx++) {
    const z = (b * (Hg / win) + wy) * (Wg / win) + wx;
    for (let n = 0; n < N; n++) for (let h = 0; h < heads; h++) for (let d = 0; d < D; d++) {
      const y = wy * win + Math.floor(n / win);
      const x = wx * win + (n % win);
      want[((b * Hg + y) * Wg + x) * C + h * D + d] = ref[((z * N + n) * heads + h) * D + d]!;
    }
  }
  return { got, want, shape: out.shape };
}

for (const algorithm of ['fused', 'flash'] as const) describe(`${algorithm} attention vs onnxruntime`, () => {
  const ready = (t: { skip: (note?: string) => void }, ctx: GpuContext, D: number) =>
    algorithm === 'fused' || requires(t, flashEligible(ctx, D), 'subgroups (>= 4 lanes) and a head dim multiple of 16');
  const shapes = [
    { name: 'cross-attention odd sizes', B: 2, H: 3, Nq: 37, Nk: 53, D: 32 },
    { name: 'head dim 16 (SAM decoder cross-attn)', B: 1, H: 8, Nq: 7, Nk: 67, D: 16 },
    { name: 'head dim 64', B: 1, H: 2, Nq: 65, Nk: 65, D: 64 },
    { name: 'head dim 80 (ViT-H)', B: 1, H: 2, Nq: 19, Nk: 33, D: 80 },
    { name: 'head dim 128', B: 1, H: 1, Nq: 33, Nk: 70, D: 128 },
    { name: 'single key', B: 1, H: 1, Nq: 5, Nk: 1, D: 8 },
  ];
  for (const sh of shapes) {
    // Small key blocks exercise the block loop and tails; one head dim is enough for that (every
    // extra config is another pipeline to compile, which costs seconds on a CPU adapter).
    for (const blockKeys of sh.D === 32 || sh.D === 8 ? [undefined, 4] : [undefined]) {
      it(`${sh.name}${blockKeys ? ', 4-key blocks' : ''}`, async (tc) => {
        const ctx = gpu();
        if (!ready(tc, ctx, sh.D)) return;
        // The fused kernel at head dim 128 takes 13-35 s to compile on a CPU adapter (more under
        // load), where attention.ts never picks it above 64 if flash can run; head dim 80 keeps
        // the fused kernel's large-head-dim path tested there, and GPUs run this case.
        if (algorithm === 'fused' && sh.D === 128 && ctx.tuning.cpuAdapter && flashEligible(ctx, sh.D)) {
          return tc.skip('CPU adapter: head dims above 64 run the flash kernel (fused compile 13+ s); head dim 80 covers fused here');
        }
        const rng = new Rng(sh.Nq * 31 + sh.D);
        const { B, H, Nq, Nk, D } = sh;
        const q = rng.randn(B * H * Nq * D);
        const k = rng.randn(B * H * Nk * D);
        const v = rng.randn(B * H * Nk * D);
        const out = attention(ctx, ctx.upload(q, [B, H, Nq, D]), ctx.upload(k, [B, H, Nk, D]), ctx.upload(v, [B, H, Nk, D]), { blockKeys, algorithm });
        expect(out.shape).toEqual([B, Nq, H, D]);
        const want = await onnxAttention({ ...sh, scale: 1 / Math.sqrt(D) }, q, k, v);
        expectClose(await ctx.read(out), want, TOL, sh.name, out.shape);
      });
    }
  }

  it('causal mask (CLIP text: 77 tokens)', async (tc) => {
    const ctx = gpu();
    if (!ready(tc, ctx, 32)) return;
    const rng = new Rng(77);
    const [B, H, N, D] = [2, 2, 77, 32];
    const q = rng.randn(B * H * N * D);
    const k = rng.randn(B * H * N * D);
    const v = rng.randn(B * H * N * D);
    const out = attention(ctx, ctx.upload(q, [B, H, N, D]), ctx.upload(k, [B, H, N, D]), ctx.upload(v, [B, H, N, D]), { causal: true, blockKeys: 16, algorithm });
    const want = await onnxAttention({ B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D), causal: true }, q, k, v);
    expectClose(await ctx.read(out), want, TOL, 'causal', out.shape);
  });

  it('broadcast additive bias and large magnitudes (peaked softmax)', async (tc) => {
    const ctx = gpu();
    if (!ready(tc, ctx, 16)) return;
    const rng = new Rng(5);
    const [B, H, Nq, Nk, D] = [2, 3, 21, 29, 16];
    const q = rng.randn(B * H * Nq * D, 4);
    const k = rng.randn(B * H * Nk * D, 4);
    const v = rng.randn(B * H * Nk * D, 100);
    const biasSmall = rng.randn(H * Nk, 3); // [H, 1, Nk]
    const full = new Float32Array(B * H * Nq * Nk);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Nq; i++) for (let j = 0; j < Nk; j++) full[((b * H + h) * Nq + i) * Nk + j] = biasSmall[h * Nk + j]!;
    const out = attention(ctx, ctx.upload(q, [B, H, Nq, D]), ctx.upload(k, [B, H, Nk, D]), ctx.upload(v, [B, H, Nk, D]), {
      bias: ctx.upload(biasSmall, [H, 1, Nk]),
      algorithm,
    });
    const want = await onnxAttention({ B, H, Nq, Nk, D, scale: 0.25, bias: full }, q, k, v);
    expectClose(await ctx.read(out), want, { relL2: 1e-5, atol: 5e-3, rtol: 1e-4 }, 'bias', out.shape);
  });

  it('q, k, v as strided views of a fused qkv projection', async (tc) => {
    const ctx = gpu();
    if (!ready(tc, ctx, 16) || !keyed(tc, ctx)) return;
    const rng = new Rng(9);
    const [B, N, H, D] = [2, 23, 3, 16];
    const C = H * D;
    const qkv = rng.randn(B * N * 3 * C);
    const t = ctx.upload(qkv, [B, N, 3 * C]);
    // [B, N, 3, H, D] -> q/k/v [B, H, N, D] views.
    const view = (i: number) => t.asStrided([B, H, N, D], [N * 3 * C, D, 3 * C, 1], i * C);
    const { out, got, keys } = await withKeys(ctx, () => attention(ctx, view(0), view(1), view(2), { algorithm }));
    expect(keys.length > 0 && keys.every((k) => k.includes('"vec":true')), keys.join(', ')).toBe(true);
    const split = (i: number) => splitQkv(qkv, B, N, H, D, i);
    const want = await onnxAttention({ B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D) }, split(0), split(1), split(2));
    expectClose(got, want, TOL, 'strided qkv', out.shape);
  });

  // Views whose offsets or strides are not multiples of 4 elements cannot be read as vec4: the
  // scalar loads run (the fused qkv case above takes the vec4 loads). Both are checked by key.
  it('q, k, v at offsets that are not multiples of 4 take the scalar loads', async (tc) => {
    const ctx = gpu();
    if (!ready(tc, ctx, 16) || !keyed(tc, ctx)) return;
    const rng = new Rng(13);
    const [B, H, N, D] = [1, 2, 19, 16];
    const n = B * H * N * D;
    const data = rng.randn(3 * n + 6);
    const t = ctx.upload(data, [3 * n + 6]);
    const view = (i: number) => t.asStrided([B, H, N, D], [H * N * D, N * D, D, 1], 2 + i * (n + 2));
    const { out, got, keys } = await withKeys(ctx, () => attention(ctx, view(0), view(1), view(2), { algorithm }));
    expect(keys.length > 0 && keys.every((k) => k.includes('"vec":false')), keys.join(', ')).toBe(true);
    const part = (i: number) => data.slice(2 + i * (n + 2), 2 + i * (n + 2) + n);
    const want = await onnxAttention({ B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D) }, part(0), part(1), part(2));
    expectClose(got, want, TOL, 'unaligned views', out.shape);
  });

  it('SAM decomposed relative position on a rectangular grid', async (tc) => {
    const ctx = gpu();
    if (!ready(tc, ctx, 16)) return;
    const rng = new Rng(11);
    const [B, H, gh, gw, D] = [1, 2, 5, 7, 16];
    const N = gh * gw;
    const q = rng.randn(B * H * N * D);
    const k = rng.randn(B * H * N * D);
    const v = rng.randn(B * H * N * D);
    const rh = rng.randn((2 * gh - 1) * D, 0.5);
    const rw = rng.randn((2 * gw - 1) * D, 0.5);
    const out = attention(ctx, ctx.upload(q, [B, H, N, D]), ctx.upload(k, [B, H, N, D]), ctx.upload(v, [B, H, N, D]), {
      relPos: { h: ctx.upload(rh, [2 * gh - 1, D]), w: ctx.upload(rw, [2 * gw - 1, D]), grid: [gh, gw] },
      blockKeys: 8,
      algorithm,
    });
    const c = { B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D), relPos: { h: rh, w: rw, grid: [gh, gw] as [number, number] } };
    const got = await ctx.read(out);
    expectClose(got, await onnxAttention(c, q, k, v), TOL, 'rel-pos vs onnx', out.shape);
    expectClose(got, attentionCpu({ ...c, q, k, v }), TOL, 'rel-pos vs cpu', out.shape);
  });

  it('windowed grid attention (SAM window blocks) equals per-window attention', async (tc) => {
    const ctx = gpu();
    if (!ready(tc, ctx, 16)) return;
    const { got, want, shape } = await windowedCase(ctx, { algorithm });
    expectClose(got, want, TOL, 'windowed', shape);
  });

  it('f16 storage stays within the f16 tolerance', async (tc) => {
    const ctx = gpu();
    if (!requires(tc, ctx.features.f16, 'shader-f16') || !ready(tc, ctx, 32)) return;
    const rng = new Rng(17);
    const [B, H, N, D] = [1, 2, 40, 32];
    const q = rng.randn(B * H * N * D);
    const k = rng.randn(B * H * N * D);
    const v = rng.randn(B * H * N * D);
    const out = attention(ctx, ctx.upload(q, [B, H, N, D], 'f16'), ctx.upload(k, [B, H, N, D], 'f16'), ctx.upload(v, [B, H, N, D], 'f16'), { algorithm });
    expect(out.dtype).toBe('f16');
    const want = await onnxAttention({ B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D) }, q, k, v);
    expectClose(await ctx.read(out), want, { relL2: 1e-2, atol: 5e-2, rtol: 5e-2 }, 'f16', out.shape);
  });

  if (algorithm === 'fused') it('rejects bad shapes with the shapes in the message', () => {
    const ctx = gpu();
    const q = ctx.empty([1, 2, 5, 8]);
    expect(() => attention(ctx, q, ctx.empty([1, 2, 6, 8]), ctx.empty([1, 2, 7, 8]))).toThrow(/v \[1, 2, 7, 8\] does not match \[1, 2, 6, 8\]/);
    expect(() => attention(ctx, ctx.empty([1, 1, 4, 6]), ctx.empty([1, 1, 4, 6]), ctx.empty([1, 1, 4, 6]))).toThrow(/head dim 6 must be a multiple of 4/);
    expect(() => attention(ctx, q, q, q, { relPos: { h: ctx.empty([3, 8]), w: ctx.empty([3, 8]), grid: [2, 2] } })).toThrow(/grid 2x2 does not cover 5/);
  });
});

describe('default attention choice on CPU adapters', () => {
  // Above head dim 64 the flash kernel (bq 32: four lanes per query) runs instead of the fused one
  // (bq 64), whose compile grows steeply with the head dim there; short sequences of 64 stay fused.
  for (const [D, want] of [[64, '"bq":64'], [96, '"bq":32']] as const) {
    it(`head dim ${D}, 17 tokens: the ${want === '"bq":32' ? 'flash' : 'fused'} kernel, equal to onnxruntime`, async (tc) => {
      const ctx = gpu();
      if (!requires(tc, ctx.tuning.cpuAdapter, 'a CPU adapter') || !requires(tc, flashEligible(ctx, 96), 'subgroups (>= 4 lanes)') || !keyed(tc, ctx)) return;
      const rng = new Rng(D);
      const [B, H, N] = [1, 2, 17];
      const [q, k, v] = [0, 1, 2].map(() => rng.randn(B * H * N * D));
      const up = (x: Float32Array) => ctx.upload(x, [B, H, N, D]);
      const { out, got, keys } = await withKeys(ctx, () => attention(ctx, up(q!), up(k!), up(v!)));
      expect(keys.length === 1 && keys[0]!.includes(want), keys.join(', ')).toBe(true);
      expectClose(got, await onnxAttention({ B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D) }, q!, k!, v!), TOL, `default choice, head dim ${D}`, out.shape);
    });
  }
});

describe('chunked attention (CPU adapters) vs onnxruntime', () => {
  // The matmul + in-place softmax algorithm of attention-chunked.ts, forced; small chunkRows give
  // several chunks and a short last one. N % 4 != 0 covers the padded-key path, a grid width that
  // is not a multiple of 4 the scalar softmax with rel-pos.
  const chunked = { algorithm: 'chunked' as const };

  it('plain self-attention, padded keys, 5 chunks, peaked softmax', async () => {
    const ctx = gpu();
    const rng = new Rng(41);
    const [B, H, N, D] = [2, 3, 37, 32];
    const q = rng.randn(B * H * N * D, 4); // large scores: softmax close to one-hot
    const k = rng.randn(B * H * N * D);
    const v = rng.randn(B * H * N * D);
    const out = attention(ctx, ctx.upload(q, [B, H, N, D]), ctx.upload(k, [B, H, N, D]), ctx.upload(v, [B, H, N, D]), { ...chunked, chunkRows: 8 });
    expect(out.shape).toEqual([B, N, H, D]);
    const want = await onnxAttention({ B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D) }, q, k, v);
    expectClose(await ctx.read(out), want, TOL, 'chunked plain', out.shape);
  });

  it('q, k, v as strided views of a fused qkv projection', async () => {
    const ctx = gpu();
    const rng = new Rng(43);
    const [B, N, H, D] = [2, 24, 3, 16];
    const C = H * D;
    const qkv = rng.randn(B * N * 3 * C);
    const t = ctx.upload(qkv, [B, N, 3 * C]);
    const view = (i: number) => t.asStrided([B, H, N, D], [N * 3 * C, D, 3 * C, 1], i * C);
    const out = attention(ctx, view(0), view(1), view(2), { ...chunked, chunkRows: 16 });
    const split = (i: number) => splitQkv(qkv, B, N, H, D, i);
    const want = await onnxAttention({ B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D) }, split(0), split(1), split(2));
    expectClose(await ctx.read(out), want, TOL, 'chunked strided qkv', out.shape);
  });

  for (const [gh, gw, chunkRows] of [[5, 7, 8], [6, 8, 20]] as const) {
    it(`SAM rel-pos on a ${gh}x${gw} grid (${gw % 4 === 0 ? 'vec4' : 'scalar'} softmax), grid self-attention, 2 images`, async () => {
      const ctx = gpu();
      const rng = new Rng(gh * 100 + gw);
      const [B, heads, D] = [2, 2, 16];
      const C = heads * D;
      const N = gh * gw;
      const qkv = rng.randn(B * N * 3 * C);
      const rh = rng.randn((2 * gh - 1) * D, 0.5);
      const rw = rng.randn((2 * gw - 1) * D, 0.5);
      const out = gridSelfAttention(ctx, ctx.upload(qkv, [B, gh, gw, 3 * C]), heads, {
        relPos: { h: ctx.upload(rh, [2 * gh - 1, D]), w: ctx.upload(rw, [2 * gw - 1, D]) },
        ...chunked,
        chunkRows,
      });
      const split = (i: number) => splitQkv(qkv, B, N, heads, D, i);
      const c = { B, H: heads, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D), relPos: { h: rh, w: rw, grid: [gh, gw] as [number, number] } };
      // ONNX gives [B, N, H, D], which is the grid layout [B, gh, gw, H * D] of the output.
      expectClose(await ctx.read(out), await onnxAttention(c, split(0), split(1), split(2)), TOL, 'chunked rel-pos', out.shape);
    });
  }

  it('f16 storage with SAM rel-pos (the f16 SAM encoder on CPU adapters): within the f16 tolerance', async (tc) => {
    const ctx = gpu();
    if (!requires(tc, ctx.features.f16, 'shader-f16')) return;
    const rng = new Rng(61);
    const [B, heads, D, gh, gw] = [1, 2, 16, 6, 8];
    const C = heads * D;
    const N = gh * gw;
    const qkv = rng.randn(B * N * 3 * C);
    const rh = rng.randn((2 * gh - 1) * D, 0.5);
    const rw = rng.randn((2 * gw - 1) * D, 0.5);
    const out = gridSelfAttention(ctx, ctx.upload(qkv, [B, gh, gw, 3 * C], 'f16'), heads, {
      relPos: { h: ctx.upload(rh, [2 * gh - 1, D], 'f16'), w: ctx.upload(rw, [2 * gw - 1, D], 'f16') },
      ...chunked,
      chunkRows: 16,
    });
    expect(out.dtype).toBe('f16');
    const split = (i: number) => splitQkv(qkv, B, N, heads, D, i);
    const c = { B, H: heads, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D), relPos: { h: rh, w: rw, grid: [gh, gw] as [number, number] } };
    expectClose(await ctx.read(out), await onnxAttention(c, split(0), split(1), split(2)), { relL2: 1e-2, atol: 5e-2, rtol: 5e-2 }, 'chunked f16 rel-pos', out.shape);
  });

  // Windows become one global attention over heads x images x windows blocks (attention-chunked.ts
  // windowedAttention); chunkRows 16 splits each 49-token window's queries into 4 chunks.
  for (const chunkRows of [undefined, 16]) {
    it(`SAM windowed grid attention with rel-pos, 2 images${chunkRows ? `, ${chunkRows}-row chunks` : ''}: equals per-window attention`, async () => {
      const { got, want, shape } = await windowedCase(gpu(), { ...chunked, chunkRows });
      expectClose(got, want, TOL, 'chunked windowed', shape);
    });
  }

  it('windowed, f16 storage: within the f16 tolerance', async (tc) => {
    const ctx = gpu();
    if (!requires(tc, ctx.features.f16, 'shader-f16')) return;
    const { got, want, shape } = await windowedCase(ctx, { ...chunked, dtype: 'f16' });
    expectClose(got, want, { relL2: 1e-2, atol: 5e-2, rtol: 5e-2 }, 'chunked windowed f16', shape);
  });

  it('refuses what it does not implement (causal mask) with a clear message', () => {
    const ctx = gpu();
    const t = ctx.empty([1, 1, 8, 8]);
    expect(() => attention(ctx, t, t, t, { ...chunked, causal: true })).toThrow(/chunked algorithm takes f32 or f16 self-attention without bias or causal mask/);
  });
});

describe('attention at SAM ViT-B global-block size', () => {
  it('4096 tokens x 64 head dim with rel-pos, every algorithm: rel L2 <= 1e-5 vs onnxruntime, no N x N buffer', async () => {
    const ctx = gpu();
    const rng = new Rng(4096);
    const [B, H, g, D] = [1, 1, 64, 64];
    const N = g * g;
    const q = rng.randn(B * H * N * D);
    const k = rng.randn(B * H * N * D);
    const v = rng.randn(B * H * N * D);
    const rh = rng.randn((2 * g - 1) * D, 0.5);
    const rw = rng.randn((2 * g - 1) * D, 0.5);
    const tq = ctx.upload(q, [B, H, N, D]);
    const tk = ctx.upload(k, [B, H, N, D]);
    const tv = ctx.upload(v, [B, H, N, D]);
    const trh = ctx.upload(rh, [2 * g - 1, D]);
    const trw = ctx.upload(rw, [2 * g - 1, D]);
    const want = await onnxAttention({ B, H, Nq: N, Nk: N, D, scale: 1 / Math.sqrt(D), relPos: { h: rh, w: rw, grid: [g, g] } }, q, k, v);
    // Fused: only the output (1 MiB) and the rel terms. Chunked: at most a 48 MiB chunk of scores
    // plus K/V copies and the rel terms; either way below one 64 MiB N x N score matrix.
    const algorithms: [AttentionAlgorithm, number][] = [['fused', N * N * 4 / 16], ['chunked', N * N * 4]];
    if (flashEligible(ctx, D)) algorithms.push(['flash', N * N * 4 / 16]);
    for (const [algorithm, bound] of algorithms) {
      await ctx.sync();
      ctx.pool.resetPeak();
      const before = ctx.poolStats().liveBytes;
      const out = attention(ctx, tq, tk, tv, { relPos: { h: trh, w: trw, grid: [g, g] }, algorithm });
      const got = await ctx.read(out);
      const extra = ctx.poolStats().peakLiveBytes - before;
      expect(extra).toBeLessThan(bound);
      const c = expectClose(got, want, { relL2: 1e-5, atol: 1e-3, rtol: 1e-3 }, `4096-token attention, ${algorithm}`, out.shape);
      console.log(`4096x64 rel-pos attention, ${algorithm}: rel L2 ${c.relL2.toExponential(2)}, max abs ${c.maxAbs.toExponential(2)}, extra GPU bytes ${extra}`);
      out.dispose();
    }
  });
});
