/**
 * CLIP's text tower (the text half of openai/CLIP `CLIP`: `encode_text`):
 *
 *   token_embedding[ids] + positional_embedding -> causal transformer -> ln_final
 *   -> the row at the position of the largest token id (<|endoftext|>) -> @ text_projection
 *
 * The token table is 49408 x width (145 MiB in f32 at width 768, more than one 128 MiB storage
 * binding on some adapters): `gatherRows` binds it in chunks.
 *
 * Context trimming (`trim`, on by default in the pipelines): with a causal mask the row at
 * position p depends only on tokens 0..p, so running the batch on its first max(eot) + 1
 * positions gives the same pooled features as the full 77 (up to summation order) at a fraction
 * of the cost: ImageNet prompts end by position ~20. `trim: false` runs the full context, as
 * upstream does, and is what the stage-by-stage parity test taps.
 *
 * Pooling and ln_final commute (LayerNorm is per row), so only the pooled rows are normalised
 * unless a tap asks for the full `ln_final` output.
 */
import type { GpuContext } from '../../gpu/context.js';
import { DispatchPlans } from '../../gpu/dispatch-plan.js';
import { ShapeError } from '../../gpu/errors.js';
import type { Tensor } from '../../gpu/tensor.js';
import { add } from '../../kernels/elementwise.js';
import { gatherRows, uploadRowIds } from '../../kernels/gather.js';
import { layerNorm } from '../../kernels/layernorm.js';
import { matmul } from '../../kernels/matmul.js';
import type { Weights } from '../../weights/weights.js';
import type { TextConfig } from './config.js';
import type { TapFn } from './taps.js';
import { Transformer } from './transformer.js';

export interface TextForwardOptions {
  /** Run only the first max(eot) + 1 positions (default false here; see the module comment). */
  trim?: boolean;
  tap?: TapFn;
}

/** Token ids as the tokenizer returns them: row-major [n, contextLength]. */
export interface TokenIds {
  ids: Int32Array;
  shape: readonly [number, number] | readonly number[];
}

/** Per row, the index of the first largest id (torch.argmax): where <|endoftext|> sits. */
export function eotPositions(ids: Int32Array, rows: number, length: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let i = 1; i < length; i++) if (ids[r * length + i]! > ids[r * length + best]!) best = i;
    out[r] = best;
  }
  return out;
}

export class TextTransformer {
  private readonly tokenEmbedding: Tensor;
  private readonly positionalEmbedding: Tensor;
  private readonly lnFinalW: Tensor;
  private readonly lnFinalB: Tensor;
  private readonly textProjection: Tensor;
  readonly transformer: Transformer;
  /** Recorded forward calls (src/gpu/dispatch-plan.ts). */
  private readonly plans = new DispatchPlans();

  /** `prefix` is '' for OpenAI / OpenCLIP checkpoints, 'text.' inside a SAM-CLIP bundle. */
  constructor(w: Weights, readonly prefix: string, readonly cfg: TextConfig) {
    const { width: W, contextLength: L, vocabSize: V, embedDim: E } = cfg;
    this.tokenEmbedding = w.get(`${prefix}token_embedding.weight`, [V, W]);
    this.positionalEmbedding = w.get(`${prefix}positional_embedding`, [L, W]);
    this.transformer = new Transformer(w, `${prefix}transformer`, cfg);
    this.lnFinalW = w.get(`${prefix}ln_final.weight`, [W]);
    this.lnFinalB = w.get(`${prefix}ln_final.bias`, [W]);
    this.textProjection = w.get(`${prefix}text_projection`, [W, E]);
  }

  /** Token ids [B, L] (L <= contextLength) -> text features [B, embedDim] (not normalised). */
  forward(ctx: GpuContext, tokens: TokenIds, opts: TextForwardOptions = {}): Tensor {
    const { ids, shape } = tokens;
    if (shape.length !== 2) throw new ShapeError(`CLIP text: token ids must be [batch, length], got shape [${shape.join(', ')}]`);
    const [B, L0] = shape as [number, number];
    const { contextLength } = this.cfg;
    if (ids.length !== B * L0) throw new ShapeError(`CLIP text: ${ids.length} token ids for shape [${B}, ${L0}]`);
    if (B < 1 || L0 < 1) throw new ShapeError(`CLIP text: empty token batch [${B}, ${L0}]`);
    if (L0 > contextLength) {
      throw new ShapeError(`CLIP text: sequences of ${L0} tokens are longer than the model's context length ${contextLength}`);
    }
    const eot = eotPositions(ids, B, L0);
    const L = opts.trim ? Math.max(...eot) + 1 : L0;
    let used = ids;
    if (L !== L0) {
      used = new Int32Array(B * L);
      for (let b = 0; b < B; b++) used.set(ids.subarray(b * L0, b * L0 + L), b * L);
    }
    const tap = opts.tap;
    const rows = Int32Array.from(eot, (p, b) => b * L + p);
    return ctx.stage('clip_text', () =>
      ctx.scope(() => {
        if (tap) return this.forwardCode(ctx, used, rows, B, L, tap);
        // The ids go up first (checked against the vocabulary: an IndexError names the position),
        // so the call below reads only GPU tensors: from the third call with one [B, L] on, its
        // dispatches are replayed instead of re-encoded (src/gpu/dispatch-plan.ts).
        const idT = uploadRowIds(ctx, used, this.tokenEmbedding);
        const rowT = ctx.upload(rows, [B], 'i32');
        return this.plans.runOne(ctx, ctx.activationDtype, [idT, rowT], () => this.forwardCode(ctx, idT, rowT, B, L));
      }),
    );
  }

  /** Token ids (host or GPU) -> features; `rows` picks each sequence's end-of-text token in [B * L, W]. */
  private forwardCode(ctx: GpuContext, ids: Tensor | Int32Array, rows: Tensor | Int32Array, B: number, L: number, tap?: TapFn): Tensor {
    const { width: W, eps } = this.cfg;
    const emb = gatherRows(ctx, this.tokenEmbedding, ids, { outDtype: ctx.activationDtype }).reshape([B, L, W]);
    tap?.('text.token_embedding', emb);
    const x0 = add(ctx, emb, this.positionalEmbedding.slice(0, 0, L));
    const x = this.transformer.forward(ctx, x0, { causal: true, tap, tapPrefix: 'text.' });
    if (tap) tap('text.ln_final', layerNorm(ctx, x, this.lnFinalW, this.lnFinalB, eps));
    const pooled = gatherRows(ctx, x.reshape([B * L, W]), rows);
    const normed = layerNorm(ctx, pooled, this.lnFinalW, this.lnFinalB, eps);
    return matmul(ctx, normed, this.textProjection, { outDtype: 'f32' });
  }

  /** Free the recorded calls (weights belong to their Weights set). */
  dispose(): void {
    this.plans.dispose();
  }
}
