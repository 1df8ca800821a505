/**
 * Building blocks shared by SAM's prompt encoder and mask decoder (segment_anything/modeling/
 * common.py and the MLP of mask_decoder.py): a Linear layer that accepts strided inputs, the
 * two-layer MLPBlock of the two-way transformer, the N-layer MLP of the hypernetworks and IoU head
 * (the hypernetworks stacked into one batched MLP), and LayerNorm2d (eps 1e-6, over C of NCHW).
 *
 * Every class pulls its tensors from the weight set by their official names at construction, so
 * a missing or misshaped tensor fails there with the key and both shapes.
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Tensor } from '../../gpu/tensor.js';
import type { Activation } from '../../kernels/activation.js';
import { concat } from '../../kernels/copy.js';
import { layerNorm2d } from '../../kernels/layernorm.js';
import { matmul } from '../../kernels/matmul.js';
import type { Weights } from '../../weights/weights.js';

/** SAM's LayerNorm2d default (common.py); the decoder's nn.LayerNorm uses torch's 1e-5. */
export const LAYER_NORM_2D_EPS = 1e-6;
export const LAYER_NORM_EPS = 1e-5;

/** nn.Linear(inDim, outDim) stored [out, in]. */
export class Linear {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(w: Weights, prefix: string, readonly inDim: number, readonly outDim: number) {
    this.weight = w.get(`${prefix}.weight`, [outDim, inDim]);
    this.bias = w.get(`${prefix}.bias`, [outDim]);
  }

  /**
   * x [..., in] (any strided view with at most 3 dims, e.g. one token row sliced out of the
   * decoder's output tokens) -> contiguous [..., out]. A residual (contiguous, output-shaped) is
   * added after the activation.
   */
  forward(ctx: GpuContext, x: Tensor, opts: { act?: Activation; residual?: Tensor } = {}): Tensor {
    // The [in, out] operand is a transposed view of the stored weight: matmul reads it through
    // strides, so no transposed copy is ever made.
    return ctx.scope(() => {
      const wt = this.weight.transpose(0, 1);
      if (x.ndim !== 1) return matmul(ctx, x, wt, { bias: this.bias, act: opts.act, residual: opts.residual });
      const y = matmul(ctx, x.unsqueeze(0), wt, { bias: this.bias, act: opts.act, residual: opts.residual });
      return y.reshape([this.outDim]);
    });
  }
}

/**
 * common.MLPBlock: lin2(act(lin1(x))). The two-way transformer uses ReLU. SAM 2 builds the same
 * block from its generic MLP, whose layers are named `layers.0` / `layers.1` (`names`).
 */
export class MlpBlock {
  readonly lin1: Linear;
  readonly lin2: Linear;

  constructor(
    w: Weights,
    prefix: string,
    embeddingDim: number,
    mlpDim: number,
    readonly act: Activation = 'relu',
    names: readonly [string, string] = ['lin1', 'lin2'],
  ) {
    this.lin1 = new Linear(w, `${prefix}.${names[0]}`, embeddingDim, mlpDim);
    this.lin2 = new Linear(w, `${prefix}.${names[1]}`, mlpDim, embeddingDim);
  }

  forward(ctx: GpuContext, x: Tensor): Tensor {
    return ctx.scope(() => this.lin2.forward(ctx, this.lin1.forward(ctx, x, { act: this.act })));
  }
}

/**
 * mask_decoder.MLP: `numLayers` Linears (`layers.{i}`), ReLU after every one but the last, and a
 * sigmoid after the last with `sigmoidOutput` (SAM builds both of its MLPs without; SAM 2's IoU
 * head has it).
 */
export class Mlp {
  readonly layers: Linear[];

  constructor(
    w: Weights,
    prefix: string,
    inputDim: number,
    hiddenDim: number,
    outputDim: number,
    numLayers: number,
    readonly sigmoidOutput = false,
  ) {
    const dims = [inputDim, ...new Array<number>(numLayers - 1).fill(hiddenDim), outputDim];
    this.layers = [];
    for (let i = 0; i < numLayers; i++) this.layers.push(new Linear(w, `${prefix}.layers.${i}`, dims[i]!, dims[i + 1]!));
  }

  forward(ctx: GpuContext, x: Tensor): Tensor {
    return ctx.scope(() => {
      let h = x;
      this.layers.forEach((l, i) => {
        h = l.forward(ctx, h, { act: i < this.layers.length - 1 ? 'relu' : this.sigmoidOutput ? 'sigmoid' : 'none' });
      });
      return h;
    });
  }
}

/** Several Linears' weights and biases concatenated once, by rows: [sum of out, in] and [sum of out] (persistent). */
export function stackLinears(ctx: GpuContext, layers: readonly Linear[]): { weight: Tensor; bias: Tensor } {
  return ctx.scope(() => {
    const weight = concat(ctx, layers.map((l) => l.weight), 0);
    const bias = concat(ctx, layers.map((l) => l.bias), 0);
    weight.persistent = bias.persistent = true;
    return { weight, bias };
  });
}

/**
 * Same-shaped `Mlp`s applied each to its own rows (the decoder's hypernetworks, one per mask
 * token), as one batched matmul per layer instead of one per MLP and layer: 3 dispatches instead
 * of 12 (+ a concat) for SAM's four. The stacked weights (seen as [n, out, in]) and biases
 * ([n, out], one bias row per batch entry of the matmul) are copies made on first use
 * (`stackLinears`): 2.1 MB in all for SAM's decoder in f32. The same maths as the separate Linears; the matmul variant, picked by shape, may
 * sum in another order (SAM ViT-B's decoder: rel L2 against PyTorch 4.1e-6 before, 7.3e-6 after).
 */
export class StackedMlps {
  private tables: { weight: Tensor; bias: Tensor }[] | null = null;

  constructor(readonly mlps: readonly Mlp[]) {
    const [first] = mlps;
    const shape = (m: Mlp) => m.layers.map((l) => `${l.inDim}x${l.outDim}`).join(',') + (m.sigmoidOutput ? '+sigmoid' : '');
    if (!first || mlps.some((m) => shape(m) !== shape(first))) {
      throw new Error(`StackedMlps: needs MLPs of one shape, got ${mlps.map(shape).join(' / ') || 'none'}`);
    }
  }

  /** x [n, rows, in] (any strided view; x[i] goes through mlps[i]) -> [n, rows, out], contiguous. */
  forward(ctx: GpuContext, x: Tensor): Tensor {
    const tables = this.stacked(ctx);
    const last = tables.length - 1;
    const sigmoid = this.mlps[0]!.sigmoidOutput;
    const n = this.mlps.length;
    return ctx.scope(() => {
      let h = x;
      tables.forEach((t, l) => {
        const { inDim, outDim } = this.mlps[0]!.layers[l]!;
        // The stacked rows seen as [n, out, in] (weights) and [n, out] (one bias row per batch entry).
        const w = t.weight.reshape([n, outDim, inDim]).transpose(1, 2);
        h = matmul(ctx, h, w, { bias: t.bias.reshape([n, outDim]), act: l < last ? 'relu' : sigmoid ? 'sigmoid' : 'none' });
      });
      return h;
    });
  }

  private stacked(ctx: GpuContext): { weight: Tensor; bias: Tensor }[] {
    this.tables ??= this.mlps[0]!.layers.map((_, l) => stackLinears(ctx, this.mlps.map((m) => m.layers[l]!)));
    return this.tables;
  }

  /** Free the stacked copies (the MLPs' own weights belong to their Weights set). */
  dispose(): void {
    for (const t of this.tables ?? []) {
      t.weight.dispose();
      t.bias.dispose();
    }
    this.tables = null;
  }
}

/** common.LayerNorm2d: per-pixel normalisation over the channels of NCHW, eps 1e-6. */
export class LayerNorm2d {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(w: Weights, prefix: string, channels: number, readonly eps = LAYER_NORM_2D_EPS) {
    this.weight = w.get(`${prefix}.weight`, [channels]);
    this.bias = w.get(`${prefix}.bias`, [channels]);
  }

  forward(ctx: GpuContext, x: Tensor): Tensor {
    return layerNorm2d(ctx, x, this.weight, this.bias, this.eps);
  }
}

/** nn.LayerNorm(dim) weights (the decoder's norms; eps 1e-5). */
export class LayerNormParams {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(w: Weights, prefix: string, dim: number, readonly eps = LAYER_NORM_EPS) {
    this.weight = w.get(`${prefix}.weight`, [dim]);
    this.bias = w.get(`${prefix}.bias`, [dim]);
  }
}
