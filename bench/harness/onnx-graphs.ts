/**
 * Single-op ONNX graphs for the benchmarked kernels, shaped the way an exporter writes them for a
 * real model: weights are initializers (ORT sees constants, may pre-pack them), activations are
 * graph inputs, PyTorch's op compositions are kept (exact GELU as Div/Erf/Add/Mul/Mul at opset 17,
 * nn.Linear as MatMul with the transposed weight + Add, SAM's decomposed relative position as
 * MatMuls against gathered tables).
 *
 * Models are serialised by the tests' `buildModel` (test/helpers/onnx.ts), the same code the
 * parity tests use.
 */
import type { Activation } from '../../src/kernels/activation.js';
import { type OnnxConst, type OnnxGraph, type OnnxNode, buildModel } from '../../test/helpers/onnx.js';
import { onnxActivation } from '../../test/helpers/onnx-ops.js';

export { buildModel };

const i64 = (name: string, values: readonly number[]): OnnxConst => ({ name, dims: [values.length], data: [...values], type: 'int64' });

/** W [N, K] (nn.Linear layout) to W^T [K, N], the initializer a PyTorch export holds. */
export function transposeMatrix(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c]!;
  return t;
}

/**
 * y = act(x @ W^T + b) for x [1, M, K] (a batch of one image's tokens), W [N, K]: MatMul + Add
 * (+ activation), as torch.onnx exports nn.Linear on a 3-D input.
 */
export function linearGraph(p: { M: number; K: number; N: number; weight: Float32Array; bias?: Float32Array; act?: Activation }): OnnxGraph {
  const nodes: OnnxNode[] = [{ op: 'MatMul', inputs: ['x', 'w_t'], outputs: [p.bias ? 'mm' : 'pre'] }];
  const initializers: OnnxConst[] = [{ name: 'w_t', dims: [p.K, p.N], data: transposeMatrix(p.weight, p.N, p.K) }];
  if (p.bias) {
    nodes.push({ op: 'Add', inputs: ['mm', 'b'], outputs: ['pre'] });
    initializers.push({ name: 'b', dims: [p.N], data: p.bias });
  }
  const act = onnxActivation(p.act ?? 'none', 'pre', 'y');
  return {
    nodes: [...nodes, ...act.nodes],
    inputs: [{ name: 'x', dims: [1, p.M, p.K] }],
    outputs: ['y'],
    initializers: [...initializers, ...act.consts],
  };
}

/** Conv (NCHW) with weight [O, C, kh, kw] and bias as initializers. */
export function conv2dGraph(p: {
  input: readonly [number, number, number, number];
  weight: Float32Array;
  weightDims: readonly [number, number, number, number];
  bias?: Float32Array;
  stride: number;
  pad?: number;
}): OnnxGraph {
  const pad = p.pad ?? 0;
  const [, , kh, kw] = p.weightDims;
  const initializers: OnnxConst[] = [{ name: 'w', dims: [...p.weightDims], data: p.weight }];
  if (p.bias) initializers.push({ name: 'b', dims: [p.weightDims[0]], data: p.bias });
  return {
    nodes: [{
      op: 'Conv',
      inputs: p.bias ? ['x', 'w', 'b'] : ['x', 'w'],
      outputs: ['y'],
      attrs: { kernel_shape: [kh, kw], strides: [p.stride, p.stride], pads: [pad, pad, pad, pad] },
    }],
    inputs: [{ name: 'x', dims: [...p.input] }],
    outputs: ['y'],
    initializers,
  };
}

/** LayerNormalization (opset 17) over the last axis of x [rows, C]. */
export function layerNormGraph(p: { rows: number; C: number; gamma: Float32Array; beta: Float32Array; eps: number }): OnnxGraph {
  return {
    nodes: [{ op: 'LayerNormalization', inputs: ['x', 'gamma', 'beta'], outputs: ['y'], attrs: { axis: -1, epsilon: p.eps } }],
    inputs: [{ name: 'x', dims: [p.rows, p.C] }],
    outputs: ['y'],
    initializers: [
      { name: 'gamma', dims: [p.C], data: p.gamma },
      { name: 'beta', dims: [p.C], data: p.beta },
    ],
  };
}

/** Softmax over the last axis. */
export function softmaxGraph(dims: readonly number[]): OnnxGraph {
  return {
    nodes: [{ op: 'Softmax', inputs: ['x'], outputs: ['y'], attrs: { axis: -1 } }],
    inputs: [{ name: 'x', dims: [...dims] }],
    outputs: ['y'],
  };
}

/**
 * Gathered relative-position table, pre-transposed for a batched MatMul: out[i, c, j] =
 * table[i - j + size - 1, c] for query row i and key row j (SAM's get_rel_pos when query and key
 * grids have the same size; tables at the native size need no resize).
 */
export function gatherRelPosT(table: Float32Array, size: number, D: number): Float32Array {
  const out = new Float32Array(size * D * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const r = (i - j + size - 1) * D;
      for (let c = 0; c < D; c++) out[(i * D + c) * size + j] = table[r + c]!;
    }
  }
  return out;
}

/**
 * SAM image-encoder attention with decomposed relative position, as an ONNX composition of
 * standard ops: q, k, v [B, H, N, D] (N = gh * gw tokens of a grid; B windows or one image),
 *
 *   scores = (q * scale) k^T                                            [B, H, N, N]
 *   rel_h[y, x, ky] = q[y, x] . Rh[y - ky + gh - 1]  (unscaled q)         [B*H, gh, gw, gh]
 *   rel_w[y, x, kx] = q[y, x] . Rw[x - kx + gw - 1]                       [B*H, gh, gw, gw]
 *   out = softmax(scores + rel_h[..., :, None] + rel_w[..., None, :]) v, transposed to [B, N, H, D]
 *
 * The rel-pos bias is the [heads, N, N] Add the exported model performs (two broadcast Adds on the
 * 6-D view); the score tensor is materialised, as ORT has no fused kernel for this pattern.
 */
/** softmax(q k^T / sqrt(D)) v on [B, H, N, D] inputs, output [B, N, H, D] like samAttentionGraph. */
export function attentionGraph(p: { B: number; H: number; N: number; D: number }): OnnxGraph {
  const { B, H, N, D } = p;
  return {
    nodes: [
      { op: 'Transpose', inputs: ['k'], outputs: ['k_t'], attrs: { perm: [0, 1, 3, 2] } },
      { op: 'Mul', inputs: ['q', 'scale'], outputs: ['q_s'] },
      { op: 'MatMul', inputs: ['q_s', 'k_t'], outputs: ['scores'] },
      { op: 'Softmax', inputs: ['scores'], outputs: ['probs'], attrs: { axis: -1 } },
      { op: 'MatMul', inputs: ['probs', 'v'], outputs: ['o'] },
      { op: 'Transpose', inputs: ['o'], outputs: ['y'], attrs: { perm: [0, 2, 1, 3] } },
    ],
    inputs: ['q', 'k', 'v'].map((name) => ({ name, dims: [B, H, N, D] })),
    outputs: ['y'],
    initializers: [{ name: 'scale', dims: [], data: [1 / Math.sqrt(D)] }],
  };
}

export function samAttentionGraph(p: {
  B: number;
  H: number;
  gh: number;
  gw: number;
  D: number;
  relPosH: Float32Array;
  relPosW: Float32Array;
  scale?: number;
}): OnnxGraph {
  const { B, H, gh, gw, D } = p;
  const N = gh * gw;
  const BH = B * H;
  const scale = p.scale ?? 1 / Math.sqrt(D);
  const nodes: OnnxNode[] = [
    { op: 'Transpose', inputs: ['k'], outputs: ['k_t'], attrs: { perm: [0, 1, 3, 2] } },
    { op: 'Mul', inputs: ['q', 'scale'], outputs: ['q_s'] },
    { op: 'MatMul', inputs: ['q_s', 'k_t'], outputs: ['scores'] },
    // rel_h: per query row y, [BH*gw, D] @ [D, gh]
    { op: 'Reshape', inputs: ['q', 'shape_q4'], outputs: ['q4'] },
    { op: 'Transpose', inputs: ['q4'], outputs: ['q_y'], attrs: { perm: [1, 0, 2, 3] } },
    { op: 'Reshape', inputs: ['q_y', 'shape_qy'], outputs: ['q_y2'] },
    { op: 'MatMul', inputs: ['q_y2', 'rh_t'], outputs: ['rh0'] },
    { op: 'Reshape', inputs: ['rh0', 'shape_rh1'], outputs: ['rh1'] },
    { op: 'Transpose', inputs: ['rh1'], outputs: ['rh2'], attrs: { perm: [1, 0, 2, 3] } },
    { op: 'Reshape', inputs: ['rh2', 'shape_rh6'], outputs: ['rel_h'] },
    // rel_w: per query column x, [BH*gh, D] @ [D, gw]
    { op: 'Transpose', inputs: ['q4'], outputs: ['q_x'], attrs: { perm: [2, 0, 1, 3] } },
    { op: 'Reshape', inputs: ['q_x', 'shape_qx'], outputs: ['q_x2'] },
    { op: 'MatMul', inputs: ['q_x2', 'rw_t'], outputs: ['rw0'] },
    { op: 'Reshape', inputs: ['rw0', 'shape_rw1'], outputs: ['rw1'] },
    { op: 'Transpose', inputs: ['rw1'], outputs: ['rw2'], attrs: { perm: [1, 2, 0, 3] } },
    { op: 'Reshape', inputs: ['rw2', 'shape_rw6'], outputs: ['rel_w'] },
    // scores + rel_h + rel_w on the [B, H, gh, gw, gh, gw] view
    { op: 'Reshape', inputs: ['scores', 'shape_s6'], outputs: ['s6'] },
    { op: 'Add', inputs: ['s6', 'rel_h'], outputs: ['s6h'] },
    { op: 'Add', inputs: ['s6h', 'rel_w'], outputs: ['s6hw'] },
    { op: 'Reshape', inputs: ['s6hw', 'shape_s4'], outputs: ['s4'] },
    { op: 'Softmax', inputs: ['s4'], outputs: ['probs'], attrs: { axis: -1 } },
    { op: 'MatMul', inputs: ['probs', 'v'], outputs: ['o'] },
    { op: 'Transpose', inputs: ['o'], outputs: ['y'], attrs: { perm: [0, 2, 1, 3] } },
  ];
  const initializers: OnnxConst[] = [
    { name: 'scale', dims: [], data: [scale] },
    { name: 'rh_t', dims: [gh, D, gh], data: gatherRelPosT(p.relPosH, gh, D) },
    { name: 'rw_t', dims: [gw, D, gw], data: gatherRelPosT(p.relPosW, gw, D) },
    i64('shape_q4', [BH, gh, gw, D]),
    i64('shape_qy', [gh, BH * gw, D]),
    i64('shape_rh1', [gh, BH, gw, gh]),
    i64('shape_rh6', [B, H, gh, gw, gh, 1]),
    i64('shape_qx', [gw, BH * gh, D]),
    i64('shape_rw1', [gw, BH, gh, gw]),
    i64('shape_rw6', [B, H, gh, gw, 1, gw]),
    i64('shape_s6', [B, H, gh, gw, gh, gw]),
    i64('shape_s4', [B, H, N, N]),
  ];
  const qkv = ['q', 'k', 'v'].map((name) => ({ name, dims: [B, H, N, D] }));
  return { nodes, inputs: qkv, outputs: ['y'], initializers };
}
