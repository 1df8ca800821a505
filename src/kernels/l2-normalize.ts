/**
 * L2 normalisation over the last dim: x / ||x||, or x / max(||x||, eps) when `eps` is given
 * (torch.nn.functional.normalize). SAM-CLIP's embeddings use no epsilon, so by default a zero row
 * gives NaN (0 / 0), exactly like x / x.norm() in PyTorch.
 *
 * The norm is computed as m * sqrt(sum((x / m)^2)) with m = max |x|, so it neither overflows for
 * |x| ~ 1e20 nor underflows for |x| ~ 1e-25 in f32; one extra pass over the row is cheap next to
 * the matmuls around it. One workgroup per row, strided input, contiguous output.
 */
import type { GpuContext } from '../gpu/context.js';
import { type DType, isFloat } from '../gpu/dtype.js';
import { check } from '../gpu/errors.js';
import { defineKernel, grid1d } from '../gpu/kernel.js';
import type { Tensor } from '../gpu/tensor.js';
import { defineUniforms } from '../gpu/uniforms.js';
import { stridedFields, stridedIndexWgsl, stridedValues } from './elementwise.js';
import { type RowReduction, rowEnables, rowKernelHead, rowLayout, rowGroups, rowReduction, rowWorkgroupSize } from './layernorm.js';

interface L2Config {
  [k: string]: string | number | boolean;
  x: DType;
  out: DType;
  rank: number;
  wg: number;
  red: RowReduction;
  eps: boolean;
}

const uniforms = defineUniforms({
  ...stridedFields(['x', 'o'] as const),
  col: 'vec4u',
  rows: 'u32',
  n: 'u32',
  eps: 'f32',
});

const l2Kernel = defineKernel({
  name: 'l2_normalize',
  uniforms,
  enables: (c: L2Config) => rowEnables(c.red),
  bindings: (c: L2Config) => [
    { name: 'x', type: c.x, access: 'read' as const },
    { name: 'out', type: c.out, access: 'read_write' as const },
  ],
  source: (c: L2Config) => /* wgsl */ `
${rowKernelHead(c.wg, '', c.red)}
  ${stridedIndexWgsl(c.rank, ['x', 'o'], 'row')}
  var m = 0.0;
  for (var j = lid; j < u.n; j += STEP) { m = max(m, abs(f32(x[off_x + j * u.col.x]))); }
  m = wg_max(m, lid);
  // m == 0: the row is zero; keep the scale finite so the norm comes out as exactly 0.
  let s = select(1.0 / m, 1.0, m == 0.0);
  var acc = 0.0;
  for (var j = lid; j < u.n; j += STEP) {
    let v = f32(x[off_x + j * u.col.x]) * s;
    acc += v * v;
  }
  let norm = m * sqrt(wg_sum(acc, lid));
  let inv = 1.0 / ${c.eps ? 'max(norm, u.eps)' : 'norm'};
  for (var j = lid; j < u.n; j += STEP) {
    out[off_o + j * u.col.y] = ${c.out}(f32(x[off_x + j * u.col.x]) * inv);
  }
}
`,
});

export interface L2NormalizeOptions {
  /** Lower bound on the norm (torch.nn.functional.normalize's eps). Default: none. */
  eps?: number;
  outDtype?: DType;
}

export function l2Normalize(ctx: GpuContext, x: Tensor, opts: L2NormalizeOptions = {}): Tensor {
  const op = 'l2Normalize';
  const outDtype = opts.outDtype ?? x.dtype;
  check(isFloat(x.dtype) && isFloat(outDtype), () => `${op}: needs f32/f16, got ${x} -> ${outDtype}`);
  if (opts.eps !== undefined) check(Number.isFinite(opts.eps) && opts.eps >= 0, () => `${op}: eps must be finite and >= 0, got ${opts.eps}`);
  const out = ctx.empty(x.shape, outDtype);
  try {
    const { n, rows, layout, colStrides, offsets } = rowLayout(op, [x, out]);
    check(n >= 1, () => `${op}: last dim of ${x} is empty`);
    if (rows > 0) {
      const wg = rowWorkgroupSize(n, ctx.tuning.cpuAdapter);
      const config: L2Config = { x: x.dtype, out: outDtype, rank: layout.shape.length, wg, red: rowReduction(ctx), eps: opts.eps !== undefined };
      const values = { ...stridedValues(['x', 'o'] as const, layout, offsets), col: colStrides, rows, n, eps: opts.eps ?? 0 };
      ctx.run(l2Kernel, config, { x, out }, values, grid1d(rowGroups(rows, wg, config.red)), { flops: 4 * x.size, bytes: 3 * x.byteSize + out.byteSize });
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
