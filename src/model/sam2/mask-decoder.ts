/**
 * SAM 2's mask decoder, mirroring sam2/modeling/sam/mask_decoder.py (MaskDecoder) at commit
 * 2b90b9f5. The transformer, hypernetworks, transposed-convolution upscaling and IoU head are
 * SAM's (src/model/sam/mask-decoder.ts, which this class extends through its SAM 2 hooks); what
 * SAM 2 adds:
 *  - an object-score token in front of the IoU token, read by `pred_obj_score_head` (a 3-layer MLP
 *    in every released model; a single Linear otherwise) -> `object_score_logits` [B, 1];
 *  - high-resolution skips: `conv_s0` / `conv_s1` (1x1 convolutions of the FPN's two finer levels,
 *    applied once per image: `highResFeatures`) added after each transposed convolution;
 *  - a sigmoid on the IoU head; MLP layers named `layers.0/1` inside the transformer;
 *  - single-mask output with the dynamic fallback (`_dynamic_multimask_via_stability`): token 0's
 *    mask is kept when its stability score, |logits > delta| / |logits > -delta| (1 when nothing
 *    exceeds -delta), is at least `thresh`; otherwise the multimask token with the highest
 *    predicted IoU (first on ties) replaces it, with its IoU. The counts are a GPU reduction read
 *    back with the IoU predictions; the chosen rows are gathered on the GPU.
 */
import type { GpuContext, TensorTask } from '../../gpu/context.js';
import type { Tensor } from '../../gpu/tensor.js';
import { conv2d } from '../../kernels/conv2d.js';
import { concat, copy } from '../../kernels/copy.js';
import { gatherRows } from '../../kernels/gather.js';
import type { Weights } from '../../weights/weights.js';
import { Linear, Mlp } from '../sam/common.js';
import { MaskDecoder, type MaskDecoderInputs } from '../sam/mask-decoder.js';
import { thresholdCounts } from '../sam/stage-kernels.js';
import type { Sam2Config } from './config.js';

export interface Sam2DecoderOutputs {
  /** Low-res mask logits [B, M', 4h, 4w]: M' = M (multimask) or 1. */
  masks: Tensor;
  /** [B, M'], after the sigmoid. */
  iouPred: Tensor;
  /** [B, 1]. */
  objectScoreLogits: Tensor;
  /** Per prompt set, with single-mask output: the stability of token 0 and the token returned. */
  choices?: { stability: number; token: number }[];
}

/** The stability score of a mask from its two pixel counts (float32, as upstream computes it). */
export function stabilityFromCounts(aboveDelta: number, aboveMinusDelta: number): number {
  return aboveMinusDelta > 0 ? Math.fround(aboveDelta / aboveMinusDelta) : 1;
}

export class Sam2MaskDecoder extends MaskDecoder {
  readonly objScoreToken: Tensor;
  readonly convS0: { weight: Tensor; bias: Tensor };
  readonly convS1: { weight: Tensor; bias: Tensor };

  constructor(
    w: Weights,
    prefix: string,
    readonly sam2: Sam2Config,
  ) {
    super(w, prefix, sam2, { transformerMlpNames: ['layers.0', 'layers.1'], iouSigmoid: true });
    const C = sam2.promptEmbedDim;
    this.objScoreToken = w.get(`${prefix}.obj_score_token.weight`, [1, C]);
    this.leadingTokens = [this.objScoreToken];
    this.objScoreHead = sam2.predObjScoresMlp ? new Mlp(w, `${prefix}.pred_obj_score_head`, C, C, 1, 3) : new Linear(w, `${prefix}.pred_obj_score_head`, C, 1);
    const conv = (name: string, out: number) => ({ weight: w.get(`${prefix}.${name}.weight`, [out, C, 1, 1]), bias: w.get(`${prefix}.${name}.bias`, [out]) });
    this.convS0 = conv('conv_s0', C / 8);
    this.convS1 = conv('conv_s1', C / 4);
  }

  /** SAM2Base.forward_image's projections of FPN levels 0 and 1 (NCHW) for the decoder. */
  highResFeatures(ctx: GpuContext, fpn0: Tensor, fpn1: Tensor): { s0: Tensor; s1: Tensor } {
    return ctx.stage('high_res', () => ({
      s0: conv2d(ctx, fpn0, this.convS0.weight, this.convS0.bias),
      s1: conv2d(ctx, fpn1, this.convS1.weight, this.convS1.bias),
    }));
  }

  /**
   * MaskDecoder.forward (inference): masks and IoU for multimask output (tokens 1..M) or one mask
   * per prompt set with the stability fallback, and the object-score logits, owned by the caller.
   * Prompt sets are decoded in chunks of `maxBatch` (binding limits). Temporaries live in tasks,
   * so calls may overlap on one context.
   */
  async decode(ctx: GpuContext, inp: MaskDecoderInputs, multimaskOutput: boolean, opts: { maxBatch?: number } = {}): Promise<Sam2DecoderOutputs> {
    const [, , h, w] = inp.imageEmbeddings.shape as [number, number, number, number];
    const B = inp.batch;
    const chunk = Math.min(opts.maxBatch ?? Infinity, this.maxBatch(ctx, h, w));
    const parts: Sam2DecoderOutputs[] = [];
    for (let b0 = 0; b0 < B; b0 += chunk) {
      const b1 = Math.min(B, b0 + chunk);
      const d = inp.dense;
      const dense = b1 - b0 === B ? d : d.strides[0] === 0 ? d.asStrided([b1 - b0, ...d.shape.slice(1)], d.strides, d.offset) : d.slice(0, b0, b1);
      const sparse = b1 - b0 === B ? inp.sparse : inp.sparse?.slice(0, b0, b1) ?? null;
      const task = ctx.task();
      try {
        parts.push(await this.decodeChunk(ctx, task, { ...inp, batch: b1 - b0, sparse, dense }, multimaskOutput));
      } finally {
        task.dispose();
      }
    }
    if (parts.length === 1) return parts[0]!;
    const out: Sam2DecoderOutputs = ctx.scope(() => ({
      masks: concat(ctx, parts.map((p) => p.masks), 0),
      iouPred: concat(ctx, parts.map((p) => p.iouPred), 0),
      objectScoreLogits: concat(ctx, parts.map((p) => p.objectScoreLogits), 0),
    }));
    if (!multimaskOutput) out.choices = parts.flatMap((p) => p.choices ?? []);
    for (const p of parts) for (const t of [p.masks, p.iouPred, p.objectScoreLogits]) t.dispose();
    return out;
  }

  /** One chunk: temporaries in `task`; the returned tensors are made outside it (the caller's). */
  private async decodeChunk(ctx: GpuContext, task: TensorTask, inp: MaskDecoderInputs, multimaskOutput: boolean): Promise<Sam2DecoderOutputs> {
    const all = task.run(() => ctx.stage('mask_decoder', () => this.predictMasksReplayed(ctx, inp)));
    const M = this.numMaskTokens;
    const B = inp.batch;
    const objectScoreLogits = ctx.scope(() => copy(ctx, all.objectScoreLogits!));
    if (multimaskOutput) {
      return ctx.scope(() => ({ masks: copy(ctx, all.masksAll.slice(1, 1, M)), iouPred: copy(ctx, all.iouAll.slice(1, 1, M)), objectScoreLogits }));
    }
    const { delta, thresh } = this.sam2.dynamicMultimask;
    const single = task.run(() => copy(ctx, all.masksAll.slice(1, 0, 1)));
    const counts = await thresholdCounts(ctx, single, delta, -delta);
    const iou = (await ctx.read(all.iouAll)) as Float32Array;
    const rows: number[] = [];
    const chosenIou = new Float32Array(B);
    const choices: { stability: number; token: number }[] = [];
    for (let b = 0; b < B; b++) {
      const stability = stabilityFromCounts(counts[2 * b]!, counts[2 * b + 1]!);
      let token = 0;
      if (!(stability >= Math.fround(thresh))) {
        token = 1;
        for (let m = 2; m < M; m++) if (iou[b * M + m]! > iou[b * M + token]!) token = m;
      }
      rows.push(b * M + token);
      chosenIou[b] = iou[b * M + token]!;
      choices.push({ stability, token });
    }
    const [, , L, L2] = all.masksAll.shape as [number, number, number, number];
    const masks = ctx.scope(() => gatherRows(ctx, all.masksAll.reshape([B * M, L * L2]), rows).reshape([B, 1, L, L2]));
    return { masks, iouPred: ctx.scope(() => ctx.upload(chosenIou, [B, 1])), objectScoreLogits, choices };
  }
}
