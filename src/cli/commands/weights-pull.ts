/**
 * `samclip weights pull NAME`: download a known (or any) safetensors file into the cache, through
 * the library's downloader (src/hub/download.ts) and file cache (src/node/hub-cache.ts), the same
 * code `fromPretrained` uses.
 */
import { basename } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { type DownloadEvent, DEFAULT_MAX_BYTES, type Expected, ensureCached, normaliseSha256 } from '../../hub/download.js';
import { HubError } from '../../hub/errors.js';
import { ENTRY_NAME } from '../../hub/registry.js';
import { FileModelCache, nodeSha256 } from '../../node/hub-cache.js';
import { nodeFetch } from '../../node/hub-fetch.js';
import { intArg, withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { UsageError } from '../errors.js';
import { formatBytes, type Progress } from '../output.js';
import { REGISTRY, cacheDir, entryUrl, findEntry } from '../weights/cache.js';

interface PullOptions extends CommonOptions {
  cache?: string;
  url?: string;
  sha256?: string;
  retries: number;
  maxBytes: number;
  force?: boolean;
}

/** `4G`, `512MiB`, `1000000` -> bytes. */
export function bytesArg(name: string): (v: string) => number {
  return (v: string) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(v);
    const n = m ? Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase()) : NaN;
    if (!m || !Number.isSafeInteger(Math.floor(n)) || n < 1) throw new InvalidArgumentError(`${name} must be a size such as 4G, 512M or 1000000 (bytes), got '${v}'`);
    return Math.floor(n);
  };
}

function truthy(v: string | undefined): boolean {
  return !!v && /^(1|true|yes|on)$/i.test(v.trim());
}

export function registerPull(weights: Command, env: CliEnv): void {
  withCommon(
    weights
      .command('pull')
      .description('download weights into the cache (resumable, length and SHA-256 checked)')
      .argument('<name>', `a known name (${REGISTRY.map((e) => e.name).join(', ')}) or your own name with --url`)
      .option('--cache <dir>', 'cache directory (default $SAMCLIP_CACHE or ~/.cache/samclip)')
      .option('--url <url>', 'download from this URL instead of the registry one')
      .option('--sha256 <hex>', 'expected SHA-256 of the file')
      .option('--retries <n>', 'extra attempts after failures that made no progress', intArg('--retries', 0, 100), 3)
      .option('--max-bytes <size>', 'refuse a body longer than this when the server declares no length', bytesArg('--max-bytes'), DEFAULT_MAX_BYTES)
      .option('--force', 'download again even if the file is in the cache'),
  ).action(async (name: string, opts: PullOptions) => {
    const entry = findEntry(name);
    if (!entry && !opts.url) {
      throw new UsageError(`unknown weights '${name}': known names are ${REGISTRY.map((e) => e.name).join(', ')} (or give --url URL)`);
    }
    if (!ENTRY_NAME.test(name)) throw new UsageError(`weights name '${name}' may only hold letters, digits, '.', '_' and '-'`);
    const registryUrl = entry ? entryUrl(entry) : null;
    const url = opts.url ?? registryUrl!;
    let file = entry && !opts.url ? entry.file : basename(safeUrl(url).pathname);
    if (!file || file === '/') file = 'weights.safetensors';
    let user: string | null = null;
    try {
      user = opts.sha256 ? normaliseSha256(opts.sha256, '--sha256') : null;
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const pinned = entry && (!opts.url || opts.url === registryUrl) ? entry : null;
    const expected: Expected | undefined = user
      ? { sha256: user, from: 'user', label: '--sha256' }
      : pinned && (pinned.sha256 || pinned.size)
        ? { sha256: pinned.sha256, size: pinned.size, from: 'registry', label: 'the registry' }
        : undefined;
    const cache = new FileModelCache(cacheDir(opts.cache));
    // The token goes to the Hub only (and the fetch drops it on the redirect to its CDN).
    const token = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
    const hub = new URL(process.env.HF_ENDPOINT || 'https://huggingface.co').origin;
    const headers: Record<string, string> = token && safeUrl(url).origin === hub ? { authorization: `Bearer ${token}` } : {};

    let bar: Progress | null = null;
    let verifying: Progress | null = null;
    const onEvent = (e: DownloadEvent) => {
      if (e.type === 'wait') env.note(opts, `${name}: another pull of it is running; waiting for it to finish`);
      else if (e.type === 'stale') env.note(opts, `${name}: ${e.reason}; downloading it again`);
      else if (e.type === 'restart') env.note(opts, `${name}: starting over (${e.reason})`);
      else if (e.type === 'start') {
        verifying?.finish();
        verifying = null;
        if (e.resumeFrom > 0) env.note(opts, `resuming ${name} at ${formatBytes(e.resumeFrom)}`);
        bar?.finish('(interrupted)');
        bar = env.progress(opts, name, e.total ?? 0, true, e.resumeFrom);
      } else if (e.type === 'retry') {
        bar?.finish('(interrupted)');
        bar = null;
        env.note(opts, `${name}: ${e.error.message}; retry ${e.attempt}/${e.retries} from ${formatBytes(e.bytes)}`);
      }
    };
    const res = await ensureCached({
      name,
      file,
      url,
      cache,
      fetch: nodeFetch,
      headers,
      expected,
      retries: opts.retries,
      maxBytes: opts.maxBytes,
      force: opts.force,
      // A pull re-reads a cached file: it is the command that vouches for the cache.
      verify: true,
      offline: truthy(process.env.HF_HUB_OFFLINE),
      createHash: nodeSha256,
      onEvent,
      onProgress: (p) => {
        if (p.stage === 'verify') {
          verifying ??= env.progress(opts, `verifying ${name}`, p.total ?? 0, true);
          verifying.update(p.loaded);
        } else (bar as Progress | null)?.update(p.loaded);
      },
    }).catch((e: unknown) => {
      (bar as Progress | null)?.finish('(failed)');
      throw e instanceof HubError || !(e instanceof Error) ? e : new HubError(`${url}: ${e.message}`);
    });
    (verifying as Progress | null)?.finish();
    (bar as Progress | null)?.finish();
    const rec = res.entry.record;
    if (res.status === 'cached') {
      env.emit(opts, { name, status: 'cached', path: res.entry.location, sha256: rec.sha256, bytes: rec.bytes, verified: true }, () => `${name}: already in the cache (SHA-256 verified): ${res.entry.location}`);
      return;
    }
    if (res.verifiedAgainst === 'none') {
      env.note(opts, `note: no published SHA-256 for ${name}; recorded ${rec.sha256} in ${res.entry.location}.json (later pulls check the file against it)`);
    }
    const verifiedBy = res.verifiedAgainst === 'server' ? 'the server (X-Linked-Etag)' : (expected?.label ?? '');
    const out = { name, status: 'downloaded', path: res.entry.location, url, bytes: rec.bytes, sha256: rec.sha256, verified: res.verifiedAgainst, resumedFrom: res.resumedFrom, attempts: res.attempts };
    env.emit(opts, out, () =>
      `${name}: ${formatBytes(rec.bytes)} -> ${res.entry.location}\nsha256 ${rec.sha256} (${res.verifiedAgainst === 'none' ? 'not verified: no published digest; length checked' : `verified against ${verifiedBy}`})`,
    );
  });
}

function safeUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new UsageError(`--url: not a valid URL: '${url}'`);
  }
}
