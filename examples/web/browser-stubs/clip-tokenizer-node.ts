/**
 * Browser stand-in for src/text/clip-tokenizer-node.ts, swapped in by vite.config.ts. The real
 * module finds the BPE vocabulary on disk with node:fs; a page has no disk, so it fetches the
 * vocabulary itself and passes `{ tokenizer: await ClipTokenizer.fromBpeGz(bytes) }` to SamClip.
 * Reaching these functions in a page means a tokenizer was not passed: say so.
 */
import type { ClipTokenizer } from '../../../src/text/clip-tokenizer.js';
import { TokenizerError } from '../../../src/text/tokenizer-error.js';

export const CLIP_BPE_ASSET = 'bpe_simple_vocab_16e6.txt.gz';

const HELP =
  'the shipped CLIP vocabulary is read from disk on Node only; in a browser fetch ' +
  `${CLIP_BPE_ASSET} and pass { tokenizer: await ClipTokenizer.fromBpeGz(bytes) }`;

export async function findPackageAsset(name: string): Promise<string> {
  throw new TokenizerError(`asset ${name}: ${HELP}`);
}

export function loadClipTokenizer(): Promise<ClipTokenizer> {
  return Promise.reject(new TokenizerError(HELP));
}
