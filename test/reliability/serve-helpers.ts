/**
 * The demo server (tools/serve-demo.ts) run as its own process, as a user runs it, so that a crash
 * is seen as the process dying (not as a failed promise inside vitest) and its descriptors can be
 * counted in /proc/<pid>/fd. Also small HTTP clients that abort, hold or read responses.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { REPO } from './child.js';

export interface ServerProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Open descriptors of the server process right now. */
  fds(): number;
  /** The descriptor count once it has stopped changing (closes land asynchronously). */
  steadyFds(): Promise<number>;
  alive(): boolean;
  /** Everything the server wrote to stderr (an uncaught error shows up here). */
  stderr(): string;
  stop(): Promise<void>;
}

/** Start `tsx tools/serve-demo.ts DIST --weights WEIGHTS --port 0` under `ulimit -n maxFds`. */
export async function startServerProcess(dist: string, weights: string, maxFds = 1024): Promise<ServerProcess> {
  const script = join(REPO, 'tools', 'serve-demo.ts');
  const child = spawn('bash', ['-c', `ulimit -n ${maxFds} && exec node --import tsx "$@"`, 'bash', script, dist, '--weights', weights, '--port', '0'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => void (err += d.toString()));
  const url = await new Promise<string>((ok, bad) => {
    const timer = setTimeout(() => bad(new Error(`serve-demo did not start in 60 s; stderr: ${err}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /samclip demo: (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      bad(new Error(`serve-demo exited with ${code} before listening; stderr: ${err}`));
    });
  });
  const pid = child.pid!;
  let exited = false;
  child.once('exit', () => void (exited = true));
  return {
    url,
    pid,
    child,
    fds: () => readdirSync(`/proc/${pid}/fd`).length,
    steadyFds: async () => {
      const count = () => readdirSync(`/proc/${pid}/fd`).length;
      let last = count();
      for (let same = 0, i = 0; same < 6 && i < 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const n = count();
        same = n === last ? same + 1 : 0;
        last = n;
      }
      return last;
    },
    alive: () => !exited,
    stderr: () => err,
    stop: async () => {
      if (exited) return;
      const gone = new Promise<void>((ok) => child.once('exit', () => ok()));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

export interface Fetched {
  status: number;
  body: Buffer;
}

/** GET `url` (fresh connection), whole body; `error` when the connection failed. */
export function fetchOnce(url: string, headers: Record<string, string> = {}): Promise<Fetched | { error: string }> {
  return new Promise((ok) => {
    const req = get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', (e) => ok({ error: e.message }));
    });
    req.on('error', (e) => ok({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
  });
}

/** A range request abandoned as soon as the response headers arrive; resolves with the status (0: connection error). */
export function abortedRange(url: string, start: number, length: number): Promise<number> {
  return new Promise((ok) => {
    const req = get(url, { headers: { Range: `bytes=${start}-${start + length - 1}` }, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      res.destroy();
      req.destroy();
      ok(status);
    });
    req.on('error', () => ok(0));
  });
}

/** A request whose response is left unread (the server's socket buffer fills and its stream stays open). */
export interface HeldResponse {
  status: number;
  release(): void;
}

export function heldRequest(url: string): Promise<HeldResponse> {
  return new Promise((ok) => {
    const req = get(url, { agent: false }, (res) => {
      res.pause();
      ok({ status: res.statusCode ?? 0, release: () => void (res.destroy(), req.destroy()) });
    });
    req.on('error', (e) => ok({ status: 0, release: () => void e }));
  });
}
