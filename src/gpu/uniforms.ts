/**
 * Uniform blocks are declared once in TypeScript; both the WGSL struct and the packing code are
 * generated from the declaration, so the two can never drift apart.
 *
 * Field types: scalars `u32 | i32 | f32` and `vec4u | vec4i | vec4f` (for shapes and strides).
 * Fields are laid out in declaration order with WGSL's uniform alignment rules (vec4 aligned to 16).
 */
export type UniformType = 'u32' | 'i32' | 'f32' | 'vec4u' | 'vec4i' | 'vec4f';
export type UniformDecl = Readonly<Record<string, UniformType>>;
export type UniformValues<D extends UniformDecl> = {
  [K in keyof D]: D[K] extends 'u32' | 'i32' | 'f32' ? number : readonly number[];
};

const WGSL_TYPE: Record<UniformType, string> = {
  u32: 'u32',
  i32: 'i32',
  f32: 'f32',
  vec4u: 'vec4<u32>',
  vec4i: 'vec4<i32>',
  vec4f: 'vec4<f32>',
};

export interface UniformLayout<D extends UniformDecl = UniformDecl> {
  readonly decl: D;
  /** Byte size, rounded to 16 as WGSL requires for uniform structs. */
  readonly byteSize: number;
  readonly wgslStruct: string;
  pack(values: UniformValues<D>, into: DataView, byteOffset: number): void;
}

export function defineUniforms<D extends UniformDecl>(decl: D): UniformLayout<D> {
  const fields: { name: string; type: UniformType; offset: number }[] = [];
  let offset = 0;
  for (const [name, type] of Object.entries(decl)) {
    const isVec = type.startsWith('vec4');
    if (isVec) offset = Math.ceil(offset / 16) * 16;
    fields.push({ name, type, offset });
    offset += isVec ? 16 : 4;
  }
  const byteSize = Math.max(16, Math.ceil(offset / 16) * 16);
  const wgslStruct =
    'struct Uniforms {\n' + fields.map((f) => `  ${f.name}: ${WGSL_TYPE[f.type]},`).join('\n') + '\n}\n';
  return {
    decl,
    byteSize,
    wgslStruct,
    pack(values, view, base) {
      for (const f of fields) {
        const v = (values as Record<string, number | readonly number[]>)[f.name];
        if (v === undefined) throw new Error(`uniform '${f.name}' missing`);
        const at = base + f.offset;
        if (f.type === 'u32') view.setUint32(at, checkU32(f.name, v as number), true);
        else if (f.type === 'i32') view.setInt32(at, v as number, true);
        else if (f.type === 'f32') view.setFloat32(at, v as number, true);
        else {
          const arr = v as readonly number[];
          for (let i = 0; i < 4; i++) {
            const x = arr[i] ?? 0;
            if (f.type === 'vec4u') view.setUint32(at + 4 * i, checkU32(f.name, x), true);
            else if (f.type === 'vec4i') view.setInt32(at + 4 * i, x, true);
            else view.setFloat32(at + 4 * i, x, true);
          }
        }
      }
    },
  };
}

function checkU32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new Error(`uniform '${name}' must be a u32, got ${v}`);
  }
  return v;
}
