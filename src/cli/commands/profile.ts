/**
 * `samclip profile COMMAND [ARGS...]`: run any other sub-command with GPU timestamp queries on
 * every dispatch, then print the per-kernel and per-stage tables and write a Chrome trace
 * (chrome://tracing, ui.perfetto.dev). The command runs in its own environment whose context
 * factory turns the profiler on; nothing else about it changes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import type { KernelRow } from '../../gpu/profiler.js';
import { withCommon } from '../common.js';
import { CliEnv, type CommonOptions } from '../env.js';
import { CliError, UsageError } from '../errors.js';

interface ProfileOptions extends CommonOptions {
  trace: string;
}

export type ProgramBuilder = (env: CliEnv) => Command;

/** Takes `--trace FILE` / `--trace=FILE` out of the inner command's arguments (it may follow them). */
function extractTrace(args: string[]): { args: string[]; trace: string | null } {
  const out: string[] = [];
  let trace: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--trace') {
      const v = args[++i];
      if (v === undefined) throw new UsageError('--trace needs a file name');
      trace = v;
    } else if (a.startsWith('--trace=')) {
      trace = a.slice('--trace='.length);
    } else {
      out.push(a);
    }
  }
  return { args: out, trace };
}

function rowsJson(rows: KernelRow[]): object[] {
  return rows.map((r) => ({ name: r.name, totalMs: r.totalMs, count: r.count, meanMs: r.meanMs, share: r.share, gflops: r.gflops, gbps: r.gbps }));
}

export function registerProfile(program: Command, env: CliEnv, build: ProgramBuilder): void {
  withCommon(
    program
      .command('profile')
      .description('run another command with the GPU profiler: per-kernel and per-stage tables, Chrome trace')
      .argument('<command>', 'the sub-command to profile (segment, everything, classify, bench, ...)')
      .argument('[args...]', "that command's arguments and options")
      .option('--trace <file>', 'Chrome trace JSON output', 'samclip-trace.json')
      .passThroughOptions()
      .allowUnknownOption()
      .addHelpText('after', '\nExample:\n  samclip profile segment photo.jpg --point 400,300 --out mask.png --trace trace.json'),
  ).action(async (command: string, rawArgs: string[], opts: ProfileOptions) => {
    if (command === 'profile') throw new UsageError('profile cannot profile itself');
    if (command === 'doctor' || command === 'weights') throw new UsageError(`'${command}' does not run GPU work worth profiling; try segment, everything, classify or bench`);
    const { args, trace: traceArg } = extractTrace(rawArgs);
    const trace = traceArg ?? opts.trace;
    let captured: unknown;
    const inner = new CliEnv({
      profile: true,
      stdout: env.stdout,
      stderr: env.stderr,
      ...(env.isJson(opts) ? { captureJson: (v: unknown) => (captured = v) } : {}),
    });
    try {
      await build(inner).parseAsync([command, ...args], { from: 'user' });
      const ctx = await inner.existingGpu();
      if (!ctx) throw new CliError(`'${command}' ran no GPU work; nothing to profile`);
      if (!ctx.profiler) throw new CliError(`profiling needs the 'timestamp-query' feature, which ${ctx.description} does not offer`);
      await ctx.sync();
      const p = ctx.profiler;
      const kernels = p.kernelTable();
      const stages = p.stageTable();
      const traceJson = p.chromeTrace();
      await mkdir(dirname(trace), { recursive: true });
      await writeFile(trace, JSON.stringify(traceJson));
      const totalMs = kernels.reduce((a, r) => a + r.totalMs, 0);
      const json = { command, args, adapter: ctx.description, dispatches: p.records.length, gpuMs: totalMs, kernels: rowsJson(kernels), stages: rowsJson(stages), trace, result: captured };
      const text = () =>
        [
          `profile of '${[command, ...args].join(' ')}' on ${ctx.description}: ${p.records.length} dispatches, ${totalMs.toFixed(2)} ms of GPU time`,
          '',
          p.formatTable(kernels, 'kernel'),
          '',
          p.formatTable(stages, 'stage'),
          '',
          `Chrome trace: ${trace} (open in chrome://tracing or https://ui.perfetto.dev)`,
        ].join('\n');
      if (!env.isJson(opts) && inner.wroteJson) {
        // The command printed JSON on stdout: keep it parseable, the tables go to stderr.
        env.stderr.write(`${text()}\n`);
      } else {
        env.emit(opts, json, text);
      }
    } finally {
      await inner.close();
    }
  });
}
