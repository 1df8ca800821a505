/** Reference row gather: out[i, :] = table[ids[i], :] over a row-major [V, D] table. */
export function gatherRowsCpu(table: ArrayLike<number>, D: number, ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * D);
  const V = table.length / D;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`id ${id} at ${i} outside [0, ${V})`);
    for (let j = 0; j < D; j++) out[i * D + j] = table[id * D + j]!;
  }
  return out;
}
