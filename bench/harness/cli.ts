/** Tiny command-line helpers shared by the model benchmarks (flags with defaults, exit codes). */

const args = process.argv.slice(2);

/** The value after `name`, or `dflt` when the flag is absent. */
export function flag(name: string, dflt: string): string {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : dflt;
}

/** Whether a bare flag is present. */
export function has(name: string): boolean {
  return args.includes(name);
}

/** Runs a benchmark's main and exits (0, or 1 with the error printed): Dawn keeps the loop alive. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}

/** The Python with torch that exports the ONNX references (`SAMCLIP_PYTHON`, default Debian's). */
export const PYTHON = process.env.SAMCLIP_PYTHON ?? '/usr/bin/python3';
