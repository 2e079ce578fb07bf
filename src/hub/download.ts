import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HeadstartError } from '../util/errors.js';
import type { ProgressTask, Reporter } from '../util/progress.js';
import { hubError, normalizeEtag, TransientError, withRetries, type RequestContext } from './http.js';
import { acquireLock } from './lock.js';
import type { RepoCache } from './cache.js';

/** One file of a repository at a commit, as the tree listing describes it. */
export interface RemoteFile {
  path: string;
  size: number;
  /** The blob's name in the cache: sha256 of the content for LFS files, the git blob sha1 otherwise. */
  etag: string;
  lfs: boolean;
}

export interface DownloadContext {
  cache: RepoCache;
  endpoint: string;
  repo: string;
  commit: string;
  /** The revision the user asked for, for messages. */
  revision: string;
  token?: string;
  fetch: typeof fetch;
  retries: number;
  reporter: Reporter;
  task: ProgressTask;
  lockStaleMs?: number;
}

/**
 * Makes sure `blobs/<etag>` holds the file, downloading it if needed. The download goes to
 * `blobs/<etag>.incomplete` (resumed with an HTTP Range request after a cut, here or in an earlier run),
 * is checked against its hash and size, and only then renamed into place, under a per-blob lock so
 * concurrent pulls of the same model download it once. `@huggingface/hub`'s downloadFileToCacheDir
 * does none of resuming, verifying or locking, hence this.
 */
export async function ensureBlob(file: RemoteFile, context: DownloadContext): Promise<'cached' | 'downloaded'> {
  const blob = context.cache.blobPath(file.etag);
  if (await isCompleteBlob(blob, file)) return 'cached';
  await mkdir(dirname(blob), { recursive: true });
  const lock = await acquireLock(context.cache.lockPath(file.etag), {
    staleMs: context.lockStaleMs,
    onWait: (holder) =>
      context.reporter.info(`${file.path}: waiting for another process${holder ? ` (pid ${holder.pid})` : ''} that is downloading it`),
  });
  try {
    // Another process may have finished it while this one waited for the lock.
    if (await isCompleteBlob(blob, file)) return 'cached';
    await downloadVerified(file, blob, context);
    return 'downloaded';
  } finally {
    await lock.release();
  }
}

async function isCompleteBlob(blob: string, file: RemoteFile): Promise<boolean> {
  const info = await stat(blob).catch(() => undefined);
  return Boolean(info?.isFile() && info.size === file.size);
}

async function downloadVerified(file: RemoteFile, blob: string, context: DownloadContext): Promise<void> {
  const incomplete = `${blob}.incomplete`;
  const startedWith = (await stat(incomplete).catch(() => undefined))?.size ?? 0;
  if (startedWith > 0 && startedWith < file.size) {
    context.reporter.info(`${file.path}: resuming an interrupted download at ${formatBytes(startedWith)} of ${formatBytes(file.size)}`);
    context.task.tick(startedWith);
  }
  await withRetries(() => downloadOnce(file, incomplete, context), {
    retries: context.retries,
    reporter: context.reporter,
    label: `downloading ${file.path} from ${context.repo}`,
  });
  await rename(incomplete, blob);
}

/** One attempt: continues from whatever `.incomplete` already holds, then verifies the whole file. */
async function downloadOnce(file: RemoteFile, incomplete: string, context: DownloadContext): Promise<void> {
  let offset = (await stat(incomplete).catch(() => undefined))?.size ?? 0;
  if (offset > file.size) {
    await truncate(incomplete, 0);
    offset = 0;
  }
  const requestContext: RequestContext = {
    repo: context.repo,
    revision: context.revision,
    path: file.path,
    tokenSent: Boolean(context.token),
  };
  if (offset < file.size) {
    const response = await openDownload(file, offset, context, requestContext);
    if (response.status === 416) {
      // The server has nothing after `offset`: whatever is there is not the start of this file.
      await truncate(incomplete, 0);
      throw new TransientError(`the server refused to resume ${file.path} at byte ${offset}`);
    }
    if (response.status === 200 && offset > 0) {
      // The server ignored the Range header: start over.
      await truncate(incomplete, 0);
      offset = 0;
    } else if (response.status === 206) {
      const start = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1];
      if (Number(start) !== offset) {
        await response.body?.cancel();
        await truncate(incomplete, 0);
        throw new TransientError(`the server resumed ${file.path} at byte ${start}, not ${offset}`);
      }
    }
    const handle = await open(incomplete, offset > 0 ? 'a' : 'w');
    try {
      if (response.body) {
        for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
          await handle.write(chunk);
          context.task.tick(chunk.byteLength);
        }
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  await verify(file, incomplete, context);
}

/** Follows the Hub's redirect to its CDN by hand, so the token is only ever sent to the Hub itself. */
async function openDownload(file: RemoteFile, offset: number, context: DownloadContext, requestContext: RequestContext): Promise<Response> {
  let url = new URL(`${context.endpoint}/${context.repo}/resolve/${context.commit}/${file.path.split('/').map(encodeURIComponent).join('/')}`);
  const hubOrigin = new URL(context.endpoint).origin;
  let announcedEtag: string | undefined;
  for (let hop = 0; hop < 10; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    if (context.token && url.origin === hubOrigin) headers.authorization = `Bearer ${context.token}`;
    const response = await context.fetch(url, { headers, redirect: 'manual' });
    // The Hub's own answer names the content (X-Linked-Etag on LFS redirects); the CDN's ETag may not.
    if (url.origin === hubOrigin) announcedEtag ??= normalizeEtag(response.headers.get('x-linked-etag') ?? response.headers.get('etag'));
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      url = new URL(location, url);
      continue;
    }
    if (response.status === 416) {
      await response.body?.cancel();
      return response;
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      throw hubError(response.status, response.headers, requestContext);
    }
    if (file.lfs && announcedEtag && /^[0-9a-f]{64}$/.test(announcedEtag) && announcedEtag !== file.etag) {
      await response.body?.cancel();
      throw new HeadstartError(
        'network',
        `${file.path} in ${context.repo}@${context.revision}: the Hub's listing gives sha256 ${file.etag} but its download announces ${announcedEtag}`,
      );
    }
    return response;
  }
  throw new HeadstartError('network', `too many redirects downloading ${file.path} from ${context.repo}`);
}

/**
 * LFS files must hash (sha256) to their etag; other files to their git blob id (sha1 of
 * "blob <size>\0" + content). A file that does not is deleted, never trusted.
 */
async function verify(file: RemoteFile, incomplete: string, context: DownloadContext): Promise<void> {
  const size = (await stat(incomplete)).size;
  const algorithm = file.lfs ? 'sha256' : 'git-sha1';
  const actual = size === file.size ? await hashFile(incomplete, file.lfs ? createHash('sha256') : gitBlobHash(size)) : undefined;
  if (actual === file.etag) return;
  await rm(incomplete, { force: true });
  const what = `${file.path} from ${context.repo}@${context.revision}`;
  throw new HeadstartError(
    'network',
    actual === undefined
      ? `${what}: size mismatch: expected ${file.size} bytes, got ${size}; the download was deleted, pull again`
      : `${what}: checksum mismatch: expected ${algorithm} ${file.etag}, got ${actual}; the download was deleted, pull again`,
  );
}

function gitBlobHash(size: number): Hash {
  return createHash('sha1').update(`blob ${size}\0`);
}

async function hashFile(path: string, hash: Hash): Promise<string> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
