/**
 * The engine underneath the models: a GPU context, tensors, free views, kernels, scopes, stages,
 * read-back and the errors bad shapes give.
 *
 *   npx tsx examples/node/tensors.ts
 */
import { GpuContext, ShapeError, ops } from '../../src/index.js';

// Browser: navigator.gpu. Node: Dawn (the optional `webgpu` package); SAMCLIP_ADAPTER / SAMCLIP_BACKEND
// or the `adapter` / `backend` options pick an adapter. `preferF16` makes models store weights in f16
// where the adapter has `shader-f16`.
const ctx = await GpuContext.create({ preferF16: false });
console.log(ctx.description);
console.log('features:', ctx.features, 'max binding:', ctx.limits.maxStorageBufferBindingSize);

const x = ctx.upload(Float32Array.from({ length: 4 * 6 }, (_, i) => i / 10), [4, 6]);
const w = ctx.upload(Float32Array.from({ length: 3 * 6 }, (_, i) => ((i % 5) - 2) / 4), [3, 6]); // nn.Linear [out, in]
const gamma = ctx.upload(new Float32Array(3).fill(1), [3]);
const beta = ctx.upload(new Float32Array(3), [3]);

// scope(): every temporary created inside is freed at the end; what the function returns survives.
// stage(): labels the dispatches encoded inside (profiler tables and traces). Both are synchronous.
const y = ctx.scope(() =>
  ctx.stage('my_block', () => {
    const h = ops.linear(ctx, x, w, undefined, { act: 'gelu' }); // [4, 3], temporary
    return ops.layerNorm(ctx, h, gamma, beta, 1e-5); // [4, 3], returned
  }),
);
console.log(`y ${y}:`, Array.from(await ctx.read(y), (v) => v.toFixed(4)).join(' '));

// Views share storage and cost nothing: transpose, permute, slice, reshape. Each view holds a
// reference to the storage, so it is disposed like a tensor (or created inside a scope).
const yt = y.transpose(0, 1); // [3, 4], strided
const firstTwo = y.slice(0, 0, 2); // rows 0..1
console.log(`views: ${yt} contiguous=${yt.isContiguous}; ${firstTwo}`);
const s = ctx.scope(() => ops.add(ctx, firstTwo.slice(0, 0, 1), firstTwo.slice(0, 1, 2))); // the slices die with the scope
console.log('row 0 + row 1:', Array.from(await ctx.read(s), (v) => v.toFixed(4)).join(' '));

// Bad shapes fail before anything reaches the GPU, naming the op and the shapes.
try {
  ops.linear(ctx, x, y);
} catch (e) {
  console.log(`${(e as Error).name} (instanceof ShapeError: ${e instanceof ShapeError}): ${(e as Error).message}`);
}

for (const t of [x, w, gamma, beta, y, yt, firstTwo, s]) t.dispose(); // buffers go back to the pool
console.log('pool:', ctx.poolStats());
ctx.destroy();
