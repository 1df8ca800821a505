/**
 * Softmax over the last dim: softmax(scale * x), max-subtracted so large logits cannot overflow.
 *
 * One workgroup per row (the row layout and reductions are shared with layernorm.ts); the input
 * is any strided view, the output contiguous. -Inf entries give 0. A row that is entirely -Inf
 * gives NaN in every position, as ONNX Runtime's CPU Softmax does (max = -Inf, so x - max is NaN);
 * the test file checks that behaviour against ORT.
 */
import type { GpuContext } from '../gpu/context.js';
import { type DType, isFloat } from '../gpu/dtype.js';
import { check } from '../gpu/errors.js';
import { defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { stridedFields, stridedIndexWgsl, stridedValues } from './elementwise.js';
import { type RowReduction, rowEnables, rowKernelHead, rowLayout, rowGroups, rowReduction, rowWorkgroupSize } from './layernorm.js';

interface SoftmaxConfig {
  [k: string]: string | number | boolean;
  x: DType;
  out: DType;
  rank: number;
  wg: number;
  red: RowReduction;
}

const uniforms = defineUniforms({
  ...stridedFields(['x', 'o'] as const),
  col: 'vec4u',
  rows: 'u32',
  n: 'u32',
  scale: 'f32',
  // -Inf cannot be written as a WGSL constant (const-evaluation rejects it); it arrives here.
  neg_inf: 'f32',
});

const softmaxKernel = defineKernel({
  name: 'softmax',
  uniforms,
  enables: (c: SoftmaxConfig) => rowEnables(c.red),
  bindings: (c: SoftmaxConfig) => [
    { name: 'x', type: c.x, access: 'read' as const },
    { name: 'out', type: c.out, access: 'read_write' as const },
  ],
  source: (c: SoftmaxConfig) => /* wgsl */ `
${rowKernelHead(c.wg, '', c.red)}
  ${stridedIndexWgsl(c.rank, ['x', 'o'], 'row')}
  // Start at -Inf, so that a row of -Inf keeps max = -Inf (and yields NaN like the reference).
  var m = u.neg_inf;
  for (var j = lid; j < u.n; j += STEP) { m = max(m, u.scale * f32(x[off_x + j * u.col.x])); }
  m = wg_max(m, lid);
  var acc = 0.0;
  for (var j = lid; j < u.n; j += STEP) { acc += exp(u.scale * f32(x[off_x + j * u.col.x]) - m); }
  let inv = 1.0 / wg_sum(acc, lid);
  for (var j = lid; j < u.n; j += STEP) {
    out[off_o + j * u.col.y] = ${c.out}(exp(u.scale * f32(x[off_x + j * u.col.x]) - m) * inv);
  }
}
`,
});

export interface SoftmaxOptions {
  /** Multiplies x before the softmax (e.g. an attention or logit scale). Default 1. */
  scale?: number;
  outDtype?: DType;
}

/** softmax(scale * x) over the last dim; x may be a strided view, the output is contiguous. */
export function softmax(ctx: GpuContext, x: Tensor, opts: SoftmaxOptions = {}): Tensor {
  const op = 'softmax';
  const scale = opts.scale ?? 1;
  check(Number.isFinite(scale), () => `${op}: scale must be finite, got ${scale}`);
  const outDtype = opts.outDtype ?? x.dtype;
  check(isFloat(x.dtype) && isFloat(outDtype), () => `${op}: needs f32/f16, got ${x} -> ${outDtype}`);
  const out = ctx.empty(x.shape, outDtype);
  try {
    const { n, rows, layout, colStrides, offsets } = rowLayout(op, [x, out]);
    check(n >= 1, () => `${op}: last dim of ${x} is empty`);
    if (rows > 0) {
      const wg = rowWorkgroupSize(n, ctx.tuning.cpuAdapter);
      const config: SoftmaxConfig = { x: x.dtype, out: outDtype, rank: layout.shape.length, wg, red: rowReduction(ctx) };
      const values = { ...stridedValues(['x', 'o'] as const, layout, offsets), col: colStrides, rows, n, scale, neg_inf: -Infinity };
      ctx.run(softmaxKernel, config, { x, out }, values, grid1d(rowGroups(rows, wg, config.red)), { flops: 5 * x.size, bytes: 3 * x.byteSize + out.byteSize });
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
