import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative, sep } from 'node:path';

/**
 * A small Hugging Face Hub lookalike on 127.0.0.1, serving fixture folders (read-only) in the Hub's URL
 * scheme, with a separate "CDN" server (another origin, as on the real Hub) for LFS content:
 *
 *   GET /api/models/<owner>/<name>/revision/<rev>      {_id, id, sha, siblings, …}
 *   GET /api/models/<owner>/<name>/tree/<rev>?recursive=true   [{type, oid, size, path, lfs?}]
 *   GET /<owner>/<name>/resolve/<rev>/<path>           302 to the CDN (LFS files) or 200 (small files)
 *   GET <cdn>/cdn/<sha256>                            the bytes, with ETag, Content-Length, Range support
 *
 * Error answers carry `X-Error-Code` as the Hub's do. `faults` switches failure modes on; `requests`
 * records everything asked, so tests can count requests.
 */
export interface FixtureRepo {
  /** `owner/name` */
  id: string;
  /** Folder whose files are the repository's. */
  dir: string;
  /** Branch or tag → commit. `main` defaults to a fake sha derived from the id. */
  refs?: Record<string, string>;
}

export interface Faults {
  /** Cut the CDN connection after this many body bytes, `times` times (default once). */
  cutAfterBytes?: { bytes: number; times?: number; path?: string };
  /** Serve these paths' bytes with one byte flipped (headers still announce the true hash). */
  corruptPaths?: Set<string>;
  /** Require `Authorization: Bearer <token>` on Hub (not CDN) requests. */
  requireToken?: string;
  missingRepos?: Set<string>;
  /** Paths the listing shows but `resolve` answers 404 EntryNotFound for. */
  missingFiles?: Set<string>;
  /** Answer 500 to the first `count` Hub requests (any route). */
  fail500?: { count: number };
  /** Delay per 64 kB chunk sent by the CDN, to make downloads overlap. */
  cdnChunkDelayMs?: number;
  /** Ignore Range headers (answer 200 with the whole file). */
  ignoreRange?: boolean;
  /** The CDN answers only once this settles. */
  cdnHold?: Promise<unknown>;
}

export interface RecordedRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  authorization?: string;
  range?: string;
}

interface RepoFile {
  path: string;
  absolute: string;
  size: number;
  gitOid: string;
  sha256: string;
  lfs: boolean;
}

export interface HubServer {
  url: string;
  cdnUrl: string;
  requests: RecordedRequest[];
  faults: Faults;
  commitOf(repo: string, revision?: string): string;
  fileOf(repo: string, path: string): { sha256: string; gitOid: string; size: number; absolute: string };
  reset(): void;
  close(): Promise<void>;
}

const LFS_PATTERN = /\.(onnx|onnx_data|bin|safetensors)$|\.onnx_data_\d+$/;

export function fakeCommit(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

export async function startHubServer(fixtures: FixtureRepo[]): Promise<HubServer> {
  const repos = new Map<string, { refs: Record<string, string>; files: RepoFile[] }>();
  const bySha = new Map<string, RepoFile>();
  for (const fixture of fixtures) {
    const files = listFolder(fixture.dir);
    for (const file of files) bySha.set(file.sha256, file);
    repos.set(fixture.id, { refs: { main: fakeCommit(`${fixture.id}@main`), ...fixture.refs }, files });
  }
  const requests: RecordedRequest[] = [];
  const faults: Faults = {};
  let hubCount = 0;
  let cuts = 0;

  const cdn = createServer((req, res) => {
    record('cdn', req);
    const match = /^\/cdn\/([0-9a-f]{64})$/.exec(new URL(req.url!, 'http://x').pathname);
    const file = match ? bySha.get(match[1]!) : undefined;
    if (!file) return sendError(res, 404, undefined, 'no such object');
    void Promise.resolve(faults.cdnHold).then(() => serveBytes(req, res, file, true));
  });

  const hub = createServer((req, res) => {
    record('hub', req);
    hubCount++;
    if (faults.fail500 && hubCount <= faults.fail500.count) return sendError(res, 500, undefined, 'internal error');
    if (faults.requireToken && req.headers.authorization !== `Bearer ${faults.requireToken}`) {
      return sendError(res, 401, undefined, req.headers.authorization ? 'Invalid credentials in Authorization header' : 'Unauthorized');
    }
    const url = new URL(req.url!, 'http://x');
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^?]+?)\/?$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repoId = decodeURIComponent((api?.[1] ?? resolve?.[1]) ?? '');
    const repo = repos.get(repoId);
    if (!repo || faults.missingRepos?.has(repoId)) return sendError(res, 404, 'RepoNotFound', 'Repository not found');
    const revision = decodeURIComponent((api?.[3] ?? resolve?.[2]) ?? '');
    const commit = /^[0-9a-f]{40}$/.test(revision) && Object.values(repo.refs).includes(revision) ? revision : repo.refs[revision];
    if (!commit) return sendError(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    if (api?.[2] === 'revision') {
      return sendJson(res, {
        _id: fakeCommit(repoId).slice(0, 24),
        id: repoId,
        sha: commit,
        private: false,
        gated: false,
        downloads: 0,
        likes: 0,
        lastModified: '2024-01-01T00:00:00.000Z',
        siblings: repo.files.map((f) => ({ rfilename: f.path })),
      });
    }
    if (api?.[2] === 'tree') {
      const recursive = url.searchParams.get('recursive') === 'true';
      const entries: object[] = [];
      const dirs = new Set<string>();
      for (const f of repo.files) {
        if (!recursive && f.path.includes('/')) {
          dirs.add(f.path.split('/')[0]!);
          continue;
        }
        for (let i = f.path.indexOf('/'); recursive && i >= 0; i = f.path.indexOf('/', i + 1)) dirs.add(f.path.slice(0, i));
        entries.push({
          type: 'file',
          oid: f.lfs ? fakeCommit(`pointer:${f.sha256}`) : f.gitOid,
          size: f.size,
          path: f.path,
          ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}),
        });
      }
      return sendJson(res, [...[...dirs].sort().map((path) => ({ type: 'directory', oid: fakeCommit(path), size: 0, path })), ...entries]);
    }
    if (resolve) {
      const path = decodeURIComponent(resolve[3]!);
      const file = repo.files.find((f) => f.path === path);
      if (!file || faults.missingFiles?.has(path)) return sendError(res, 404, 'EntryNotFound', `${path} does not exist on "${revision}"`);
      const common = { 'x-repo-commit': commit };
      if (file.lfs) {
        res.writeHead(302, {
          ...common,
          location: `${cdnUrl}/cdn/${file.sha256}`,
          'x-linked-etag': `"${file.sha256}"`,
          'x-linked-size': String(file.size),
          etag: `"${fakeCommit(`pointer:${file.sha256}`)}"`,
        });
        return res.end();
      }
      return void serveBytes(req, res, file, false, common);
    }
    sendError(res, 404, undefined, 'not found');
  });

  function record(server: 'hub' | 'cdn', req: IncomingMessage) {
    requests.push({
      server,
      method: req.method ?? 'GET',
      path: req.url ?? '',
      authorization: req.headers.authorization,
      range: req.headers.range,
    });
  }

  async function serveBytes(req: IncomingMessage, res: ServerResponse, file: RepoFile, fromCdn: boolean, extra: Record<string, string> = {}) {
    let bytes = readFileSync(file.absolute);
    if (faults.corruptPaths?.has(file.path)) {
      bytes = Buffer.from(bytes);
      bytes[bytes.length >> 1] ^= 0xff;
    }
    const range = faults.ignoreRange ? undefined : /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const headers: Record<string, string> = {
      ...extra,
      etag: `"${fromCdn || file.lfs ? file.sha256 : file.gitOid}"`,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
    };
    if (range && start >= bytes.length) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${bytes.length}` });
      return res.end();
    }
    const body = bytes.subarray(start);
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'content-length': String(body.length),
      ...(range ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    const cut = faults.cutAfterBytes;
    const cutHere = fromCdn && cut && cuts < (cut.times ?? 1) && (!cut.path || cut.path === file.path);
    const limit = cutHere ? Math.min(cut.bytes, body.length - 1) : body.length;
    for (let offset = 0; offset < limit; offset += 65536) {
      const chunk = body.subarray(offset, Math.min(offset + 65536, limit));
      if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      if (faults.cdnChunkDelayMs && fromCdn) await new Promise((r) => setTimeout(r, faults.cdnChunkDelayMs));
      if (res.destroyed) return;
    }
    if (cutHere) {
      cuts++;
      // Let the bytes written so far reach the client, then drop the connection mid-body.
      await new Promise((r) => setTimeout(r, 20));
      res.socket?.destroy();
      return;
    }
    res.end();
  }

  await Promise.all([listen(hub), listen(cdn)]);
  const url = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
  const cdnUrl = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`;

  return {
    url,
    cdnUrl,
    requests,
    faults,
    commitOf(repo, revision = 'main') {
      const commit = repos.get(repo)?.refs[revision];
      if (!commit) throw new Error(`no ${repo}@${revision}`);
      return commit;
    },
    fileOf(repo, path) {
      const file = repos.get(repo)?.files.find((f) => f.path === path);
      if (!file) throw new Error(`no ${path} in ${repo}`);
      return file;
    },
    reset() {
      requests.length = 0;
      for (const key of Object.keys(faults) as (keyof Faults)[]) delete faults[key];
      hubCount = 0;
      cuts = 0;
    },
    async close() {
      await Promise.all([close(hub), close(cdn)]);
    },
  };
}

function listFolder(dir: string): RepoFile[] {
  const files: RepoFile[] = [];
  const visit = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const absolute = join(folder, entry.name);
      if (entry.isDirectory()) visit(absolute);
      else {
        const bytes = readFileSync(absolute);
        const path = relative(dir, absolute).split(sep).join('/');
        files.push({
          path,
          absolute,
          size: statSync(absolute).size,
          gitOid: createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex'),
          sha256: createHash('sha256').update(bytes).digest('hex'),
          lfs: LFS_PATTERN.test(path),
        });
      }
    }
  };
  visit(dir);
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

function sendJson(res: ServerResponse, value: unknown) {
  const body = JSON.stringify(value);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, code: string | undefined, message: string) {
  const body = JSON.stringify({ error: message });
  res.writeHead(status, {
    'content-type': 'application/json',
    ...(code ? { 'x-error-code': code } : {}),
    'x-error-message': message,
  });
  res.end(body);
}

function listen(server: Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
