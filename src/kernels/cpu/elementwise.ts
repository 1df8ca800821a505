/** Reference elementwise ops in double precision over row-major arrays, with NumPy broadcasting. */
import type { Activation } from '../activation.js';
import type { BinaryOp } from '../elementwise.js';
import { activate } from './activation.js';

export interface CpuTensor {
  data: ArrayLike<number>;
  shape: readonly number[];
}

/** Broadcast shape of two shapes (throws if they do not broadcast). */
export function broadcastShapeCpu(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Flat index into `shape` (right-aligned, size-1 dims broadcast) of output coordinates `coord`. */
function broadcastIndex(coord: readonly number[], shape: readonly number[]): number {
  let idx = 0;
  const lead = coord.length - shape.length;
  for (let i = 0; i < shape.length; i++) idx = idx * shape[i]! + (shape[i] === 1 ? 0 : coord[lead + i]!);
  return idx;
}

function applyBinary(op: BinaryOp, x: number, y: number): number {
  switch (op) {
    case 'add':
      return x + y;
    case 'sub':
      return x - y;
    case 'mul':
      return x * y;
    case 'div':
      return x / y;
  }
}

/** act(alpha * (a op b) + beta) with broadcasting. */
export function binaryCpu(
  op: BinaryOp,
  a: CpuTensor,
  b: CpuTensor,
  opts: { act?: Activation; alpha?: number; beta?: number } = {},
): { data: Float64Array; shape: number[] } {
  const shape = broadcastShapeCpu(a.shape, b.shape);
  const n = shape.reduce((p, d) => p * d, 1);
  const out = new Float64Array(n);
  const coord = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let r = i;
    for (let d = shape.length - 1; d >= 0; d--) {
      coord[d] = r % shape[d]!;
      r = Math.floor(r / shape[d]!);
    }
    const v = applyBinary(op, a.data[broadcastIndex(coord, a.shape)]!, b.data[broadcastIndex(coord, b.shape)]!);
    out[i] = activate(opts.act ?? 'none', (opts.alpha ?? 1) * v + (opts.beta ?? 0));
  }
  return { data: out, shape };
}

/** act(alpha * x + beta). */
export function unaryCpu(x: ArrayLike<number>, opts: { act?: Activation; alpha?: number; beta?: number } = {}): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = activate(opts.act ?? 'none', (opts.alpha ?? 1) * x[i]! + (opts.beta ?? 0));
  return out;
}
