import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';
import { HUB_FIXTURES, MOBILENET, hubTempDir } from './helpers/hub-fixtures.js';
import { makeColourFolder } from './helpers/images.js';

/**
 * `--offline` and `--token` reach the backbone wherever a command opens one: a model trained on an
 * `hf:` backbone is loaded by predict, eval and export with a Hugging Face cache that lacks it, and
 * demo trains on one.
 */
describe('--offline and --token on every command that opens a backbone', () => {
  let server: HubServer;
  let work: string;
  let env: Record<string, string>;
  let data: string;
  let model: string;
  let commit: string;
  const freshHubCache = (name: string) => ({ ...env, HF_HUB_CACHE: join(work, name) });

  beforeAll(async () => {
    server = await startHubServer(HUB_FIXTURES);
    work = await hubTempDir('headstart-hub-options-');
    env = { HF_ENDPOINT: server.url, HF_HUB_CACHE: join(work, 'hf-cache'), HF_HUB_OFFLINE: '', HF_TOKEN: '' };
    data = await makeColourFolder(join(work, 'data'), 6);
    model = join(work, 'model');
    const train = await runCli(['train', data, '--backbone', `hf:${MOBILENET}`, '--out', model, '--cache-dir', join(work, 'cache'), '--quiet'], env);
    expect(train.code, train.stderr).toBe(0);
    commit = server.commitOf(MOBILENET);
  });
  afterAll(() => server?.close());

  it('--offline: predict, eval, export, serve and demo use the cache only, and say what is missing', async () => {
    server.reset();
    const image = join(data, 'red', 'red-1.png');
    const offline = `${MOBILENET}@${commit} is not in the cache (${join(work, 'empty-hf-cache', `models--${MOBILENET.replace('/', '--')}`)}) and offline mode is on`;
    for (const args of [
      ['predict', model, image],
      ['eval', model, data],
      ['export', model, '--out', join(work, 'model.onnx')],
      ['serve', model, '--port', '0', '--log-level', 'silent'],
    ]) {
      const quiet = args[0] === 'serve' ? [] : ['--quiet'];
      const result = await runCli([...args, '--offline', '--cache-dir', join(work, 'cache'), ...quiet], freshHubCache('empty-hf-cache'));
      expect(result.code, `${args[0]}: ${result.stderr}`).toBe(5);
      expect(result.stderr).toContain(offline);
    }
    const demo = await runCli(['demo', '--backbone', `hf:${MOBILENET}`, '--offline', '--per-class', '2', '--out', join(work, 'demo-model'), '--cache-dir', join(work, 'cache'), '--quiet'], freshHubCache('empty-hf-cache'));
    expect(demo.code).toBe(5);
    expect(demo.stderr).toContain(`${MOBILENET}@main is not in the cache`);
    expect(server.requests).toEqual([]);
  });

  it('--token: predict, eval and demo send it to the hub (and only there) when the backbone must be pulled', async () => {
    server.reset();
    server.faults.requireToken = 's3cret';
    const image = join(data, 'blue', 'blue-1.png');
    const denied = await runCli(['predict', model, image, '--cache-dir', join(work, 'cache'), '--quiet'], freshHubCache('hf-denied'));
    expect(denied.code).toBe(5);
    expect(denied.stderr).toMatch(/authentication required for test-org\/mobilenet-v2-random/);

    const predicted = await runCli(['predict', model, image, '--token', 's3cret', '--json', '--cache-dir', join(work, 'cache'), '--quiet'], freshHubCache('hf-predict'));
    expect(predicted.code, predicted.stderr).toBe(0);
    expect(JSON.parse(predicted.stdout)[0].predictions[0].label).toBe('blue');
    const evaluated = await runCli(['eval', model, data, '--token', 's3cret', '--json', '--cache-dir', join(work, 'cache'), '--quiet'], freshHubCache('hf-eval'));
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(JSON.parse(evaluated.stdout).metrics.n).toBe(12);
    const demo = await runCli(
      ['demo', '--backbone', `hf:${MOBILENET}`, '--token', 's3cret', '--per-class', '2', '--out', join(work, 'demo-model'), '--cache-dir', join(work, 'cache'), '--json', '--quiet'],
      freshHubCache('hf-demo'),
    );
    expect(demo.code, demo.stderr).toBe(0);
    expect(JSON.parse(demo.stdout).backbone.id).toBe(`hf:${MOBILENET}@${commit}`);

    const hubRequests = server.requests.filter((r) => r.server === 'hub');
    expect(hubRequests.filter((r) => r.authorization === 'Bearer s3cret').length).toBeGreaterThanOrEqual(3);
    expect(server.requests.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined)).toBe(true);
  });
});
