/**
 * The model sub-commands: segment (SAM predictor), everything (SAM automatic masks), classify
 * (CLIP zero-shot), semseg and text (SAM-CLIP semantic segmentation and text-prompted masks), and
 * demo (semseg of a bundled photo, the README's first command).
 */
import type { Command } from 'commander';
import { registerClassify } from './commands/classify.js';
import { registerDemo } from './commands/demo.js';
import { registerEverything } from './commands/everything.js';
import { registerSegment } from './commands/segment.js';
import { registerSemseg } from './commands/semseg.js';
import { registerText } from './commands/text.js';
import type { CliEnv } from './env.js';

export function registerModelCommands(program: Command, env: CliEnv): void {
  registerSegment(program, env);
  registerEverything(program, env);
  registerClassify(program, env);
  registerSemseg(program, env);
  registerText(program, env);
  registerDemo(program, env);
}
