/**
 * `samclip` entry point: parse, run, and turn every failure into one line on stderr and an exit
 * code (0 ok, 1 runtime error, 2 usage error). `--verbose` adds the stack trace.
 */
import { pathToFileURL } from 'node:url';
import { CommanderError } from 'commander';
import { SamclipError } from '../gpu/errors.js';
import { CliEnv } from './env.js';
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError } from './errors.js';
import { buildProgram } from './program.js';

/** One line: the first line of the message (GPU compile errors carry the whole shader after it). */
function oneLine(e: Error): string {
  const lines = e.message.split('\n');
  const first = lines[0]!.trim();
  return lines.length > 1 && lines.slice(1).some((l) => l.trim()) ? `${first} (details with --verbose)` : first;
}

/** Run the CLI with `argv` (without `node` and the script); resolves to the exit code. */
export async function runCli(argv: string[], env = new CliEnv()): Promise<number> {
  const verbose = argv.includes('--verbose');
  const program = buildProgram(env);
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT_USAGE;
    }
    await program.parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (and help when asked for).
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK;
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    const usage = e instanceof UsageError;
    const known = e instanceof SamclipError;
    const prefix = usage ? 'samclip: usage error: ' : known ? 'samclip: error: ' : 'samclip: internal error: ';
    const hint = !verbose && !known ? ' (run with --verbose for the stack trace)' : '';
    env.stderr.write(`${prefix}${verbose ? e.message : oneLine(e)}${hint}\n`);
    if (verbose) env.stderr.write(`${e.stack ?? ''}\n`);
    return usage ? EXIT_USAGE : EXIT_RUNTIME;
  } finally {
    await env.close().catch(() => undefined);
  }
}

/** Run with the process's arguments and exit with the code (used by bin/samclip.mjs). */
export async function main(): Promise<void> {
  const code = await runCli(process.argv.slice(2));
  process.exitCode = code;
  // Everything is released by now; should a native handle still hold the loop, do not hang.
  setTimeout(() => process.exit(code), 2000).unref();
}

// `node lib/cli/main.js ...` / `tsx src/cli/main.ts ...` run it directly too.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
