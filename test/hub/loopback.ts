/**
 * A loopback HTTP server for download tests: files whose answers can be cut short (cleanly, or by
 * closing the connection), sent chunked without a length, as HTML, empty or endless; Range and
 * If-Range honoured or ignored; a Hub-like redirect that declares X-Linked-Etag / X-Linked-Size;
 * every request logged.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Served {
  body: Buffer;
  /** ETag sent with the file (default '"v1"'; null: none). */
  etag?: string | null;
  contentType?: string;
  /** No Content-Length (chunked transfer encoding). */
  chunked?: boolean;
  /** Cut the next `cuts` answers after this many bytes of the file (absolute offset). */
  cutAt?: number;
  cuts?: number;
  /** 'end': finish the answer cleanly (a short body); 'close': destroy the connection. */
  cutMode?: 'end' | 'close';
  ignoreRange?: boolean;
  /** Answer ranges even when If-Range names another validator (a broken server). */
  ignoreIfRange?: boolean;
  /** Send the body forever (repeating it). */
  endless?: boolean;
  /** Answer with this status and no file (e.g. 404, 503). */
  status?: number;
  /** Send in pieces of this many bytes with `delayMs` between them (aborts, concurrency). */
  pieceBytes?: number;
  delayMs?: number;
}

export interface Redirect {
  to: string;
  linkedSha?: string | null;
  linkedSize?: number | null;
}

export interface LogLine {
  path: string;
  range: string | null;
  ifRange: string | null;
  authorization: string | null;
  status: number;
}

export class Loopback {
  readonly log: LogLine[] = [];
  private readonly files = new Map<string, Served>();
  private readonly redirects = new Map<string, Redirect>();
  private server!: Server;
  base = '';

  static async start(): Promise<Loopback> {
    const l = new Loopback();
    l.server = createServer((req, res) => l.handle(req, res));
    await new Promise<void>((r) => l.server.listen(0, '127.0.0.1', r));
    l.base = `http://127.0.0.1:${(l.server.address() as AddressInfo).port}`;
    return l;
  }

  serve(path: string, s: Served): this {
    this.files.set(path, s);
    return this;
  }

  redirect(path: string, r: Redirect): this {
    this.redirects.set(path, r);
    return this;
  }

  url(path: string): string {
    return `${this.base}${path}`;
  }

  /** Requests for `path` that got a file body (200 or 206). */
  bodies(path: string): LogLine[] {
    return this.log.filter((l) => l.path === path && (l.status === 200 || l.status === 206));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '';
    const line: LogLine = {
      path,
      range: req.headers.range ?? null,
      ifRange: (req.headers['if-range'] as string | undefined) ?? null,
      authorization: req.headers.authorization ?? null,
      status: 0,
    };
    this.log.push(line);
    const send = (status: number, headers: Record<string, string | number> = {}) => {
      line.status = status;
      res.writeHead(status, headers);
    };
    const r = this.redirects.get(path);
    if (r) {
      const headers: Record<string, string | number> = { location: r.to };
      if (r.linkedSha) headers['x-linked-etag'] = `"${r.linkedSha}"`;
      if (r.linkedSize != null) headers['x-linked-size'] = r.linkedSize;
      send(302, headers);
      res.end();
      return;
    }
    const s = this.files.get(path);
    if (!s) {
      send(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    if (s.status) {
      send(s.status, { 'content-type': 'text/plain' });
      res.end(`status ${s.status}`);
      return;
    }
    const etag = s.etag === undefined ? '"v1"' : s.etag;
    const body = s.body;
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(line.range ?? '');
    const ifRangeOk = !line.ifRange || line.ifRange === etag || !!s.ignoreIfRange;
    if (m && !s.ignoreRange && ifRangeOk && !s.endless) start = Number(m[1]);
    if (m && start >= body.length && start > 0) {
      send(416, { 'content-range': `bytes */${body.length}` });
      res.end();
      return;
    }
    const headers: Record<string, string | number> = { 'content-type': s.contentType ?? 'application/octet-stream', 'accept-ranges': 'bytes' };
    if (etag) headers.etag = etag;
    if (!s.chunked && !s.endless) headers['content-length'] = body.length - start;
    const status = start > 0 ? 206 : 200;
    if (status === 206) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    send(status, headers);
    if (s.endless) {
      const pump = () => {
        while (res.write(body)) {
          if (res.destroyed) return;
        }
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
      return;
    }
    let end = body.length;
    let cut = false;
    if (s.cutAt !== undefined && (s.cuts ?? 1) > 0 && start < s.cutAt) {
      s.cuts = (s.cuts ?? 1) - 1;
      end = s.cutAt;
      cut = true;
    }
    const finish = () => {
      // end(), not destroy(): a reset could drop bytes the client has not read yet.
      if (cut && s.cutMode === 'close') res.socket?.end();
      else res.end();
    };
    if (!s.pieceBytes) {
      res.write(body.subarray(start, end), finish);
      return;
    }
    let o = start;
    const next = () => {
      if (res.destroyed) return;
      if (o >= end) {
        finish();
        return;
      }
      const n = Math.min(s.pieceBytes!, end - o);
      res.write(body.subarray(o, o + n));
      o += n;
      setTimeout(next, s.delayMs ?? 0);
    };
    next();
  }
}
