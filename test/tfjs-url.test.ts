import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { HeadstartError } from '../src/util/errors.js';
import { sha256 } from '../src/util/hash.js';
import { runCli } from './helpers/cli.js';
import { SHARED, makeColourFolder, makeImage, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');

/**
 * A plain static web server on 127.0.0.1 holding the MobileNetV2 α=0.35 TF.js model twice: as it is
 * on disk (`/plain/`), and with its weights split into two shards in a sub-folder (`/sharded/`), as
 * TF.js writes larger models. `missing` paths answer 404; `requests` records every path asked for.
 */
async function startModelServer(): Promise<{ url: string; requests: string[]; missing: Set<string>; failOnce: Set<string>; close(): Promise<void> }> {
  const modelJson = JSON.parse(readFileSync(join(MOBILENET_035, 'model.json'), 'utf8'));
  const weights = readFileSync(join(MOBILENET_035, 'weights.bin'));
  const half = Math.ceil(weights.length / 2 / 4) * 4;
  const sharded = { ...modelJson, weightsManifest: modelJson.weightsManifest.map((group: object) => ({ ...group, paths: ['shards/group1-shard1of2.bin', 'shards/group1-shard2of2.bin'] })) };
  const files = new Map<string, Uint8Array>([
    ['/plain/model.json', readFileSync(join(MOBILENET_035, 'model.json'))],
    ['/plain/weights.bin', weights],
    ['/sharded/model.json', Buffer.from(JSON.stringify(sharded))],
    ['/sharded/shards/group1-shard1of2.bin', weights.subarray(0, half)],
    ['/sharded/shards/group1-shard2of2.bin', weights.subarray(half)],
    ['/evil/model.json', Buffer.from(JSON.stringify({ ...modelJson, weightsManifest: modelJson.weightsManifest.map((group: object) => ({ ...group, paths: ['../plain/weights.bin'] })) }))],
  ]);
  const requests: string[] = [];
  const missing = new Set<string>();
  const failOnce = new Set<string>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    requests.push(path);
    if (failOnce.delete(path)) {
      res.writeHead(503);
      return res.end('busy');
    }
    const body = missing.has(path) ? undefined : files.get(path);
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found');
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    missing,
    failOnce,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('tfjs:<url> backbones', () => {
  let server: Awaited<ReturnType<typeof startModelServer>>;
  let work: string;
  let probe: Uint8Array;
  let localFeatures: Float32Array;

  beforeAll(async () => {
    server = await startModelServer();
    work = await tempDir('headstart-tfjs-url-');
    probe = await makeImage(50, 40, { r: 200, g: 120, b: 30 });
    const local = await openImageBackbone(MOBILENET_035, { cacheDir: join(work, 'local-cache') });
    localFeatures = await local.forward([await local.prepare(probe)]);
    await local.dispose();
  });

  afterAll(async () => {
    await server?.close();
  });

  it('downloads model.json and the shards it lists (relative to its URL) once, into the cache, and converts them', async () => {
    const cacheDir = join(work, 'cache');
    const url = `${server.url}/sharded/model.json`;
    server.requests.length = 0;
    const backbone = await openImageBackbone(`tfjs:${url}`, { cacheDir });
    try {
      expect(backbone.reference.id).toBe(`tfjs:${url}`);
      expect(backbone.reference.featureDim).toBe(1280);
      // The same weights as the folder on disk: the same features.
      expect(await backbone.forward([await backbone.prepare(probe)])).toEqual(localFeatures);
    } finally {
      await backbone.dispose();
    }
    expect(server.requests).toEqual(['/sharded/model.json', '/sharded/shards/group1-shard1of2.bin', '/sharded/shards/group1-shard2of2.bin']);
    const folder = join(cacheDir, 'tfjs-url', sha256(url).slice(0, 32));
    expect((await readdir(folder, { recursive: true })).sort()).toEqual(['model.json', 'shards', 'shards/group1-shard1of2.bin', 'shards/group1-shard2of2.bin', 'source.json']);

    // Again, and offline (by option and by HF_HUB_OFFLINE): from the cache, no request.
    server.requests.length = 0;
    const again = await openImageBackbone(`tfjs:${url}`, { cacheDir, hub: { offline: true } });
    expect(await again.forward([await again.prepare(probe)])).toEqual(localFeatures);
    await again.dispose();
    process.env.HF_HUB_OFFLINE = '1';
    try {
      const offline = await openImageBackbone(`tfjs:${url}`, { cacheDir });
      await offline.dispose();
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
    expect(server.requests).toEqual([]);
  });

  it('retries a server error (HTTP 503) and says so', async () => {
    const cacheDir = join(work, 'cache-503');
    server.requests.length = 0;
    server.failOnce.add('/plain/weights.bin');
    const warnings: string[] = [];
    const reporter = { task: () => ({ tick() {}, done() {} }), info() {}, warn: (message: string) => warnings.push(message) };
    const backbone = await openImageBackbone(`tfjs:${server.url}/plain/model.json`, { cacheDir, reporter });
    await backbone.dispose();
    expect(server.requests).toEqual(['/plain/model.json', '/plain/weights.bin', '/plain/weights.bin']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^downloading ${server.url}/plain/weights\\.bin: HTTP 503; retrying in [\\d.]+s \\(1/5\\)$`));
  });

  it('offline, a URL not in the cache is an error naming it', async () => {
    const cacheDir = join(work, 'offline-cache');
    const url = `${server.url}/plain/model.json`;
    const folder = join(cacheDir, 'tfjs-url', sha256(url).slice(0, 32));
    const message = `the TF.js model ${url} is not in the cache (${folder}) and offline mode is on (HF_HUB_OFFLINE=1 or --offline), so it cannot be downloaded`;
    server.requests.length = 0;
    await expect(openImageBackbone(`tfjs:${url}`, { cacheDir, hub: { offline: true } })).rejects.toThrow(message);
    process.env.HF_HUB_OFFLINE = 'true';
    try {
      const error = await openImageBackbone(`tfjs:${url}`, { cacheDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HeadstartError);
      expect((error as HeadstartError).kind).toBe('network');
      expect((error as HeadstartError).message).toBe(message);
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
    expect(server.requests).toEqual([]);
  });

  it('a missing shard (HTTP 404) is an error naming the shard and its model.json, and caches nothing', async () => {
    const cacheDir = join(work, 'cache-404');
    const url = `${server.url}/sharded/model.json`;
    server.missing.add('/sharded/shards/group1-shard2of2.bin');
    try {
      const error = await openImageBackbone(`tfjs:${url}`, { cacheDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HeadstartError);
      expect((error as HeadstartError).kind).toBe('network');
      expect((error as HeadstartError).message).toBe(
        `${server.url}/sharded/shards/group1-shard2of2.bin: HTTP 404 Not Found: cannot download weight shard "shards/group1-shard2of2.bin" listed in ${url}`,
      );
      expect(await readdir(join(cacheDir, 'tfjs-url')).catch(() => [])).toEqual([]);
    } finally {
      server.missing.clear();
    }
    const missingModel = await openImageBackbone(`tfjs:${server.url}/nowhere/model.json`, { cacheDir }).catch((e: unknown) => e);
    expect((missingModel as Error).message).toBe(`${server.url}/nowhere/model.json: HTTP 404 Not Found: cannot download the TF.js model.json (check the tfjs: URL)`);
  });

  it('refuses what is not a TF.js model.json, and shard paths that would leave the model\'s folder', async () => {
    const cacheDir = join(work, 'cache-bad');
    server.requests.length = 0;
    const notJson = await openImageBackbone(`tfjs:${server.url}/plain/weights.bin`, { cacheDir }).catch((e: unknown) => e);
    expect((notJson as HeadstartError).kind).toBe('model');
    expect((notJson as Error).message).toMatch(new RegExp(`^${server.url}/plain/weights\\.bin: not valid JSON`));
    const evil = await openImageBackbone(`tfjs:${server.url}/evil/model.json`, { cacheDir }).catch((e: unknown) => e);
    expect((evil as Error).message).toBe(
      `${server.url}/evil/model.json: weight shard path "../plain/weights.bin" is not a plain relative path next to model.json; refusing to download it`,
    );
    expect(server.requests).toEqual(['/plain/weights.bin', '/evil/model.json']);
    expect(await readdir(join(cacheDir, 'tfjs-url')).catch(() => [])).toEqual([]);
  });

  it('from the CLI: trains on a tfjs: URL, predicts offline from the cache; a 404 exits 5 with the message', async () => {
    const cacheDir = join(work, 'cli-cache');
    const data = await makeColourFolder(join(work, 'data'), 6, ['blue', 'red']);
    const model = join(work, 'model');
    const url = `${server.url}/plain/`;
    const trained = await runCli(['train', data, '--backbone', `tfjs:${url}`, '--out', model, '--cache-dir', cacheDir, '--quiet']);
    expect(trained.code, trained.stderr).toBe(0);
    server.requests.length = 0;
    const predicted = await runCli(['predict', model, join(data, 'red', 'red-1.png'), '--json', '--cache-dir', cacheDir, '--quiet'], { HF_HUB_OFFLINE: '1' });
    expect(predicted.code, predicted.stderr).toBe(0);
    expect(JSON.parse(predicted.stdout)[0].predictions[0].label).toBe('red');
    expect(server.requests).toEqual([]);

    server.missing.add('/plain/weights.bin');
    try {
      const failed = await runCli(['train', data, '--backbone', `tfjs:${url}`, '--out', join(work, 'model-2'), '--cache-dir', join(work, 'cli-cache-2'), '--quiet']);
      expect(failed.code).toBe(5);
      expect(failed.stderr).toBe(`error: ${server.url}/plain/weights.bin: HTTP 404 Not Found: cannot download weight shard "weights.bin" listed in ${server.url}/plain/model.json\n`);
    } finally {
      server.missing.clear();
    }
  });
});
