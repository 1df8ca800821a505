/**
 * Byte-pair encoding of one pre-tokenised word, as CLIP applies it: the word's last symbol
 * carries the end-of-word marker `</w>`, and the adjacent pair whose merge was learnt
 * earliest (lowest rank) is merged everywhere, left to right, until no ranked pair remains.
 */

export const END_OF_WORD = '</w>';

/** Merge ranks keyed by `${left} ${right}` (symbols never contain a space: byte 0x20 maps to U+0120). */
export type MergeRanks = ReadonlyMap<string, number>;

export function pairKey(left: string, right: string): string {
  return left + ' ' + right;
}

function initialSymbols(word: string): string[] {
  const n = word.length;
  const symbols = new Array<string>(n);
  for (let i = 0; i < n - 1; i++) symbols[i] = word[i]!;
  symbols[n - 1] = word[n - 1]! + END_OF_WORD;
  return symbols;
}

/**
 * The reference algorithm (upstream's loop): find the lowest-ranked adjacent pair, merge all
 * its occurrences in one left-to-right pass, repeat. O(n^2) per word.
 */
export function bpeWordSimple(word: string, ranks: MergeRanks): string[] {
  if (word.length === 0) return [];
  let symbols = initialSymbols(word);
  while (symbols.length > 1) {
    // Lowest-ranked adjacent pair; ranks are unique, so there are no ties to break.
    let bestRank = Infinity;
    let bestLeft = '';
    let bestRight = '';
    for (let i = 0; i < symbols.length - 1; i++) {
      const rank = ranks.get(pairKey(symbols[i]!, symbols[i + 1]!));
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        bestLeft = symbols[i]!;
        bestRight = symbols[i + 1]!;
      }
    }
    if (bestRank === Infinity) break;
    // Merge every occurrence in one left-to-right pass (non-overlapping: "a a a" -> "aa a").
    const merged: string[] = [];
    for (let i = 0; i < symbols.length; ) {
      if (i < symbols.length - 1 && symbols[i] === bestLeft && symbols[i + 1] === bestRight) {
        merged.push(bestLeft + bestRight);
        i += 2;
      } else {
        merged.push(symbols[i]!);
        i += 1;
      }
    }
    symbols = merged;
  }
  return symbols;
}

/**
 * True when every merge ranks after every merge that produces one of its two symbols (and no
 * pair or product repeats). Then a merge only ever creates pairs of higher rank than itself, so
 * processing (rank, position) from a heap visits the same merges in the same order as the
 * reference loop. CLIP's merges satisfy this; a file that does not gets the reference loop.
 */
export function mergesAreOrdered(merges: readonly (readonly [string, string])[]): boolean {
  const producedAt = new Map<string, number>();
  const seenPairs = new Set<string>();
  for (let rank = 0; rank < merges.length; rank++) {
    const [a, b] = merges[rank]!;
    const key = pairKey(a, b);
    if (seenPairs.has(key) || producedAt.has(a + b)) return false;
    seenPairs.add(key);
    producedAt.set(a + b, rank);
  }
  for (let rank = 0; rank < merges.length; rank++) {
    const [a, b] = merges[rank]!;
    if ((producedAt.get(a) ?? -1) >= rank || (producedAt.get(b) ?? -1) >= rank) return false;
  }
  return true;
}

/** Min-heap of numbers (rank * 2^32 + position). */
class NumberHeap {
  private readonly items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(x: number): void {
    const a = this.items;
    let i = a.length;
    a.push(x);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]! <= x) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = x;
  }
  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]! < a[l]! ? r : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

const POS = 2 ** 32;

/**
 * The same result as `bpeWordSimple` for merges where `mergesAreOrdered` holds, in
 * O(n log n): symbols in a linked list, candidate pairs in a heap by (rank, position), a
 * popped candidate skipped when its pair has changed since it was pushed.
 */
export function bpeWordHeap(word: string, ranks: MergeRanks): string[] {
  const n = word.length;
  if (n === 0) return [];
  const sym = initialSymbols(word);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const alive = new Uint8Array(n).fill(1);
  const heap = new NumberHeap();
  const consider = (i: number): void => {
    const j = next[i]!;
    if (j < 0) return;
    const rank = ranks.get(pairKey(sym[i]!, sym[j]!));
    if (rank !== undefined) heap.push(rank * POS + i);
  };
  for (let i = 0; i < n - 1; i++) consider(i);
  while (heap.size > 0) {
    const item = heap.pop();
    const i = item % POS;
    const rank = (item - i) / POS;
    const j = next[i]!;
    if (!alive[i] || j < 0 || ranks.get(pairKey(sym[i]!, sym[j]!)) !== rank) continue; // stale
    sym[i] = sym[i]! + sym[j]!;
    alive[j] = 0;
    const k = next[j]!;
    next[i] = k;
    if (k >= 0) prev[k] = i;
    if (prev[i]! >= 0) consider(prev[i]!);
    consider(i);
  }
  const out: string[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
  return out;
}
