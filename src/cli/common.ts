/** Option helpers shared by the sub-commands. */
import { type Command, InvalidArgumentError } from 'commander';

/** `--json`, `--verbose`, `--quiet` on a command. */
export function withCommon(cmd: Command): Command {
  return cmd
    .option('--json', 'print the result as JSON on stdout')
    .option('--verbose', 'print stack traces on errors')
    .option('-q, --quiet', 'no progress or notes on stderr');
}

/**
 * Commander argument parser for an integer option in [min, max]. Every numeric option states its
 * range (docs/cli.md lists them): a value outside it is a usage error naming the option and the
 * range, never a run that exhausts memory or an internal error.
 */
export function intArg(name: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}], got '${v}'`);
    }
    return n;
  };
}

/** Commander argument parser for a finite number in [min, max]. */
export function numberArg(name: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}], got '${v}'`);
    }
    return n;
  };
}

/** Largest seed (generators take 32-bit seeds). */
export const MAX_SEED = 2 ** 32 - 1;

/** Commander parser for a repeatable option: collects every occurrence. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
