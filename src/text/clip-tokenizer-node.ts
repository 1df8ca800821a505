/**
 * Node-only: loads the BPE vocabulary shipped in this package's `assets/` folder. Node modules
 * are imported dynamically inside the function so the rest of src/text stays browser-safe.
 */
import { ClipTokenizer } from './clip-tokenizer.js';
import { TokenizerError } from './tokenizer-error.js';

export const CLIP_BPE_ASSET = 'bpe_simple_vocab_16e6.txt.gz';

/**
 * Absolute path of `assets/<name>` in this package: walks up from this module (src/text under
 * vitest/tsx, dist/src/text after a build) to the first folder that holds it.
 */
export async function findPackageAsset(name: string): Promise<string> {
  const { access } = await import('node:fs/promises');
  const { dirname, join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const start = dirname(fileURLToPath(import.meta.url));
  const tried: string[] = [];
  for (let dir = start; ; ) {
    const candidate = join(dir, 'assets', name);
    tried.push(candidate);
    try {
      await access(candidate);
      return candidate;
    } catch {
      // keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new TokenizerError(`asset ${name} not found; looked for:\n  ${tried.join('\n  ')}`);
}

let shipped: Promise<ClipTokenizer> | undefined;

/** The CLIP tokenizer built from the shipped BPE file (loaded once per process). */
export function loadClipTokenizer(): Promise<ClipTokenizer> {
  shipped ??= (async () => {
    const { readFile } = await import('node:fs/promises');
    const path = await findPackageAsset(CLIP_BPE_ASSET);
    return ClipTokenizer.fromBpeGz(new Uint8Array(await readFile(path)));
  })();
  // A failed load should not stick: let the next call try again.
  shipped.catch(() => {
    shipped = undefined;
  });
  return shipped;
}
