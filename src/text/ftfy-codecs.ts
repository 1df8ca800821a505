/**
 * The byte-level pieces of ftfy's mojibake repair: encoding text in the single-byte codecs
 * ftfy tries (including its "sloppy" windows-125x variants), and decoding the bytes again as
 * strict UTF-8 or as ftfy's "utf-8-variants" (CESU-8 surrogate pairs, Java's C0 80 null).
 *
 * Byte strings are kept as "binary strings" (one char per byte, U+0000..U+00FF) so that ftfy's
 * byte regexes can run as ordinary JavaScript regexes without the /u flag.
 */
import { CHARMAP_ENCODINGS, WINDOWS_1252_STRICT_UPPER } from './ftfy-tables.js';

export interface Charmap {
  readonly name: string;
  readonly sloppy: boolean;
  /** What bytes 0x80..0xFF decode to. */
  readonly upper: string;
  /** Character -> byte for every character the codec can encode. */
  readonly encode: ReadonlyMap<number, number>;
}

function buildCharmap(name: string, upper: string): Charmap {
  const sloppy = name.startsWith('sloppy-');
  const encode = new Map<number, number>();
  for (let b = 0; b < 0x80; b++) encode.set(b, b);
  if (sloppy) {
    // ftfy lets byte 0x1A stand for U+FFFD in its sloppy codecs, so U+001A itself has no byte.
    encode.delete(0x1a);
    encode.set(0xfffd, 0x1a);
  }
  for (let i = 0; i < 0x80; i++) encode.set(upper.charCodeAt(i), 0x80 + i);
  return { name, sloppy, upper, encode };
}

/** ftfy's CHARMAP_ENCODINGS, in the order it tries them. */
export const CHARMAPS: readonly Charmap[] = CHARMAP_ENCODINGS.map((c) => buildCharmap(c.name, c.upper));

export const LATIN_1 = CHARMAPS[0]!;
export const SLOPPY_WINDOWS_1252 = CHARMAPS.find((c) => c.name === 'sloppy-windows-1252')!;

/** `chardata.possible_encoding`: every character of `text` has a byte in this codec. */
export function possibleEncoding(text: string, codec: Charmap): boolean {
  for (let i = 0; i < text.length; i++) {
    if (!codec.encode.has(text.charCodeAt(i))) return false;
  }
  return true;
}

/** Encodes text the codec can represent (check `possibleEncoding` first) into a binary string. */
export function encodeBinary(text: string, codec: Charmap): string {
  let out = '';
  for (let i = 0; i < text.length; i++) out += String.fromCharCode(codec.encode.get(text.charCodeAt(i))!);
  return out;
}

/** Decodes a binary string with the codec (all four of ftfy's non-sloppy codecs define every byte). */
export function decodeBinary(bytes: string, codec: Charmap): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes.charCodeAt(i);
    out += b < 0x80 ? (codec.sloppy && b === 0x1a ? '\ufffd' : bytes[i]!) : codec.upper[b - 0x80]!;
  }
  return out;
}

/** Strict windows-1252 decode (Python's codec): null when a byte is undefined there. */
export function decodeWindows1252Strict(bytes: string): string | null {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes.charCodeAt(i);
    if (b < 0x80) {
      out += bytes[i]!;
      continue;
    }
    const c = WINDOWS_1252_STRICT_UPPER[b - 0x80]!;
    if (c === '\uffff') return null;
    out += c;
  }
  return out;
}

function binaryToBytes(bytes: string): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes.charCodeAt(i);
  return out;
}

// ignoreBOM: Python's 'utf-8' codec keeps a leading U+FEFF, TextDecoder would drop it.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict UTF-8 decode (rejects overlongs, surrogates, truncation); null on any error. */
export function decodeUtf8Strict(bytes: string): string | null {
  try {
    return strictUtf8.decode(binaryToBytes(bytes));
  } catch {
    return null;
  }
}

// Six-byte CESU-8 encoding of a surrogate pair, and Java's two-byte null.
const UTF8_VARIANT_RE = /\xed[\xa0-\xaf][\x80-\xbf]\xed[\xb0-\xbf][\x80-\xbf]|\xc0\x80/g;

/** ftfy's "utf-8-variants" codec, strict: standard UTF-8 plus CESU-8 pairs and C0 80; null on error. */
export function decodeUtf8Variants(bytes: string): string | null {
  let out = '';
  let last = 0;
  for (const m of bytes.matchAll(UTF8_VARIANT_RE)) {
    const plain = decodeUtf8Strict(bytes.slice(last, m.index));
    if (plain === null) return null;
    out += plain;
    const s = m[0];
    if (s.length === 2) {
      out += '\u0000';
    } else {
      const codepoint =
        ((s.charCodeAt(1) & 0x0f) << 16) +
        ((s.charCodeAt(2) & 0x3f) << 10) +
        ((s.charCodeAt(4) & 0x0f) << 6) +
        (s.charCodeAt(5) & 0x3f) +
        0x10000;
      out += String.fromCodePoint(codepoint);
    }
    last = m.index + s.length;
  }
  const rest = decodeUtf8Strict(bytes.slice(last));
  return rest === null ? null : out + rest;
}
