/**
 * What the consumer tests share: the packed package (built once per source state, shared by the
 * test files of a run through a content-keyed folder and a lock), and throw-away apps that install
 * it with npm, offline, as a stranger's project would.
 *
 * Offline installs: `npm ci --offline` in the app with a lockfile written from the repository's own
 * package-lock.json (the same versions and integrity hashes that `npm ci` put in the npm cache), so
 * nothing is resolved against the registry. Dawn's `webgpu` (the optional peer, a 132 MB native
 * package) is linked from the repository's node_modules rather than copied into every app.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { runProcess } from '../cli/helpers.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const APPS = join(import.meta.dirname, 'apps');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const SAM_TINY = join(FIXTURES, 'reference', 'sam_tiny.weights.safetensors');
export const DOG = join(FIXTURES, 'images', 'dog.jpg');
/** The oldest TypeScript the declarations support, installed by tools/setup.sh. */
export const OLDEST_TS_DIR = join(import.meta.dirname, 'typescript-oldest');

const started = performance.now();
/** A progress line with the seconds since this test file started. */
export function stamp(file: string, what: string): void {
  console.log(`[consumers/${file}] ${((performance.now() - started) / 1000).toFixed(1)} s  ${what}`);
}

export type RunResult = Awaited<ReturnType<typeof runProcess>>;

/** Run a command to completion (default limit here: 4 minutes). */
export function run(cmd: string, args: string[], opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<RunResult> {
  return runProcess(cmd, args, { timeoutMs: 240_000, ...opts });
}

/** Throws with the whole output unless the command exited 0. */
export function ok(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

/** Every file that goes into the package, or decides what does: its state keys the packed tarball. */
function sourceStateKey(): string {
  const h = createHash('sha256');
  const walk = (p: string) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p).sort()) walk(join(p, e));
    } else {
      h.update(`${p}\0${st.size}\0${st.mtimeMs}\n`);
    }
  };
  for (const p of ['src', 'platform', 'types', 'bin', 'assets', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) walk(join(ROOT, p));
  return h.digest('hex').slice(0, 16);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let packed: Promise<string> | null = null;

/**
 * The package as `npm pack` makes it (its prepack script builds lib/), made once per state of the
 * sources (kept in the temp folder, so a later run with the same sources reuses it): test files
 * running in parallel wait for the one that packs.
 */
export function packedTarball(): Promise<string> {
  packed ??= (async () => {
    // One folder per checkout (worktrees side by side must not clean up each other's tarballs).
    const base = join(tmpdir(), `samclip-consumer-pack-${createHash('sha256').update(ROOT).digest('hex').slice(0, 8)}`);
    const key = sourceStateKey();
    const dir = join(base, key);
    const done = join(dir, 'tarball.txt');
    mkdirSync(base, { recursive: true });
    for (;;) {
      if (existsSync(done)) return join(dir, readFileSync(done, 'utf8').trim());
      try {
        mkdirSync(dir);
      } catch {
        // Another test file is packing this state; a lock older than 10 minutes is a dead run's.
        if (Date.now() - statSync(dir).mtimeMs > 600_000) rmSync(dir, { recursive: true, force: true });
        await sleep(500);
        continue;
      }
      try {
        for (const old of readdirSync(base)) if (old !== key) rmSync(join(base, old), { recursive: true, force: true });
        const r = ok(await run('npm', ['pack', '--pack-destination', dir, '--silent'], { cwd: ROOT, timeoutMs: 300_000 }), 'npm pack');
        const name = r.stdout.trim().split('\n').pop()!.trim();
        if (!existsSync(join(dir, name))) throw new Error(`npm pack did not write ${name}\n${r.stdout}\n${r.stderr}`);
        writeFileSync(done, name);
        return join(dir, name);
      } catch (e) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
    }
  })();
  return packed;
}

/** The file names inside a .tgz (tar headers walked directly: no tar package needed). */
export function tarballFiles(tgz: string): string[] {
  const tar = gunzipSync(readFileSync(tgz));
  const names: string[] = [];
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const field = (a: number, n: number) => header.subarray(a, a + n).toString('latin1').replace(/\0.*$/s, '');
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : '') + field(0, 100);
    const size = parseInt(field(124, 12).trim() || '0', 8);
    if (header[156] === 0x30 || header[156] === 0) names.push(name);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return names;
}

interface LockEntry {
  version: string;
  integrity?: string;
  resolved?: string;
  dependencies?: Record<string, string>;
  [k: string]: unknown;
}

/**
 * A throw-away app in a temp folder with the packed package installed by `npm ci --offline`.
 * `files` are copied from test/consumers/apps/<template>/; `webgpu` links Dawn into node_modules.
 */
export async function installApp(template: string, opts: { webgpu?: boolean } = {}): Promise<{ dir: string; tarball: string }> {
  const tarball = await packedTarball();
  const dir = mkdtempSync(join(tmpdir(), `samclip-consumer-${template}-`));
  copyTemplate(join(APPS, template), dir);
  const tgz = basename(tarball);
  writeFileSync(join(dir, tgz), readFileSync(tarball));
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string> } & Record<string, unknown>;
  const app = { name: `consumer-${template}`, version: '1.0.0', private: true, type: 'module', dependencies: { [pkg.name]: `file:${tgz}` } };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(app, null, 2));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(appLock(app, pkg, tgz, readFileSync(join(dir, tgz))), null, 2));
  ok(await run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, timeoutMs: 180_000 }), `npm ci in ${dir}`);
  if (opts.webgpu) symlinkSync(join(ROOT, 'node_modules', 'webgpu'), join(dir, 'node_modules', 'webgpu'), 'dir');
  return { dir, tarball };
}

function copyTemplate(from: string, to: string): void {
  for (const e of readdirSync(from, { withFileTypes: true })) {
    if (e.isDirectory()) {
      mkdirSync(join(to, e.name), { recursive: true });
      copyTemplate(join(from, e.name), join(to, e.name));
    } else {
      writeFileSync(join(to, e.name), readFileSync(join(from, e.name)));
    }
  }
}

/** The app's package-lock.json: the tarball, and its dependency tree as the repository's lockfile pins it. */
function appLock(app: { name: string; version: string; dependencies: Record<string, string> }, pkg: Record<string, unknown> & { name: string; dependencies: Record<string, string> }, tgz: string, bytes: Buffer): object {
  const repoLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const self: Record<string, unknown> = { resolved: `file:${tgz}`, integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}` };
  for (const k of ['version', 'license', 'dependencies', 'peerDependencies', 'peerDependenciesMeta', 'bin', 'engines']) if (pkg[k] !== undefined) self[k] = pkg[k];
  const packages: Record<string, unknown> = { '': { name: app.name, version: app.version, dependencies: app.dependencies }, [`node_modules/${pkg.name}`]: self };
  // Walk the package's dependencies (and optional ones: sharp's prebuilt platform packages, of
  // which npm ci installs those for this machine) as Node resolution finds them in the lockfile.
  const todo: { name: string; from: string; optional: boolean }[] = Object.keys(pkg.dependencies).map((name) => ({ name, from: '', optional: false }));
  while (todo.length) {
    const { name, from, optional } = todo.pop()!;
    const candidates: string[] = [];
    for (let at = from; ; at = at.slice(0, Math.max(0, at.lastIndexOf('/node_modules/')))) {
      candidates.push(`${at ? `${at}/` : ''}node_modules/${name}`);
      if (!at) break;
    }
    const key = candidates.find((k) => repoLock.packages[k]);
    if (!key) {
      if (optional) continue;
      throw new Error(`${name}: a dependency of the package that the repository's package-lock.json does not have`);
    }
    if (packages[key]) continue;
    const { dev: _dev, peer: _peer, devOptional, ...entry } = repoLock.packages[key]!;
    if (devOptional || optional) entry.optional = true;
    entry.resolved = `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${entry.version}.tgz`;
    packages[key] = entry;
    todo.push(...Object.keys(entry.dependencies ?? {}).map((n) => ({ name: n, from: key, optional: optional || !!entry.optional })));
    todo.push(...Object.keys((entry.optionalDependencies as Record<string, string> | undefined) ?? {}).map((n) => ({ name: n, from: key, optional: true })));
  }
  return { name: app.name, version: app.version, lockfileVersion: 3, requires: true, packages };
}
