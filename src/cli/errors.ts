/** CLI error kinds. Exit codes: 0 ok, 1 runtime error, 2 usage error (see docs/cli.md). */
import { SamclipError } from '../gpu/errors.js';

/** Bad command-line arguments (syntax or values: a point outside the image, an unknown name). Exit 2. */
export class UsageError extends SamclipError {
  override name = 'UsageError';
}

/** A runtime failure the CLI detects itself (missing weights, download problems). Exit 1. */
export class CliError extends SamclipError {
  override name = 'CliError';
}

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;
