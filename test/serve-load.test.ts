/**
 * A few seconds of load with abuse mixed in (issue 7's "smaller test"; `bench/ship.ts` is the long
 * one): autocannon at 8 connections on 127.0.0.1 while malformed requests arrive alongside. Only
 * correctness is asserted, never timing: valid requests all succeed, each abuse gets its 4xx,
 * requests were batched, and the server still answers afterwards.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { createServer, type HeadstartServer } from '../src/serve/server.js';
import { HYMENOPTERA, SHARED, makeColourFolder, pngClaimingSize, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');

describe('headstart serve under load', () => {
  let classifier: ImageClassifier;
  let server: HeadstartServer;
  let url: string;
  let photos: Buffer[];

  beforeAll(async () => {
    const work = await tempDir('headstart-serve-load-');
    classifier = await ImageClassifier.train({ data: await makeColourFolder(join(work, 'colours'), 8), backbone: MOBILENET_035, cacheDir: join(work, 'cache') });
    server = await createServer([{ name: 'colours', classifier }], { logger: false, limits: { maxBodyBytes: 1024 * 1024 } });
    url = await server.listen(0);
    const names = ['ants/10308379_1b6c72e180.jpg', 'ants/1053149811_f62a3410d3.jpg', 'bees/1032546534_06907fe3b3.jpg', 'bees/10870992_eebeeb3a12.jpg'];
    photos = await Promise.all(names.map((name) => readFile(join(HYMENOPTERA, 'val', name))));
  });

  afterAll(async () => {
    await server?.close();
    await classifier?.dispose();
  });

  const predict = (body: Uint8Array | string, type: string) =>
    fetch(`${url}/v1/models/colours/predict`, { method: 'POST', body, headers: { 'content-type': type } });

  it('answers every valid request at 8 connections while refusing abuse, batching as it goes', async () => {
    const random = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 2654435761) >>> 24));
    const abuse: [string, Uint8Array | string, string, number][] = [
      ['random bytes', random, 'image/jpeg', 400],
      ['a truncated JPEG', photos[0]!.subarray(0, photos[0]!.length >> 1), 'image/jpeg', 400],
      ['a 20000×20000 PNG header', await pngClaimingSize(20000, 20000), 'image/png', 413],
      ['JSON to an image model', JSON.stringify({ image: 'x' }), 'application/json', 415],
      ['an unknown content type', photos[1]!, 'application/x-whatever', 415],
    ];

    let next = 0;
    const loading = autocannon({
      url: `${url}/v1/models/colours/predict`,
      connections: 8,
      duration: 3,
      requests: [{ method: 'POST', headers: { 'content-type': 'image/jpeg' }, setupRequest: (request) => ({ ...request, body: photos[next++ % photos.length] }) }],
    });
    // Abuse in rounds for as long as the load runs, each round's cases in parallel.
    const seen: [string, number][] = [];
    let loaded = false;
    void loading.then(() => (loaded = true));
    while (!loaded) {
      const statuses = await Promise.all(abuse.map(([, body, type]) => predict(body, type).then(async (response) => (await response.arrayBuffer(), response.status))));
      statuses.forEach((status, i) => seen.push([abuse[i]![0], status]));
    }
    const result = await loading;

    expect(result['2xx']).toBeGreaterThan(8);
    expect([result.non2xx, result.errors, result.timeouts]).toEqual([0, 0, 0]);
    expect(seen.length).toBeGreaterThanOrEqual(abuse.length);
    for (const [what, status] of seen) expect([what, status]).toEqual([what, abuse.find(([name]) => name === what)![3]]);

    const metrics = await (await fetch(`${url}/metrics`)).text();
    const sum = Number(/headstart_batch_size_sum\{model="colours"\} ([\d.e+]+)/.exec(metrics)?.[1]);
    const count = Number(/headstart_batch_size_count\{model="colours"\} ([\d.e+]+)/.exec(metrics)?.[1]);
    expect(sum / count).toBeGreaterThan(1);

    const after = await predict(photos[2]!, 'image/jpeg');
    expect(after.status).toBe(200);
    expect(((await after.json()) as { predictions: unknown[] }).predictions).toHaveLength(2);
  });
});
