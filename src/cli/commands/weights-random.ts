/** `samclip weights random`: seeded random weights with the real key names (tests, benchmarks). */
import type { Command } from 'commander';
import { RANDOM_FAMILIES, type RandomDType, type RandomFamily, planRandomWeights, writeRandomWeights } from '../../weights/random.js';
import { MAX_SEED, intArg, withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { UsageError } from '../errors.js';
import { formatBytes, formatCount } from '../output.js';
import { checkWritable } from './files.js';

interface RandomOptions extends CommonOptions {
  family: string;
  out: string;
  seed: number;
  dtype: string;
  names: string;
  force?: boolean;
}

const DTYPES: Record<string, RandomDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

export function registerRandom(weights: Command, env: CliEnv): void {
  withCommon(
    weights
      .command('random')
      .description('write seeded random weights with real checkpoint names and shapes (masks/labels from them are meaningless)')
      .requiredOption('--family <family>', `one of ${RANDOM_FAMILIES.join(', ')}`)
      .requiredOption('-o, --out <file>', 'output .safetensors file')
      .option('--seed <n>', 'generator seed', intArg('--seed', 0, MAX_SEED), 0)
      .option('--dtype <dtype>', 'stored dtype: f32, f16 or bf16', 'f32')
      .option('--names <style>', "SAM only: 'official' (segment-anything) or 'hf' (Hugging Face) key names", 'official')
      .option('--force', 'overwrite an existing output file'),
  ).action(async (opts: RandomOptions) => {
    if (!(RANDOM_FAMILIES as readonly string[]).includes(opts.family)) {
      throw new UsageError(`--family must be one of ${RANDOM_FAMILIES.join(', ')}, got '${opts.family}'`);
    }
    const dtype = DTYPES[opts.dtype.toLowerCase()];
    if (!dtype) throw new UsageError(`--dtype must be f32, f16 or bf16, got '${opts.dtype}'`);
    if (opts.names !== 'official' && opts.names !== 'hf') throw new UsageError(`--names must be 'official' or 'hf', got '${opts.names}'`);
    if (opts.seed > 0xffffffff) throw new UsageError(`--seed must be below 2^32, got ${opts.seed}`);
    await checkWritable(opts.out, !!opts.force);
    const family = opts.family as RandomFamily;
    const names = opts.names as 'official' | 'hf';
    const plan = planRandomWeights({ family, seed: opts.seed, dtype, names });
    const bar = env.progress(opts, `random ${family}`, plan.entries.length);
    if (opts.force) {
      const { rm } = await import('node:fs/promises');
      await rm(opts.out, { force: true });
    }
    const r = await writeRandomWeights(opts.out, { family, seed: opts.seed, dtype, names, onTensor: (_n, _b, i) => bar.update(i + 1) });
    bar.finish();
    const json = { path: r.path, family, seed: opts.seed, dtype, names, tensors: r.tensors, params: plan.values, bytes: r.bytes, seconds: r.seconds };
    env.emit(opts, json, () => `${r.path}: ${family} seed ${opts.seed}, ${r.tensors} tensors, ${formatCount(plan.values)} params, ${formatBytes(r.bytes)} ${dtype} in ${r.seconds.toFixed(1)} s`);
  });
}
