// The Node half of the platform seam (package.json "imports" → "#platform", condition "node").
// The only module of the library that imports Node built-ins or Dawn; browsers resolve
// "#platform" to ./browser.js instead, so none of this reaches a browser bundle. Plain JavaScript
// so that the same file serves the sources (tsx, vitest) and the built package; types in
// platform.d.ts. Keep it a thin list of capabilities: the logic lives in src/.
import * as fs from 'node:fs/promises';
import * as fsSync from 'node:fs';
import { inflateRawSync } from 'node:zlib';

export const runtime = 'node';

/** node:fs/promises. */
export const nodeFs = fs;

/** node:fs (synchronous calls, for debug dumps). */
export const nodeFsSync = fsSync;

/**
 * zlib's raw inflate, for runtimes whose DecompressionStream lacks 'deflate-raw'. With
 * maxOutputLength, zlib stops there and throws ERR_BUFFER_TOO_LARGE (a deflate bomb is never
 * inflated whole).
 */
export function inflateRaw(bytes, maxOutputLength) {
  return new Uint8Array(inflateRawSync(bytes, maxOutputLength ? { maxOutputLength } : undefined));
}

/**
 * Dawn's Node binding, the optional peer dependency `webgpu`. The specifier is a variable so that
 * a bundler building a Node app leaves this native package to be loaded at run time.
 */
export function importWebgpu() {
  const name = 'webgpu';
  return import(/* @vite-ignore */ /* webpackIgnore: true */ name);
}
