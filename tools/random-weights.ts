/**
 * Write a checkpoint of seeded random weights with the real names and shapes (for benchmarks of
 * full-size models and for loader tests; see src/weights/random.ts for the scales).
 *
 *   npx tsx tools/random-weights.ts --family sam-vit-b out.safetensors [--seed 0] [--dtype F32|F16|BF16] [--names official|hf]
 *
 * Families: sam-vit-b, sam-vit-l, sam-vit-h, sam-tiny (the reference fixtures' configuration),
 * clip-vit-b-16, clip-vit-l-14 (OpenAI names; QuickGELU implied). Never overwrites an existing file.
 * The CLI's `weights random` sub-command calls the same `writeRandomWeights`.
 */
import { pathToFileURL } from 'node:url';
import { RANDOM_FAMILIES, type RandomDType, type RandomFamily, writeRandomWeights } from '../src/weights/random.js';

const USAGE = `usage: npx tsx tools/random-weights.ts --family ${RANDOM_FAMILIES.join('|')} out.safetensors [--seed N] [--dtype F32|F16|BF16] [--names official|hf] [--quiet]`;

export async function main(argv: readonly string[]): Promise<number> {
  let family: RandomFamily | undefined;
  let seed = 0;
  let dtype: RandomDType = 'F32';
  let names: 'official' | 'hf' = 'official';
  let quiet = false;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    try {
      if (a === '--family') {
        const v = value();
        if (!RANDOM_FAMILIES.includes(v as RandomFamily)) throw new Error(`--family must be one of ${RANDOM_FAMILIES.join(', ')} (got ${v})`);
        family = v as RandomFamily;
      } else if (a === '--seed') {
        seed = Number(value());
        if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer`);
      } else if (a === '--dtype') {
        const v = value().toUpperCase();
        if (v !== 'F32' && v !== 'F16' && v !== 'BF16') throw new Error(`--dtype must be F32, F16 or BF16 (got ${v})`);
        dtype = v;
      } else if (a === '--names') {
        const v = value();
        if (v !== 'official' && v !== 'hf') throw new Error(`--names must be official or hf (got ${v})`);
        names = v;
      } else if (a === '--quiet') quiet = true;
      else if (a === '-h' || a === '--help') {
        console.log(USAGE);
        return 0;
      } else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
      else positional.push(a);
    } catch (e) {
      console.error(`${(e as Error).message}\n${USAGE}`);
      return 2;
    }
  }
  if (!family || positional.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const out = positional[0]!;
  let last = 0;
  try {
    const r = await writeRandomWeights(out, {
      family,
      seed,
      dtype,
      names,
      onTensor: (name, _bytes, index, count) => {
        const now = Date.now();
        if (!quiet && process.stderr.isTTY && (now - last > 200 || index === count - 1)) {
          last = now;
          process.stderr.write(`\r  ${index + 1}/${count} ${name.slice(0, 60).padEnd(60)}`);
        }
      },
    });
    if (!quiet && process.stderr.isTTY) process.stderr.write('\n');
    console.log(`${r.path}: ${family} (${names} names, ${dtype}, seed ${seed}), ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(1)} s`);
    return 0;
  } catch (e) {
    console.error(`error: ${(e as Error).message.replace('pass overwrite: true to replace it', 'delete it first')}`);
    return 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
