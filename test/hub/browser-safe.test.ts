/**
 * The hub is part of the browser entry: nothing it imports, statically or by a literal dynamic
 * import, may be a `node:` module or a package (src/node/ holds the Node side). The walk follows
 * relative imports from src/hub/index.ts (the facades' own graphs, and the whole browser entry's
 * through the platform seam `#platform`, are test/cli/core-imports.test.ts's business).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;(])import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;

function strip(src: string): string {
  // Comments, and type-only `typeof import('...')`, are not imports at run time.
  return src
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1')
    .replace(/typeof\s+import\s*\([^)]*\)/g, '');
}

/** Every module reachable from `entry` and the non-relative specifiers they import. */
function walk(entry: string): { files: string[]; external: string[] } {
  const seen = new Set<string>();
  const external: string[] = [];
  const todo = [entry];
  while (todo.length) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const m of strip(readFileSync(file, 'utf8')).matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      // The platform seam: browsers resolve it to platform/browser.js (checked by test/cli/core-imports.test.ts).
      else if (spec !== '#platform') external.push(`${relative(ROOT, file)} -> ${spec}`);
    }
  }
  return { files: [...seen].map((f) => relative(ROOT, f)), external };
}

describe('browser safety of the hub', () => {
  it('no node: module or package is reachable from src/hub', () => {
    for (const entry of ['src/hub/index.ts']) {
      const { files, external } = walk(join(ROOT, entry));
      expect(files.length, entry).toBeGreaterThan(3);
      expect(files.some((f) => f.startsWith(`src${'/'}node/`)), `${entry} reaches src/node`).toBe(false);
      expect(external, entry).toEqual([]);
    }
  });
});
