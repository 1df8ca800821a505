/**
 * A safe, deliberately small pickle interpreter for PyTorch state-dict pickles.
 *
 * Python's unpickler can call any importable function; a checkpoint from the internet must never be
 * able to do that here. This VM knows only the opcodes state-dict pickles use (protocol 2 as
 * torch.save writes it, plus the protocol-4 framing/memo/global opcodes for files saved with
 * `pickle_protocol=4`), builds plain data (None, bools, ints, floats, str, tuples, lists, dicts), and
 * resolves GLOBAL names only through the caller's allow-list, which returns inert JS handlers. Any
 * other opcode or global is refused with an error naming it and its byte offset.
 */
import { PickleError } from './errors.js';

export type PyValue = null | boolean | number | bigint | string | PyTuple | PyList | PyDict | PyCallable | PyOpaque;

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

export class PyList {
  readonly items: PyValue[] = [];
}

export type PyKey = string | number | bigint | boolean | null | PyTuple;

/** dict / OrderedDict; insertion order is kept (Python's dict order). */
export class PyDict {
  readonly map = new Map<PyKey, PyValue>();
  /** Instance attributes set by BUILD (e.g. a state dict's `_metadata`). */
  attrs: PyDict | null = null;
  constructor(readonly className = 'dict') {}
  get(key: string): PyValue | undefined {
    return this.map.get(key);
  }
}

/** A global the allow-list resolved to a JS function that REDUCE may call. */
export class PyCallable {
  constructor(
    readonly qualname: string,
    readonly call: (args: readonly PyValue[]) => PyValue,
  ) {}
}

/** Anything else an allow-listed global or persistent id produced (storage types, storages, tensors). */
export class PyOpaque<T = unknown> {
  constructor(
    readonly kind: string,
    readonly value: T,
  ) {}
}

export interface UnpickleHooks {
  /** Resolve a GLOBAL; return undefined to refuse it. */
  global(module: string, name: string): PyValue | undefined;
  /** Resolve a persistent id (torch: storages). */
  persistentLoad(pid: PyValue): PyValue;
}

/** Names of all pickle opcodes, for error messages (facts from the pickle protocol). */
const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT',
  0x4a: 'BININT', 0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID',
  0x51: 'BINPERSID', 0x52: 'REDUCE', 0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND', 0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT',
  0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET', 0x69: 'INST', 0x6a: 'LONG_BINGET',
  0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT',
  0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1',
  0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4',
  0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

export function opcodeName(op: number): string {
  const name = OPCODE_NAMES[op];
  const ch = op >= 0x20 && op < 0x7f ? ` '${String.fromCharCode(op)}'` : '';
  return `${name ?? 'unknown opcode'} (0x${op.toString(16).padStart(2, '0')}${ch})`;
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

/**
 * Run the pickle in `data` and return the object it builds.
 * `file` and `entry` only label error messages.
 */
export function unpickle(data: Uint8Array, hooks: UnpickleHooks, file: string, entry = 'data.pkl'): PyValue {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let stack: StackItem[] = [];
  const marks: StackItem[][] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;
  let opStart = 0;

  const fail = (msg: string): never => {
    throw new PickleError(file, `${entry} at byte ${opStart}: ${msg}`, entry);
  };
  const need = (n: number): void => {
    if (pos + n > data.length) fail(`pickle ends after ${data.length} bytes in the middle of ${opcodeName(data[opStart]!)} (truncated or damaged)`);
  };
  const pop = (): PyValue => {
    if (stack.length === 0) fail(`${opcodeName(data[opStart]!)} on an empty stack (damaged pickle)`);
    const v = stack.pop()!;
    if (v === MARK) fail(`${opcodeName(data[opStart]!)} found a MARK where a value was expected (damaged pickle)`);
    return v as PyValue;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail(`${opcodeName(data[opStart]!)} needs a value on the stack (damaged pickle)`);
    return v as PyValue;
  };
  /** Items pushed since the last MARK; the stack goes back to what it was before MARK. */
  const popMark = (): PyValue[] => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) fail(`${opcodeName(data[opStart]!)} without a matching MARK (damaged pickle)`);
    stack = prev!;
    return items as PyValue[];
  };
  const readString = (n: number): string => {
    need(n);
    let s: string;
    try {
      s = utf8.decode(data.subarray(pos, pos + n));
    } catch {
      return fail('string is not valid UTF-8');
    }
    pos += n;
    return s;
  };
  const readLine = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('GLOBAL name has no terminating newline (damaged pickle)');
    const s = new TextDecoder('latin1').decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const resolveGlobal = (module: string, name: string): PyValue => {
    const v = hooks.global(module, name);
    if (v === undefined) {
      fail(`global '${module}.${name}' is not on the allow-list (refusing to rebuild arbitrary Python objects; ` +
        'a plain state dict of tensors only needs torch._utils._rebuild_tensor_v2, collections.OrderedDict and torch.*Storage)');
    }
    return v!;
  };
  const setItems = (dict: PyValue, items: PyValue[]): void => {
    if (!(dict instanceof PyDict)) return fail(`SETITEM(S) on a ${typeName(dict)}, not a dict`);
    if (items.length % 2) fail('SETITEMS with an odd number of items (damaged pickle)');
    for (let i = 0; i < items.length; i += 2) dict.map.set(asKey(items[i]!), items[i + 1]!);
  };
  const asKey = (k: PyValue): PyKey => {
    if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean' || k instanceof PyTuple) return k;
    return fail(`dict key of type ${typeName(k)} is not supported`);
  };
  const memoIndex = (i: number): PyValue => {
    if (!memo.has(i)) fail(`memo slot ${i} read before it was written (damaged pickle)`);
    return memo.get(i)!;
  };

  while (true) {
    if (pos >= data.length) {
      opStart = pos;
      return fail('pickle ended without STOP (truncated)');
    }
    opStart = pos;
    const op = data[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (data[pos]! > 5) fail(`pickle protocol ${data[pos]} is newer than 5`);
        pos += 1;
        break;
      case 0x95: // FRAME: an 8-byte length hint for buffered reading; nothing to do with the data.
        need(8);
        pos += 8;
        break;
      case 0x2e: // STOP
        if (marks.length) fail('STOP with an unclosed MARK (damaged pickle)');
        return pop();
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push(new PyList());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: { // TUPLE
        // popMark() swaps `stack`, so it must run before `stack.push` is looked up.
        const items = popMark();
        stack.push(new PyTuple(items));
        break;
      }
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT (signed 32-bit)
        need(4);
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        stack.push(data[pos++]!);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(dv.getUint16(pos, true));
        pos += 2;
        break;
      case 0x8a: { // LONG1: n-byte little-endian two's complement
        need(1);
        const n = data[pos++]!;
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[pos + i]!);
        if (n > 0 && data[pos + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: { // BINUNICODE (u32 length)
        need(4);
        const n = dv.getUint32(pos, true);
        pos += 4;
        stack.push(readString(n));
        break;
      }
      case 0x8c: { // SHORT_BINUNICODE (u8 length)
        need(1);
        const n = data[pos++]!;
        stack.push(readString(n));
        break;
      }
      case 0x8d: { // BINUNICODE8 (u64 length)
        need(8);
        const n = dv.getUint32(pos, true) + dv.getUint32(pos + 4, true) * 2 ** 32;
        pos += 8;
        stack.push(readString(n));
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n"
        const module = readLine();
        const name = readLine();
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(hooks.persistentLoad(pop()));
        break;
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (!(fn instanceof PyCallable)) return fail(`REDUCE calls a ${typeName(fn)}, which is not an allow-listed function`);
        if (!(args instanceof PyTuple)) return fail(`REDUCE arguments are a ${typeName(args)}, not a tuple`);
        try {
          stack.push(fn.call(args.items));
        } catch (e) {
          if (e instanceof PickleError) throw e;
          fail(`${fn.qualname}${fmtArgs(args.items)}: ${(e as Error).message}`);
        }
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        // Only dict subclasses carrying attributes (OrderedDict._metadata) are built; anything
        // else would be a custom __setstate__, which we do not run.
        if (!(obj instanceof PyDict) || !(state instanceof PyDict)) return fail(`BUILD of a ${typeName(obj)} with a ${typeName(state)} state is not supported`);
        obj.attrs = state;
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        const list = top();
        if (!(list instanceof PyList)) return fail(`APPEND to a ${typeName(list)}, not a list`);
        list.items.push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        const list = top();
        if (!(list instanceof PyList)) return fail(`APPENDS to a ${typeName(list)}, not a list`);
        // One at a time: spreading 300k items into push() overflows the call stack.
        for (const v of items) list.items.push(v);
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(data[pos++]!, top());
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(dv.getUint32(pos, true), top());
        pos += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        need(1);
        stack.push(memoIndex(data[pos++]!));
        break;
      case 0x6a: // LONG_BINGET
        need(4);
        stack.push(memoIndex(dv.getUint32(pos, true)));
        pos += 4;
        break;
      default:
        fail(`${opcodeName(op)} is not supported (state-dict pickles do not use it; refusing to interpret it)`);
    }
  }
}

export function typeName(v: PyValue | undefined): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyList) return 'list';
  if (v instanceof PyDict) return v.className;
  if (v instanceof PyCallable) return `function ${v.qualname}`;
  return v.kind;
}

function fmtArgs(args: readonly PyValue[]): string {
  return `(${args.map(typeName).join(', ')})`;
}
