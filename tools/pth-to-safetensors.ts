/**
 * Convert a PyTorch `.pth` checkpoint (torch.save zip format, e.g. the official
 * `sam_vit_b_01ec64.pth`) to safetensors, without Python and without executing its pickle.
 *
 *   npx tsx tools/pth-to-safetensors.ts in.pth out.safetensors [--dtype keep|f32|f16] [--overwrite] [--no-crc]
 *
 * Tensors are read and written one at a time, so memory stays at about one tensor. Prints the
 * tensor count, bytes in and out, and throughput. The conversion itself is
 * `convertPthToSafetensors` in src/weights/pth/convert.ts (re-exported here for the CLI).
 */
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import { convertPthToSafetensors, type PthConvertDType } from '../src/weights/pth.js';

export { convertPthToSafetensors } from '../src/weights/pth.js';

const USAGE = 'usage: npx tsx tools/pth-to-safetensors.ts in.pth out.safetensors [--dtype keep|f32|f16] [--overwrite] [--no-crc] [--quiet]';

export async function main(argv: readonly string[]): Promise<number> {
  const positional: string[] = [];
  let dtype: PthConvertDType = 'keep';
  let overwrite = false;
  let verifyCrc = true;
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--dtype') {
      const v = argv[++i];
      if (v !== 'keep' && v !== 'f32' && v !== 'f16') {
        console.error(`--dtype must be keep, f32 or f16 (got ${v ?? 'nothing'})\n${USAGE}`);
        return 2;
      }
      dtype = v;
    } else if (a === '--overwrite') overwrite = true;
    else if (a === '--no-crc') verifyCrc = false;
    else if (a === '--quiet') quiet = true;
    else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      return 0;
    } else if (a.startsWith('--')) {
      console.error(`unknown option ${a}\n${USAGE}`);
      return 2;
    } else positional.push(a);
  }
  if (positional.length !== 2) {
    console.error(USAGE);
    return 2;
  }
  const [input, output] = positional as [string, string];
  let lastPrint = 0;
  try {
    const r = await convertPthToSafetensors(input, output, {
      dtype,
      overwrite,
      verifyCrc,
      metadata: { source: basename(input) },
      onTensor: (name, _bytes, index, count) => {
        const now = Date.now();
        if (!quiet && process.stderr.isTTY && (now - lastPrint > 200 || index === count - 1)) {
          lastPrint = now;
          process.stderr.write(`\r  ${index + 1}/${count} ${name.slice(0, 60).padEnd(60)}`);
        }
      },
    });
    if (!quiet && process.stderr.isTTY) process.stderr.write('\n');
    const mb = (b: number) => (b / 1e6).toFixed(1);
    const types = Object.entries(r.dtypes).map(([d, n]) => `${n} ${d}`).join(', ');
    console.log(`${r.output}: ${r.tensors} tensors (${types})${r.stateDictKey ? ` from '${r.stateDictKey}'` : ''}`);
    console.log(`  read ${mb(r.inputBytes)} MB, wrote ${mb(r.outputBytes)} MB in ${r.seconds.toFixed(2)} s (${r.mbPerSecond.toFixed(0)} MB/s written)`);
    if (r.skipped.length) {
      console.log(`  skipped ${r.skipped.length} non-tensor entries: ${r.skipped.slice(0, 6).map((s) => `${s.key} (${s.reason})`).join(', ')}${r.skipped.length > 6 ? ', ...' : ''}`);
    }
    return 0;
  } catch (e) {
    const msg = (e as Error).message;
    console.error(`error: ${msg.replace('pass overwrite: true', 'pass --overwrite')}`);
    return 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
