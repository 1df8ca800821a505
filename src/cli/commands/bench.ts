/**
 * `samclip bench`: a quick built-in benchmark of the kernels a ViT spends its time in, at real
 * model shapes, so a user can see what their adapter does in a few seconds. Wall-clock per
 * iteration (encode + submit + wait for the queue), median of `--iters` after `--warmup` runs.
 * The full benchmark suite (every kernel and model, side by side with ONNX Runtime) lives in
 * `bench/` and runs with `npm run bench`.
 */
import type { Command } from 'commander';
import { intArg, withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { UsageError } from '../errors.js';
import { formatTable } from '../output.js';

export const SUITES = ['clip-b16', 'sam-b', 'tiny'] as const;
export type SuiteName = (typeof SUITES)[number];

interface BenchOptions extends CommonOptions {
  suite: string;
  iters: number;
  warmup: number;
}

export function registerBench(program: Command, env: CliEnv): void {
  withCommon(
    program
      .command('bench')
      .description(`quick kernel benchmark at real model shapes (suites: ${SUITES.join(', ')}); the full suite is \`npm run bench\``)
      .option('--suite <name>', 'shape set', 'clip-b16')
      .option('--iters <n>', 'timed iterations per case', intArg('--iters', 1, 10_000), 10)
      .option('--warmup <n>', 'untimed iterations first (pipeline compiles)', intArg('--warmup', 0, 1000), 2),
  ).action(async (opts: BenchOptions) => {
    if (!(SUITES as readonly string[]).includes(opts.suite)) throw new UsageError(`--suite must be one of ${SUITES.join(', ')}, got '${opts.suite}'`);
    const { BENCH_SUITES } = await import('./bench-suites.js');
    const cases = BENCH_SUITES[opts.suite as SuiteName];
    const ctx = await env.gpu();
    const results: { name: string; origin: string; medianMs: number; minMs: number; gflops: number }[] = [];
    for (const c of cases) {
      const { run, inputs } = c.setup(ctx);
      const times: number[] = [];
      for (let i = 0; i < opts.warmup + opts.iters; i++) {
        const t0 = performance.now();
        ctx.stage(`bench/${c.name}`, () => ctx.scope(() => void run()));
        await ctx.sync();
        if (i >= opts.warmup) times.push(performance.now() - t0);
      }
      for (const t of inputs) t.dispose();
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)]!;
      results.push({ name: c.name, origin: c.origin, medianMs: median, minMs: times[0]!, gflops: c.flops / median / 1e6 });
      env.note(opts, `  ${c.name}: ${median.toFixed(2)} ms`);
    }
    const json = { adapter: ctx.description, suite: opts.suite, iters: opts.iters, warmup: opts.warmup, results };
    env.emit(opts, json, () =>
      [
        `adapter: ${ctx.description}`,
        `suite ${opts.suite}: median of ${opts.iters} (after ${opts.warmup} warm-up), wall clock incl. submit and wait`,
        formatTable(
          ['case', 'median ms', 'min ms', 'GFLOP/s', 'shape from'],
          results.map((r) => [r.name, r.medianMs.toFixed(3), r.minMs.toFixed(3), r.gflops.toFixed(2), r.origin]),
          new Set([1, 2, 3]),
        ),
      ].join('\n'),
    );
  });
}
