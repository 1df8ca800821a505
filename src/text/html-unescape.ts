/**
 * The two HTML-entity decoders CLIP's clean-up runs:
 *  - `pythonHtmlUnescape`: Python's `html.unescape` (HTML5 rules: named references with or
 *    without ';', longest-prefix matching, numeric references with the HTML5 replacements for
 *    invalid code points). CLIP applies it twice after ftfy.
 *  - `ftfyUnescapeHtml`: ftfy's stricter variant (only references ending in ';', plus
 *    all-caps spellings such as `&EACUTE;` of the lower-case-only names).
 */
import { HTML5_ENTITIES_FLAT, HTML_INVALID_CHARREFS, HTML_INVALID_CODEPOINTS } from './ftfy-tables.js';

let html5: Map<string, string> | undefined;
let invalidCharrefs: Map<number, string> | undefined;
let invalidCodepoints: Set<number> | undefined;

function tables(): { html5: Map<string, string>; charrefs: Map<number, string>; dropped: Set<number> } {
  if (!html5) {
    html5 = new Map();
    for (let i = 0; i < HTML5_ENTITIES_FLAT.length; i += 2) html5.set(HTML5_ENTITIES_FLAT[i]!, HTML5_ENTITIES_FLAT[i + 1]!);
    invalidCharrefs = new Map(HTML_INVALID_CHARREFS);
    invalidCodepoints = new Set(HTML_INVALID_CODEPOINTS);
  }
  return { html5, charrefs: invalidCharrefs!, dropped: invalidCodepoints! };
}

/** Parses the digits of a numeric reference; anything above U+10FFFF comes back as Infinity. */
function parseCodepoint(digits: string, radix: 10 | 16): number {
  const trimmed = digits.replace(/^0+/, '');
  if (trimmed.length > (radix === 10 ? 7 : 6)) return Infinity;
  return trimmed === '' ? 0 : parseInt(trimmed, radix);
}

function numericReference(num: number): string {
  const t = tables();
  const fixed = t.charrefs.get(num);
  if (fixed !== undefined) return fixed;
  if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
  if (t.dropped.has(num)) return '';
  return String.fromCodePoint(num);
}

// Same alternatives as CPython's html._charref; /u so that {1,32} counts code points.
const CHARREF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function replaceCharref(_whole: string, ref: string): string {
  if (ref[0] === '#') {
    const hex = ref[1] === 'x' || ref[1] === 'X';
    const digits = ref.slice(hex ? 2 : 1).replace(/;$/, '');
    return numericReference(parseCodepoint(digits, hex ? 16 : 10));
  }
  const names = tables().html5;
  const exact = names.get(ref);
  if (exact !== undefined) return exact;
  // Longest prefix that is a known name (names without ';' such as "amp" or "not").
  for (let x = ref.length - 1; x > 1; x--) {
    const value = names.get(ref.slice(0, x));
    if (value !== undefined) return value + ref.slice(x);
  }
  return '&' + ref;
}

/** Python's `html.unescape`. */
export function pythonHtmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF_RE, replaceCharref);
}

let ftfyEntities: Map<string, string> | undefined;

/** ftfy's HTML_ENTITIES: `&name;` for every HTML5 name with ';', plus safe all-caps variants. */
function ftfyEntityTable(): Map<string, string> {
  if (ftfyEntities) return ftfyEntities;
  const table = new Map<string, string>();
  for (const [name, value] of tables().html5) {
    if (!name.endsWith(';')) continue;
    table.set('&' + name, value);
    if (name === name.toLowerCase()) {
      // Only when the all-caps spelling means nothing to html.unescape, else it would be ambiguous.
      const upper = '&' + name.toUpperCase();
      if (pythonHtmlUnescape(upper) === upper) table.set(upper, value.toUpperCase());
    }
  }
  ftfyEntities = table;
  return table;
}

const FTFY_ENTITY_RE = /&#?[0-9A-Za-z]{1,24};/g;

/** ftfy.fixes.unescape_html. */
export function ftfyUnescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  const table = ftfyEntityTable();
  return text.replace(FTFY_ENTITY_RE, (ref) => {
    const named = table.get(ref);
    if (named !== undefined) return named;
    if (ref.startsWith('&#')) {
      const decoded = pythonHtmlUnescape(ref);
      // A partial decode (the ';' left over) is not what the reference meant.
      return decoded.includes(';') ? ref : decoded;
    }
    return ref;
  });
}
