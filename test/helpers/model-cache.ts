/** Put a file into a samclip model cache the way `weights pull` leaves it: the file and its record. */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function addCacheEntry(cache: string, name: string, source: string, file = 'model.safetensors'): string {
  const dir = join(cache, name);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  symlinkSync(source, path);
  const bytes = readFileSync(source);
  const record = { name, file, url: `file://${source}`, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), verified: 'user', downloadedAt: new Date().toISOString() };
  writeFileSync(`${path}.json`, JSON.stringify(record));
  return path;
}
