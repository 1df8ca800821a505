/** The `samclip` command tree. Every sub-command registers itself here against one environment. */
import { Command } from 'commander';
import { registerBench } from './commands/bench.js';
import { registerDoctor } from './commands/doctor.js';
import { registerProfile } from './commands/profile.js';
import { registerWeights } from './commands/weights.js';
import type { CliEnv } from './env.js';
import { registerModelCommands } from './model-commands.js';

export const VERSION = '0.1.0';

export function buildProgram(env: CliEnv): Command {
  const program = new Command('samclip')
    .description('SAM, CLIP and SAM-CLIP on WebGPU: segment, classify, manage weights, profile')
    .version(VERSION, '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => env.stdout(s),
      writeErr: (s) => env.stderr.write(s),
    });
  registerModelCommands(program, env);
  registerWeights(program, env);
  registerProfile(program, env, buildProgram);
  registerBench(program, env);
  registerDoctor(program, env);
  program.addHelpText(
    'after',
    '\nExit codes: 0 success, 1 runtime error, 2 usage error. --verbose prints stack traces.\nDocs: docs/cli.md',
  );
  return program;
}
