/**
 * The model sub-commands (segment, everything, classify). Each is registered once its pipeline
 * exists in the library; `semseg` and `text` wait for SAM-CLIP.
 */
import type { Command } from 'commander';
import type { CliEnv } from './env.js';

export function registerModelCommands(_program: Command, _env: CliEnv): void {
  // Filled in as the pipelines land.
}
