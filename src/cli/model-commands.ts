/**
 * The model sub-commands: segment (SAM predictor), everything (SAM automatic masks) and classify
 * (CLIP zero-shot). `semseg` and `text` (SAM-CLIP) are not registered yet.
 */
import type { Command } from 'commander';
import { registerClassify } from './commands/classify.js';
import { registerEverything } from './commands/everything.js';
import { registerSegment } from './commands/segment.js';
import type { CliEnv } from './env.js';

export function registerModelCommands(program: Command, env: CliEnv): void {
  registerSegment(program, env);
  registerEverything(program, env);
  registerClassify(program, env);
}
