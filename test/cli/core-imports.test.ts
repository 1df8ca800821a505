/**
 * The core library must stay dependency-free and browser-safe: outside `src/cli/**` and
 * `src/io/**`, every runtime import is relative or a `node:` built-in (the only exception is the
 * optional `webgpu` package, imported dynamically in `src/gpu/device.ts`). The CLI packages
 * (commander, jpeg-js, pngjs, exifr, fflate) may only be used by the CLI and the Node image I/O.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return /\.(ts|mts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Strip comments so an example in a doc comment is not taken for an import. */
function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

interface Found {
  spec: string;
  kind: 'static' | 'dynamic' | 'require';
}

/** Runtime module specifiers of a file (type-only imports are erased by the compiler and skipped). */
function runtimeImports(source: string): Found[] {
  const src = stripComments(source);
  const out: Found[] = [];
  const stat = /^\s*(import|export)\s+(type\s+)?([^'"`;]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const m of src.matchAll(stat)) {
    if (m[2]) continue; // import type / export type
    if (m[1] === 'export' && !m[3]) continue;
    out.push({ spec: m[4]!, kind: 'static' });
  }
  for (const m of src.matchAll(/\bimport\s*\(\s*(?:\/\*[^*]*\*\/\s*)?['"`]([^'"`]+)['"`]\s*\)/g)) out.push({ spec: m[1]!, kind: 'dynamic' });
  for (const m of src.matchAll(/\brequire\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g)) out.push({ spec: m[1]!, kind: 'require' });
  // import(variable): find the string the variable holds when it is a local constant.
  for (const m of src.matchAll(/\bimport\s*\(\s*(?:\/\*[^*]*\*\/\s*)?([A-Za-z_$][\w$]*)\s*\)/g)) {
    const decl = new RegExp(`\\bconst\\s+${m[1]}\\s*=\\s*['"\`]([^'"\`]+)['"\`]`).exec(src);
    if (decl) out.push({ spec: decl[1]!, kind: 'dynamic' });
  }
  return out;
}

const ALLOWED_ELSEWHERE: { file: string; spec: string; kind: Found['kind'] }[] = [
  { file: `src${sep}gpu${sep}device.ts`, spec: 'webgpu', kind: 'dynamic' },
];

describe('core library imports', () => {
  it('the scanner sees static, dynamic, variable and require imports but not type-only ones or comments', () => {
    const found = runtimeImports(`
      import { a } from './a.js';
      import type { T } from 'typeonly';
      export { b } from "../b.js";
      export * from 'pkg-star';
      import 'side-effect';
      // import x from 'commented';
      /* import y from 'block-commented'; */
      const m = await import('dyn');
      const name = 'viaconst';
      await import(/* @vite-ignore */ name);
      const r = require('cjs');
    `).map((f) => f.spec);
    expect(found.sort()).toEqual(['../b.js', './a.js', 'cjs', 'dyn', 'pkg-star', 'side-effect', 'viaconst'].sort());
  });

  it('outside src/cli and src/io only relative and node: imports (plus the optional webgpu)', () => {
    const offenders: string[] = [];
    let scanned = 0;
    for (const file of tsFiles(SRC)) {
      const rel = relative(ROOT, file);
      if (rel.startsWith(`src${sep}cli${sep}`) || rel.startsWith(`src${sep}io${sep}`)) continue;
      scanned++;
      for (const f of runtimeImports(readFileSync(file, 'utf8'))) {
        if (f.spec.startsWith('.') || f.spec.startsWith('node:')) continue;
        if (ALLOWED_ELSEWHERE.some((a) => a.file === rel && a.spec === f.spec && a.kind === f.kind)) continue;
        offenders.push(`${rel}: ${f.kind} import of '${f.spec}'`);
      }
    }
    expect(scanned).toBeGreaterThan(50);
    expect(offenders, `non-relative imports in the core library:\n${offenders.join('\n')}`).toEqual([]);
  });

  it('the CLI and image I/O really use their packages (the scan would notice them elsewhere)', () => {
    const io = runtimeImports(readFileSync(join(SRC, 'io', 'decode.ts'), 'utf8')).map((f) => f.spec);
    expect(io).toEqual(expect.arrayContaining(['jpeg-js', 'pngjs', 'exifr']));
  });
});
