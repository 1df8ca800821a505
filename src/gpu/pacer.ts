/**
 * Progress and cancellation for long GPU computations. A call that takes `onProgress` or a
 * `signal` submits its work in steps (a transformer block, a batch of prompts, a class) instead of
 * encoding everything at once, keeping at most two steps queued on the GPU: progress is reported
 * when a step has really finished on the GPU, and an abort stops the call within about one step
 * (work already submitted cannot be recalled). Without either option nothing is paced and the
 * work is encoded in one go, as fast as before.
 */
import type { GpuContext } from './context.js';
import { throwIfAborted } from './errors.js';

/** Where a long call is: `stage` names what it does now, `fraction` (0..1, never decreasing) how much of the whole call is done. */
export interface Progress {
  stage: string;
  fraction: number;
}

export interface ProgressOptions {
  /** Called as the work advances (from the GPU's completion callbacks, in order). */
  onProgress?: (p: Progress) => void;
  /** Cancels the call: it rejects with an AbortError and frees what it made. */
  signal?: AbortSignal;
}

/** Keeps this many paced steps queued on the GPU: one running, one ready behind it. */
const IN_FLIGHT = 2;

export class Pacer {
  private readonly inFlight: Promise<void>[];
  private last = 0;

  private constructor(
    private readonly ctx: GpuContext,
    private readonly opts: ProgressOptions,
    /** What the call is, for abort messages ("SamPredictor.encode"). */
    readonly what: string,
    /** The part [lo, hi] of the whole call this pacer covers. */
    private readonly lo: number,
    private readonly hi: number,
    shared: Promise<void>[] | null,
    private readonly root: Pacer | null,
  ) {
    this.inFlight = shared ?? [];
  }

  /** A pacer for a call, or null when the caller asked for neither progress nor cancellation. */
  static for(ctx: GpuContext, opts: ProgressOptions | undefined, what: string): Pacer | null {
    if (!opts || (!opts.onProgress && !opts.signal)) return null;
    throwIfAborted(opts.signal, what);
    return new Pacer(ctx, opts, what, 0, 1, null, null);
  }

  /** The part [lo, hi] (fractions of this pacer's span) of the work, paced by a child. */
  part(lo: number, hi: number): Pacer {
    const span = this.hi - this.lo;
    return new Pacer(this.ctx, this.opts, this.what, this.lo + lo * span, this.lo + hi * span, this.inFlight, this.root ?? this);
  }

  /** Throws an AbortError if the signal fired. */
  check(): void {
    throwIfAborted(this.opts.signal, this.what);
  }

  /**
   * Submit what was encoded since the last step, report `stage` at `done / total` of this span once
   * the GPU has finished it, wait while too much is queued, then check for an abort.
   */
  async step(stage: string, done: number, total: number): Promise<void> {
    this.ctx.flush();
    const fraction = this.lo + (this.hi - this.lo) * Math.min(1, done / total);
    const finished = this.ctx.device.queue.onSubmittedWorkDone().then(() => this.emit(stage, fraction));
    this.inFlight.push(finished);
    while (this.inFlight.length >= IN_FLIGHT) await this.inFlight.shift();
    this.check();
  }

  /** Report progress of host-side work (no GPU step to wait for): `done / total` of this span. */
  note(stage: string, done: number, total: number): void {
    this.emit(stage, this.lo + (this.hi - this.lo) * Math.min(1, done / total));
  }

  private emit(stage: string, fraction: number): void {
    const root = this.root ?? this;
    if (fraction < root.last) return;
    root.last = fraction;
    this.opts.onProgress?.({ stage, fraction });
  }

  /** Wait for every queued step (their progress reports included). */
  async drain(): Promise<void> {
    while (this.inFlight.length) await this.inFlight.shift();
  }
}
