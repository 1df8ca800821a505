/**
 * The core library must stay dependency-free and browser-safe: outside `src/cli/**`, `src/io/**`
 * and `src/node/**`, every runtime import is relative or the platform seam `#platform` (package.json
 * "imports": platform/node.js on Node, platform/browser.js elsewhere), which is where Node built-ins
 * and Dawn's `webgpu` are imported. The CLI packages (commander, sharp, pngjs, exifr, fflate) may
 * only be used by the CLI and the Node image I/O. The browser entry's whole module graph, followed
 * from src/index.ts with the browser conditions, has no `node:` import and no package import.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
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

/** Runtime imports whose specifier is not a string literal (the scanner cannot follow them). */
function opaqueImports(source: string): string[] {
  const src = stripComments(source);
  return [...src.matchAll(/\bimport\s*\(\s*(?:\/\*[^*]*\*\/\s*)*([^'"`\s)][^)]*)\)/g)].map((m) => `import(${m[1]!.trim()})`);
}

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

  it('outside src/cli, src/io and src/node only relative imports and #platform', () => {
    const offenders: string[] = [];
    let scanned = 0;
    for (const file of tsFiles(SRC)) {
      const rel = relative(ROOT, file);
      if ([`src${sep}cli${sep}`, `src${sep}io${sep}`, `src${sep}node${sep}`].some((d) => rel.startsWith(d))) continue;
      scanned++;
      const source = readFileSync(file, 'utf8');
      for (const f of runtimeImports(source)) {
        if (f.spec.startsWith('.') || f.spec === '#platform') continue;
        offenders.push(`${rel}: ${f.kind} import of '${f.spec}'`);
      }
      for (const o of opaqueImports(source)) offenders.push(`${rel}: ${o}`);
    }
    expect(scanned).toBeGreaterThan(50);
    expect(offenders, `non-relative imports in the core library:\n${offenders.join('\n')}`).toEqual([]);
  });

  it('the CLI and image I/O really use their packages (the scan would notice them elsewhere)', () => {
    const io = runtimeImports(readFileSync(join(SRC, 'io', 'decode.ts'), 'utf8')).map((f) => f.spec);
    expect(io).toEqual(expect.arrayContaining(['sharp', 'pngjs', 'exifr']));
  });
});

/** The target of a package.json "imports" specifier for the first condition that matches, in the map's order. */
function resolvePackageImport(spec: string, conditions: readonly string[]): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { imports?: Record<string, Record<string, string>> };
  const targets = pkg.imports?.[spec];
  if (!targets) throw new Error(`'${spec}' is not in package.json "imports"`);
  const key = Object.keys(targets).find((k) => conditions.includes(k));
  if (!key) throw new Error(`'${spec}': no target for conditions ${conditions.join(', ')}`);
  return join(ROOT, targets[key]!);
}

/**
 * Every module reachable from `entry` through runtime imports, as a bundler resolving with
 * `conditions` would follow them, with the specifiers it leaves unresolved (node:, packages).
 */
function moduleGraph(entry: string, conditions: readonly string[]): { files: Set<string>; leaves: { from: string; spec: string; kind: Found['kind'] }[] } {
  const files = new Set<string>();
  const leaves: { from: string; spec: string; kind: Found['kind'] }[] = [];
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    for (const o of opaqueImports(source)) leaves.push({ from: relative(ROOT, file), spec: o, kind: 'dynamic' });
    for (const f of runtimeImports(source)) {
      if (f.spec.startsWith('.')) {
        const js = join(file, '..', f.spec);
        visit(js.endsWith('.js') && !existsSync(js) ? js.replace(/\.js$/, '.ts') : js);
      } else if (f.spec.startsWith('#')) {
        visit(resolvePackageImport(f.spec, conditions));
      } else {
        leaves.push({ from: relative(ROOT, file), ...f });
      }
    }
  };
  visit(entry);
  return { files, leaves };
}

const BROWSER_CONDITIONS = ['browser', 'import', 'module', 'default'];
const NODE_CONDITIONS = ['node', 'import', 'default'];

describe('the browser entries (package "." and "./worker"), followed as a browser bundler would', () => {
  // The worker wrapper's page side, and the worker script it starts with new Worker(new URL('./worker.js', ...)).
  const entries = [join(SRC, 'index.ts'), join(SRC, 'worker', 'index.ts'), join(SRC, 'worker', 'worker.ts')];
  const graphs = entries.map((e) => moduleGraph(e, BROWSER_CONDITIONS));
  const browser = { files: new Set(graphs.flatMap((g) => [...g.files])), leaves: graphs.flatMap((g) => g.leaves) };
  const rel = [...browser.files].map((f) => relative(ROOT, f));

  it('has no node: import, no package import and no import the scanner cannot follow', () => {
    expect(rel.length, 'modules in the browser graph').toBeGreaterThan(80);
    const found = browser.leaves.map((l) => `${l.from}: ${l.kind} import of '${l.spec}'`);
    expect(found, `imports a browser bundle would have to resolve outside the package:\n${found.join('\n')}`).toEqual([]);
  });

  it('reaches the browser half of #platform and nothing Node-only (src/io, src/cli, src/node)', () => {
    expect(rel).toContain(join('platform', 'browser.js'));
    expect(rel).not.toContain(join('platform', 'node.js'));
    const nodeOnly = rel.filter((f) => [`src${sep}cli${sep}`, `src${sep}io${sep}`, `src${sep}node${sep}`].some((d) => f.startsWith(d)));
    expect(nodeOnly).toEqual([]);
  });

  it('the same walk from samclip-webgpu/node with the node conditions finds Node built-ins, Dawn and the decoders (the walk is not blind)', () => {
    const node = moduleGraph(join(SRC, 'node', 'index.ts'), NODE_CONDITIONS);
    const specs = new Set(node.leaves.map((l) => l.spec));
    for (const s of ['node:fs/promises', 'webgpu', 'sharp', 'pngjs']) expect(specs, `'${s}' in the node graph`).toContain(s);
    expect([...node.files].map((f) => relative(ROOT, f))).toContain(join('platform', 'node.js'));
  });
});

/** Relative imports of a file resolved to paths under src: every one (a type arrow is still an arrow) or the runtime ones. */
function relativeImports(file: string, only: 'all' | 'runtime' = 'all'): string[] {
  const source = readFileSync(file, 'utf8');
  const specs =
    only === 'runtime'
      ? runtimeImports(source).map((f) => f.spec)
      : [...stripComments(source).matchAll(/(?:^|\s)(?:import|export)\s[^'"`;()]*?['"](\.[^'"]+)['"]/gm), ...stripComments(source).matchAll(/\bimport\s*\(\s*['"](\.[^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
  return specs.filter((s) => s.startsWith('.')).map((s) => join(file, '..', s.replace(/\.js$/, '.ts')));
}

/** The floor of a file under src: the first folder name (cli, pipelines, model, kernels, ...). */
function floorOf(file: string): string {
  return relative(SRC, file).split(sep)[0]!;
}

describe('import layering (DESIGN.md section 2)', () => {
  const files = tsFiles(SRC);
  const graph = new Map(files.map((f) => [f, relativeImports(f)]));

  it('arrows run one way: model/ holds network modules and never imports a facade or the CLI', () => {
    // Floors, top first; a file may import its own floor or any floor below it.
    // hub/ (models by name: registry, downloads, caches) sits beside weights/: the facades use it.
    // worker/ (the web-worker wrapper) drives the facades from a worker: above pipelines/.
    const order = ['cli', 'node', 'worker', 'io', 'pipelines', 'model', 'hub', 'kernels', 'weights', 'text', 'image', 'util', 'gpu'];
    const rank = (f: string) => order.indexOf(floorOf(f));
    const upward: string[] = [];
    for (const [f, deps] of graph) {
      for (const d of deps) {
        const [a, b] = [floorOf(f), floorOf(d)];
        if (a === 'index.ts' || a === b) continue;
        // The lower floors (kernels .. gpu) may use each other freely; what must hold is that nothing
        // at or below model/ reaches up into pipelines/, io/, node/ or cli/.
        if (rank(f) >= order.indexOf('model') && rank(d) < order.indexOf('model')) upward.push(`${relative(ROOT, f)} -> ${relative(ROOT, d)}`);
        if (rank(f) === order.indexOf('pipelines') && rank(d) < order.indexOf('pipelines')) upward.push(`${relative(ROOT, f)} -> ${relative(ROOT, d)}`);
      }
    }
    expect(upward, `imports that point up a floor:\n${upward.join('\n')}`).toEqual([]);
  });

  // Type-only cycles (two kernels sharing a spec type) cost nothing at run time; a runtime cycle
  // makes module initialisation order matter and bundlers split worse.
  it('no runtime import cycles in src/', () => {
    const runtime = new Map(files.map((f) => [f, relativeImports(f, 'runtime')]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of runtime.get(f) ?? []) {
        if (!runtime.has(d)) continue;
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((p) => relative(SRC, p)).join(' -> '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of runtime.keys()) if (!state.has(f)) visit(f);
    expect(cycles, `import cycles:\n${cycles.join('\n')}`).toEqual([]);
  });

  it('the checks see real arrows (the scanner is not blind)', () => {
    const facade = join(SRC, 'pipelines', 'samclip.ts');
    expect(graph.get(facade)).toEqual(expect.arrayContaining([join(SRC, 'pipelines', 'semantic-segmentation.ts'), join(SRC, 'model', 'samclip', 'backends.ts')]));
  });
});
