import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HeadstartError } from './errors.js';

function tempSibling(path: string, tag: string): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * What a writer may replace. Paths come from users (`--out ~/Documents`), and replacing is deleting,
 * so a writer that replaces only ever replaces what it recognises as its own earlier output.
 */
export interface ReplaceGuard {
  /** What is being written, for messages: "model folder", "ONNX export". */
  what: string;
  /** What an existing entry must be to be replaced, for messages: "a headstart model folder (manifest.json)". */
  ours: string;
  /** Whether the existing file or folder at the path is one the writer may replace. */
  isOurs(path: string): Promise<boolean>;
}

/**
 * Throws a usage error naming `path` unless writing there replaces nothing of the user's: the path is
 * missing, is an empty folder (folders only), or holds what `guard.isOurs` recognises.
 */
export async function checkReplaceable(path: string, kind: 'file' | 'folder', guard: ReplaceGuard): Promise<void> {
  const existing = await stat(path).catch(() => undefined);
  if (!existing) return;
  const refuse = (why: string) => {
    throw new HeadstartError('usage', `refusing to write the ${guard.what} here: ${why}`, { file: path });
  };
  if (kind === 'folder') {
    if (!existing.isDirectory()) refuse(`it is a file, and the ${guard.what} is a folder; choose a new or empty folder`);
    const entries = await readdir(path);
    if (entries.length === 0 || (await guard.isOurs(path))) return;
    const shown = entries.slice(0, 3).map((name) => `"${name}"`).join(', ');
    refuse(
      `the folder is not empty (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}: ${shown}${entries.length > 3 ? ', …' : ''}) ` +
        `and is not ${guard.ours}, and writing would replace it; choose a new or empty folder`,
    );
  }
  if (existing.isDirectory()) refuse(`it is a folder; give a file path`);
  if (!(await guard.isOurs(path))) refuse(`the file exists and is not ${guard.ours}, and writing would replace it; choose another path`);
}

/**
 * A cache entry (a folder under the cache named by its key): replaceable when it is a complete entry,
 * i.e. holds `marker`, which only happens when another process wrote the same entry meanwhile.
 */
export function cacheEntryGuard(what: string, marker: string): ReplaceGuard {
  return { what, ours: `a cache entry (one holding ${marker})`, isOurs: async (path) => Boolean(await stat(join(path, marker)).catch(() => undefined)) };
}

/**
 * Writes a file so that readers see either the old content or the new, never a half-written file.
 * `durable: false` skips the fsync, for caches whose entries can be recomputed. With `guard`, an
 * existing file is only replaced when the guard recognises it (see {@link checkReplaceable}).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { durable?: boolean; guard?: ReplaceGuard } = {},
): Promise<void> {
  if (options.guard) await checkReplaceable(path, 'file', options.guard);
  await mkdir(dirname(path), { recursive: true });
  const temp = tempSibling(path, 'tmp');
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(data);
    if (options.durable !== false) await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Builds a directory in a temporary sibling and swaps it into place once complete, so a crash or an
 * error half-way leaves the previous directory (or nothing) behind, never a mix. The swap deletes what
 * was there, so it only ever replaces a missing or empty folder or one `guard` recognises; anything
 * else is a usage error naming the folder, checked before the work and again just before the swap.
 */
export async function writeDirAtomic(dir: string, fill: (tempDir: string) => Promise<void>, guard?: ReplaceGuard): Promise<void> {
  const check = () => checkReplaceable(dir, 'folder', guard ?? { what: 'folder', ours: 'one headstart wrote', isOurs: async () => false });
  await check();
  await mkdir(dirname(dir), { recursive: true });
  const temp = tempSibling(dir, 'tmp');
  await mkdir(temp);
  try {
    await fill(temp);
    await check();
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  const existing = await stat(dir).catch(() => undefined);
  if (!existing) {
    await rename(temp, dir);
    return;
  }
  const old = tempSibling(dir, 'old');
  await rename(dir, old);
  try {
    await rename(temp, dir);
  } catch (error) {
    await rename(old, dir);
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  await rm(old, { recursive: true, force: true });
}
