/**
 * Build small ONNX graphs in tests and run them on onnxruntime-node (CPU): the independent
 * reference every kernel is checked against.
 */
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';

const { onnx } = onnxProto;

export type OnnxAttr = number | string | number[] | { floats: number[] } | { ints: number[] } | { tensor: OnnxConst };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, OnnxAttr>;
  domain?: string;
}

export interface OnnxConst {
  name: string;
  dims: number[];
  data: Float32Array | number[];
  type?: 'float' | 'int64' | 'int32';
}

export interface OnnxGraph {
  nodes: OnnxNode[];
  inputs: { name: string; dims: number[]; type?: 'float' | 'int64' | 'int32' | 'float16' }[];
  outputs: string[];
  initializers?: OnnxConst[];
  opset?: number;
}

const ELEM = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  float16: onnx.TensorProto.DataType.FLOAT16,
};

function tensorProto(c: OnnxConst) {
  const type = c.type ?? 'float';
  const base = { name: c.name, dims: c.dims, dataType: ELEM[type] };
  if (type === 'float') return onnx.TensorProto.create({ ...base, floatData: Array.from(c.data) });
  if (type === 'int64') return onnx.TensorProto.create({ ...base, int64Data: Array.from(c.data) });
  return onnx.TensorProto.create({ ...base, int32Data: Array.from(c.data) });
}

function attribute(name: string, v: OnnxAttr) {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    return Number.isInteger(v) && !name.match(/^(alpha|beta|epsilon|gamma|value_float|cubic_coeff_a)$/)
      ? onnx.AttributeProto.create({ name, type: T.INT, i: v })
      : onnx.AttributeProto.create({ name, type: T.FLOAT, f: v });
  }
  if (typeof v === 'string') {
    return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(v) });
  }
  if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: T.INTS, ints: v });
  if ('floats' in v) return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: v.floats });
  if ('ints' in v) return onnx.AttributeProto.create({ name, type: T.INTS, ints: v.ints });
  return onnx.AttributeProto.create({ name, type: T.TENSOR, t: tensorProto(v.tensor) });
}

export function buildModel(g: OnnxGraph): Uint8Array {
  const graph = onnx.GraphProto.create({
    name: 'test',
    node: g.nodes.map((n, i) =>
      onnx.NodeProto.create({
        name: `n${i}_${n.op}`,
        opType: n.op,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
      }),
    ),
    input: g.inputs.map((i) =>
      onnx.ValueInfoProto.create({
        name: i.name,
        type: { tensorType: { elemType: ELEM[i.type ?? 'float'], shape: { dim: i.dims.map((d) => ({ dimValue: d })) } } },
      }),
    ),
    output: g.outputs.map((name) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: ELEM.float } } })),
    initializer: (g.initializers ?? []).map(tensorProto),
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'samclip-webgpu tests',
    opsetImport: [{ domain: '', version: g.opset ?? 17 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

export interface Feed {
  data: Float32Array | BigInt64Array | Int32Array;
  dims: number[];
}

/** Run a model on ORT's CPU provider; returns outputs as Float32Array with their dims. */
export async function runModel(
  model: Uint8Array,
  feeds: Record<string, Feed>,
): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], graphOptimizationLevel: 'disabled' });
  const inputs: Record<string, ort.Tensor> = {};
  for (const [k, f] of Object.entries(feeds)) {
    const type = f.data instanceof Float32Array ? 'float32' : f.data instanceof BigInt64Array ? 'int64' : 'int32';
    inputs[k] = new ort.Tensor(type, f.data, f.dims);
  }
  const out = await session.run(inputs);
  const result: Record<string, { data: Float32Array; dims: number[] }> = {};
  for (const [k, t] of Object.entries(out)) {
    result[k] = { data: Float32Array.from(t.data as Float32Array), dims: [...t.dims] };
  }
  await session.release();
  return result;
}

/** Convenience: one graph, float feeds, the named output. */
export async function runOnnx(g: OnnxGraph, feeds: Record<string, Feed>, output = g.outputs[0]!): Promise<Float32Array> {
  const out = await runModel(buildModel(g), feeds);
  return out[output]!.data;
}
