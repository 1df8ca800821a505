/**
 * CLIP's byte-level BPE tokenizer, token for token the same as openai/CLIP's
 * `simple_tokenizer.SimpleTokenizer` + `clip.tokenize` (commit d05afc4):
 *   clean-up (ftfy, html.unescape x2, whitespace folding, lower-case) -> the official regex
 *   split -> UTF-8 bytes as characters -> BPE with `</w>` end-of-word -> ids;
 *   `tokenize` adds <|startoftext|> 49406 / <|endoftext|> 49407, pads with 0 to the context
 *   length and truncates keeping <|endoftext|> as the last id.
 *
 * Known limit: for characters assigned after Unicode 14 (the tables of Python 3.11, which made
 * the reference ids), lower-casing, \p{L}/\p{N} and NFC follow the JavaScript runtime's newer
 * tables. Upstream itself shifts the same way between Python / `regex` versions.
 */
import { bpeWordHeap, bpeWordSimple, END_OF_WORD, mergesAreOrdered, pairKey } from './bpe.js';
import { BYTE_ORDER, BYTE_TO_CHAR, CHAR_CODE_TO_BYTE } from './bytes-to-unicode.js';
import { clipNormalize, REGEX_SPACE_CLASS } from './text-cleanup.js';
import { TokenizerError } from './tokenizer-error.js';

export const START_OF_TEXT = '<|startoftext|>';
export const END_OF_TEXT = '<|endoftext|>';
/** Merges CLIP uses from its BPE file: 49152 - 256 - 2 (the file holds more; the rest are ignored). */
export const CLIP_NUM_MERGES = 49152 - 256 - 2;
export const CLIP_CONTEXT_LENGTH = 77;

export interface TokenizeOptions {
  /** Ids per row (CLIP: 77). */
  contextLength?: number;
  /**
   * true (default, as `clip.tokenize(truncate=True)`): cut to `contextLength` and make the last
   * id <|endoftext|>. false: throw a TokenizerError, as upstream's default does.
   */
  truncate?: boolean;
}

export interface TokenizedBatch {
  /** Row-major [n, contextLength], zero-padded. */
  ids: Int32Array;
  shape: [number, number];
}

export interface DecodeOptions {
  /** Drop <|startoftext|> and stop at the first <|endoftext|> (for rows from `tokenize`). */
  skipSpecialTokens?: boolean;
}

/**
 * The official split pattern. Upstream compiles it with IGNORECASE on already lower-cased text;
 * the only effects that survive lower-casing are spelled out here instead of using /i (whose
 * case folding differs from the `regex` module's): U+017F LONG S also matches 's', and U+0345
 * (which folds to a Greek letter) matches no alternative at all, so it is dropped like a space.
 */
const WORD_RE = new RegExp(
  `<\\|[s\u017f]tartoftext\\|>|<\\|endoftext\\|>|'[s\u017f]|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${REGEX_SPACE_CLASS}\\p{L}\\p{N}\u0345]+`,
  'gu',
);

/** The words (regex matches) of already-normalised text, before byte mapping and BPE. */
export function splitWords(normalized: string): string[] {
  return Array.from(normalized.matchAll(WORD_RE), (m) => m[0]);
}

/**
 * Words at least this long (in bytes) use the O(n log n) heap BPE, when the merges allow it;
 * shorter ones the reference loop, which is faster for them. Both give identical symbols.
 */
const HEAP_BPE_MIN_LENGTH = 16;

/** Above this many cached words the cache is cleared, so streaming arbitrary text cannot exhaust memory. */
const MAX_CACHE_ENTRIES = 500_000;

const utf8Encoder = new TextEncoder();

/** The UTF-8 bytes of `word`, each written as its BPE byte-character. */
function toByteChars(word: string): string {
  let ascii = true;
  for (let i = 0; i < word.length; i++) {
    if (word.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  let out = '';
  if (ascii) {
    for (let i = 0; i < word.length; i++) out += BYTE_TO_CHAR[word.charCodeAt(i)]!;
    return out;
  }
  for (const b of utf8Encoder.encode(word)) out += BYTE_TO_CHAR[b]!;
  return out;
}

function parseJson(json: string | object, what: string): unknown {
  if (typeof json !== 'string') return json;
  try {
    return JSON.parse(json) as unknown;
  } catch (e) {
    throw new TokenizerError(`${what}: not valid JSON (${(e as Error).message})`);
  }
}

function checkVocab(vocab: unknown, what: string): Map<string, number> {
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) {
    throw new TokenizerError(`${what}: expected an object mapping token -> id, got ${Array.isArray(vocab) ? 'an array' : typeof vocab}`);
  }
  const map = new Map<string, number>();
  for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new TokenizerError(`${what}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, expected a non-negative integer`);
    }
    map.set(token, id);
  }
  return map;
}

function parseMergeLine(line: string, where: string): [string, string] {
  // Fast path for the usual "a b" line; Python's str.split() semantics otherwise.
  const space = line.indexOf(' ');
  if (space > 0 && space < line.length - 1 && line.indexOf(' ', space + 1) < 0 && !/[\t\r\n\v\f]/.test(line)) {
    return [line.slice(0, space), line.slice(space + 1)];
  }
  const parts = line.trim().split(/\s+/);
  if (parts.length !== 2) {
    throw new TokenizerError(`${where}: expected two space-separated symbols, got ${JSON.stringify(line)}`);
  }
  return [parts[0]!, parts[1]!];
}

export class ClipTokenizer {
  readonly sotToken: number;
  readonly eotToken: number;
  /** Largest id + 1 (49408 for CLIP). */
  readonly vocabSize: number;

  private readonly encoder: ReadonlyMap<string, number>;
  private readonly decoder: ReadonlyMap<number, string>;
  private readonly ranks: ReadonlyMap<string, number>;
  private readonly specials: ReadonlyMap<string, number>;
  /** Whether `bpeWordHeap` is exact for these merges (see `mergesAreOrdered`). */
  private readonly heapBpe: boolean;
  private readonly cache = new Map<string, readonly number[]>();

  private constructor(encoder: Map<string, number>, merges: readonly [string, string][], source: string) {
    this.encoder = encoder;
    const decoder = new Map<number, string>();
    let maxId = -1;
    for (const [token, id] of encoder) {
      decoder.set(id, token);
      if (id > maxId) maxId = id;
    }
    this.decoder = decoder;
    this.vocabSize = maxId + 1;
    const ranks = new Map<string, number>();
    merges.forEach(([a, b], rank) => {
      ranks.set(pairKey(a, b), rank); // a repeated pair takes its last rank, as dict(zip(...)) does
    });
    this.ranks = ranks;
    this.heapBpe = mergesAreOrdered(merges);
    const sot = encoder.get(START_OF_TEXT);
    const eot = encoder.get(END_OF_TEXT);
    if (sot === undefined || eot === undefined) {
      throw new TokenizerError(`${source}: the vocabulary has no ${sot === undefined ? START_OF_TEXT : END_OF_TEXT} token`);
    }
    this.sotToken = sot;
    this.eotToken = eot;
    this.specials = new Map([[START_OF_TEXT, sot], [END_OF_TEXT, eot]]);
  }

  /** From the gzipped official BPE file (`bpe_simple_vocab_16e6.txt.gz`), gunzipped with DecompressionStream. */
  static async fromBpeGz(gz: Uint8Array): Promise<ClipTokenizer> {
    if (gz.length < 2 || gz[0] !== 0x1f || gz[1] !== 0x8b) {
      throw new TokenizerError(`BPE file: not gzip data (first bytes ${Array.from(gz.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ')})`);
    }
    const stream = new Blob([new Uint8Array(gz)]).stream().pipeThrough(new DecompressionStream('gzip'));
    const text = await new Response(stream).text();
    return ClipTokenizer.fromBpeText(text);
  }

  /**
   * From the text of the official BPE file: a version line, then one merge per line. As
   * upstream, the vocabulary is the 256 byte-characters, the same with `</w>`, one token per
   * merge (the first CLIP_NUM_MERGES merges), then the two special tokens.
   */
  static fromBpeText(text: string, numMerges: number = CLIP_NUM_MERGES): ClipTokenizer {
    // Only the first numMerges + 1 lines matter; skip splitting the other ~213k.
    let end = -1;
    for (let k = 0; k <= numMerges; k++) {
      const newline = text.indexOf('\n', end + 1);
      if (newline < 0) {
        end = text.length;
        break;
      }
      end = newline;
    }
    const lines = text.slice(0, end).split('\n');
    if (lines.length < numMerges + 1) {
      throw new TokenizerError(`BPE file: ${lines.length - 1} merge lines, expected at least ${numMerges}`);
    }
    const merges = lines.slice(1, numMerges + 1).map((l, i) => parseMergeLine(l, `BPE file line ${i + 2}`));
    const vocab: string[] = BYTE_ORDER.map((b) => BYTE_TO_CHAR[b]!);
    for (let i = 0; i < 256; i++) vocab.push(vocab[i]! + END_OF_WORD);
    for (const [a, b] of merges) vocab.push(a + b);
    vocab.push(START_OF_TEXT, END_OF_TEXT);
    const encoder = new Map<string, number>();
    vocab.forEach((token, id) => encoder.set(token, id)); // later duplicates win, as dict(zip(...)) does
    return new ClipTokenizer(encoder, merges, 'BPE file');
  }

  /** From Hugging Face `vocab.json` (token -> id) and `merges.txt` (optional `#version` header). */
  static fromVocabAndMerges(vocabJson: string | object, mergesTxt: string): ClipTokenizer {
    const encoder = checkVocab(parseJson(vocabJson, 'vocab.json'), 'vocab.json');
    const merges: [string, string][] = [];
    mergesTxt.split('\n').forEach((line, i) => {
      if (line.trim() === '' || (i === 0 && line.startsWith('#version'))) return;
      merges.push(parseMergeLine(line, `merges.txt line ${i + 1}`));
    });
    return new ClipTokenizer(encoder, merges, 'vocab.json');
  }

  /** From a Hugging Face `tokenizer.json` (model.type "BPE"; merges as "a b" strings or [a, b] pairs). */
  static fromTokenizerJson(json: string | object): ClipTokenizer {
    const root = parseJson(json, 'tokenizer.json') as { model?: unknown; added_tokens?: unknown };
    const model = root?.model as { type?: unknown; vocab?: unknown; merges?: unknown; end_of_word_suffix?: unknown } | undefined;
    if (typeof model !== 'object' || model === null) throw new TokenizerError('tokenizer.json: no "model" object');
    if (model.type !== undefined && model.type !== 'BPE') {
      throw new TokenizerError(`tokenizer.json: model.type is ${JSON.stringify(model.type)}, expected "BPE"`);
    }
    if (model.end_of_word_suffix != null && model.end_of_word_suffix !== END_OF_WORD) {
      throw new TokenizerError(`tokenizer.json: model.end_of_word_suffix is ${JSON.stringify(model.end_of_word_suffix)}, CLIP uses "${END_OF_WORD}"`);
    }
    const encoder = checkVocab(model.vocab, 'tokenizer.json model.vocab');
    if (Array.isArray(root.added_tokens)) {
      for (const t of root.added_tokens as { id?: unknown; content?: unknown }[]) {
        if (typeof t?.content === 'string' && typeof t.id === 'number' && !encoder.has(t.content)) encoder.set(t.content, t.id);
      }
    }
    if (!Array.isArray(model.merges)) throw new TokenizerError('tokenizer.json: model.merges is not an array');
    const merges = (model.merges as unknown[]).map((m, i): [string, string] => {
      if (typeof m === 'string') return parseMergeLine(m, `tokenizer.json model.merges[${i}]`);
      if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
      throw new TokenizerError(`tokenizer.json model.merges[${i}]: expected "a b" or ["a", "b"], got ${JSON.stringify(m)}`);
    });
    return new ClipTokenizer(encoder, merges, 'tokenizer.json');
  }

  /** Ids of `text` without the start/end tokens (upstream `SimpleTokenizer.encode`). */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const match of clipNormalize(text).matchAll(WORD_RE)) {
      for (const id of this.encodeWord(match[0])) ids.push(id);
    }
    return ids;
  }

  /** BPE ids of one pre-tokenised (already normalised) word, cached. */
  private encodeWord(word: string): readonly number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const special = this.specials.get(word);
    let ids: number[];
    if (special !== undefined) {
      ids = [special];
    } else {
      const chars = toByteChars(word);
      const bpe = this.heapBpe && chars.length >= HEAP_BPE_MIN_LENGTH ? bpeWordHeap : bpeWordSimple;
      ids = bpe(chars, this.ranks).map((symbol) => {
        const id = this.encoder.get(symbol);
        if (id === undefined) throw new TokenizerError(`BPE produced ${JSON.stringify(symbol)} (from ${JSON.stringify(word)}), which is not in the vocabulary`);
        return id;
      });
    }
    if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /**
   * `clip.tokenize`: [n, contextLength] ids, each row <|startoftext|> + encode(text) +
   * <|endoftext|>, zero-padded.
   */
  tokenize(texts: string | readonly string[], options: TokenizeOptions = {}): TokenizedBatch {
    const contextLength = options.contextLength ?? CLIP_CONTEXT_LENGTH;
    const truncate = options.truncate ?? true;
    if (!Number.isInteger(contextLength) || contextLength < 2) {
      throw new TokenizerError(`tokenize: contextLength must be an integer >= 2, got ${contextLength}`);
    }
    const list = typeof texts === 'string' ? [texts] : texts;
    const ids = new Int32Array(list.length * contextLength);
    list.forEach((text, row) => {
      const body = this.encode(text);
      const total = body.length + 2;
      if (total > contextLength && !truncate) {
        const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
        throw new TokenizerError(
          `tokenize: text ${row} is too long for context length ${contextLength}: ${total} tokens with start/end (${JSON.stringify(shown)})`,
        );
      }
      const base = row * contextLength;
      ids[base] = this.sotToken;
      const n = Math.min(body.length, contextLength - 2);
      for (let i = 0; i < n; i++) ids[base + 1 + i] = body[i]!;
      // When truncated, the last slot is <|endoftext|> (upstream overwrites tokens[-1]).
      ids[base + 1 + n] = this.eotToken;
    });
    return { ids, shape: [list.length, contextLength] };
  }

  /** Text for ids (upstream `decode`: `</w>` becomes a space; invalid UTF-8 becomes U+FFFD). */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (options.skipSpecialTokens) {
        if (id === this.eotToken) break;
        if (id === this.sotToken) continue;
      }
      const token = this.decoder.get(id);
      if (token === undefined) throw new TokenizerError(`decode: id ${id} (position ${i}) is not in the vocabulary (size ${this.vocabSize})`);
      for (let k = 0; k < token.length; k++) {
        const b = CHAR_CODE_TO_BYTE.get(token.charCodeAt(k));
        if (b === undefined) throw new TokenizerError(`decode: token ${JSON.stringify(token)} (id ${id}) has a character outside the byte alphabet`);
        bytes.push(b);
      }
    }
    const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array(bytes));
    return text.split(END_OF_WORD).join(' ');
  }
}
