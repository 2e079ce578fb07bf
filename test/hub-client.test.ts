import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, readlink, lstat, stat, mkdir, writeFile, utimes } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pullModel, type PullOptions } from '../src/hub/pull.js';
import { filesForModel } from '../src/hub/files.js';
import { readHfImageModel } from '../src/backbones/hf-folder.js';
import { HeadstartError } from '../src/util/errors.js';
import { sha256File } from '../src/util/hash.js';
import type { Reporter } from '../src/util/progress.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';
import { BERT, HUB_FIXTURES, MOBILENET, RESNET, RESNET_V1_COMMIT, SHARED_MODELS, anyFileContains, hubTempDir } from './helpers/hub-fixtures.js';

let server: HubServer;
let cacheDir: string;
// The tests set these themselves; a developer's own settings must not leak in.
const HF_ENV = ['HF_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HOME'] as const;
const savedEnv = Object.fromEntries(HF_ENV.map((key) => [key, process.env[key]]));

beforeAll(async () => {
  for (const key of HF_ENV) delete process.env[key];
  server = await startHubServer(HUB_FIXTURES);
});
afterAll(async () => {
  for (const key of HF_ENV) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
  await server.close();
});
beforeEach(async () => {
  server.reset();
  cacheDir = await hubTempDir();
});

const pull = (repo: string, options: PullOptions = {}) => pullModel(repo, { endpoint: server.url, cacheDir, ...options });
const hubRequests = (pattern: RegExp) => server.requests.filter((r) => r.server === 'hub' && pattern.test(r.path));
const cdnRequests = (sha?: string) => server.requests.filter((r) => r.server === 'cdn' && (!sha || r.path.includes(sha)));
const noFetch: typeof fetch = () => {
  throw new Error('offline pulls must not open a connection');
};

async function rejection(promise: Promise<unknown>): Promise<HeadstartError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'expected the pull to fail').toBeInstanceOf(HeadstartError);
  return error as HeadstartError;
}

function recordingReporter(): Reporter & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    task: (label) => ({ tick() {}, done: (summary) => lines.push(`done: ${label}: ${summary ?? ''}`) }),
  };
}

describe('pullModel: first pull', () => {
  it('lays the cache out exactly like huggingface_hub, with relative links to verified blobs', async () => {
    const pulled = await pull(RESNET);
    const commit = server.commitOf(RESNET);
    const root = join(cacheDir, 'models--test-org--resnet-18-random');
    expect(pulled).toEqual({
      repo: RESNET,
      revision: 'main',
      commit,
      snapshotDir: join(root, 'snapshots', commit),
      files: ['config.json', 'preprocessor_config.json', 'onnx/model.onnx'],
    });
    expect((await readdir(root)).sort()).toEqual(['blobs', 'refs', 'snapshots']);
    expect(await readdir(join(root, 'snapshots'))).toEqual([commit]);
    expect(await readdir(join(root, 'refs'))).toEqual(['main']);
    expect(await readFile(join(root, 'refs', 'main'), 'utf8')).toBe(commit);
    expect((await readdir(pulled.snapshotDir)).sort()).toEqual(['config.json', 'onnx', 'preprocessor_config.json']);

    const expectedBlobs: string[] = [];
    for (const file of pulled.files) {
      const source = server.fileOf(RESNET, file);
      const etag = file.endsWith('.onnx') ? source.sha256 : source.gitOid;
      expectedBlobs.push(etag);
      const link = join(pulled.snapshotDir, file);
      expect((await lstat(link)).isSymbolicLink()).toBe(true);
      const target = await readlink(link);
      expect(isAbsolute(target)).toBe(false);
      expect(target).toBe(`${'../'.repeat(file.split('/').length + 1)}blobs/${etag}`);
      expect((await readFile(link)).equals(await readFile(join(SHARED_MODELS, 'resnet-18-random', file)))).toBe(true);
    }
    expect((await readdir(join(root, 'blobs'))).sort()).toEqual(expectedBlobs.sort());
    expect(await sha256File(join(pulled.snapshotDir, 'onnx/model.onnx'))).toBe(server.fileOf(RESNET, 'onnx/model.onnx').sha256);
    // Locks live beside the repositories, as huggingface_hub keeps them, and none is left held.
    expect(await readdir(join(cacheDir, '.locks', 'models--test-org--resnet-18-random'))).toEqual([]);

    // One revision request, one listing, one resolve per file, one CDN download for the LFS file; no token sent.
    expect(hubRequests(/\/revision\/main/)).toHaveLength(1);
    expect(hubRequests(/\/tree\//)).toHaveLength(1);
    expect(hubRequests(/\/resolve\//)).toHaveLength(3);
    expect(cdnRequests()).toHaveLength(1);
    expect(server.requests.every((r) => r.authorization === undefined)).toBe(true);
  });

  it('gives a snapshot that readHfImageModel reads as is, with the source weights', async () => {
    const pulled = await pull(RESNET);
    const spec = await readHfImageModel(pulled.snapshotDir, `hf:${RESNET}`);
    expect(spec.id).toBe(`hf:${RESNET}`);
    expect(spec.sha256).toBe(await sha256File(join(SHARED_MODELS, 'resnet-18-random/onnx/model.onnx')));
    expect(spec.preprocessing).toMatchObject({ width: 224, height: 224, mean: [0.485, 0.456, 0.406] });
  });

  it('takes the tokenizer files of a text model and only the weights asked for', async () => {
    const pulled = await pull(BERT);
    expect(pulled.files).toEqual(['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'onnx/model.onnx']);
    for (const file of pulled.files) {
      expect((await readFile(join(pulled.snapshotDir, file))).equals(await readFile(join(SHARED_MODELS, 'bert-tiny-random', file)))).toBe(true);
    }
    expect(existsSync(join(pulled.snapshotDir, 'README.md'))).toBe(false);
  });

  it('reports bytes as they arrive, with a rate', async () => {
    const ticks: number[] = [];
    let summary = '';
    await pull(MOBILENET, {
      reporter: {
        info() {},
        warn() {},
        task: (_label, total, unit) => {
          expect(unit).toBe('bytes');
          expect(total).toBe(['config.json', 'preprocessor_config.json', 'onnx/model.onnx'].reduce((s, f) => s + server.fileOf(MOBILENET, f).size, 0));
          return { tick: (n = 1) => ticks.push(n), done: (s) => (summary = s ?? '') };
        },
      },
    });
    expect(ticks.reduce((a, b) => a + b, 0)).toBe(['config.json', 'preprocessor_config.json', 'onnx/model.onnx'].reduce((s, f) => s + server.fileOf(MOBILENET, f).size, 0));
    expect(summary).toMatch(/MB downloaded \([\d.]+ [kMG]?B\/s\)/);
  });
});

describe('pullModel: from the cache', () => {
  it('makes no request for a complete snapshot pinned to a commit, and one cheap request for a branch', async () => {
    const first = await pull(MOBILENET);
    server.requests.length = 0;
    const pinned = await pull(MOBILENET, { revision: first.commit });
    expect(server.requests).toHaveLength(0);
    expect(pinned.snapshotDir).toBe(first.snapshotDir);
    expect(pinned.files).toEqual(first.files);

    const branch = await pull(MOBILENET);
    expect(server.requests.map((r) => r.path.split('?')[0])).toEqual([`/api/models/${MOBILENET}/revision/main`]);
    expect(branch.snapshotDir).toBe(first.snapshotDir);
  });

  it('downloads only what the cache lacks (another dtype of the same commit)', async () => {
    await pull(MOBILENET);
    server.requests.length = 0;
    const error = await rejection(pull(MOBILENET, { dtype: 'fp16' }));
    expect(error.message).toBe(`${MOBILENET}@main: no fp16 weights (onnx/model_fp16.onnx); available dtypes: fp32`);
    expect(error.kind).toBe('usage');
  });
});

describe('pullModel: offline', () => {
  it('uses refs/ and snapshots/ only, with HF_HUB_OFFLINE=1 or offline: true', async () => {
    const first = await pull(MOBILENET);
    server.requests.length = 0;
    process.env.HF_HUB_OFFLINE = '1';
    try {
      const viaEnv = await pull(MOBILENET, { fetch: noFetch });
      expect(viaEnv).toEqual(first);
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
    const viaOption = await pull(MOBILENET, { offline: true, fetch: noFetch });
    expect(viaOption).toEqual(first);
    const viaCommit = await pull(MOBILENET, { offline: true, revision: first.commit, fetch: noFetch });
    expect(viaCommit.commit).toBe(first.commit);
    expect(server.requests).toHaveLength(0);
  });

  it('says what is missing, and that it is offline, without a request', async () => {
    const never = await rejection(pull(RESNET, { offline: true, fetch: noFetch }));
    expect(never.message).toContain(`${RESNET}@main is not in the cache`);
    expect(never.message).toContain('offline mode is on');
    expect(never.message).toContain('missing: refs/main');

    await pull(MOBILENET);
    server.requests.length = 0;
    const otherDtype = await rejection(pull(MOBILENET, { offline: true, dtype: 'q8', fetch: noFetch }));
    expect(otherDtype.message).toContain(`${MOBILENET}@main is not in the cache`);
    expect(otherDtype.message).toContain('offline');
    expect(otherDtype.message).toContain('missing: onnx/model_quantized.onnx (cached dtypes: fp32)');
    const otherBranch = await rejection(pull(MOBILENET, { offline: true, revision: 'dev', fetch: noFetch }));
    expect(otherBranch.message).toContain('missing: refs/dev');
    expect(server.requests).toHaveLength(0);
  });
});

describe('pullModel: revisions', () => {
  it('pins a commit (no revision request, no ref written) and follows a branch (ref written)', async () => {
    const commit = server.commitOf(RESNET);
    const pinned = await pull(RESNET, { revision: commit, files: (listing) => listing.filter((f) => f.endsWith('.json')) });
    expect(pinned.commit).toBe(commit);
    expect(pinned.files).toEqual(['config.json', 'preprocessor_config.json']);
    expect(hubRequests(/\/revision\//)).toHaveLength(0);
    expect(hubRequests(new RegExp(`/tree/${commit}`))).toHaveLength(1);
    expect(existsSync(join(cacheDir, 'models--test-org--resnet-18-random', 'refs'))).toBe(false);

    const tagged = await pull(RESNET, { revision: 'v1.0', files: () => ['config.json'] });
    expect(tagged.commit).toBe(RESNET_V1_COMMIT);
    expect(tagged.snapshotDir).toBe(join(cacheDir, 'models--test-org--resnet-18-random', 'snapshots', RESNET_V1_COMMIT));
    expect(await readFile(join(cacheDir, 'models--test-org--resnet-18-random', 'refs', 'v1.0'), 'utf8')).toBe(RESNET_V1_COMMIT);
    // Both snapshots share the config blob.
    expect(await readdir(join(cacheDir, 'models--test-org--resnet-18-random', 'blobs'))).toHaveLength(2);
  });

  it('names an unknown revision', async () => {
    const error = await rejection(pull(MOBILENET, { revision: 'nope' }));
    expect(error.message).toMatch(`revision not found: ${MOBILENET}@nope`);
  });
});

describe('pullModel: interrupted and corrupted downloads', () => {
  it('resumes with a Range request after the connection is cut, and verifies the result', async () => {
    const model = server.fileOf(MOBILENET, 'onnx/model.onnx');
    server.faults.cutAfterBytes = { bytes: 3_000_000 };
    const reporter = recordingReporter();
    const pulled = await pull(MOBILENET, { reporter });
    const downloads = cdnRequests(model.sha256);
    expect(downloads).toHaveLength(2);
    expect(downloads[0]!.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(downloads[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(3_000_000);
    expect(await sha256File(join(pulled.snapshotDir, 'onnx/model.onnx'))).toBe(model.sha256);
    expect(reporter.lines.some((l) => l.startsWith('warn: downloading onnx/model.onnx') && l.includes('retrying'))).toBe(true);
  });

  it('resumes a download a previous run left in blobs/<etag>.incomplete', async () => {
    const model = server.fileOf(MOBILENET, 'onnx/model.onnx');
    server.faults.cutAfterBytes = { bytes: 2_000_000 };
    const error = await rejection(pull(MOBILENET, { retries: 0 }));
    expect(error.kind).toBe('network');
    const incomplete = join(cacheDir, 'models--test-org--mobilenet-v2-random', 'blobs', `${model.sha256}.incomplete`);
    const partial = (await stat(incomplete)).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(model.size);

    server.reset();
    const pulled = await pull(MOBILENET);
    expect(cdnRequests(model.sha256).map((r) => r.range)).toEqual([`bytes=${partial}-`]);
    expect(await sha256File(join(pulled.snapshotDir, 'onnx/model.onnx'))).toBe(model.sha256);
    expect(existsSync(incomplete)).toBe(false);
  });

  it('starts over when the server ignores the Range header', async () => {
    const model = server.fileOf(MOBILENET, 'onnx/model.onnx');
    server.faults.cutAfterBytes = { bytes: 1_000_000 };
    server.faults.ignoreRange = true;
    const pulled = await pull(MOBILENET);
    expect(cdnRequests(model.sha256)).toHaveLength(2);
    expect(await sha256File(join(pulled.snapshotDir, 'onnx/model.onnx'))).toBe(model.sha256);
  });

  it('rejects a file whose bytes do not match its hash, naming both, and keeps nothing of it', async () => {
    const model = server.fileOf(MOBILENET, 'onnx/model.onnx');
    const corrupted = Buffer.from(await readFile(model.absolute));
    corrupted[corrupted.length >> 1]! ^= 0xff;
    const actual = createHash('sha256').update(corrupted).digest('hex');
    server.faults.corruptPaths = new Set(['onnx/model.onnx']);

    const error = await rejection(pull(MOBILENET));
    expect(error.message).toContain('onnx/model.onnx');
    expect(error.message).toContain(`expected sha256 ${model.sha256}, got ${actual}`);
    const blobs = join(cacheDir, 'models--test-org--mobilenet-v2-random', 'blobs');
    const left = await readdir(blobs);
    expect(left.filter((name) => name.startsWith(model.sha256))).toEqual([]);
    expect(left.some((name) => name.endsWith('.incomplete'))).toBe(false);
    expect(existsSync(join(cacheDir, 'models--test-org--mobilenet-v2-random', 'snapshots', server.commitOf(MOBILENET), 'onnx/model.onnx'))).toBe(false);

    // Small files are checked against their git blob id.
    server.reset();
    server.faults.corruptPaths = new Set(['config.json']);
    const small = await rejection(pull(BERT));
    expect(small.message).toContain(`config.json from ${BERT}@main: checksum mismatch: expected git-sha1 ${server.fileOf(BERT, 'config.json').gitOid}`);

    server.reset();
    const pulled = await pull(MOBILENET);
    expect(await sha256File(join(pulled.snapshotDir, 'onnx/model.onnx'))).toBe(model.sha256);
  });
});

describe('pullModel: errors and retries', () => {
  const TOKEN = 'hf_thisIsTheSecretTokenValue42';

  it('sends the token to the Hub only, and never shows or writes it', async () => {
    server.faults.requireToken = TOKEN;
    const reporter = recordingReporter();
    const bad = await rejection(pull(MOBILENET, { token: 'hf_wrongSecretTokenValue99', reporter }));
    expect(bad.message).toBe(`token rejected for ${MOBILENET} (HTTP 401): check that it is valid and grants read access to this repository`);
    expect(bad.message).not.toContain('hf_wrong');
    expect(JSON.stringify(bad)).not.toContain('hf_wrong');
    const missing = await rejection(pull(MOBILENET));
    expect(missing.message).toMatch(`authentication required for ${MOBILENET} (HTTP 401): pass a token`);

    const pulled = await pull(MOBILENET, { token: TOKEN, reporter });
    expect(pulled.files).toContain('onnx/model.onnx');
    const hub = server.requests.filter((r) => r.server === 'hub');
    expect(hub.at(-1)!.authorization).toBe(`Bearer ${TOKEN}`);
    expect(cdnRequests().length).toBeGreaterThan(0);
    expect(cdnRequests().every((r) => r.authorization === undefined)).toBe(true);
    expect(await anyFileContains(cacheDir, TOKEN)).toBeUndefined();
    expect(await anyFileContains(cacheDir, 'hf_wrong')).toBeUndefined();
    expect(reporter.lines.join('\n')).not.toContain('hf_');

    // HF_TOKEN is the default token.
    process.env.HF_TOKEN = TOKEN;
    try {
      server.requests.length = 0;
      await pull(BERT);
      expect(server.requests.filter((r) => r.server === 'hub').every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    } finally {
      delete process.env.HF_TOKEN;
    }
    expect(await anyFileContains(cacheDir, TOKEN)).toBeUndefined();
  });

  it('takes the endpoint from HF_ENDPOINT and the cache from HF_HUB_CACHE, then $HF_HOME/hub', async () => {
    process.env.HF_ENDPOINT = `${server.url}/`;
    process.env.HF_HUB_CACHE = join(cacheDir, 'from-env');
    try {
      const pulled = await pullModel(MOBILENET, { files: () => ['config.json'] });
      expect(pulled.snapshotDir).toBe(join(cacheDir, 'from-env', 'models--test-org--mobilenet-v2-random', 'snapshots', server.commitOf(MOBILENET)));
      delete process.env.HF_HUB_CACHE;
      process.env.HF_HOME = join(cacheDir, 'home');
      const fromHome = await pullModel(MOBILENET, { files: () => ['config.json'] });
      expect(fromHome.snapshotDir.startsWith(join(cacheDir, 'home', 'hub', 'models--test-org--mobilenet-v2-random'))).toBe(true);
    } finally {
      delete process.env.HF_ENDPOINT;
      delete process.env.HF_HUB_CACHE;
      delete process.env.HF_HOME;
    }
  });

  it('tells a missing repository from a missing file, and does not retry either', async () => {
    server.faults.missingRepos = new Set([MOBILENET]);
    const repo = await rejection(pull(MOBILENET));
    expect(repo.message).toMatch(`repository not found: ${MOBILENET}`);
    expect(server.requests).toHaveLength(1);

    server.reset();
    server.faults.missingFiles = new Set(['onnx/model.onnx']);
    const file = await rejection(pull(MOBILENET));
    expect(file.message).toMatch(`file not found in ${MOBILENET}@main: onnx/model.onnx`);
    expect(hubRequests(/\/resolve\/.*onnx\/model\.onnx/)).toHaveLength(1);

    const chosen = await rejection(pull(MOBILENET, { files: () => ['config.json', 'weights.bin'] }));
    expect(chosen.message).toBe(`file not found in ${MOBILENET}@main: weights.bin`);
  });

  it('retries 5xx answers with backoff, then succeeds', async () => {
    server.faults.fail500 = { count: 2 };
    const reporter = recordingReporter();
    const pulled = await pull(MOBILENET, { reporter });
    expect(pulled.commit).toBe(server.commitOf(MOBILENET));
    expect(hubRequests(/\/revision\/main/)).toHaveLength(3);
    expect(reporter.lines.filter((l) => l.includes('HTTP 500') && l.includes('retrying'))).toHaveLength(2);
  });

  it('gives up after the retries allowed', async () => {
    server.faults.fail500 = { count: 10 };
    const error = await rejection(pull(MOBILENET, { retries: 1 }));
    expect(error.message).toBe(`the Hub answered HTTP 500 for ${MOBILENET}@main (gave up after 2 attempts)`);
    expect(server.requests).toHaveLength(2);
  });

  it('retries a refused connection as a network error', async () => {
    const closed = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const error = await rejection(pullModel(MOBILENET, { endpoint: `http://127.0.0.1:${closed}`, cacheDir, retries: 1 }));
    expect(error.kind).toBe('network');
    expect(error.message).toMatch(/resolving test-org\/mobilenet-v2-random@main: .*ECONNREFUSED.*gave up after 2 attempts/);
  });

  it('uses a cached branch, with a warning, when the Hub cannot be reached; an answer from the Hub still counts', async () => {
    const first = await pull(MOBILENET);
    const closed = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const reporter = recordingReporter();
    const again = await pullModel(MOBILENET, { endpoint: `http://127.0.0.1:${closed}`, cacheDir, reporter });
    expect(again).toEqual(first);
    expect(reporter.lines.filter((l) => l.startsWith('warn:'))).toEqual([
      expect.stringMatching(new RegExp(`ECONNREFUSED.*; using the cached ${MOBILENET}@main \\(commit ${first.commit.slice(0, 12)}\\), which may be out of date$`)),
    ]);
    // A refusal from the Hub itself is not a reason to fall back.
    server.faults.requireToken = 'needed';
    const denied = await rejection(pull(MOBILENET));
    expect(denied.message).toMatch(/authentication required/);
  });
});

describe('pullModel: locks', () => {
  it('breaks a lock left by a process that died', async () => {
    const model = server.fileOf(MOBILENET, 'onnx/model.onnx');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const locks = join(cacheDir, '.locks', 'models--test-org--mobilenet-v2-random');
    await mkdir(locks, { recursive: true });
    const { hostname } = await import('node:os');
    await writeFile(join(locks, `${model.sha256}.lock`), JSON.stringify({ pid: dead, host: hostname(), token: 'x', since: '' }));
    const started = Date.now();
    const pulled = await pull(MOBILENET);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await sha256File(join(pulled.snapshotDir, 'onnx/model.onnx'))).toBe(model.sha256);
    expect(await readdir(locks)).toEqual([]);
  });

  it('breaks a lock nobody refreshed for a long time (e.g. from another machine)', async () => {
    const model = server.fileOf(MOBILENET, 'onnx/model.onnx');
    const locks = join(cacheDir, '.locks', 'models--test-org--mobilenet-v2-random');
    await mkdir(locks, { recursive: true });
    const lock = join(locks, `${model.sha256}.lock`);
    await writeFile(lock, JSON.stringify({ pid: 1, host: 'another-machine', token: 'y', since: '' }));
    const old = new Date(Date.now() - 3_600_000);
    await utimes(lock, old, old);
    const pulled = await pull(MOBILENET);
    expect(await sha256File(join(pulled.snapshotDir, 'onnx/model.onnx'))).toBe(model.sha256);
  });

  it('lets two simultaneous pulls in one process share one download', async () => {
    const model = server.fileOf(MOBILENET, 'onnx/model.onnx');
    server.faults.cdnChunkDelayMs = 5;
    const a = recordingReporter();
    const b = recordingReporter();
    const [first, second] = await Promise.all([pull(MOBILENET, { reporter: a }), pull(MOBILENET, { reporter: b })]);
    expect(first).toEqual(second);
    expect(cdnRequests(model.sha256)).toHaveLength(1);
    expect([...a.lines, ...b.lines].some((l) => l.includes('waiting for another process'))).toBe(true);
    expect(await sha256File(join(first.snapshotDir, 'onnx/model.onnx'))).toBe(model.sha256);
  });
});

describe('filesForModel', () => {
  const listing = [
    'README.md',
    'config.json',
    'preprocessor_config.json',
    'onnx/model.onnx',
    'onnx/model.onnx_data',
    'onnx/model_fp16.onnx',
    'onnx/model_fp16.onnx_data',
    'onnx/model_quantized.onnx',
    'onnx/vision_model.onnx',
    'onnx/vision_model_quantized.onnx',
  ];

  it('takes the side files, the weights and their external data', () => {
    expect(filesForModel(listing, 'fp32')).toEqual(['config.json', 'preprocessor_config.json', 'onnx/model.onnx_data', 'onnx/model.onnx']);
    expect(filesForModel(listing, 'fp16')).toEqual(['config.json', 'preprocessor_config.json', 'onnx/model_fp16.onnx_data', 'onnx/model_fp16.onnx']);
    expect(filesForModel(listing, 'q8')).toEqual(['config.json', 'preprocessor_config.json', 'onnx/model_quantized.onnx']);
    expect(filesForModel(listing, 'q8', { component: 'vision_model' })).toEqual(['config.json', 'preprocessor_config.json', 'onnx/vision_model_quantized.onnx']);
  });

  it('lists the dtypes there are when the one asked for is not', () => {
    expect(() => filesForModel(listing, 'q4')).toThrow('no q4 weights (onnx/model_q4.onnx); available dtypes: fp32, fp16, q8');
    expect(() => filesForModel(['config.json', 'pytorch_model.bin'], 'fp32')).toThrow(/not an ONNX export/);
  });
});
