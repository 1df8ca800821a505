/** File checks with one-line messages naming the file (before any heavy work starts). */
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CliError } from '../errors.js';

/** Fails unless `path` is an existing, readable regular file. */
export async function checkReadable(path: string, what: string): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(`${what} ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  if (st.isDirectory()) throw new CliError(`${what} ${path}: is a directory, not a file`);
  try {
    await access(path, constants.R_OK);
  } catch {
    throw new CliError(`${what} ${path}: permission denied`);
  }
}

/** Fails when `path` exists (unless `force`); creates its folder when missing. */
export async function checkWritable(path: string, force: boolean, what = 'output'): Promise<void> {
  try {
    await stat(path);
  } catch {
    try {
      await mkdir(dirname(path), { recursive: true });
    } catch (e) {
      throw new CliError(`${what} ${path}: cannot create its folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    return;
  }
  if (!force) throw new CliError(`${what} ${path} already exists; pass --force to overwrite it`);
}
