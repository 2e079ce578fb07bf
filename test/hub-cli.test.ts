import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { modelsCommand } from '../src/cli/models.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';
import { HUB_FIXTURES, MOBILENET, hubTempDir } from './helpers/hub-fixtures.js';

let server: HubServer;
let cacheDir: string;
const HF_ENV = ['HF_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HOME'] as const;
const savedEnv = Object.fromEntries(HF_ENV.map((key) => [key, process.env[key]]));

beforeAll(async () => {
  for (const key of HF_ENV) delete process.env[key];
  server = await startHubServer(HUB_FIXTURES);
  cacheDir = await hubTempDir('headstart-hub-cli-');
  process.env.HF_ENDPOINT = server.url;
});
afterAll(async () => {
  for (const key of HF_ENV) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
  await server.close();
});

/** Runs `headstart models …` in-process and returns what it printed on stdout. */
async function models(...args: string[]): Promise<string> {
  let stdout = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: any) => {
    stdout += String(chunk);
    return true;
  });
  try {
    await modelsCommand().parseAsync([...args, '--hub-cache', cacheDir], { from: 'user' });
  } finally {
    write.mockRestore();
  }
  return stdout;
}

describe('headstart models', () => {
  it('pull, list --json with sizes, info, rm', async () => {
    const pulled = JSON.parse(await models('pull', MOBILENET, '--json', '--quiet'));
    expect(pulled.id).toBe(`hf:${MOBILENET}`);
    expect(pulled.commit).toBe(server.commitOf(MOBILENET));
    expect(pulled.files).toEqual(['config.json', 'preprocessor_config.json', 'onnx/model.onnx']);

    const listed = JSON.parse(await models('list', '--json'));
    expect(listed.cache.dir).toBe(cacheDir);
    expect(listed.catalog.find((e: any) => e.id === 'hf:Xenova/resnet-18')).toMatchObject({ modality: 'image', cached: false });
    const repo = listed.cache.repos.find((r: any) => r.id === `hf:${MOBILENET}`);
    const expectedBytes = pulled.files.reduce((sum: number, file: string) => sum + server.fileOf(MOBILENET, file).size, 0);
    expect(repo).toMatchObject({ repo: MOBILENET, sizeBytes: expectedBytes, incompleteBytes: 0 });
    expect(repo.revisions).toEqual([{ commit: pulled.commit, refs: ['main'], files: [...pulled.files].sort(), sizeBytes: expectedBytes }]);

    const text = await models('list');
    expect(text).toMatch(/hf:Xenova\/dinov2-small\s+image\s+384\s+22\.1M\s+88\.5 MB/);
    expect(text).toContain(`hf:${MOBILENET}  8.9 MB`);
    expect(text).toMatch(/main → [0-9a-f]{10}: 3 files, 8\.9 MB/);

    const info = JSON.parse(await models('info', `hf:${MOBILENET}`, '--json'));
    expect(info.catalog).toBeNull();
    expect(info.cache.sizeBytes).toBe(expectedBytes);
    const catalogInfo = await models('info', 'hf:Xenova/clip-vit-base-patch32');
    expect(catalogInfo).toContain('512-d, projection pooling');
    expect(catalogInfo).toContain('onnx/vision_model*.onnx');
    expect(catalogInfo).toContain('not in the cache');

    // A second pull is served from the cache: one revision request, no download.
    server.requests.length = 0;
    await models('pull', `hf:${MOBILENET}@main`, '--quiet');
    expect(server.requests.map((r) => r.path.split('?')[0])).toEqual([`/api/models/${MOBILENET}/revision/main`]);

    const removed = JSON.parse(await models('rm', `hf:${MOBILENET}`, '--json'));
    expect(removed).toMatchObject({ removed: true, freedBytes: expectedBytes });
    expect(existsSync(join(cacheDir, 'models--test-org--mobilenet-v2-random'))).toBe(false);
    expect((await readdir(cacheDir)).filter((name) => name.includes('mobilenet'))).toEqual([]);
    expect(JSON.parse(await models('list', '--json')).cache.repos).toEqual([]);
    expect(await models('rm', MOBILENET)).toContain('is not in the cache');
  });

  it('refuses what it cannot pull, with usage errors', async () => {
    await expect(models('pull', 'builtin:inception-v3')).rejects.toThrow(/builtins ship with headstart/);
    await expect(models('pull', 'hf:a/b@dev', '--revision', 'main')).rejects.toThrow(/revision is given twice/);
    await expect(models('pull', 'hf:not a repo')).rejects.toMatchObject({ kind: 'usage' });
  });
});
