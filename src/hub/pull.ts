import { listFiles, modelInfo } from '@huggingface/hub';
import { join } from 'node:path';
import { HeadstartError, messageOf } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { RepoCache, checkRepoPath, hubCacheDir } from './cache.js';
import { catalogEntryForRepo } from './catalog.js';
import { ensureBlob, formatBytes, type RemoteFile } from './download.js';
import { filesForModel, MissingWeightsError, type OnnxDtype } from './files.js';
import { DEFAULT_ENDPOINT, DEFAULT_RETRIES, hubError, isConnectionFailure, withRetries, type RequestContext } from './http.js';
import { checkRepoId, checkRevision, DEFAULT_REVISION, isCommitHash } from './reference.js';

export interface PullOptions {
  /** Branch, tag or commit; default `main`. */
  revision?: string;
  /** Which ONNX weights to take; default fp32. */
  dtype?: OnnxDtype;
  /** Chooses the files to pull from the repository listing; default {@link filesForModel} for `dtype`. */
  files?: (listing: string[]) => string[];
  /** Which ONNX graph the default file choice takes (`model`, `vision_model`, `encoder_model`); default from the catalog, else `model`. */
  component?: string;
  /** Default `HF_TOKEN`. Sent to the Hub only, never written or shown. */
  token?: string;
  /** Default `HF_HUB_OFFLINE`. Offline, nothing is fetched: the revision and files must be in the cache. */
  offline?: boolean;
  /** Default `HF_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  /** Default `HF_HUB_CACHE`, else `$HF_HOME/hub`, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  reporter?: Reporter;
  /** Further attempts after a 5xx answer or a dropped connection; default 5. */
  retries?: number;
  fetch?: typeof fetch;
}

export interface PulledModel {
  repo: string;
  revision: string;
  commit: string;
  /** `<cache>/models--<owner>--<name>/snapshots/<commit>`: a Hugging Face model folder, usable as is. */
  snapshotDir: string;
  /** The pulled files, relative to `snapshotDir`. */
  files: string[];
}

/**
 * Pulls a model repository's files (by default: config, preprocessor, tokenizer and one ONNX variant)
 * into the shared Hugging Face cache and returns its snapshot folder.
 *
 * Requests made:
 * - revision pinned to a commit whose snapshot is complete, or offline: none;
 * - a branch or tag whose snapshot is complete: one (the revision API, to learn the commit it points to now;
 *   if the Hub cannot be reached, the cached commit is used with a warning);
 * - otherwise: the revision API (unless pinned to a commit), the tree listing, and one download per missing
 *   blob (a redirect to the CDN and the CDN's answer for large files).
 */
export async function pullModel(repo: string, options: PullOptions = {}): Promise<PulledModel> {
  checkRepoId(repo);
  const revision = options.revision ?? DEFAULT_REVISION;
  checkRevision(revision);
  const cache = new RepoCache(hubCacheDir(options.cacheDir), repo);
  const offline = offlineMode(options.offline);
  const select = fileSelector(repo, options);

  if (offline || isCommitHash(revision)) {
    const commit = isCommitHash(revision) ? revision : await cache.readRef(revision);
    const cached = commit ? await fromSnapshot(cache, commit, select) : { missing: [`refs/${revision}`] };
    if ('pulled' in cached) return { repo, revision, commit: commit!, ...cached.pulled };
    if (offline) {
      throw new HeadstartError(
        'network',
        `${repo}@${revision} is not in the cache (${cache.root}) and offline mode is on (HF_HUB_OFFLINE=1 or --offline), so nothing can be downloaded; missing: ${cached.missing.join(', ')}`,
      );
    }
  }

  const reporter = options.reporter ?? silentReporter;
  const token = options.token ?? (process.env.HF_TOKEN || undefined);
  const endpoint = (options.endpoint ?? (process.env.HF_ENDPOINT || DEFAULT_ENDPOINT)).replace(/\/+$/, '');
  const retries = options.retries ?? DEFAULT_RETRIES;
  const api = hubApiFetch({ repo, revision, tokenSent: Boolean(token) }, token, options.fetch ?? fetch);
  const hubParams = { hubUrl: endpoint, fetch: api };
  const retrying = <T>(label: string, run: () => Promise<T>) => withRetries(run, { retries, reporter, label });

  let commit = revision;
  if (!isCommitHash(revision)) {
    // A branch already in the cache stays usable when the Hub cannot be reached, as with huggingface_hub:
    // one attempt to learn whether it moved, then the cached commit, with a warning.
    const cachedCommit = await cache.readRef(revision);
    const cached = cachedCommit ? await fromSnapshot(cache, cachedCommit, select) : undefined;
    const resolve = () => modelInfo({ ...hubParams, name: repo, revision, additionalFields: ['sha', 'filePaths'] });
    const label = `resolving ${repo}@${revision}`;
    const info = await (cached && 'pulled' in cached ? withRetries(resolve, { retries: 0, reporter, label }) : retrying(label, resolve)).catch((error: unknown) => {
      if (!(cached && 'pulled' in cached && isConnectionFailure(error))) throw error;
      reporter.warn(`${messageOf(error)}; using the cached ${repo}@${revision} (commit ${cachedCommit!.slice(0, 12)}), which may be out of date`);
      return undefined;
    });
    if (!info) return { repo, revision, commit: cachedCommit!, ...(cached as { pulled: Omit<PulledModel, 'repo' | 'revision' | 'commit'> }).pulled };
    if (!info.sha || !isCommitHash(info.sha)) throw new HeadstartError('network', `the Hub gave no commit for ${repo}@${revision}`);
    commit = info.sha;
    if (info.filePaths) {
      const wanted = choose(select, info.filePaths, repo, revision);
      const present = new Set(await cache.snapshotFiles(commit));
      if (wanted.every((file) => present.has(file))) {
        await cache.writeRef(revision, commit);
        return { repo, revision, commit, snapshotDir: cache.snapshotDir(commit), files: wanted };
      }
    }
  }

  const listing = await retrying(`listing ${repo}@${revision}`, async () => {
    const files: RemoteFile[] = [];
    for await (const entry of listFiles({ ...hubParams, repo: { type: 'model', name: repo }, revision: commit, recursive: true })) {
      if (entry.type !== 'file') continue;
      const etag = entry.lfs?.oid ?? entry.oid;
      if (!etag) throw new HeadstartError('network', `the Hub's listing of ${repo}@${revision} gives no hash for ${entry.path}`);
      files.push({ path: checkRepoPath(entry.path), size: entry.lfs?.size ?? entry.size, etag, lfs: Boolean(entry.lfs) });
    }
    return files;
  });
  const byPath = new Map(listing.map((file) => [file.path, file]));
  const wanted = choose(select, [...byPath.keys()], repo, revision);
  const unknown = wanted.filter((path) => !byPath.has(path));
  if (unknown.length) throw new HeadstartError('usage', `file not found in ${repo}@${revision}: ${unknown.join(', ')}`);
  const remote = wanted.map((path) => byPath.get(path)!);

  const total = remote.reduce((sum, file) => sum + file.size, 0);
  const task = reporter.task(`pulling ${repo}@${revision}`, total, 'bytes');
  const started = performance.now();
  let downloaded = 0;
  for (const file of remote) {
    const outcome = await ensureBlob(file, {
      cache,
      endpoint,
      repo,
      commit,
      revision,
      token,
      fetch: options.fetch ?? fetch,
      retries,
      reporter,
      task,
    });
    if (outcome === 'downloaded') downloaded += file.size;
    else task.tick(file.size);
  }
  const seconds = (performance.now() - started) / 1000;
  task.done(
    downloaded
      ? `${formatBytes(downloaded)} downloaded (${formatBytes(downloaded / Math.max(seconds, 1e-3))}/s), ${formatBytes(total)} in ${remote.length} files`
      : `all ${remote.length} files already in the cache`,
  );

  // Weights last: a snapshot that has its .onnx file has everything that came with it.
  for (const file of [...remote].sort((a, b) => Number(a.path.endsWith('.onnx')) - Number(b.path.endsWith('.onnx')))) {
    await cache.linkSnapshotFile(commit, file.path, file.etag);
  }
  await cache.writeRef(revision, commit);
  return { repo, revision, commit, snapshotDir: cache.snapshotDir(commit), files: wanted };
}

function fileSelector(repo: string, options: PullOptions): (listing: string[]) => string[] {
  if (options.files) return options.files;
  const component = options.component ?? catalogEntryForRepo(repo)?.onnxComponent ?? 'model';
  return (listing) => filesForModel(listing, options.dtype ?? 'fp32', { component });
}

function choose(select: (listing: string[]) => string[], listing: string[], repo: string, revision: string): string[] {
  let chosen: string[];
  try {
    chosen = select(listing);
  } catch (error) {
    if (error instanceof HeadstartError) throw new HeadstartError(error.kind, `${repo}@${revision}: ${error.message}`, { cause: error });
    throw error;
  }
  if (!chosen.length) throw new HeadstartError('usage', `${repo}@${revision}: no files chosen to pull`);
  return [...new Set(chosen)];
}

/** What the cache already holds for a commit, with the files the selector wants, or what is missing. */
async function fromSnapshot(
  cache: RepoCache,
  commit: string,
  select: (listing: string[]) => string[],
): Promise<{ pulled: { snapshotDir: string; files: string[] } } | { missing: string[] }> {
  const present = await cache.snapshotFiles(commit);
  if (!present.length) return { missing: [`snapshots/${commit}`] };
  try {
    const files = select(present);
    const absent = files.filter((file) => !present.includes(file));
    if (files.length && !absent.length) return { pulled: { snapshotDir: cache.snapshotDir(commit), files } };
    return { missing: absent.length ? absent : ['(no files chosen)'] };
  } catch (error) {
    if (error instanceof MissingWeightsError) return { missing: [`${error.wanted} (cached dtypes: ${error.available.join(', ') || 'none'})`] };
    return { missing: [`files chosen from ${join('snapshots', commit)} (${messageOf(error)})`] };
  }
}

/**
 * The fetch `@huggingface/hub` calls for the API requests: adds the token and turns error answers into
 * our messages right away, because the library's own errors drop the `X-Error-Code` header that tells a
 * missing repository from a missing revision.
 */
function hubApiFetch(context: RequestContext, token: string | undefined, baseFetch: typeof fetch): typeof fetch {
  return async (input, init) => {
    const headers = new Headers(init?.headers);
    if (token) headers.set('authorization', `Bearer ${token}`);
    const response = await baseFetch(input, { ...init, headers });
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      throw hubError(response.status, response.headers, context);
    }
    return response;
  };
}

/** Offline mode: the option when given, else `HF_HUB_OFFLINE` (as Python's huggingface_hub reads it). */
export function offlineMode(option?: boolean): boolean {
  return option ?? isTruthy(process.env.HF_HUB_OFFLINE);
}

function isTruthy(value: string | undefined): boolean {
  return ['1', 'true', 'yes', 'on'].includes((value ?? '').trim().toLowerCase());
}

