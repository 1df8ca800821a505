/**
 * What every sub-command gets: the GPU context factory, output (text or JSON on stdout, notes and
 * progress on stderr) and the weights cache location. `samclip profile` runs a command with an
 * environment whose factory turns the profiler on, so commands never create contexts themselves.
 */
import type { ContextOptions, GpuContext } from '../gpu/context.js';
import type { TuneReport } from '../kernels/tuner.js';
import { Progress, type ProgressSink } from './output.js';

/** Options every sub-command accepts. */
export interface CommonOptions {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

export type ContextFactory = (opts: ContextOptions) => Promise<GpuContext>;

export interface CliEnvOptions {
  /** Create contexts with the profiler on (`samclip profile`). */
  profile?: boolean;
  /** Where JSON results go instead of stdout (`samclip profile --json` wraps them). */
  captureJson?: (value: unknown) => void;
  stdout?: (s: string) => void;
  stderr?: ProgressSink;
  factory?: ContextFactory;
}

/**
 * Per-adapter kernel choices for CLI runs: measured once per adapter and host, cached in the samclip
 * cache directory (tuning.json); `SAMCLIP_TUNING` = default | measure | refresh | JSON of pinned
 * choices (src/kernels/tuner.ts).
 */
export async function tuneForCli(ctx: GpuContext): Promise<TuneReport> {
  const [{ tuneKernels, parseTuningSetting }, { fileTuningStore }, { hostCpu }, { defaultCacheDir }] = await Promise.all([
    import('../kernels/tuner.js'),
    import('../node/tuning-store.js'),
    import('../node/host-cpu.js'),
    import('../node/hub-cache.js'),
  ]);
  return tuneKernels(ctx, { ...parseTuningSetting(process.env.SAMCLIP_TUNING), store: fileTuningStore(defaultCacheDir()), host: hostCpu().summary });
}

export class CliEnv {
  readonly profile: boolean;
  private readonly factory: ContextFactory;
  private ctx: Promise<GpuContext> | null = null;
  private ctxOptions: ContextOptions | null = null;
  readonly stdout: (s: string) => void;
  readonly stderr: ProgressSink;
  /** Set once a command printed JSON to stdout (the profiler then keeps its tables off stdout). */
  wroteJson = false;

  constructor(private readonly opts: CliEnvOptions = {}) {
    this.profile = !!opts.profile;
    // Loaded on first use: commands that never touch the GPU start faster without the engine.
    this.factory = opts.factory ?? (async (o) => (await import('../gpu/context.js')).GpuContext.create(o));
    this.stdout = opts.stdout ?? ((s) => process.stdout.write(s));
    this.stderr = opts.stderr ?? { write: (s) => process.stderr.write(s), isTTY: !!process.stderr.isTTY };
  }

  /**
   * The process's GPU context, created on first use (one per run: models, pipelines and buffers
   * are shared by everything a command does). `preferF16` is honoured on the first call only.
   */
  gpu(extra: Pick<ContextOptions, 'preferF16'> = {}): Promise<GpuContext> {
    if (!this.ctx) {
      this.ctxOptions = { ...extra, profile: this.profile };
      this.ctx = this.factory(this.ctxOptions).then(async (ctx) => {
        await tuneForCli(ctx);
        return ctx;
      });
      // A failed creation must not be cached: a later call may retry (and report) it again.
      this.ctx.catch(() => {
        this.ctx = null;
      });
    }
    return this.ctx;
  }

  /** The context if one was created (the profiler reads it after the command). */
  async existingGpu(): Promise<GpuContext | null> {
    if (!this.ctx) return null;
    try {
      return await this.ctx;
    } catch {
      return null;
    }
  }

  /** Print a command's result: JSON (one document) when asked, the text otherwise. */
  emit(common: CommonOptions, json: unknown, text: () => string): void {
    if (this.opts.captureJson) {
      this.opts.captureJson(json);
      return;
    }
    if (common.json) {
      this.wroteJson = true;
      this.stdout(`${JSON.stringify(json, null, 2)}\n`);
    } else {
      const t = text();
      if (t) this.stdout(t.endsWith('\n') ? t : `${t}\n`);
    }
  }

  /** Whether results are JSON (asked for, or captured by `profile --json`). */
  isJson(common: CommonOptions): boolean {
    return !!common.json || !!this.opts.captureJson;
  }

  /** A note for the user on stderr (never mixed into JSON output). */
  note(common: CommonOptions, message: string): void {
    if (!common.quiet) this.stderr.write(`${message}\n`);
  }

  progress(common: CommonOptions, label: string, total: number, bytes = false, start = 0): Progress {
    return new Progress(common.quiet ? null : this.stderr, label, total, bytes, start);
  }

  async close(): Promise<void> {
    const ctx = await this.existingGpu();
    this.ctx = null;
    ctx?.destroy();
  }
}
