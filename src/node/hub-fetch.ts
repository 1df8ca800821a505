/**
 * The hub's fetch on Node, over node:http / node:https, because Node's own fetch ignores proxy
 * settings. It honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY (an https URL goes through a CONNECT
 * tunnel; an http URL as an absolute-URI request to the proxy), follows redirects itself so that
 * the digest the Hugging Face Hub declares on its redirect (`X-Linked-Etag`, `X-Linked-Size`)
 * reaches the downloader, and drops `authorization` when a redirect leaves the origin (the Hub's
 * CDN must not see the token).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import * as tls from 'node:tls';
import type { HubFetch } from '../hub/http.js';

export interface NodeFetchOptions {
  /** Environment to read the proxy variables from (default process.env, read at each call). */
  env?: () => Record<string, string | undefined>;
  /** Extra certificate authorities (PEM), e.g. a corporate proxy's or a test server's. */
  ca?: string | Uint8Array;
  /** Socket idle timeout in ms (default 60 s). */
  timeoutMs?: number;
  /** Most redirects followed (default 10). */
  maxRedirects?: number;
}

/** Headers a redirect hop may declare for the file it points to; carried to the final answer. */
const LINKED = ['x-linked-etag', 'x-linked-size'] as const;

/** The proxy URL for `target` from the environment, or null (none set, or NO_PROXY matches). */
export function proxyFor(target: URL, env: Record<string, string | undefined>): URL | null {
  const raw = target.protocol === 'https:' ? (env.HTTPS_PROXY ?? env.https_proxy ?? env.ALL_PROXY ?? env.all_proxy) : (env.HTTP_PROXY ?? env.http_proxy ?? env.ALL_PROXY ?? env.all_proxy);
  if (!raw) return null;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? '')
    .split(/[,\s]+/)
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const host = target.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  for (const entry of noProxy) {
    if (entry === '*') return null;
    const [h, p] = entry.startsWith('[') ? [entry.slice(1, entry.indexOf(']')), entry.split(']:')[1]] : entry.split(':');
    if (p && p !== port) continue;
    const name = (h ?? '').replace(/^\*?\./, '');
    if (host === name || host.endsWith(`.${name}`)) return null;
  }
  let proxy: URL;
  try {
    proxy = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw new Error(`the proxy setting '${raw}' is not a URL`);
  }
  if (proxy.protocol !== 'http:') throw new Error(`proxy ${proxy.origin}: only http:// proxies are supported (an https URL is tunnelled through them with CONNECT)`);
  return proxy;
}

function proxyAuth(proxy: URL): Record<string, string> {
  if (!proxy.username) return {};
  const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'proxy-authorization': `Basic ${Buffer.from(cred).toString('base64')}` };
}

/** A CONNECT tunnel through `proxy` to `target`, wrapped in TLS. */
function tunnel(proxy: URL, target: URL, opts: NodeFetchOptions, signal?: AbortSignal): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const authority = `${target.hostname}:${target.port || 443}`;
    const req = http.request({
      host: proxy.hostname,
      port: proxy.port || 80,
      method: 'CONNECT',
      path: authority,
      headers: { host: authority, ...proxyAuth(proxy) },
      signal,
    });
    req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new Error(`proxy ${proxy.host} did not answer CONNECT`)));
    req.once('connect', (res, socket: Socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(Object.assign(new Error(`proxy ${proxy.host} refused CONNECT ${authority}: HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim()), { code: 'ERR_PROXY_CONNECT' }));
        return;
      }
      const secure = tls.connect({ socket, servername: target.hostname, ...caOption(opts) });
      secure.once('secureConnect', () => resolve(secure));
      secure.once('error', reject);
    });
    req.once('error', (e) => reject(new Error(`proxy ${proxy.host}: ${e.message}`, { cause: e })));
    req.end();
  });
}

/** tls's `ca` option. The public option takes any Uint8Array, so the declarations need no Node types. */
function caOption(opts: NodeFetchOptions): { ca?: string | Buffer } {
  if (!opts.ca) return {};
  return { ca: typeof opts.ca === 'string' ? opts.ca : Buffer.from(opts.ca) };
}

interface Hop {
  res: http.IncomingMessage;
  url: URL;
}

async function requestOnce(url: URL, headers: Record<string, string>, method: string, opts: NodeFetchOptions, signal?: AbortSignal): Promise<Hop> {
  const env = (opts.env ?? (() => process.env))();
  const proxy = proxyFor(url, env);
  const base: https.RequestOptions = { method, headers: { 'user-agent': 'samclip-webgpu', ...headers }, signal };
  let req: http.ClientRequest;
  if (url.protocol === 'https:') {
    const socket = proxy ? await tunnel(proxy, url, opts, signal) : null;
    req = https.request(url, { ...base, ...caOption(opts), ...(socket ? { createConnection: () => socket, agent: false } : {}) });
  } else if (url.protocol === 'http:') {
    req = proxy
      ? http.request({ ...base, host: proxy.hostname, port: proxy.port || 80, path: url.href, headers: { ...base.headers, host: url.host, ...proxyAuth(proxy) } })
      : http.request(url, base);
  } else {
    throw new TypeError(`${url.href}: only http and https URLs can be downloaded`);
  }
  return new Promise((resolve, reject) => {
    req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new Error(`no answer for ${(opts.timeoutMs ?? 60_000) / 1000} s`)));
    req.once('response', (res) => resolve({ res, url }));
    req.once('error', reject);
    req.end();
  });
}

function toResponse(res: http.IncomingMessage, extra: Record<string, string>): Response {
  const headers = new Headers();
  for (const [k, v] of Object.entries(res.headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
  }
  for (const [k, v] of Object.entries(extra)) if (!headers.has(k)) headers.set(k, v);
  const status = res.statusCode ?? 0;
  const nullBody = status === 204 || status === 205 || status === 304;
  if (nullBody) res.resume();
  const body = nullBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
  return new Response(body, { status, statusText: res.statusMessage ?? '', headers });
}

/** A HubFetch over node:http / node:https with proxy support (see the file comment). */
export function createNodeFetch(opts: NodeFetchOptions = {}): HubFetch {
  return async (input, init = {}) => {
    const maxRedirects = opts.maxRedirects ?? 10;
    let url = new URL(input);
    let headers = { ...(init.headers ?? {}) };
    const linked: Record<string, string> = {};
    for (let hop = 0; ; hop++) {
      init.signal?.throwIfAborted();
      const { res } = await requestOnce(url, headers, init.method ?? 'GET', opts, init.signal);
      const status = res.statusCode ?? 0;
      for (const k of LINKED) {
        const v = res.headers[k];
        if (typeof v === 'string' && !(k in linked)) linked[k] = v;
      }
      const location = res.headers.location;
      if (status >= 300 && status < 400 && status !== 304 && location) {
        res.resume();
        if (hop >= maxRedirects) throw new Error(`${input}: more than ${maxRedirects} redirects`);
        const next = new URL(location, url);
        if (next.origin !== url.origin) headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
        url = next;
        continue;
      }
      return toResponse(res, linked);
    }
  };
}

/** The default Node fetch of the hub (process.env read at each call). */
export const nodeFetch: HubFetch = createNodeFetch();
