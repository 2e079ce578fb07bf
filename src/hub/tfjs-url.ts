import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseModelJson } from '../backbones/tfjs/source.js';
import { parseManifest } from '../backbones/tfjs/weights.js';
import { cacheEntryGuard, writeDirAtomic } from '../util/atomic.js';
import { HeadstartError, modelError, usageError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { formatBytes } from './download.js';
import { DEFAULT_RETRIES, HubStatusError, withRetries } from './http.js';
import { offlineMode } from './pull.js';

/** Written last into a downloaded model's cache folder: its presence means the folder is complete. */
const SOURCE_FILE = 'source.json';

export interface TfjsUrlOptions {
  /** headstart's cache folder; downloads go to `<cacheDir>/tfjs-url/<sha256 of the URL>/`. */
  cacheDir: string;
  /** Default `HF_HUB_OFFLINE`: offline, the model must already be in the cache. */
  offline?: boolean;
  reporter?: Reporter;
  /** Further attempts after a 5xx answer or a dropped connection; default 5. */
  retries?: number;
  fetch?: typeof fetch;
}

/** Whether a `tfjs:` reference's target is a URL rather than a local path. */
export function isTfjsUrl(target: string): boolean {
  return /^https?:\/\//i.test(target);
}

/** The model.json URL of a `tfjs:` URL: as given, or `<folder>/model.json` for one ending in "/". */
export function tfjsModelJsonUrl(target: string): URL {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw usageError(`"tfjs:${target}": not a valid URL; expected tfjs:https://<host>/<path>/model.json`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usageError(`"tfjs:${target}": only http and https URLs can be downloaded`);
  if (url.pathname.endsWith('/')) url.pathname += 'model.json';
  return url;
}

/**
 * Makes a TF.js model on the web available as a local folder: model.json and the weight shards its
 * manifest lists (relative to model.json's URL), downloaded once into the cache, keyed by the URL,
 * and returned as the local model.json path. A cached download is used as is, without asking the
 * server again (the converted backbone's sha256, recorded in trained models, catches a change);
 * offline, a URL not yet in the cache is an error naming it.
 */
export async function fetchTfjsModel(target: string, options: TfjsUrlOptions): Promise<string> {
  const url = tfjsModelJsonUrl(target);
  const dir = join(options.cacheDir, 'tfjs-url', sha256(url.href).slice(0, 32));
  const modelJsonPath = join(dir, 'model.json');
  if (await stat(join(dir, SOURCE_FILE)).catch(() => undefined)) return modelJsonPath;
  if (offlineMode(options.offline)) {
    throw new HeadstartError(
      'network',
      `the TF.js model ${url.href} is not in the cache (${dir}) and offline mode is on (HF_HUB_OFFLINE=1 or --offline), so it cannot be downloaded`,
    );
  }

  const reporter = options.reporter ?? silentReporter;
  const get = (fileUrl: URL, what: string) => download(fileUrl, what, { retries: options.retries ?? DEFAULT_RETRIES, reporter, fetch: options.fetch ?? fetch });
  const started = performance.now();
  const modelJsonBytes = await get(url, `the TF.js model.json (check the tfjs: URL)`);
  const modelJson = parseModelJson(new TextDecoder().decode(modelJsonBytes), url.href);
  const shardPaths = parseManifest(modelJson, url.href).flatMap((group) => group.paths);
  for (const path of shardPaths) checkShardPath(path, url.href);

  const task = reporter.task(`downloading ${url.href}`, shardPaths.length + 1, 'files');
  task.tick();
  const shards: { path: string; bytes: Uint8Array }[] = [];
  for (const path of new Set(shardPaths)) {
    shards.push({ path, bytes: await get(new URL(path, url), `weight shard "${path}" listed in ${url.href}`) });
    task.tick();
  }
  const total = modelJsonBytes.byteLength + shards.reduce((sum, shard) => sum + shard.bytes.byteLength, 0);
  const seconds = (performance.now() - started) / 1000;
  // The files under the names model.json uses, so the folder reads as any local TF.js model.
  await writeDirAtomic(
    dir,
    async (temp) => {
      await writeFile(join(temp, 'model.json'), modelJsonBytes);
      for (const shard of shards) {
        await mkdir(dirname(join(temp, shard.path)), { recursive: true });
        await writeFile(join(temp, shard.path), shard.bytes);
      }
      await writeFile(join(temp, SOURCE_FILE), `${JSON.stringify({ url: url.href, files: ['model.json', ...shards.map((s) => s.path)], bytes: total }, null, 2)}\n`);
    },
    cacheEntryGuard('downloaded TF.js model', SOURCE_FILE),
  ).catch(async (error) => {
    // Another process may have downloaded it at the same time; theirs is as good as ours.
    if (await readFile(join(dir, SOURCE_FILE)).catch(() => undefined)) return;
    throw error;
  });
  task.done(`${formatBytes(total)} in ${shards.length + 1} files (${formatBytes(total / Math.max(seconds, 1e-3))}/s)`);
  return modelJsonPath;
}

/**
 * Shard paths become file names in the cache: relative, inside the model's folder, no other origin.
 * (TF.js itself only ever writes bare names next to model.json.)
 */
function checkShardPath(path: string, origin: string): void {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // Kept as written; the raw form is checked below either way.
  }
  const bad = [path, decoded].some(
    (p) => p === '' || p.startsWith('/') || p.includes('\\') || /^[a-z][a-z0-9+.-]*:/i.test(p) || p.split('/').some((s) => s === '' || s === '.' || s === '..'),
  );
  if (bad) throw modelError(`weight shard path "${path}" is not a plain relative path next to model.json; refusing to download it`, origin);
}

/** GET with retries on 5xx/429 and dropped connections; other answers fail at once, naming the URL. */
async function download(url: URL, what: string, options: { retries: number; reporter: Reporter; fetch: typeof fetch }): Promise<Uint8Array> {
  return withRetries(
    async () => {
      const response = await options.fetch(url, { headers: { 'accept-encoding': 'identity' } });
      if (!response.ok) {
        await response.body?.cancel().catch(() => {});
        const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
        const retryable = response.status >= 500 || response.status === 429;
        throw new HubStatusError(response.status, undefined, retryable, new HeadstartError('network', `${status}: cannot download ${what}`, { file: url.href }));
      }
      return new Uint8Array(await response.arrayBuffer());
    },
    { retries: options.retries, reporter: options.reporter, label: `downloading ${url.href}` },
  );
}
