/**
 * Strict parsing and validation of a safetensors header.
 *
 * Layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON (may end in space padding),
 * then the data section. The rules follow the reference Rust implementation (huggingface/safetensors
 * `read_metadata` + `Metadata::validate`):
 *   - N ≤ 100,000,000 and 8 + N ≤ file size;
 *   - the JSON is an object of `name → {dtype, shape, data_offsets}` plus an optional `__metadata__`
 *     map of string → string;
 *   - sorted by `data_offsets`, the first tensor begins at 0 and each begins where the previous one
 *     ends (no gap, no overlap), `end − begin == numel × bits / 8`;
 *   - the last end equals the data section's length exactly.
 * On top of that we reject what the Rust crate lets through silently or cannot express in JS:
 * duplicate keys (JSON.parse keeps the last), integers that are not exact doubles (> 2^53), and
 * non-integer number literals where an integer is required. Unknown fields inside a tensor entry are
 * ignored, as the reference does, so files written by other tools still load.
 *
 * A hand-written JSON reader is used instead of JSON.parse because duplicate keys and number literals
 * (`2.0` vs `2`, `1e3`) must be seen as written, and objects are kept in Maps so that a key such as
 * `__proto__` is just a name.
 */
import { SamclipError, fmtShape } from '../gpu/errors.js';
import { type LimitExceeded, limitText } from '../util/limits.js';

/** A malformed or inconsistent safetensors file, or a request the file cannot satisfy. */
export class SafetensorsError extends SamclipError {
  override name = 'SafetensorsError';
  constructor(
    /** The file (path, URL or the name given to `fromBytes`). */
    readonly file: string,
    detail: string,
    /** The tensor concerned, when there is one. */
    readonly key?: string,
  ) {
    super(`safetensors ${file}: ${detail}`);
  }
}

/** A header too large or too slow to parse safely: named limit, the value found and the limit. */
export class SafetensorsLimitError extends SafetensorsError implements LimitExceeded {
  override name = 'SafetensorsLimitError';
  constructor(
    file: string,
    readonly quantity: string,
    readonly value: number,
    readonly limit: number,
    readonly option: string | null,
    unit = '',
    context = '',
  ) {
    super(file, `${context}${limitText({ quantity, value, limit, option }, unit)}`);
  }
}

/** Header length cap of the reference implementation (bytes). */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Bounds on parsing a header, so a small hostile header cannot take minutes or gigabytes: a real
 * checkpoint has hundreds to a few thousand tensors (SAM ViT-H: 596) and parses in milliseconds.
 */
export interface HeaderLimits {
  /** Most tensor entries a header may declare (default 65,536); counted before parsing. */
  maxHeaderEntries?: number;
  /** Wall-clock budget for parsing the header JSON, in milliseconds (default 20,000). */
  maxHeaderParseMs?: number;
}

export const DEFAULT_HEADER_LIMITS: Required<HeaderLimits> = { maxHeaderEntries: 65_536, maxHeaderParseMs: 20_000 };

/** No array in a safetensors header is long (shapes are a handful of dims, offsets are two). */
const MAX_JSON_ARRAY = 4096;

/**
 * Counts JSON objects (braces outside strings) in header bytes fed in any number of pieces: one
 * per tensor entry, plus the root and `__metadata__`. A byte scan with no allocation, run before
 * the parse (and, for headers read from a file, before the header is held in memory whole).
 */
export class HeaderObjectCounter {
  count = 0;
  private inString = false;
  private escaped = false;

  feed(bytes: Uint8Array): this {
    let { count, inString, escaped } = this;
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i]!;
      if (escaped) escaped = false;
      else if (inString) {
        if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x7b) count++;
    }
    this.count = count;
    this.inString = inString;
    this.escaped = escaped;
    return this;
  }

  /**
   * Throw SafetensorsLimitError when the objects counted so far exceed the entry limit; `complete`
   * false means only part of the header has been fed (the count is then a lower bound).
   */
  check(file: string, headerBytes: number, limits: HeaderLimits, complete = true): void {
    const max = limits.maxHeaderEntries ?? DEFAULT_HEADER_LIMITS.maxHeaderEntries;
    // The root object and __metadata__ are not tensors.
    if (this.count - 2 > max) {
      const quantity = complete ? 'tensor entries in the header' : 'tensor entries in the header (counted so far)';
      throw new SafetensorsLimitError(file, quantity, this.count - 1, max, 'maxHeaderEntries', '', `header of ${headerBytes} bytes: `);
    }
  }
}

/** Element size in bits for every dtype the reference implementation knows. */
export const DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const;

export type SafetensorsDType = keyof typeof DTYPE_BITS;

export function isSafetensorsDType(s: string): s is SafetensorsDType {
  return Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

export interface TensorEntry {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Offsets relative to the start of the data section, as written in the header. */
  readonly begin: number;
  readonly end: number;
  readonly byteLength: number;
}

export interface ParsedHeader {
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in data order (ascending offsets). */
  readonly ordered: readonly TensorEntry[];
  readonly byName: ReadonlyMap<string, TensorEntry>;
  /** Absolute file offset of the data section (8 + N). */
  readonly dataStart: number;
  readonly dataLength: number;
}

/** Read and bound-check the u64 header length; `fileSize` is the whole file's length. */
export function readHeaderLength(first8: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || first8.length < 8) {
    throw new SafetensorsError(file, `file is ${fileSize} bytes, shorter than the 8-byte header length field`);
  }
  const dv = new DataView(first8.buffer, first8.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  if (hi !== 0 || lo > MAX_HEADER_BYTES) {
    const shown = hi === 0 ? String(lo) : `${(BigInt(hi) << 32n) | BigInt(lo)}`;
    throw new SafetensorsError(file, `header length ${shown} is over the ${MAX_HEADER_BYTES}-byte limit (corrupt length field?)`);
  }
  if (8 + lo > fileSize) {
    throw new SafetensorsError(file, `header length ${lo} runs past the end of the file (${fileSize} bytes; truncated?)`);
  }
  return lo;
}

/**
 * Validate the header bytes (exactly N bytes, after the length field) against the file size. With
 * `fileSize` null the size is taken to be what the header accounts for (8 + N + the last tensor's
 * end): for streams whose length is not known yet.
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number | null, file: string, limits: HeaderLimits = {}): ParsedHeader {
  const n = headerBytes.length;
  const maxMs = limits.maxHeaderParseMs ?? DEFAULT_HEADER_LIMITS.maxHeaderParseMs;
  new HeaderObjectCounter().feed(headerBytes).check(file, n, limits);
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, where the JSON reader rejects it (as serde does).
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, `header (${n} bytes) is not valid UTF-8`);
  }
  let root: JsonValue;
  try {
    root = new JsonReader(text, { maxArray: MAX_JSON_ARRAY, deadlineMs: maxMs }).readDocument();
  } catch (e) {
    if (e instanceof JsonTimeoutError) {
      throw new SafetensorsLimitError(file, 'header parse time', Math.round(e.elapsedMs), maxMs, 'maxHeaderParseMs', 'ms', `header of ${n} bytes: `);
    }
    if (e instanceof JsonSyntaxError) throw new SafetensorsError(file, `header is not valid JSON: ${e.message}`);
    throw e;
  }
  if (!(root instanceof Map)) {
    throw new SafetensorsError(file, `header JSON is ${describe(root)}, not an object`);
  }

  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, value] of root) {
    if (name === '__metadata__') metadata = readMetadata(value, file);
    else entries.push(readEntry(name, value, file));
  }

  const dataStart = 8 + n;
  const ordered = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = fileSize === null ? (ordered[ordered.length - 1]?.end ?? 0) : fileSize - dataStart;
  let cursor = 0;
  let prev: TensorEntry | null = null;
  for (const t of ordered) {
    if (t.begin < cursor) {
      throw new SafetensorsError(
        file,
        `tensor '${t.name}' data_offsets [${t.begin}, ${t.end}] overlap tensor '${prev!.name}' [${prev!.begin}, ${prev!.end}]`,
        t.name,
      );
    }
    if (t.begin > cursor) {
      const where = prev ? `after tensor '${prev.name}' (ends at ${cursor})` : 'at the start of the data section';
      throw new SafetensorsError(
        file,
        `gap of ${t.begin - cursor} bytes ${where} before tensor '${t.name}' [${t.begin}, ${t.end}]`,
        t.name,
      );
    }
    cursor = t.end;
    prev = t;
  }
  if (cursor > dataLength) {
    throw new SafetensorsError(
      file,
      `truncated: tensors need ${cursor} data bytes${prev ? ` (tensor '${prev.name}' ends at ${cursor})` : ''} but the file has ${dataLength} after its ${n}-byte header`,
      prev?.name,
    );
  }
  if (cursor < dataLength) {
    throw new SafetensorsError(
      file,
      `data section is ${dataLength} bytes but the tensors cover ${cursor}: ${dataLength - cursor} unaccounted trailing bytes`,
    );
  }
  const byName = new Map(ordered.map((t) => [t.name, t] as const));
  return { metadata: Object.freeze(metadata), ordered, byName, dataStart, dataLength };
}

function readMetadata(value: JsonValue, file: string): Record<string, string> {
  // serde reads `"__metadata__": null` as "no metadata"; accept it the same way.
  if (value === null) return {};
  if (!(value instanceof Map)) throw new SafetensorsError(file, `__metadata__ is ${describe(value)}, not an object of strings`);
  const out: [string, string][] = [];
  for (const [k, v] of value) {
    if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__['${k}'] is ${describe(v)}; metadata values must be strings`);
    out.push([k, v]);
  }
  // fromEntries defines own properties, so a key like "__proto__" stays an ordinary entry.
  return Object.fromEntries(out);
}

function readEntry(name: string, value: JsonValue, file: string): TensorEntry {
  const fail = (detail: string): never => {
    throw new SafetensorsError(file, `tensor '${name}': ${detail}`, name);
  };
  if (!(value instanceof Map)) return fail(`entry is ${describe(value)}, not an object`);
  const dtypeV = value.get('dtype');
  const shapeV = value.get('shape');
  const offV = value.get('data_offsets');
  if (dtypeV === undefined) fail(`missing field 'dtype'`);
  if (shapeV === undefined) fail(`missing field 'shape'`);
  if (offV === undefined) fail(`missing field 'data_offsets'`);
  if (typeof dtypeV !== 'string') return fail(`'dtype' is ${describe(dtypeV!)}, not a string`);
  if (!isSafetensorsDType(dtypeV)) {
    return fail(`unknown dtype '${dtypeV}' (known: ${Object.keys(DTYPE_BITS).join(', ')})`);
  }
  if (!Array.isArray(shapeV)) return fail(`'shape' is ${describe(shapeV!)}, not an array`);
  const shape = shapeV.map((d, i) => toIndex(d, () => `shape[${i}]`, fail));
  if (!Array.isArray(offV) || offV.length !== 2) {
    return fail(`'data_offsets' is ${describe(offV!)}; expected [begin, end]`);
  }
  const begin = toIndex(offV[0]!, () => 'data_offsets[0]', fail);
  const end = toIndex(offV[1]!, () => 'data_offsets[1]', fail);
  if (begin > end) fail(`data_offsets [${begin}, ${end}] begin after end`);

  let numel = 1;
  for (const d of shape) {
    numel *= d;
    if (numel > Number.MAX_SAFE_INTEGER) fail(`shape ${fmtShape(shape)} has more elements than can be addressed`);
  }
  const bits = DTYPE_BITS[dtypeV] * numel;
  if (bits > Number.MAX_SAFE_INTEGER) fail(`shape ${fmtShape(shape)} × ${dtypeV} is too large to address`);
  if (bits % 8 !== 0) fail(`${numel} elements of ${dtypeV} (${DTYPE_BITS[dtypeV]} bits) do not fill whole bytes`);
  const byteLength = bits / 8;
  if (end - begin !== byteLength) {
    fail(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtypeV} ${fmtShape(shape)} needs ${byteLength}`);
  }
  return { name, dtype: dtypeV, shape: Object.freeze(shape), numel, begin, end, byteLength };
}

/** A non-negative integer literal that a double represents exactly. */
function toIndex(v: JsonValue, what: () => string, fail: (d: string) => never): number {
  if (!(v instanceof JsonNumber)) return fail(`${what()} is ${describe(v)}, not a non-negative integer`);
  if (!/^(0|[1-9][0-9]*)$/.test(v.raw)) return fail(`${what()} is ${v.raw}, not a non-negative integer`);
  if (v.value > Number.MAX_SAFE_INTEGER) return fail(`${what()} = ${v.raw} is beyond 2^53`);
  return v.value;
}

function describe(v: JsonValue): string {
  if (v === null) return 'null';
  if (v instanceof Map) return 'an object';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof JsonNumber) return `the number ${v.raw}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `the boolean ${v}`;
}

// ---------------------------------------------------------------- JSON reader

/** A number as written in the JSON text (the raw literal decides integer-ness). */
export class JsonNumber {
  constructor(
    readonly raw: string,
    readonly value: number,
  ) {}
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | Map<string, JsonValue>;

class JsonSyntaxError extends Error {}

/** The parse ran past its time budget. */
class JsonTimeoutError extends Error {
  constructor(readonly elapsedMs: number) {
    super(`parse took over ${Math.round(elapsedMs)} ms`);
  }
}

export interface JsonReaderOptions {
  /** Longest array accepted (default unlimited). */
  maxArray?: number;
  /** Give up after this many milliseconds (checked every few thousand values; default unlimited). */
  deadlineMs?: number;
}

/** Nesting deeper than this is never a safetensors header; refusing it keeps the stack bounded. */
const MAX_DEPTH = 64;

/** RFC 8259 reader: rejects duplicate keys, trailing garbage, control characters and lone surrogates. */
export class JsonReader {
  private pos = 0;
  private values = 0;
  private readonly t0 = (globalThis.performance ?? Date).now();
  private readonly maxArray: number;
  private readonly deadlineMs: number;
  constructor(
    private readonly s: string,
    opts: JsonReaderOptions = {},
  ) {
    this.maxArray = opts.maxArray ?? Infinity;
    this.deadlineMs = opts.deadlineMs ?? Infinity;
  }

  readDocument(): JsonValue {
    this.skipWs();
    const v = this.readValue(0);
    this.skipWs();
    if (this.pos < this.s.length) this.error('unexpected content after the top-level value');
    return v;
  }

  private error(msg: string): never {
    const at = this.pos;
    const snippet = JSON.stringify(this.s.slice(Math.max(0, at - 20), at + 20));
    throw new JsonSyntaxError(`${msg} at character ${at} (near ${snippet})`);
  }

  private skipWs(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
      else break;
    }
  }

  private readValue(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.error(`nesting deeper than ${MAX_DEPTH}`);
    if ((++this.values & 4095) === 0 && this.deadlineMs !== Infinity) {
      const elapsed = (globalThis.performance ?? Date).now() - this.t0;
      if (elapsed > this.deadlineMs) throw new JsonTimeoutError(elapsed);
    }
    const c = this.s[this.pos];
    switch (c) {
      case '{':
        return this.readObject(depth);
      case '[':
        return this.readArray(depth);
      case '"':
        return this.readString();
      case 't':
        return this.readWord('true', true);
      case 'f':
        return this.readWord('false', false);
      case 'n':
        return this.readWord('null', null);
      case undefined:
        return this.error('unexpected end of header');
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.readNumber();
        return this.error(`unexpected character ${JSON.stringify(c)}`);
    }
  }

  private readWord<T extends JsonValue>(word: string, value: T): T {
    if (this.s.startsWith(word, this.pos)) {
      this.pos += word.length;
      return value;
    }
    return this.error('invalid literal');
  }

  private readObject(depth: number): Map<string, JsonValue> {
    const out = new Map<string, JsonValue>();
    this.pos++; // {
    this.skipWs();
    if (this.s[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      if (this.s[this.pos] !== '"') this.error('expected a string key');
      const keyAt = this.pos;
      const key = this.readString();
      if (out.has(key)) {
        this.pos = keyAt;
        this.error(`duplicate key ${JSON.stringify(key)}`);
      }
      this.skipWs();
      if (this.s[this.pos] !== ':') this.error(`expected ':' after key ${JSON.stringify(key)}`);
      this.pos++;
      this.skipWs();
      out.set(key, this.readValue(depth + 1));
      this.skipWs();
      const c = this.s[this.pos++];
      if (c === '}') return out;
      if (c !== ',') {
        this.pos--;
        this.error("expected ',' or '}' in an object");
      }
    }
  }

  private readArray(depth: number): JsonValue[] {
    const out: JsonValue[] = [];
    this.pos++; // [
    this.skipWs();
    if (this.s[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      if (out.length >= this.maxArray) this.error(`array of more than ${this.maxArray} elements`);
      out.push(this.readValue(depth + 1));
      this.skipWs();
      const c = this.s[this.pos++];
      if (c === ']') return out;
      if (c !== ',') {
        this.pos--;
        this.error("expected ',' or ']' in an array");
      }
    }
  }

  private readNumber(): JsonNumber {
    const m = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.pos;
    const hit = m.exec(this.s);
    if (!hit) return this.error('invalid number');
    this.pos += hit[0].length;
    const next = this.s.charCodeAt(this.pos);
    // "01" or "1.": the regex stops early; the leftover digit or dot is a syntax error.
    if ((next >= 0x30 && next <= 0x39) || next === 0x2e) this.error('invalid number');
    return new JsonNumber(hit[0], Number(hit[0]));
  }

  private readString(): string {
    const s = this.s;
    this.pos++; // opening quote
    let out = '';
    let start = this.pos;
    for (;;) {
      if (this.pos >= s.length) this.error('unterminated string');
      const c = s.charCodeAt(this.pos);
      if (c === 0x22) {
        out += s.slice(start, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.error('control character in a string');
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += s.slice(start, this.pos);
      this.pos++;
      const e = s[this.pos++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const unit = this.readHex4();
          if (unit >= 0xdc00 && unit <= 0xdfff) this.error('lone low surrogate in a \\u escape');
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (s[this.pos] !== '\\' || s[this.pos + 1] !== 'u') this.error('lone high surrogate in a \\u escape');
            this.pos += 2;
            const low = this.readHex4();
            if (low < 0xdc00 || low > 0xdfff) this.error('high surrogate not followed by a low surrogate');
            out += String.fromCharCode(unit, low);
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default:
          this.pos--;
          this.error('invalid escape in a string');
      }
      start = this.pos;
    }
  }

  private readHex4(): number {
    const h = this.s.slice(this.pos, this.pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.error('invalid \\u escape');
    this.pos += 4;
    return parseInt(h, 16);
  }
}
