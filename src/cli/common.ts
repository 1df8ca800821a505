/** Option helpers shared by the sub-commands. */
import { type Command, InvalidArgumentError } from 'commander';

/** `--json`, `--verbose`, `--quiet` on a command. */
export function withCommon(cmd: Command): Command {
  return cmd
    .option('--json', 'print the result as JSON on stdout')
    .option('--verbose', 'print stack traces on errors')
    .option('-q, --quiet', 'no progress or notes on stderr');
}

/** Commander argument parser for a non-negative integer option. */
export function intArg(name: string, min = 0): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got '${v}'`);
    }
    return n;
  };
}

/** Commander argument parser for a finite number in [min, max]. */
export function numberArg(name: string, min = -Infinity, max = Infinity): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}], got '${v}'`);
    }
    return n;
  };
}

/** Commander parser for a repeatable option: collects every occurrence. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
