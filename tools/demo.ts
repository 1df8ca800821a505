/**
 * Smoke demo: acquire the GPU, run a linear layer and a fused attention at ViT-B shapes, check them
 * against the CPU references, print the adapter and the timings. Replaced by the semantic
 * segmentation demo once the models land.
 */
import { GpuContext } from '../src/gpu/context.js';
import { attention } from '../src/kernels/attention.js';
import { attentionCpu } from '../src/kernels/cpu/attention.js';
import { matmulCpu } from '../src/kernels/cpu/matmul.js';
import { linear } from '../src/kernels/matmul.js';

const ctx = await GpuContext.create({ profile: true });
console.log(`adapter: ${ctx.description}`);
console.log(`features: f16=${ctx.features.f16} timestamps=${ctx.features.timestamps} subgroups=${ctx.features.subgroups}`);

const rand = (n: number, seed: number) => {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) a[i] = ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 2;
  return a;
};

// CLIP ViT-B/16 qkv projection: 197 tokens x 768 -> 2304.
const [M, K, N] = [197, 768, 2304];
const x = rand(M * K, 1);
const w = rand(N * K, 2);
const y = linear(ctx, ctx.upload(x, [M, K]), ctx.upload(w, [N, K]));
const got = await ctx.read(y);
const wt = new Float32Array(K * N);
for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = w[n * K + k]!;
const want = matmulCpu(x, wt, 1, M, K, N);
console.log(`linear ${M}x${K} -> ${N}: max |err| vs CPU ${maxErr(got, want).toExponential(2)}`);

// One attention head over the 197 tokens.
const D = 64;
const q = rand(197 * D, 3);
const k = rand(197 * D, 4);
const v = rand(197 * D, 5);
const o = attention(ctx, ctx.upload(q, [1, 1, 197, D]), ctx.upload(k, [1, 1, 197, D]), ctx.upload(v, [1, 1, 197, D]));
const og = await ctx.read(o);
const ow = attentionCpu({ q, k, v, B: 1, H: 1, Nq: 197, Nk: 197, D, scale: 1 / 8 });
console.log(`attention 197 tokens x ${D}: max |err| vs CPU ${maxErr(og, ow).toExponential(2)}`);
console.log(ctx.profiler!.formatTable());
ctx.destroy();

function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
