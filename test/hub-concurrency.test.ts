import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../src/util/hash.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';
import { HUB_FIXTURES, MOBILENET, hubTempDir } from './helpers/hub-fixtures.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
let server: HubServer;

beforeAll(async () => {
  server = await startHubServer(HUB_FIXTURES);
});
afterAll(async () => {
  await server.close();
});

function pullInChild(cacheDir: string, repo: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/hub-pull-child.ts', server.url, cacheDir, repo], {
      cwd: ROOT,
      env: { ...process.env, HF_TOKEN: '', HF_HUB_OFFLINE: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('two processes pulling the same model at once', () => {
  it('both succeed, the weights are downloaded once, and one correct blob is left', async () => {
    const cacheDir = await hubTempDir();
    const model = server.fileOf(MOBILENET, 'onnx/model.onnx');
    // The CDN holds the weights back until both processes have listed the repository (and then a
    // little longer), so the second certainly finds the first downloading them.
    server.faults.cdnHold = new Promise<void>((release) => {
      const poll = setInterval(() => {
        if (server.requests.filter((r) => r.path.includes('/tree/')).length < 2) return;
        clearInterval(poll);
        setTimeout(release, 500);
      }, 20);
      // Never hang the test if a process dies before listing.
      setTimeout(() => {
        clearInterval(poll);
        release();
      }, 30_000).unref();
    });
    const [a, b] = await Promise.all([pullInChild(cacheDir, MOBILENET), pullInChild(cacheDir, MOBILENET)]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    // One of them found the other downloading the weights and waited for it.
    expect(`${a.stderr}${b.stderr}`).toMatch(/onnx\/model\.onnx: waiting for another process \(pid \d+\)/);
    const first = JSON.parse(a.stdout);
    expect(JSON.parse(b.stdout)).toEqual(first);

    expect(server.requests.filter((r) => r.server === 'cdn' && r.path.includes(model.sha256))).toHaveLength(1);
    const blobs = await readdir(join(cacheDir, 'models--test-org--mobilenet-v2-random', 'blobs'));
    expect(blobs.filter((name) => name.startsWith(model.sha256))).toEqual([model.sha256]);
    expect(blobs.some((name) => name.endsWith('.incomplete'))).toBe(false);
    expect(await sha256File(join(first.snapshotDir, 'onnx/model.onnx'))).toBe(model.sha256);
    expect(await readdir(join(cacheDir, '.locks', 'models--test-org--mobilenet-v2-random'))).toEqual([]);
  });
});
