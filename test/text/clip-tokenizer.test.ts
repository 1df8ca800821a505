import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { ClipTokenizer, splitWords } from '../../src/text/clip-tokenizer.js';
import { clipBpeUrl, loadClipTokenizer } from '../../src/text/clip-vocabulary.js';
import { BYTE_ORDER, BYTE_TO_CHAR } from '../../src/text/bytes-to-unicode.js';
import { fixText } from '../../src/text/ftfy.js';
import { pythonHtmlUnescape } from '../../src/text/html-unescape.js';
import { clipNormalize } from '../../src/text/text-cleanup.js';
import { TokenizerError } from '../../src/text/tokenizer-error.js';

/** The CLIP section of the reference manifest: strings and the ids openai/CLIP gave them. */
interface ReferenceString {
  index: number;
  text: string;
  bpe_ids: number[];
  n_bpe: number;
  truncated: boolean;
  eot_position: number;
}
const manifest = JSON.parse(readFileSync(new URL('../fixtures/reference/manifest.json', import.meta.url), 'utf8')) as {
  clip: { strings: ReferenceString[]; tensors: Record<string, { shape: number[] }> };
};
const REFERENCE = manifest.clip.strings;
const CTX = 77;
const SOT = 49406;
const EOT = 49407;

/** Row `clip.tokenize(truncate=True)` gives for the recorded BPE ids. */
function expectedRow(ids: readonly number[]): number[] {
  const row = new Array<number>(CTX).fill(0);
  const tokens = [SOT, ...ids, EOT].slice(0, CTX);
  tokens[tokens.length - 1] = EOT;
  tokens.forEach((t, i) => (row[i] = t));
  return row;
}

/** Compares id lists; on failure the message names the first differing position and both ids. */
function expectIds(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  const a = Array.from(actual);
  const e = Array.from(expected);
  const n = Math.max(a.length, e.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== e[i]) {
      throw new Error(
        `${what}: first difference at position ${i}: got ${a[i]}, expected ${e[i]} ` +
          `(lengths ${a.length} vs ${e.length})\n  got      ${a.join(',')}\n  expected ${e.join(',')}`,
      );
    }
  }
}

let tok: ClipTokenizer;
let bpeText: string;

beforeAll(async () => {
  tok = await loadClipTokenizer();
  bpeText = gunzipSync(readFileSync(clipBpeUrl())).toString('utf8');
});

describe('reference strings (openai/CLIP d05afc4 + ftfy 6.3.1)', () => {
  it('has the 34 recorded strings and the (34, 77) token_ids tensor', () => {
    expect(REFERENCE.length).toBe(34);
    expect(manifest.clip.tensors['token_ids']?.shape).toEqual([34, CTX]);
  });

  it.each(REFERENCE.map((r) => [r.index, JSON.stringify(r.text).slice(0, 60), r] as const))(
    'encode #%i %s',
    (_i, _label, r) => {
      expectIds(tok.encode(r.text), r.bpe_ids, `encode(${JSON.stringify(r.text)})`);
    },
  );

  it('tokenize(all 34, truncate) equals clip.tokenize row by row, with EOT where the text model pools', () => {
    const batch = tok.tokenize(REFERENCE.map((r) => r.text));
    expect(batch.shape).toEqual([REFERENCE.length, CTX]);
    REFERENCE.forEach((r, row) => {
      const ids = batch.ids.subarray(row * CTX, (row + 1) * CTX);
      expectIds(ids, expectedRow(r.bpe_ids), `row ${row} ${JSON.stringify(r.text).slice(0, 40)}`);
      // The text tower pools at argmax(id) (first occurrence): the manifest records where that is.
      const argmax = Array.from(ids).indexOf(Math.max(...ids));
      expect(argmax, `row ${row} eot position`).toBe(r.eot_position);
      expect(r.bpe_ids.length + 2 > CTX, `row ${row} truncated flag`).toBe(r.truncated);
    });
  });
});

describe('Hugging Face vocab.json / merges.txt / tokenizer.json give the same ids', () => {
  /** What HF's CLIP files hold, derived from the official BPE file: 512 byte entries, merges, specials. */
  function hfFiles(): { vocab: Record<string, number>; mergesTxt: string; merges: string[] } {
    const merges = bpeText.split('\n').slice(1, 49152 - 256 - 2 + 1);
    const tokens = BYTE_ORDER.map((b) => BYTE_TO_CHAR[b]!);
    tokens.push(...tokens.map((t) => t + '</w>'));
    for (const m of merges) tokens.push(m.replace(' ', ''));
    tokens.push('<|startoftext|>', '<|endoftext|>');
    const vocab: Record<string, number> = {};
    tokens.forEach((t, i) => (vocab[t] = i));
    return { vocab, merges, mergesTxt: '#version: 0.2\n' + merges.join('\n') + '\n' };
  }

  const extra = [
    'a photo of a golden retriever.',
    'THE Quick brown fox — jumps over the lazy dog’s back!',
    'naïve façade, coöperate; 東京タワー 🗼',
    'x'.repeat(300),
  ];

  it('vocab.json + merges.txt', () => {
    const { vocab, mergesTxt } = hfFiles();
    expect(Object.keys(vocab).length).toBe(49408);
    const hf = ClipTokenizer.fromVocabAndMerges(JSON.stringify(vocab), mergesTxt);
    expect([hf.sotToken, hf.eotToken, hf.vocabSize]).toEqual([SOT, EOT, 49408]);
    for (const r of REFERENCE) expectIds(hf.encode(r.text), r.bpe_ids, `HF encode ${JSON.stringify(r.text)}`);
    for (const s of extra) expectIds(hf.encode(s), tok.encode(s), `HF encode ${JSON.stringify(s)}`);
  });

  it('tokenizer.json with merges as "a b" strings and as [a, b] pairs', () => {
    const { vocab, merges } = hfFiles();
    const asPairs = merges.map((m) => m.split(' '));
    for (const list of [merges, asPairs]) {
      const json = { model: { type: 'BPE', vocab, merges: list, end_of_word_suffix: '</w>' }, added_tokens: [] };
      const hf = ClipTokenizer.fromTokenizerJson(JSON.stringify(json));
      for (const r of REFERENCE) expectIds(hf.encode(r.text), r.bpe_ids, `tokenizer.json encode ${JSON.stringify(r.text)}`);
    }
  });

  it('rejects malformed files with a message naming the problem', () => {
    expect(() => ClipTokenizer.fromVocabAndMerges('{"a": 0', 'a b')).toThrow(/vocab\.json: not valid JSON/);
    expect(() => ClipTokenizer.fromVocabAndMerges({ a: -1 }, '')).toThrow(/token "a" has id -1/);
    expect(() => ClipTokenizer.fromVocabAndMerges({ a: 0 }, '')).toThrow(/no <\|startoftext\|> token/);
    expect(() => ClipTokenizer.fromVocabAndMerges({ '<|startoftext|>': 0, '<|endoftext|>': 1 }, '#version: 0.2\na b c')).toThrow(
      /merges\.txt line 2: expected two space-separated symbols/,
    );
    expect(() => ClipTokenizer.fromTokenizerJson({ model: { type: 'WordPiece', vocab: {} } })).toThrow(/model\.type is "WordPiece"/);
    expect(() => ClipTokenizer.fromTokenizerJson({})).toThrow(/no "model" object/);
  });

  it('a BPE piece missing from the vocabulary is reported with the word', () => {
    const hf = ClipTokenizer.fromVocabAndMerges({ '<|startoftext|>': 0, '<|endoftext|>': 1, 'a</w>': 2 }, '');
    expect(hf.encode('a')).toEqual([2]);
    expect(() => hf.encode('b')).toThrow(/"b<\/w>" \(from "b"\), which is not in the vocabulary/);
  });
});

describe('tokenize: special tokens, padding, truncation', () => {
  it('empty and blank strings give <|startoftext|> <|endoftext|> then zeros', () => {
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode(' \t\n ')).toEqual([]);
    const { ids, shape } = tok.tokenize('');
    expect(shape).toEqual([1, CTX]);
    expectIds(ids, [SOT, EOT, ...new Array<number>(CTX - 2).fill(0)], 'tokenize("")');
  });

  it('truncates to the context length keeping <|endoftext|> last (truncate defaults to true)', () => {
    const text = Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ');
    const body = tok.encode(text);
    expect(body.length).toBeGreaterThan(CTX);
    for (const ctx of [CTX, 16, 2]) {
      const { ids, shape } = tok.tokenize([text, 'short'], { contextLength: ctx });
      expect(shape).toEqual([2, ctx]);
      expectIds(ids.subarray(0, ctx), [SOT, ...body.slice(0, ctx - 2), EOT], `truncated row, ctx ${ctx}`);
    }
  });

  it('exactly contextLength tokens fit; one more throws when truncate is false', () => {
    const fits = Array.from({ length: CTX - 2 }, () => 'a').join(' ');
    expect(tok.encode(fits).length).toBe(CTX - 2);
    expectIds(tok.tokenize(fits, { truncate: false }).ids, [SOT, ...tok.encode(fits), EOT], 'full row');
    const tooLong = fits + ' a';
    expect(() => tok.tokenize(['ok', tooLong], { truncate: false })).toThrow(TokenizerError);
    expect(() => tok.tokenize(['ok', tooLong], { truncate: false })).toThrow(
      /text 1 is too long for context length 77: 78 tokens with start\/end/,
    );
    expect(() => tok.tokenize('x', { contextLength: 1 })).toThrow(/contextLength must be an integer >= 2/);
  });

  it('special-token text maps to its id wherever it appears; look-alikes are ordinary text', () => {
    expect(tok.encode('<|startoftext|>')).toEqual([SOT]);
    expect(tok.encode('a <|ENDOFTEXT|> b')).toEqual([320, EOT, 321]);
    // Upstream's IGNORECASE lets U+017F LONG S match 's': the pattern captures the whole
    // look-alike, but only the exact string is special, so it is byte-pair encoded.
    const lookAlike = tok.encode('<|\u017ftartoftext|>');
    expect(lookAlike).not.toContain(SOT);
    expect(lookAlike.length).toBeGreaterThan(1);
  });

  it('reproduces upstream regex quirks (checked against openai/CLIP code under Python 3.11)', () => {
    // U+0345 folds to a Greek letter, so under IGNORECASE it matches no alternative and vanishes.
    expect(tok.encode('a\u0345b')).toEqual([320, 321]);
    expect(splitWords("it's")).toEqual(['it', "'s"]);
    expect(splitWords("it'\u017f")).toEqual(['it', "'\u017f"]);
    expect(splitWords('x\ufeffy')).toEqual(['x', '\ufeff', 'y']); // U+FEFF is not \s for the regex module
  });
});

describe('decode', () => {
  const samples = ['a photo of a cat', 'Hello, world!', 'naïve café — 東京 😀👍🏽', "it's 3.14159", 'ελληνικά ΟΔΟΣ'];

  it.each(samples)('round trip %s', (s) => {
    const words = splitWords(clipNormalize(s));
    expect(tok.decode(tok.encode(s))).toBe(words.map((w) => w + ' ').join(''));
  });

  it('skipSpecialTokens reads a tokenize row back', () => {
    const { ids } = tok.tokenize('A Photo Of A DOG.');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('a photo of a dog . ');
    expect(tok.decode([SOT, 320, EOT])).toBe('<|startoftext|>a <|endoftext|>');
  });

  it('invalid UTF-8 from partial tokens becomes U+FFFD; unknown ids throw', () => {
    const glyph = tok.encode('\u{13000}'); // one 4-byte character, several byte-level tokens
    expect(glyph.length).toBeGreaterThan(1);
    expect(tok.decode(glyph.slice(0, 1))).toBe('\ufffd');
    expect(tok.decode(glyph)).toBe('\u{13000} ');
    expect(() => tok.decode([49408])).toThrow(/id 49408 \(position 0\) is not in the vocabulary/);
  });
});

describe('text clean-up', () => {
  const cases = JSON.parse(readFileSync(new URL('../fixtures/clip/ftfy-cases.json', import.meta.url), 'utf8')) as Record<
    'examples' | 'in_the_wild' | 'negative',
    [string, string][]
  >;

  for (const group of ['examples', 'in_the_wild', 'negative'] as const) {
    it(`ftfy.fix_text on ${cases[group].length} ${group} cases`, () => {
      const failures: string[] = [];
      for (const [original, fixed] of cases[group]) {
        const got = fixText(original);
        if (got !== fixed) failures.push(`${JSON.stringify(original)}\n    got      ${JSON.stringify(got)}\n    expected ${JSON.stringify(fixed)}`);
      }
      expect(failures, failures.join('\n')).toEqual([]);
    });
  }

  it('mojibake one layer deeper (UTF-8 read as Latin-1 again) is repaired too', () => {
    let failures = 0;
    for (const [original, fixed] of cases.in_the_wild) {
      const worse = String.fromCharCode(...new TextEncoder().encode(original));
      if (fixText(worse) !== fixed) failures++;
    }
    expect(failures).toBe(0);
  });

  it("Python's html.unescape rules, applied twice by CLIP", () => {
    expect(pythonHtmlUnescape('&amp;amp; &lt;b&gt; &#x41;&#66; &notit; &amp &#128; &#0; &#xD800; &#1114112; &bogus;')).toBe(
      '&amp; <b> AB ¬it; & € \ufffd \ufffd \ufffd &bogus;',
    );
    expect(clipNormalize('Fish &amp;amp; Chips')).toBe('fish & chips');
    // A line with '<' turns ftfy's own unescaping off, but CLIP's html.unescape still runs.
    expect(clipNormalize('<b>&lt;3</b>')).toBe('<b><3</b>');
  });

  it('whitespace: every Unicode space run folds to one space; NFC; width and quote folding', () => {
    expect(clipNormalize('a\u00a0\u2003\u3000b\u2029c\u2028d\r\ne\tf\u000cg')).toBe('a b c d e f g');
    expect(clipNormalize('f\u000bg')).toBe('fg'); // ftfy drops U+000B with the other control characters
    // ftfy reads a stray C1 NEL (U+0085) as windows-1252's ellipsis before line breaks are fixed.
    expect(clipNormalize('b\u0085c')).toBe('b\u2026c');
    expect(clipNormalize('Cafe\u0301')).toBe('caf\u00e9');
    expect(clipNormalize('ＬＯＵＤ “quotes” ﬁne')).toBe('loud "quotes" fine');
  });
});
