/** ONNX sub-graphs shared by several parity tests (activations as opset-17 compositions). */
import type { Activation } from '../../src/kernels/activation.js';
import type { OnnxConst, OnnxNode } from './onnx.js';

/** Nodes computing act(input) into `output`; constants returned separately. */
export function onnxActivation(act: Activation, input: string, output: string, prefix = 'act'): { nodes: OnnxNode[]; consts: OnnxConst[] } {
  const c = (name: string, v: number): OnnxConst => ({ name: `${prefix}_${name}`, dims: [], data: [v] });
  switch (act) {
    case 'none':
      return { nodes: [{ op: 'Identity', inputs: [input], outputs: [output] }], consts: [] };
    case 'relu':
      return { nodes: [{ op: 'Relu', inputs: [input], outputs: [output] }], consts: [] };
    case 'sigmoid':
      return { nodes: [{ op: 'Sigmoid', inputs: [input], outputs: [output] }], consts: [] };
    case 'quick_gelu':
      return {
        nodes: [
          { op: 'Mul', inputs: [input, `${prefix}_k`], outputs: [`${prefix}_kx`] },
          { op: 'Sigmoid', inputs: [`${prefix}_kx`], outputs: [`${prefix}_s`] },
          { op: 'Mul', inputs: [input, `${prefix}_s`], outputs: [output] },
        ],
        consts: [c('k', 1.702)],
      };
    case 'gelu':
      // 0.5 * x * (1 + erf(x / sqrt(2))): the exact GELU as PyTorch exports it.
      return {
        nodes: [
          { op: 'Div', inputs: [input, `${prefix}_sqrt2`], outputs: [`${prefix}_d`] },
          { op: 'Erf', inputs: [`${prefix}_d`], outputs: [`${prefix}_e`] },
          { op: 'Add', inputs: [`${prefix}_e`, `${prefix}_one`], outputs: [`${prefix}_p`] },
          { op: 'Mul', inputs: [input, `${prefix}_p`], outputs: [`${prefix}_xp`] },
          { op: 'Mul', inputs: [`${prefix}_xp`, `${prefix}_half`], outputs: [output] },
        ],
        consts: [c('sqrt2', Math.SQRT2), c('one', 1), c('half', 0.5)],
      };
  }
}
