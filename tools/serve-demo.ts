/**
 * A small static HTTP server for the browser demo (examples/web): serves the built page and, under
 * other URL prefixes, folders of weights, with HTTP Range support so the engine's
 * `SafetensorsFile.fromUrl` reads a checkpoint tensor by tensor instead of downloading it whole.
 * Binds 127.0.0.1 only: a loopback origin is a secure context, which WebGPU requires.
 *
 *   npm run build:web
 *   npx tsx tools/serve-demo.ts                       # serves dist/web on http://127.0.0.1:5174/
 *   npx tsx tools/serve-demo.ts --weights ~/.cache/samclip --port 8080
 *
 * `--weights DIR` mounts DIR at /weights/ (paste /weights/<name>/model.safetensors in the page's URL
 * field); the repository's test fixtures are always mounted at /fixtures/ (tiny random-weight models,
 * useful to try the page's mechanics without downloading anything).
 *
 * The end-to-end test (test/web/demo.test.ts) uses `startStaticServer` with the same mounts.
 */
import { type Stats, constants } from 'node:fs';
import { type FileHandle, open, realpath, stat } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';

export interface StaticServer {
  /** Base URL, `http://127.0.0.1:<port>/`. */
  url: string;
  server: Server;
  /** Requests served so far (method, path, status, range), for tests and debugging. */
  log: RequestLog;
  close(): Promise<void>;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  // Served as bytes, never with Content-Encoding: the page gunzips the CLIP vocabulary itself.
  '.gz': 'application/gzip',
  '.safetensors': 'application/octet-stream',
};

/** Parse a single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; null when absent, 'bad' when unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'bad' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'bad';
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return 'bad';
  return { start, end };
}

export type RequestLog = { method: string; path: string; status: number; range: string | null }[];

/** Why a file could not be served, as an HTTP status and a one-line message. */
function fsFailure(e: NodeJS.ErrnoException, path: string): { status: number; message: string } {
  switch (e.code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ELOOP':
      return { status: 404, message: `no such file: ${path}` };
    case 'EACCES':
    case 'EPERM':
      return { status: 403, message: `not readable: ${path}` };
    case 'EMFILE':
    case 'ENFILE':
      // Out of descriptors: a temporary condition; the client may retry.
      return { status: 503, message: `server busy (${e.code}), retry later` };
    default:
      return { status: 500, message: `cannot read ${path}: ${e.code ?? e.message}` };
  }
}

/** `child` is `dir` or inside it (both absolute, symlinks already resolved). */
function inside(dir: string, child: string): boolean {
  return child === dir || child.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/**
 * A request handler serving `mounts` (URL prefix -> folder; '/' for the page). A folder serves its
 * index.html. Containment is checked on real paths: the requested path is resolved with every
 * symlink followed, and anything that lands outside the mounted folder's own real path is refused
 * (403), so a symlink in a weights folder cannot expose /etc. Each response holds one file
 * descriptor, opened once (no stat/open race: size and type come from the open descriptor) and
 * closed when the body is done, the client goes away or an error happens. Running out of
 * descriptors (EMFILE) answers 503; a file that vanishes answers 404; neither stops the server.
 * With `next`, unmatched requests fall through (the Vite dev server's middleware chain); without
 * it they get a 404.
 */
export function staticHandler(mounts: Record<string, string>, log: RequestLog = []) {
  // Longest prefix first, so '/fixtures/' wins over '/'.
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => ({ prefix: prefix.endsWith('/') ? prefix : `${prefix}/`, dir: resolve(dir), real: null as Promise<string> | null }))
    .sort((a, b) => b.prefix.length - a.prefix.length);
  return (req: IncomingMessage, res: ServerResponse, next?: () => void): void => {
    let path: string;
    try {
      path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    } catch {
      // A malformed %-escape must not throw out of the handler (that would stop the server).
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('malformed URL');
      return void log.push({ method: req.method ?? 'GET', path: req.url ?? '', status: 400, range: null });
    }
    const mount = table.find((m) => path.startsWith(m.prefix) || `${path}/` === m.prefix);
    if (!mount && next) return next();
    const range = req.headers.range ?? null;
    const done = (status: number): void => void log.push({ method: req.method ?? 'GET', path, status, range });
    const fail = (status: number, message: string, extra: Record<string, string> = {}) => {
      if (res.headersSent || res.destroyed) {
        // The body had started: all that is left is to cut the connection.
        res.destroy();
        return done(status);
      }
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...extra });
      res.end(message);
      done(status);
    };
    if (req.method === 'OPTIONS') {
      // CORS preflight for the Range header (pages on other origins).
      res.writeHead(204, {
        'access-control-allow-origin': '*',
        'access-control-allow-headers': 'Range',
        'access-control-allow-methods': 'GET, HEAD',
      });
      res.end();
      return done(204);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'only GET and HEAD');
    if (!mount) return fail(404, `nothing mounted at ${path}`);
    if (path.includes('\0')) return fail(400, 'NUL in the path');
    const rel = normalize(path.slice(mount.prefix.length));
    const lexical = join(mount.dir, rel);
    if (lexical !== mount.dir && !lexical.startsWith(mount.dir + sep)) return fail(403, 'outside the served folder');
    void (async () => {
      // Symlinks resolved on both sides: the mounted folder may itself be reached through one.
      mount.real ??= realpath(mount.dir).catch(() => mount.dir);
      const root = await mount.real;
      let file = await realpath(lexical);
      if (!inside(root, file)) return fail(403, 'outside the served folder');
      let handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
      let st = await statOrClose(handle);
      if (st.isDirectory()) {
        await handle.close();
        file = await realpath(join(file, 'index.html'));
        if (!inside(root, file)) return fail(403, 'outside the served folder');
        handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
        st = await statOrClose(handle);
      }
      if (!st.isFile()) {
        await handle.close();
        return fail(404, `no such file: ${path}`);
      }
      serveOpenFile(req, res, handle, st.size, file, done);
    })().catch((e: NodeJS.ErrnoException) => {
      const f = fsFailure(e, path);
      fail(f.status, f.message, f.status === 503 ? { 'retry-after': '1' } : {});
    });
  };
}

async function statOrClose(handle: FileHandle): Promise<Stats> {
  try {
    return await handle.stat();
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** Answer from an open descriptor, which is closed however the response ends. */
function serveOpenFile(req: IncomingMessage, res: ServerResponse, handle: FileHandle, size: number, file: string, done: (status: number) => void): void {
  const headers: Record<string, string | number> = {
    'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'accept-ranges': 'bytes',
    'cache-control': 'no-store',
    // Lets pages on other origins read checkpoints tensor by tensor (fromUrl reads Content-Range).
    'access-control-allow-origin': '*',
    'access-control-expose-headers': 'Content-Range, Content-Length, Accept-Ranges',
  };
  const r = parseRange(req.headers.range, size);
  if (r === 'bad' || req.method === 'HEAD' || size === 0) void handle.close().catch(() => undefined);
  if (r === 'bad') {
    res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` });
    res.end();
    return done(416);
  }
  const status = r ? 206 : 200;
  const start = r?.start ?? 0;
  const end = r?.end ?? size - 1;
  if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
  headers['content-length'] = size === 0 ? 0 : end - start + 1;
  res.writeHead(status, headers);
  done(status);
  if (req.method === 'HEAD' || size === 0) return void res.end();
  // pipeline() destroys the file stream (closing the descriptor) when the client aborts, and the
  // response when the read fails; the callback only has to swallow the error.
  pipeline(handle.createReadStream({ start, end, autoClose: true }), res, () => undefined);
}

/** Serve `mounts` (see staticHandler) on 127.0.0.1; port 0 picks a free one. */
export async function startStaticServer(mounts: Record<string, string>, port = 0): Promise<StaticServer> {
  const log: RequestLog = [];
  const server = createServer(staticHandler(mounts, log));
  await new Promise<void>((ok, bad) => {
    server.once('error', bad);
    server.listen(port, '127.0.0.1', () => ok());
  });
  const { port: p } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${p}/`,
    server,
    log,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

const REPO = resolve(fileURLToPath(new URL('..', import.meta.url)));

async function main(argv: string[]): Promise<void> {
  let dist = join(REPO, 'dist', 'web');
  let weights: string | null = null;
  let port = 5174;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--weights') weights = argv[++i] ?? '';
    else if (a === '--port') {
      const v = argv[++i] ?? '';
      port = Number(v);
      if (!/^\d+$/.test(v) || port > 65535) {
        console.error(`serve-demo: --port must be an integer in [0, 65535] (0: any free port), got '${v}'`);
        process.exitCode = 2;
        return;
      }
    }
    else if (a === '--help' || a === '-h') {
      console.log('usage: tsx tools/serve-demo.ts [DIST_DIR] [--weights DIR] [--port N]\n  serves the built demo (npm run build:web) on 127.0.0.1; --port 0 picks a free port');
      return;
    } else dist = resolve(a);
  }
  if (!(await stat(join(dist, 'index.html')).catch(() => null))) {
    console.error(`serve-demo: ${join(dist, 'index.html')} not found; run \`npm run build:web\` first`);
    process.exitCode = 1;
    return;
  }
  const mounts: Record<string, string> = { '/': dist, '/fixtures/': join(REPO, 'test', 'fixtures') };
  if (weights) mounts['/weights/'] = resolve(weights);
  const s = await startStaticServer(mounts, port);
  console.log(`samclip demo: ${s.url}`);
  for (const [prefix, dir] of Object.entries(mounts)) console.log(`  ${prefix.padEnd(11)} -> ${dir}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main(process.argv.slice(2));
}
