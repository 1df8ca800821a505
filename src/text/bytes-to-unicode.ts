/**
 * The reversible byte <-> character table of GPT-2 / CLIP byte-level BPE.
 *
 * BPE works on strings, but must cover every byte. Printable Latin-1 bytes stand for
 * themselves; the 68 others (controls, space, NBSP, soft hyphen) are shifted to U+0100..U+0143
 * so that no symbol is whitespace or a control character. The order matters: the first 256
 * vocabulary entries of the official BPE file are these characters in exactly this order.
 */

function isPrintableByte(b: number): boolean {
  return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

/** Bytes in vocabulary order (printable ones first, ascending; then the rest, ascending). */
export const BYTE_ORDER: readonly number[] = (() => {
  const order: number[] = [];
  for (let b = 0; b < 256; b++) if (isPrintableByte(b)) order.push(b);
  for (let b = 0; b < 256; b++) if (!isPrintableByte(b)) order.push(b);
  return order;
})();

/** BYTE_TO_CHAR[b] is the one-character string that stands for byte b. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const table = new Array<string>(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCharCode(isPrintableByte(b) ? b : 256 + shifted++);
  }
  return table;
})();

/** Inverse of BYTE_TO_CHAR, keyed by UTF-16 code unit (all are below 0x144). */
export const CHAR_CODE_TO_BYTE: ReadonlyMap<number, number> = new Map(
  BYTE_TO_CHAR.map((c, b) => [c.charCodeAt(0), b] as [number, number]),
);
