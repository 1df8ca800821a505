/**
 * SAM 2's prompt encoder (sam2/modeling/sam/prompt_encoder.py at commit 2b90b9f5) is SAM's
 * (src/model/sam/prompt-encoder.ts: random-Fourier point encodings computed on the CPU, mask
 * downscaling on the GPU, `no_mask_embed` broadcast), with two differences in how it is used:
 *  - point labels 2 and 3 are box corners: SAM2ImagePredictor._predict never passes `boxes`; it
 *    puts each box's two corners, labelled 2 and 3, in front of the clicks;
 *  - so a padding point (label -1) is always appended (`pad = boxes is None`).
 * `boxesAsPoints` performs that rearrangement; the encoder accepts labels 2 / 3.
 */
import type { GpuContext } from '../../gpu/context.js';
import type { Weights } from '../../weights/weights.js';
import { type EncoderPrompts, PromptEncoder, PromptError } from '../sam/prompt-encoder.js';
import type { Sam2Config } from './config.js';

export function createSam2PromptEncoder(ctx: GpuContext, w: Weights, prefix: string, cfg: Sam2Config): Promise<PromptEncoder> {
  return PromptEncoder.create(ctx, w, prefix, cfg, true);
}

/**
 * Prompts in the model frame -> what SAM 2 feeds its prompt encoder: box corners as points
 * (labels 2, 3) before each prompt set's clicks, no `boxes`. Every set must have the same
 * number of points, and all or none have a box.
 */
export function boxesAsPoints(p: EncoderPrompts): EncoderPrompts {
  if (!p.boxes) return p;
  const B = p.batch;
  if (p.boxes.length !== 4 * B) throw new PromptError(`prompt encoder: ${p.boxes.length} box values for ${B} prompt set(s); expected ${4 * B}`);
  const n = p.points ? p.points.labels.length / B : 0;
  if (!Number.isInteger(n)) throw new PromptError(`prompt encoder: ${p.points!.labels.length} point labels do not split into ${B} prompt sets`);
  const coords: number[] = [];
  const labels: number[] = [];
  for (let b = 0; b < B; b++) {
    coords.push(p.boxes[4 * b]!, p.boxes[4 * b + 1]!, p.boxes[4 * b + 2]!, p.boxes[4 * b + 3]!);
    labels.push(2, 3);
    for (let i = 0; i < n; i++) {
      const k = b * n + i;
      coords.push(p.points!.coords[2 * k]!, p.points!.coords[2 * k + 1]!);
      labels.push(p.points!.labels[k]!);
    }
  }
  const out: EncoderPrompts = { batch: B, points: { coords, labels } };
  if (p.masks) out.masks = p.masks;
  return out;
}
