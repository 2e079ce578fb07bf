import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, mkdir, open, readFile, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A lock file per blob, so two processes pulling the same model never write the same
 * `.incomplete` file at once. Written here because Node has no `flock` (what Python's `filelock` uses)
 * and `proper-lockfile` locks with a directory and cannot tell a crashed holder from a slow one:
 * this one records who holds it, so a lock left by a dead process on this machine is broken at once,
 * and any lock whose holder stopped refreshing it for `staleMs` is broken too.
 *
 * A broken-then-stolen lock is not fatal either: blobs are verified before they are renamed into place.
 */
export interface LockOptions {
  /** A lock not refreshed for this long is taken to be abandoned. */
  staleMs?: number;
  pollMs?: number;
  /** Called once if the lock is busy, before waiting. */
  onWait?: (holder: LockOwner | undefined) => void;
}

export interface LockOwner {
  pid: number;
  host: string;
  token: string;
  since: string;
}

export interface HeldLock {
  release(): Promise<void>;
}

const DEFAULT_STALE_MS = 30_000;

export async function acquireLock(path: string, options: LockOptions = {}): Promise<HeldLock> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const pollMs = options.pollMs ?? 100;
  const owner: LockOwner = { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex'), since: new Date().toISOString() };
  await mkdir(dirname(path), { recursive: true });
  let waited = false;
  for (;;) {
    if (await tryCreate(path, owner)) break;
    const holder = await readOwner(path);
    if (await isStale(path, holder, staleMs)) {
      await breakLock(path, holder);
      continue;
    }
    if (!waited) options.onWait?.(holder);
    waited = true;
    await sleep(pollMs);
  }
  // Keeps the lock fresh while the download runs, however long it takes.
  const refresh = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => {});
  }, Math.max(staleMs / 3, 50));
  refresh.unref();
  return {
    async release() {
      clearInterval(refresh);
      // Only remove it if it is still ours (it may have been broken as stale and re-taken).
      if ((await readOwner(path))?.token === owner.token) await rm(path, { force: true });
    },
  };
}

async function tryCreate(path: string, owner: LockOwner): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(JSON.stringify(owner));
  } finally {
    await handle.close();
  }
  return true;
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8'));
    return typeof owner?.pid === 'number' && typeof owner?.token === 'string' ? owner : undefined;
  } catch {
    return undefined;
  }
}

async function isStale(path: string, holder: LockOwner | undefined, staleMs: number): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return false; // gone already: the next attempt takes it
  if (holder && holder.host === hostname() && !processAlive(holder.pid)) return true;
  return Date.now() - info.mtimeMs > staleMs;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Moves the stale lock aside (atomic, so of two processes breaking it only one succeeds). If what was
 * moved turns out to be a fresh lock someone took meanwhile, it is put back.
 */
async function breakLock(path: string, judged: LockOwner | undefined): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch {
    return;
  }
  const moved = await readOwner(aside);
  if (moved && moved.token !== judged?.token) await link(aside, path).catch(() => {});
  await rm(aside, { force: true });
}

/** Locks in a folder that are held right now (not stale): a download is in progress. */
export async function liveLocks(locksDir: string, staleMs = DEFAULT_STALE_MS): Promise<{ path: string; holder?: LockOwner }[]> {
  const names = await readdir(locksDir).catch(() => [] as string[]);
  const live: { path: string; holder?: LockOwner }[] = [];
  for (const name of names.filter((n) => n.endsWith('.lock'))) {
    const path = join(locksDir, name);
    const holder = await readOwner(path);
    if (!(await isStale(path, holder, staleMs)) && (await stat(path).catch(() => undefined))) live.push({ path, holder });
  }
  return live;
}
