/**
 * CLIP's text clean-up before BPE (simple_tokenizer.py `basic_clean`, `whitespace_clean`, then
 * `.lower()`): ftfy.fix_text, Python's html.unescape applied twice, whitespace runs folded to
 * one space, stripped, lower-cased.
 */
import { fixText } from './ftfy.js';
import { pythonHtmlUnescape } from './html-unescape.js';

/** Characters Python's `str.strip()` removes (str.isspace). */
const PY_STRIP_CLASS = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/**
 * The `regex` module's \s (Unicode White_Space), used by CLIP's whitespace folding and
 * pre-tokeniser. Spelled out because JavaScript's \s also matches U+FEFF and misses U+0085.
 */
export const REGEX_SPACE_CLASS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const STRIP_RE = new RegExp(`^[${PY_STRIP_CLASS}]+|[${PY_STRIP_CLASS}]+$`, 'gu');
const SPACE_RUN_RE = new RegExp(`[${REGEX_SPACE_CLASS}]+`, 'gu');

/** Python's `str.strip()` with no argument. */
export function pythonStrip(text: string): string {
  return text.replace(STRIP_RE, '');
}

/** `basic_clean`: ftfy, then html.unescape twice (entities escaped twice, like "&amp;amp;"), strip. */
export function basicClean(text: string): string {
  return pythonStrip(pythonHtmlUnescape(pythonHtmlUnescape(fixText(text))));
}

/** `whitespace_clean`: every whitespace run becomes one space; strip. */
export function whitespaceClean(text: string): string {
  return pythonStrip(text.replace(SPACE_RUN_RE, ' '));
}

/** The full normalisation CLIP applies before splitting into words. */
export function clipNormalize(text: string): string {
  return whitespaceClean(basicClean(text)).toLowerCase();
}
