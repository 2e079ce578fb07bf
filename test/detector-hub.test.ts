import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Detector } from '../src/detector/detector.js';
import { runCli } from './helpers/cli.js';
import { hubTempDir } from './helpers/hub-fixtures.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';

const FIXTURES = 'test/fixtures/detection/';
const REPO = 'headstart-test/detr-tiny-random';
const NOT_A_DETECTOR = 'headstart-test/not-a-detector';
/** transformers' post_process_object_detection on the same DETR (tools/detr-layout-fixture.py). */
const reference = JSON.parse(await readFile(`${FIXTURES}detr-reference.json`, 'utf8')) as { threshold: number; detections: Record<string, { label: string; score: number; box: number[] }[]> };
const HF_ENV = ['HF_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HOME'] as const;
const savedEnv = Object.fromEntries(HF_ENV.map((key) => [key, process.env[key]]));

let server: HubServer;
let work: string;
let cacheDir: string;

beforeAll(async () => {
  for (const key of HF_ENV) delete process.env[key];
  work = await hubTempDir('headstart-detector-hub-');
  // A repository in the same layout whose config is not a detector's.
  const other = join(work, 'not-a-detector');
  await mkdir(join(other, 'onnx'), { recursive: true });
  await writeFile(join(other, 'config.json'), JSON.stringify({ model_type: 'resnet', id2label: { 0: 'a' } }));
  await copyFile(`${FIXTURES}yolo-tiny-random.onnx`, join(other, 'onnx', 'model.onnx'));
  server = await startHubServer([{ id: REPO, dir: `${FIXTURES}detr-tiny-random` }, { id: NOT_A_DETECTOR, dir: other }]);
});
afterAll(async () => {
  for (const key of HF_ENV) {
    if (savedEnv[key] === undefined) delete process.env[key];
    else process.env[key] = savedEnv[key];
  }
  await server.close();
  await rm(work, { recursive: true, force: true });
});
beforeEach(async () => {
  server.reset();
  cacheDir = await hubTempDir();
});

/** `digits`: the CLI's --json rounds scores to 4 decimals and boxes to 2. */
function expectReference(found: { label: string; score: number; box: number[] }[], image: string, width: number, height: number, rounded = false): void {
  const expected = [...reference.detections[image]!].sort((a, b) => b.score - a.score);
  expect(found.map((d) => d.label), image).toEqual(expected.map((d) => d.label));
  found.forEach((d, i) => {
    expect(d.score).toBeCloseTo(expected[i]!.score, rounded ? 3 : 5);
    d.box.forEach((v, k) => expect(Math.abs(v - Math.min(Math.max(expected[i]!.box[k]!, 0), k % 2 ? height : width))).toBeLessThan(rounded ? 0.006 : 1e-3));
  });
}

describe('hf: detection repositories in the transformers.js layout (DETR: onnx/model.onnx, config.json id2label, preprocessor_config.json)', () => {
  it('pulls config, preprocessor and weights through src/hub into the Hugging Face cache, pinned to the commit, and detects as transformers does', async () => {
    const detector = await Detector.load(`hf:${REPO}`, { hub: { endpoint: server.url, cacheDir } });
    try {
      expect(detector.reference).toBe(`hf:${REPO}@${server.commitOf(REPO)}`);
      expect(detector.classes).toEqual(['ant', 'bee', 'wasp']);
      const pulled = server.requests.filter((r) => r.server === 'hub' && r.path.includes('/resolve/')).map((r) => r.path.split('/').slice(5).join('/')).sort();
      expect(pulled).toEqual(['config.json', 'onnx/model.onnx', 'preprocessor_config.json']);
      for (const image of Object.keys(reference.detections)) {
        const found = await detector.detect(`${FIXTURES}${image}`, { threshold: reference.threshold });
        expectReference(found.detections, image, found.width, found.height);
      }
    } finally {
      await detector.dispose();
    }
    // Offline, the cached snapshot serves without a request.
    server.reset();
    const offline = await Detector.load(`hf:${REPO}`, { hub: { endpoint: server.url, cacheDir, offline: true } });
    await offline.dispose();
    expect(server.requests).toEqual([]);
  });

  it('`headstart detect hf:<repo> --json` takes hf: detectors; a repository that is not a detector is refused by name', async () => {
    const env = { HF_ENDPOINT: server.url, HF_HUB_CACHE: cacheDir };
    const image = Object.keys(reference.detections)[0]!;
    const result = await runCli(['detect', `hf:${REPO}`, `${FIXTURES}${image}`, '--threshold', String(reference.threshold), '--json', '--quiet', '--cache-dir', join(work, 'cache')], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const [output] = JSON.parse(result.stdout) as { detections: { label: string; score: number; box: number[] }[] }[];
    const size = (await import('sharp')).default(`${FIXTURES}${image}`).metadata();
    const { width, height } = await size;
    expectReference(output!.detections, image, width!, height!, true);
    const refused = await runCli(['detect', `hf:${NOT_A_DETECTOR}`, `${FIXTURES}${image}`, '--quiet', '--cache-dir', join(work, 'cache')], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`hf:${NOT_A_DETECTOR} is not a detector`);
  });
});
