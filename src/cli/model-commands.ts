/**
 * The model sub-commands: segment (SAM predictor) and classify (CLIP zero-shot). `everything`
 * joins once the automatic mask generator is in the library; `semseg` and `text` wait for
 * SAM-CLIP's pipelines.
 */
import type { Command } from 'commander';
import { registerClassify } from './commands/classify.js';
import { registerSegment } from './commands/segment.js';
import type { CliEnv } from './env.js';

export function registerModelCommands(program: Command, env: CliEnv): void {
  registerSegment(program, env);
  registerClassify(program, env);
}
