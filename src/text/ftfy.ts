/**
 * `ftfy.fix_text` with its default configuration (ftfy 6.3.1), which is how CLIP's tokenizer
 * calls it. Per line: HTML-entity decoding (only while no '<' has been seen), mojibake repair,
 * C1-control repair, Latin-ligature splitting, half/full-width folding, quote uncurling,
 * line-break normalisation, surrogate repair, terminal-escape and control-character removal,
 * and NFC — repeated until the line stops changing.
 */
import { isBad, UTF8_DETECTOR_RE } from './ftfy-badness.js';
import {
  CHARMAPS,
  decodeBinary,
  decodeUtf8Strict,
  decodeUtf8Variants,
  decodeWindows1252Strict,
  encodeBinary,
  LATIN_1,
  possibleEncoding,
  SLOPPY_WINDOWS_1252,
} from './ftfy-codecs.js';
import { ftfyUnescapeHtml } from './html-unescape.js';

/** ftfy's max_decode_length: longer lines are fixed in pieces of this many code units. */
const MAX_SEGMENT = 1_000_000;

// Byte-level regexes (on binary strings) from ftfy.chardata / ftfy.fixes.
/** UTF-8 sequences that would be valid if a 0x20 were the 0xA0 a program turned into a space. */
const ALTERED_UTF8_RE =
  /[\xc2\xc3\xc5\xce\xd0\xd9] |[\xe2\xe3] [\x80-\x84\x86-\x9f\xa1-\xbf]|[\xe0-\xe3][\x80-\x84\x86-\x9f\xa1-\xbf] |\xf0 [\x80-\xbf][\x80-\xbf]|\xf0[\x80-\xbf] [\x80-\xbf]|\xf0[\x80-\xbf][\x80-\xbf] /g;
/** "Ã " as a word: à followed by a space that was really a space (French "à la"), with Portuguese exceptions. */
const A_GRAVE_WORD_RE = /\xc3 (?! |quele|quela|quilo|s )/g;
/** UTF-8 sequences whose continuation bytes were lost (0x1A stands for a byte that became U+FFFD). */
const LOSSY_UTF8_RE =
  /[\xc2-\xdf]\x1a|[\xc2-\xc3]\?|\xed[\xa0-\xaf][\x1a?]\xed[\xb0-\xbf][\x1a?\x80-\xbf]|\xed[\xa0-\xaf][\x1a?\x80-\xbf]\xed[\xb0-\xbf][\x1a?]|[\xe0-\xef][\x1a?][\x1a\x80-\xbf]|[\xe0-\xef][\x1a\x80-\xbf][\x1a?]|[\xf0-\xf4][\x1a?][\x1a\x80-\xbf][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf][\x1a?][\x1a\x80-\xbf]|[\xf0-\xf4][\x1a\x80-\xbf][\x1a\x80-\xbf][\x1a?]|\x1a/g;
const C1_CONTROL_RE = /[\x80-\x9f]/;
const C1_CONTROL_RE_G = /[\x80-\x9f]/g;
const NON_ASCII_RE = /[^\x00-\x7f]/;
const UTF8_DETECTOR_SEARCH = new RegExp(UTF8_DETECTOR_RE.source, 'u');

function restoreByteA0(bytes: string): string {
  return bytes.replace(A_GRAVE_WORD_RE, '\xc3\xa0 ').replace(ALTERED_UTF8_RE, (m) => m.replace(/ /g, '\xa0'));
}

function replaceLossySequences(bytes: string): string {
  return bytes.replace(LOSSY_UTF8_RE, '\xef\xbf\xbd');
}

/** `ftfy.fixes.fix_c1_controls`: C1 controls read as their windows-1252 characters, like browsers do. */
export function fixC1Controls(text: string): string {
  return text.replace(C1_CONTROL_RE_G, (c) => decodeBinary(c, SLOPPY_WINDOWS_1252));
}

/** `ftfy.fixes.decode_inconsistent_utf8`: fix mojibake runs embedded in otherwise fine text. */
function decodeInconsistentUtf8(text: string): string {
  return text.replace(UTF8_DETECTOR_RE, (run) => (run.length < text.length && isBad(run) ? fixEncoding(run) : run));
}

/** One step of `ftfy._fix_encoding_one_step_and_explain` (default configuration). */
function fixEncodingOneStep(text: string): string {
  if (text.length === 0 || !NON_ASCII_RE.test(text) || !isBad(text)) return text;

  // Was it UTF-8 decoded in a single-byte codec? Try ftfy's codecs in order.
  let latin1Possible = false;
  for (const codec of CHARMAPS) {
    if (!possibleEncoding(text, codec)) continue;
    if (codec === LATIN_1) latin1Possible = true;
    let bytes = encodeBinary(text, codec);
    if (codec.name !== 'macroman') {
      ALTERED_UTF8_RE.lastIndex = 0;
      if (ALTERED_UTF8_RE.test(bytes)) bytes = restoreByteA0(bytes);
      ALTERED_UTF8_RE.lastIndex = 0;
    }
    if (codec.sloppy) bytes = replaceLossySequences(bytes);
    const variant = bytes.includes('\xed') || bytes.includes('\xc0');
    const decoded = variant ? decodeUtf8Variants(bytes) : decodeUtf8Strict(bytes);
    if (decoded !== null) return decoded;
  }

  // Mojibake embedded in text that as a whole does not re-encode.
  if (UTF8_DETECTOR_SEARCH.test(text)) {
    const fixed = decodeInconsistentUtf8(text);
    if (fixed !== text) return fixed;
  }

  // Latin-1 with C1 controls was most likely meant as windows-1252. (ftfy checks for
  // "windows-1252" among the possible codecs here, a name its list never holds, so this
  // branch runs whenever Latin-1 was possible.)
  if (latin1Possible) {
    const fixed = decodeWindows1252Strict(encodeBinary(text, LATIN_1));
    if (fixed !== null && fixed !== text) return fixed;
  }

  if (C1_CONTROL_RE.test(text)) return fixC1Controls(text);
  return text;
}

/** `ftfy.fix_encoding` (default configuration): repeat the one-step fix until nothing changes. */
export function fixEncoding(text: string): string {
  for (;;) {
    const next = fixEncodingOneStep(text);
    if (next === text) return text;
    text = next;
  }
}

const LIGATURES: ReadonlyMap<string, string> = new Map([
  ['\u0132', 'IJ'], ['\u0133', 'ij'], ['\u0149', '\u02bcn'],
  ['\u01f1', 'DZ'], ['\u01f2', 'Dz'], ['\u01f3', 'dz'],
  ['\u01c4', 'D\u017d'], ['\u01c5', 'D\u017e'], ['\u01c6', 'd\u017e'],
  ['\u01c7', 'LJ'], ['\u01c8', 'Lj'], ['\u01c9', 'lj'],
  ['\u01ca', 'NJ'], ['\u01cb', 'Nj'], ['\u01cc', 'nj'],
  ['\ufb00', 'ff'], ['\ufb01', 'fi'], ['\ufb02', 'fl'], ['\ufb03', 'ffi'], ['\ufb04', 'ffl'],
  ['\ufb05', '\u017ft'], ['\ufb06', 'st'],
]);
const LIGATURE_RE = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;

/** Half-/full-width forms (U+FF01..U+FFEF) that NFKC changes, plus the ideographic space. */
const WIDTH_MAP: ReadonlyMap<string, string> = (() => {
  const map = new Map<string, string>([['\u3000', ' ']]);
  for (let cp = 0xff01; cp < 0xfff0; cp++) {
    const c = String.fromCharCode(cp);
    const folded = c.normalize('NFKC');
    if (folded !== c) map.set(c, folded);
  }
  return map;
})();
const WIDTH_RE = /[\u3000\uff01-\uffef]/g;

const TERMINAL_ESCAPE_RE = /\x1b\[[\p{Nd};]*[a-zA-Z]/gu;
const CONTROL_CHARS_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** The per-character fixers ftfy runs after mojibake repair, in its order. */
function fixCharacters(text: string): string {
  if (C1_CONTROL_RE.test(text)) text = fixC1Controls(text);
  text = text.replace(LIGATURE_RE, (c) => LIGATURES.get(c) ?? c);
  text = text.replace(WIDTH_RE, (c) => WIDTH_MAP.get(c) ?? c);
  text = text.replace(/[\u02bc\u2018-\u201b]/g, "'").replace(/[\u201c-\u201f]/g, '"');
  text = text.replace(/\r\n?|[\u2028\u2029\x85]/g, '\n');
  // JavaScript strings hold proper pairs as one character already; lone halves become U+FFFD.
  text = text.replace(LONE_SURROGATE_RE, '\ufffd');
  text = text.replace(TERMINAL_ESCAPE_RE, '');
  text = text.replace(CONTROL_CHARS_RE, '');
  return text;
}

/** Printable ASCII, tab and newline only: every fixer but HTML unescaping leaves such text alone. */
const PLAIN_ASCII_RE = /^[\x20-\x7e\t\n]*$/;

/** `ftfy.fix_and_explain` on one segment, default configuration, without the explanation. */
function fixSegment(text: string, unescapeHtml: boolean): string {
  if (PLAIN_ASCII_RE.test(text) && !(unescapeHtml && text.includes('&'))) return text;
  for (;;) {
    const before = text;
    if (unescapeHtml) text = ftfyUnescapeHtml(text);
    text = fixEncoding(text);
    text = fixCharacters(text);
    text = text.normalize('NFC');
    if (text === before) return text;
  }
}

/** `ftfy.fix_text(text)` with ftfy's defaults. */
export function fixText(text: string): string {
  let unescapeHtml = true; // "auto": on until a line containing '<' is seen, then off for good.
  let out = '';
  let pos = 0;
  while (pos < text.length) {
    const newline = text.indexOf('\n', pos);
    let end = newline < 0 ? text.length : newline + 1;
    if (end - pos > MAX_SEGMENT) {
      end = pos + MAX_SEGMENT;
      // Do not split a surrogate pair (Python counts code points).
      if (/[\ud800-\udbff]/.test(text[end - 1]!)) end += 1;
    }
    const segment = text.slice(pos, end);
    if (unescapeHtml && segment.includes('<')) unescapeHtml = false;
    out += fixSegment(segment, unescapeHtml);
    pos = end;
  }
  return out;
}
