/**
 * ftfy's mojibake heuristic (`ftfy.badness.is_bad`, ftfy 6.3.1): text "is bad" when it holds a
 * juxtaposition of characters that is far likelier to come from UTF-8 decoded in a single-byte
 * codec than from real writing (an accented lower-case letter followed by a currency sign...).
 * The category memberships come from ftfy-tables.ts; the sequences are ftfy's, listed below.
 */
import { MOJIBAKE_CATEGORIES as C, UTF8_CLUES } from './ftfy-tables.js';

/** Python `re`'s \s for str patterns (str.isspace): Unicode White_Space plus U+001C..U+001F. */
export const PY_RE_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/** Python `re`'s \w for str patterns: letters, numbers and '_'. */
const PY_RE_WORD = '\\p{L}\\p{N}_';

const cls = (...bodies: string[]): string => '[' + bodies.join('') + ']';
const u = (codes: number[]): string => codes.map((c) => '\\u' + c.toString(16).padStart(4, '0')).join('');

const STRONG = [C.bad, C.lower_accented, C.upper_accented, C.box, C.start_punctuation, C.end_punctuation, C.currency, C.numeric, C.law];
const ARABIC_FOLLOW = cls(C.common, C.currency, C.bad, C.numeric, C.start_punctuation, u([0x178, 0x160, 0xae, 0xb0, 0xb5, 0xbb]));

// One alternative per line, in ftfy's order (order does not change whether any matches).
const ALTERNATIVES: string[] = [
  cls(C.c1),
  cls(...STRONG) + cls(C.bad),
  '[a-zA-Z]' + cls(C.lower_common, C.upper_common) + cls(C.bad),
  cls(C.bad) + cls(C.lower_accented, C.upper_accented, C.box, C.start_punctuation, C.end_punctuation, C.currency, C.numeric, C.law),
  cls(C.lower_accented, C.lower_common, C.box, C.end_punctuation, C.currency, C.numeric) + cls(C.upper_accented),
  cls(C.box, C.end_punctuation, C.currency, C.numeric) + cls(C.lower_accented),
  cls(C.lower_accented, C.box, C.end_punctuation) + cls(C.currency),
  cls(PY_RE_SPACE) + cls(C.upper_accented) + cls(C.currency),
  cls(C.upper_accented, C.box) + cls(C.numeric, C.law),
  cls(C.lower_accented, C.upper_accented, C.box, C.currency, C.end_punctuation) + cls(C.start_punctuation) + cls(C.numeric),
  cls(C.lower_accented, C.upper_accented, C.currency, C.numeric, C.box, C.law) + cls(C.end_punctuation) + cls(C.start_punctuation),
  cls(C.currency, C.numeric, C.box) + cls(C.start_punctuation),
  '[a-z]' + cls(C.upper_accented) + cls(C.start_punctuation, C.currency),
  cls(C.box) + cls(C.kaomoji),
  cls(C.lower_accented, C.upper_accented, C.currency, C.numeric, C.start_punctuation, C.end_punctuation, C.law) + cls(C.box),
  cls(C.box) + cls(C.end_punctuation),
  cls(C.lower_accented, C.upper_accented) + cls(C.start_punctuation, C.end_punctuation) + cls(PY_RE_WORD),
  // The ligature oe not followed by an unaccented Latin letter.
  cls(u([0x152, 0x153])) + '[^A-Za-z]',
  // Degree sign after a capital accented letter.
  cls(C.upper_accented) + u([0xb0]),
  // Common two-character windows-1252 mojibake not covered above.
  cls(u([0xc2, 0xc3, 0xce, 0xd0])) +
    cls(u([0x20ac, 0x153, 0x160, 0x161, 0xa2, 0xa3, 0x178, 0x17e, 0xa0, 0xad, 0xae, 0xa9, 0xb0, 0xb7, 0xbb]), C.start_punctuation, C.end_punctuation, u([0x2013, 0x2014, 0xb4])),
  u([0xd7]) + cls(u([0xb2, 0xb3])),
  // windows-1252 mojibake of Arabic: four characters, because the 'common' ones are allowed.
  cls(u([0xd8, 0xd9])) + ARABIC_FOLLOW + cls(u([0xd8, 0xd9])) + ARABIC_FOLLOW,
  // Starts of three-byte sequences of some South Asian scripts.
  u([0xe0]) + cls(u([0xb2, 0xb5, 0xb9, 0xbc, 0xbd, 0xbe])),
  // MacRoman mojibake.
  u([0x221a]) + cls(u([0xb1, 0x2202, 0x2020, 0x2260, 0xae, 0x2122, 0xb4, 0x2264, 0x2265, 0xa5, 0xb5, 0xf8])),
  u([0x2248]) + cls(u([0xb0, 0xa2])),
  u([0x201a, 0xc4]) + cls(u([0xec, 0xee, 0xef, 0xf2, 0xf4, 0xfa, 0xf9, 0xfb, 0x2020, 0xb0, 0xa2, 0x3c0])),
  u([0x201a]) + cls(u([0xe2, 0xf3])) + cls(u([0xe0, 0xe4, 0xb0, 0xea])),
  // windows-1251 mojibake of U+2000..U+206F.
  u([0x432, 0x402]),
  // windows-1251 mojibake of Latin-1 / Cyrillic: three characters.
  cls(u([0x412, 0x413, 0x420, 0x421])) + cls(C.c1, C.bad, C.start_punctuation, C.end_punctuation, C.currency, u([0xb0, 0xb5])) + cls(u([0x412, 0x413, 0x420, 0x421])),
  // windows-1251 on top of Latin-1 on top of windows-1252, next to a Latin letter or space.
  u([0x413, 0x45e, 0x412, 0x402, 0x412]) + '[^\\n][A-Za-z ]',
  // windows-1252 encodings of a-grave, a-acute and U+00A0 itself.
  u([0xc3]) + cls(u([0xa0, 0xa1])),
  '[a-z]' + cls(PY_RE_SPACE) + '?' + cls(u([0xc3, 0xc2])) + '[ ]',
  '^' + cls(u([0xc3, 0xc2])) + '[ ]',
  // A-circumflex standing in front of the very character it encodes.
  cls('a-z.,?!', C.end_punctuation) + u([0xc2]) + cls(' ', C.start_punctuation, C.end_punctuation),
  // windows-1253 mojibake of U+2000..U+206F.
  u([0x3b2, 0x20ac]) + cls(u([0x2122, 0xa0, 0x386, 0xad, 0xae, 0xb0])),
  // windows-1253 mojibake of Latin-1 / Greek: three characters.
  cls(u([0x392, 0x393, 0x39e, 0x39f])) + cls(C.c1, C.bad, C.start_punctuation, C.end_punctuation, C.currency, u([0xb0])) + cls(u([0x392, 0x393, 0x39e, 0x39f])),
  // windows-1257 mojibake of U+2000..U+206F.
  u([0x101, 0x20ac]),
];

const BADNESS_RE = new RegExp(ALTERNATIVES.join('|'), 'u');

/** `ftfy.badness.is_bad`: does the text look like it contains mojibake? */
export function isBad(text: string): boolean {
  return BADNESS_RE.test(text);
}

/**
 * ftfy's UTF8_DETECTOR_RE: runs of characters that look like UTF-8 lead + continuation bytes
 * seen through a single-byte codec, not preceded by a (strict) continuation-looking character.
 */
export const UTF8_DETECTOR_RE = new RegExp(
  `(?<![${UTF8_CLUES.utf8ContinuationStrict}])` +
    `(?:[${UTF8_CLUES.utf8FirstOf2}][${UTF8_CLUES.utf8Continuation}]` +
    `|[${UTF8_CLUES.utf8FirstOf3}][${UTF8_CLUES.utf8Continuation}]{2}` +
    `|[${UTF8_CLUES.utf8FirstOf4}][${UTF8_CLUES.utf8Continuation}]{3})+`,
  'gu',
);
