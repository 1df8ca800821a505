import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { bpeWordHeap, bpeWordSimple, mergesAreOrdered, pairKey } from '../../src/text/bpe.js';
import { BYTE_TO_CHAR } from '../../src/text/bytes-to-unicode.js';
import { ClipTokenizer } from '../../src/text/clip-tokenizer.js';

const bpeText = gunzipSync(readFileSync(new URL('../../assets/bpe_simple_vocab_16e6.txt.gz', import.meta.url))).toString('utf8');
const MERGES = bpeText
  .split('\n')
  .slice(1, 49152 - 256 - 2 + 1)
  .map((l) => l.split(' ') as [string, string]);
const RANKS = new Map(MERGES.map(([a, b], r) => [pairKey(a, b), r] as [string, number]));
const byteChars = (w: string): string => Array.from(new TextEncoder().encode(w), (b) => BYTE_TO_CHAR[b]).join('');

/** Seeded LCG so the word list is the same on every run. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

describe('BPE', () => {
  it("CLIP's merges are ordered, so the heap BPE is exact for them", () => {
    expect(MERGES.length).toBe(48894);
    expect(mergesAreOrdered(MERGES)).toBe(true);
  });

  it('heap BPE equals the reference loop on 20k seeded words, random bytes and long repeats', () => {
    const r = lcg(12345);
    const words: string[] = [];
    const alpha = 'abcdefghijklmnopqrstuvwxyz';
    for (let k = 0; k < 20000; k++) {
      const n = 1 + Math.floor(r() * 30);
      const letters = r() < 0.5 ? 26 : 5; // small alphabets make many repeated pairs
      let w = '';
      for (let i = 0; i < n; i++) w += alpha[Math.floor(r() * letters)];
      words.push(byteChars(w));
    }
    for (let k = 0; k < 2000; k++) {
      let w = '';
      for (let i = 0, n = 1 + Math.floor(r() * 12); i < n; i++) w += BYTE_TO_CHAR[Math.floor(r() * 256)];
      words.push(w);
    }
    for (const base of ['a', 'aab', 'ing', '!', 'ha', '😀', 'é']) for (const n of [7, 33, 257]) words.push(byteChars(base.repeat(n)));
    const diffs: string[] = [];
    for (const w of words) {
      const simple = bpeWordSimple(w, RANKS).join(' ');
      const heap = bpeWordHeap(w, RANKS).join(' ');
      if (simple !== heap) diffs.push(`${JSON.stringify(w)}: loop [${simple}] vs heap [${heap}]`);
    }
    expect(diffs.slice(0, 5), `${diffs.length} of ${words.length} words differ`).toEqual([]);
  });

  it('the last symbol carries </w>; an unmergeable word stays in bytes', () => {
    expect(bpeWordSimple('a', RANKS)).toEqual(['a</w>']);
    expect(bpeWordHeap('a', RANKS)).toEqual(['a</w>']);
    expect(bpeWordSimple('', RANKS)).toEqual([]);
    expect(bpeWordSimple('xyz', new Map())).toEqual(['x', 'y', 'z</w>']);
  });

  it('merges that use a symbol before it is produced are detected, and the tokenizer keeps the reference loop', () => {
    // ("ab","a") ranks before ("a","b") produces "ab": heap and loop then disagree on "abab...".
    const merges: [string, string][] = [['ab', 'a'], ['a', 'b']];
    expect(mergesAreOrdered(merges)).toBe(false);
    const ranks = new Map(merges.map(([a, b], r) => [pairKey(a, b), r] as [string, number]));
    const word = 'ab'.repeat(12);
    const loop = bpeWordSimple(word, ranks);
    const heap = bpeWordHeap(word, ranks);
    expect(heap).not.toEqual(loop); // the case really separates the two algorithms
    const vocab: Record<string, number> = { '<|startoftext|>': 0, '<|endoftext|>': 1 };
    for (const s of [...loop, ...heap]) vocab[s] ??= Object.keys(vocab).length;
    const tok = ClipTokenizer.fromVocabAndMerges(vocab, merges.map((m) => m.join(' ')).join('\n'));
    expect(tok.encode(word)).toEqual(loop.map((s) => vocab[s]));
  });
});
