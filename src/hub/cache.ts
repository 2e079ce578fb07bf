import { getHFHubCachePath, getRepoFolderName } from '@huggingface/hub';
import type { Dirent } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink, rename, rm, stat, symlink, copyFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../util/atomic.js';
import { checkRepoId, checkRevision, isCommitHash } from './reference.js';

/**
 * The cache is laid out exactly as Python's `huggingface_hub` lays it out, so both share downloads:
 *
 *   <cache>/models--<owner>--<name>/blobs/<etag>                 file contents, named by sha256 (LFS) or git sha1
 *   <cache>/models--<owner>--<name>/snapshots/<commit>/<path>    relative symlink to ../../blobs/<etag>
 *   <cache>/models--<owner>--<name>/refs/<revision>              the commit the revision pointed to
 *   <cache>/.locks/models--<owner>--<name>/<etag>.lock           held while a blob downloads
 */
export function hubCacheDir(cacheDir?: string): string {
  // The library's lookup matches Python's: HF_HUB_CACHE, then HUGGINGFACE_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub.
  return resolve(cacheDir ?? getHFHubCachePath());
}

export class RepoCache {
  readonly folderName: string;
  readonly root: string;
  readonly locksDir: string;

  constructor(
    readonly cacheDir: string,
    readonly repo: string,
  ) {
    checkRepoId(repo);
    this.folderName = getRepoFolderName({ type: 'model', name: repo });
    this.root = join(cacheDir, this.folderName);
    this.locksDir = join(cacheDir, '.locks', this.folderName);
  }

  blobPath(etag: string): string {
    return join(this.root, 'blobs', checkEtag(etag));
  }

  snapshotDir(commit: string): string {
    if (!isCommitHash(commit)) throw new Error(`not a commit hash: ${commit}`);
    return join(this.root, 'snapshots', commit);
  }

  lockPath(etag: string): string {
    return join(this.locksDir, `${checkEtag(etag)}.lock`);
  }

  refPath(revision: string): string {
    checkRevision(revision);
    return join(this.root, 'refs', ...revision.split('/'));
  }

  /** The commit a branch or tag pointed to when it was last pulled, if it was. */
  async readRef(revision: string): Promise<string | undefined> {
    const text = await readFile(this.refPath(revision), 'utf8').catch(() => undefined);
    const commit = text?.trim();
    return commit && isCommitHash(commit) ? commit : undefined;
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    if ((await this.readRef(revision)) === commit) return;
    // No newline, as huggingface_hub writes it.
    await writeFileAtomic(this.refPath(revision), commit, { durable: false });
  }

  /** Relative paths of the files a snapshot holds whose blob is really there (dangling links are left out). */
  async snapshotFiles(commit: string): Promise<string[]> {
    const dir = this.snapshotDir(commit);
    const files: string[] = [];
    await walk(dir, async (path) => {
      if ((await stat(path).catch(() => undefined))?.isFile()) files.push(relative(dir, path).split(sep).join('/'));
    });
    return files.sort();
  }

  /** Points `snapshots/<commit>/<path>` at the blob with a relative link, replacing any previous one atomically. */
  async linkSnapshotFile(commit: string, path: string, etag: string): Promise<void> {
    const link = join(this.snapshotDir(commit), ...checkRepoPath(path).split('/'));
    const blob = this.blobPath(etag);
    await mkdir(dirname(link), { recursive: true });
    const target = relative(dirname(link), blob);
    if ((await readlink(link).catch(() => undefined)) === target) return;
    const temp = `${link}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await symlink(target, temp);
    } catch {
      // Where symlinks are not allowed (some Windows setups), huggingface_hub copies the blob instead.
      await copyFile(blob, temp);
    }
    await rename(temp, link);
  }
}

/** A cached repository as `models list` shows it. */
export interface CachedRepo {
  repo: string;
  path: string;
  /** Bytes of complete blobs (each counted once, however many snapshots use it). */
  sizeBytes: number;
  /** Bytes of interrupted downloads (`blobs/*.incomplete`) that the next pull resumes. */
  incompleteBytes: number;
  revisions: CachedRevision[];
}

export interface CachedRevision {
  commit: string;
  refs: string[];
  files: string[];
  sizeBytes: number;
}

/**
 * Scans a cache directory. Written here rather than using the library's `scanCacheDir`, which skips
 * sub-folders of a snapshot (the `onnx/` every ONNX model keeps its weights in) and so undercounts.
 */
export async function scanHubCache(cacheDir: string): Promise<CachedRepo[]> {
  const entries = await readdir(cacheDir, { withFileTypes: true }).catch(() => [] as Dirent[]);
  const repos: CachedRepo[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || !entry.name.startsWith('models--')) continue;
    const repo = entry.name.slice('models--'.length).split('--').join('/');
    try {
      checkRepoId(repo);
    } catch {
      continue;
    }
    repos.push(await scanRepo(new RepoCache(cacheDir, repo)));
  }
  return repos.sort((a, b) => a.repo.localeCompare(b.repo));
}

export async function scanRepo(cache: RepoCache): Promise<CachedRepo> {
  let sizeBytes = 0;
  let incompleteBytes = 0;
  const blobSizes = new Map<string, number>();
  for (const name of await readdir(join(cache.root, 'blobs')).catch(() => [] as string[])) {
    const info = await stat(join(cache.root, 'blobs', name)).catch(() => undefined);
    if (!info?.isFile()) continue;
    if (name.endsWith('.incomplete')) incompleteBytes += info.size;
    else {
      blobSizes.set(name, info.size);
      sizeBytes += info.size;
    }
  }
  const refsByCommit = new Map<string, string[]>();
  const refsDir = join(cache.root, 'refs');
  await walk(refsDir, async (path) => {
    const commit = (await readFile(path, 'utf8').catch(() => '')).trim();
    const name = relative(refsDir, path).split(sep).join('/');
    refsByCommit.set(commit, [...(refsByCommit.get(commit) ?? []), name]);
  });
  const revisions: CachedRevision[] = [];
  for (const commit of await readdir(join(cache.root, 'snapshots')).catch(() => [] as string[])) {
    if (!isCommitHash(commit)) continue;
    const files = await cache.snapshotFiles(commit);
    let size = 0;
    for (const file of files) size += (await stat(join(cache.snapshotDir(commit), file)).catch(() => undefined))?.size ?? 0;
    revisions.push({ commit, refs: (refsByCommit.get(commit) ?? []).sort(), files, sizeBytes: size });
  }
  return { repo: cache.repo, path: cache.root, sizeBytes, incompleteBytes, revisions };
}

/**
 * Removes a repository's cache entry. It is first renamed out of the way, so a reader never sees a
 * half-deleted snapshot, then deleted with its locks.
 */
export async function removeRepoCache(cache: RepoCache): Promise<boolean> {
  if (!(await lstat(cache.root).catch(() => undefined))) return false;
  const doomed = join(cache.cacheDir, `.${cache.folderName}.removing-${process.pid}-${randomBytes(4).toString('hex')}`);
  await rename(cache.root, doomed);
  await rm(doomed, { recursive: true, force: true });
  await rm(cache.locksDir, { recursive: true, force: true });
  return true;
}

async function walk(dir: string, visit: (path: string) => Promise<void>): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => [] as Dirent[]);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await walk(path, visit);
    else await visit(path);
  }
}

/** Etags become file names: only the hex the Hub sends is accepted. */
function checkEtag(etag: string): string {
  if (!/^[0-9a-f]{32,128}$/.test(etag)) throw new Error(`unexpected etag "${etag}"`);
  return etag;
}

/**
 * Paths come from the Hub's listing and are joined onto the snapshot folder: anything that could leave
 * it (absolute, `..`, backslashes) is refused.
 */
export function checkRepoPath(path: string): string {
  if (path === '' || path.startsWith('/') || path.includes('\\') || path.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new Error(`refusing unsafe file path from the Hub: ${JSON.stringify(path)}`);
  }
  return path;
}
