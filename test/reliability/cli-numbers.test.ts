/**
 * Every numeric option of the `samclip` CLI states its range and refuses values outside it with a
 * usage error (exit 2) naming the option and the range: found by walking the command tree, so an
 * option added later without a range fails here. Runs the CLI in process (parsing fails before any
 * GPU or file work).
 */
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { CliEnv } from '../../src/cli/env.js';
import { runCli } from '../../src/cli/main.js';
import { buildProgram } from '../../src/cli/program.js';

async function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const env = new CliEnv({ stdout: () => undefined, stderr: { write: (s: string) => void (stderr += s), isTTY: false } });
  const code = await runCli(argv, env);
  return { code, stderr };
}

/** Placeholders that mean "a number" in this CLI's option syntax. */
const NUMERIC = /<(n|k|x|p|px)>$/;

function numericOptions(): { path: string[]; option: Option }[] {
  const program = buildProgram(new CliEnv());
  const out: { path: string[]; option: Option }[] = [];
  const walk = (cmd: Command, path: string[]) => {
    for (const o of cmd.options as Option[]) if (NUMERIC.test(o.flags)) out.push({ path, option: o });
    for (const sub of cmd.commands as Command[]) walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  return out;
}

describe('numeric CLI options', () => {
  const options = numericOptions();

  it('the audit finds the options of the issue (and more)', () => {
    const names = options.map(({ path, option }) => `${path.join(' ')} ${option.long}`);
    for (const n of ['everything --points-per-side', 'everything --crop-layers', 'classify --size', 'everything --points-per-batch', 'weights pull --retries']) {
      expect(names).toContain(n);
    }
    expect(options.length).toBeGreaterThanOrEqual(20);
  });

  for (const { path, option } of numericOptions()) {
    const flag = option.long!;
    it(`${path.join(' ')} ${flag}: has a parser with a stated range`, async () => {
      expect(option.parseArg, `${flag} has no parser`).toBeTypeOf('function');
      for (const bad of ['100000000000', '-100000000000', 'NaN', '1e999', 'abc']) {
        // Each command's positional arguments: none parse before the options fail.
        const r = await run([...path, flag, bad, 'x.jpg']);
        expect(r.code, `${flag} ${bad}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(new RegExp(`${flag} must be (an integer|a number) in \\[-?[\\d.e+]+, -?[\\d.e+]+\\], got '${bad}'`));
        expect(r.stderr).not.toMatch(/internal error/);
      }
    });
  }

  it('the values of the issue: --points-per-side 3000 / 100000, --crop-layers 8, --size 100000', async () => {
    for (const [argv, re] of [
      [['everything', 'x.jpg', '--out', 'o', '--points-per-side', '100000'], /--points-per-side must be an integer in \[1, 128\], got '100000'/],
      [['everything', 'x.jpg', '--out', 'o', '--points-per-side', '3000'], /--points-per-side must be an integer in \[1, 128\]/],
      [['everything', 'x.jpg', '--out', 'o', '--crop-layers', '8'], /--crop-layers must be an integer in \[0, 3\], got '8'/],
      [['classify', 'x.jpg', '--labels', 'a,b', '--size', '100000'], /--size must be an integer in \[14, 1024\], got '100000'/],
    ] as [string[], RegExp][]) {
      const r = await run(argv);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(re);
    }
  });
});
