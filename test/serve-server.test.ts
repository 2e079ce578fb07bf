import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Classifier } from '../src/classifier/classifier.js';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { createServer, type HeadstartServer, type ServeOptions } from '../src/serve/server.js';
import { SHARED, makeColourFolder, makeImage, pngClaimingSize, tempDir } from './helpers/images.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');

interface Served {
  server: HeadstartServer;
  url: string;
}

interface Predictions {
  model: string;
  predictions: { label: string; probability: number }[];
}

describe('headstart serve', () => {
  let work: string;
  let classifier: ImageClassifier;
  let red: Buffer;
  let blue: Buffer;
  let main: Served;
  const opened: Served[] = [];

  async function serve(options: ServeOptions = {}): Promise<Served> {
    const server = await createServer([{ name: 'colours', classifier }], { logger: false, ...options });
    const served = { server, url: await server.listen(0) };
    opened.push(served);
    return served;
  }

  const predict = (base: string, body: Buffer | string | FormData, type?: string, query = '') =>
    fetch(`${base}/v1/models/colours/predict${query}`, { method: 'POST', body, headers: type ? { 'content-type': type } : {} });

  beforeAll(async () => {
    work = await tempDir('headstart-serve-');
    const data = await makeColourFolder(join(work, 'colours'), 8);
    classifier = await ImageClassifier.train({ data, backbone: MOBILENET_035, cacheDir: join(work, 'cache') });
    red = await makeImage(64, 48, { r: 220, g: 30, b: 30 }, 'jpeg');
    blue = await makeImage(48, 64, { r: 30, g: 50, b: 220 }, 'png');
    main = await serve({ limits: { maxBodyBytes: 256 * 1024, maxPixels: 4_000_000, maxBatchInputs: 4 } });
  });

  afterAll(async () => {
    for (const { server } of opened) await server.close();
    await classifier?.dispose();
  });

  it('classifies raw image bytes as the library does', async () => {
    const response = await predict(main.url, red, 'image/jpeg');
    expect(response.status).toBe(200);
    const body = (await response.json()) as Predictions;
    expect(body.model).toBe('colours');
    expect(body.predictions.map((p) => p.label)).toEqual(['red', 'blue']);
    const [library] = await classifier.predictMany([red]);
    body.predictions.forEach((p, i) => expect(p.probability).toBeCloseTo(library![i]!.probability, 5));
    const octets = await predict(main.url, blue, 'application/octet-stream', '?top_k=1');
    expect(((await octets.json()) as Predictions).predictions).toEqual([{ label: 'blue', probability: expect.any(Number) }]);
  });

  it('takes a batch of files as multipart/form-data', async () => {
    const form = new FormData();
    form.append('first', new Blob([red], { type: 'image/jpeg' }), 'red.jpg');
    form.append('second', new Blob([blue], { type: 'image/png' }), 'blue.png');
    form.append('note', 'fields are ignored');
    const response = await predict(main.url, form, undefined, '?top_k=1');
    expect(response.status).toBe(200);
    const body = (await response.json()) as { results: { input: string; predictions: { label: string }[] }[] };
    expect(body.results.map((r) => [r.input, r.predictions.map((p) => p.label)])).toEqual([
      ['red.jpg', ['red']],
      ['blue.png', ['blue']],
    ]);
  });

  it('refuses abuse with a clear 4xx and keeps serving', async () => {
    const jpeg = await readFile(join(SHARED, 'data/images/hymenoptera/val/ants/10308379_1b6c72e180.jpg'));
    const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));
    const tooManyFiles = new FormData();
    for (let i = 0; i < 5; i++) tooManyFiles.append(`f${i}`, new Blob([red]), `${i}.jpg`);
    const bigFile = new FormData();
    bigFile.append('f', new Blob([Buffer.alloc(300 * 1024)]), 'big.jpg');
    const cases: [string, Promise<Response>, number, string][] = [
      ['random bytes', predict(main.url, random, 'image/jpeg'), 400, 'undecodable_image'],
      ['a truncated JPEG', predict(main.url, jpeg.subarray(0, jpeg.length >> 1), 'image/jpeg'), 400, 'undecodable_input'],
      ['a 20000×20000 PNG header', predict(main.url, await pngClaimingSize(20000, 20000), 'image/png'), 413, 'too_many_pixels'],
      ['JSON to an image model', predict(main.url, JSON.stringify({ text: 'hello' }), 'application/json'), 415, 'unsupported_media_type'],
      ['text/plain to an image model', predict(main.url, 'hello', 'text/plain'), 415, 'unsupported_media_type'],
      ['an unknown content type', predict(main.url, red, 'application/x-unknown'), 415, 'unsupported_media_type'],
      ['an oversized body', predict(main.url, Buffer.alloc(300 * 1024), 'image/jpeg'), 413, 'body_too_large'],
      ['an oversized multipart file', predict(main.url, bigFile), 413, 'body_too_large'],
      ['too many files', predict(main.url, tooManyFiles), 413, 'too_many_inputs'],
      ['an empty body', predict(main.url, Buffer.alloc(0), 'image/jpeg'), 400, 'empty_input'],
      ['a bad top_k', predict(main.url, red, 'image/jpeg', '?top_k=-3'), 400, 'bad_top_k'],
      ['an unknown model', fetch(`${main.url}/v1/models/nope/predict`, { method: 'POST', body: red, headers: { 'content-type': 'image/jpeg' } }), 404, 'unknown_model'],
      ['a path for a model name', fetch(`${main.url}/v1/models/..%2F..%2Fetc%2Fpasswd/predict`, { method: 'POST', body: red, headers: { 'content-type': 'image/jpeg' } }), 404, 'unknown_model'],
    ];
    for (const [what, pending, status, code] of cases) {
      const response = await pending;
      const body = (await response.json()) as { error: { status: number; code: string; message: string } };
      expect([response.status, body.error.code], what).toEqual([status, code]);
      expect(body.error.message.length, what).toBeGreaterThan(10);
    }
    expect((await predict(main.url, red, 'image/jpeg')).status).toBe(200);
    expect(await (await fetch(`${main.url}/healthz`)).json()).toEqual({ status: 'ok', models: ['colours'] });
    const metrics = await (await fetch(`${main.url}/metrics`)).text();
    expect(metrics).toMatch(/headstart_rejected_total\{reason="too_many_pixels"\} 1/);
    expect(metrics).toMatch(/headstart_requests_total\{model="colours",status="200"\} \d+/);
  });

  it('lists its models and exposes Prometheus metrics', async () => {
    const models = (await (await fetch(`${main.url}/v1/models`)).json()) as { models: { name: string; labels: string[]; modality: string }[] };
    expect(models.models).toEqual([expect.objectContaining({ name: 'colours', labels: ['blue', 'red'], modality: 'image', head: 'linear' })]);
    const response = await fetch(`${main.url}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    for (const series of ['headstart_request_duration_seconds_bucket', 'headstart_batch_size_bucket', 'headstart_batch_duration_seconds_sum', 'headstart_in_flight_requests', 'process_resident_memory_bytes']) {
      expect(text).toContain(series);
    }
  });

  it('batches concurrent requests into one backbone call with the same answers', async () => {
    const { url, server } = await serve({ batching: { maxBatch: 8, maxWaitMs: 300 } });
    const inputs = Array.from({ length: 8 }, (_, i) => (i % 2 ? red : blue));
    const responses = await Promise.all(inputs.map((input) => predict(url, input, 'image/jpeg')));
    const bodies = (await Promise.all(responses.map((r) => r.json()))) as Predictions[];
    const library = await classifier.predictMany(inputs);
    bodies.forEach((body, i) => {
      expect(body.predictions[0]!.label).toBe(library[i]![0]!.label);
      expect(body.predictions[0]!.probability).toBeCloseTo(library[i]![0]!.probability, 5);
    });
    const text = await server.metrics.text();
    expect(text).toMatch(/headstart_batch_size_count\{model="colours"\} 1\n/);
    expect(text).toMatch(/headstart_batch_size_sum\{model="colours"\} 8\n/);
  });

  it('answers 429 beyond its concurrency limit, then serves again', async () => {
    const { url } = await serve({ limits: { maxConcurrent: 1 }, batching: { maxBatch: 1, maxWaitMs: 50 } });
    const statuses = await Promise.all(Array.from({ length: 6 }, () => predict(url, red, 'image/jpeg').then((r) => r.status)));
    expect(statuses).toContain(200);
    expect(statuses).toContain(429);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    expect((await predict(url, red, 'image/jpeg')).status).toBe(200);
  });

  it('finishes requests in flight when closed, then refuses connections', async () => {
    const { url, server } = await serve({ batching: { maxBatch: 16, maxWaitMs: 200 } });
    const pending = Array.from({ length: 3 }, () => predict(url, red, 'image/jpeg'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await server.close();
    expect((await Promise.all(pending)).map((r) => r.status)).toEqual([200, 200, 200]);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it('starts from the command line, logs JSON lines and stops cleanly on SIGTERM', async () => {
    const model = join(work, 'colours-model');
    await classifier.save(model, { report: false });
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', model, '--port', '0', '--cache-dir', join(work, 'cache')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const address = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
        const serving = stdout.split('\n').find((line) => line.includes('"msg":"serving"'));
        if (serving) resolve((JSON.parse(serving) as { address: string }).address);
      });
      void exited.then(() => reject(new Error(`serve exited early: ${stderr}`)));
    });
    const response = await fetch(`${address}/v1/models/colours-model/predict`, { method: 'POST', body: red, headers: { 'content-type': 'image/jpeg' } });
    expect(response.status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);
    const messages = stdout.trim().split('\n').map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages).toEqual(expect.arrayContaining(['serving', 'request completed', 'shutting down: finishing requests in flight', 'stopped']));
  });
});

describe('headstart serve with text and audio models', () => {
  let work: string;
  let text: Classifier;
  let audio: Classifier;
  let server: HeadstartServer;
  let url: string;
  let wav: Buffer;

  beforeAll(async () => {
    work = await tempDir('headstart-serve-modalities-');
    const reviews = [
      ['great movie, loved it', 'pos'],
      ['wonderful acting and a fine story', 'pos'],
      ['a delight from start to end', 'pos'],
      ['superb, moving, funny', 'pos'],
      ['terrible, boring film', 'neg'],
      ['awful acting, dull story', 'neg'],
      ['a waste of two hours', 'neg'],
      ['dreadful and slow', 'neg'],
    ];
    await writeFile(join(work, 'reviews.csv'), `text,label\n${reviews.map(([t, l]) => `"${t}",${l}`).join('\n')}\n`);
    text = await Classifier.train({ task: 'text', data: join(work, 'reviews.csv'), backbone: join(SHARED, 'models/bert-tiny-random'), cacheDir: join(work, 'cache') });
    const recordings = join(SHARED, 'data/audio/fsdd/recordings');
    for (const digit of ['0', '1']) {
      await mkdir(join(work, 'digits', digit), { recursive: true });
      for (let take = 0; take < 6; take++) await copyFile(join(recordings, `${digit}_george_${take}.wav`), join(work, 'digits', digit, `${take}.wav`));
    }
    audio = await Classifier.train({ task: 'audio', data: join(work, 'digits'), cacheDir: join(work, 'cache') });
    wav = await readFile(join(recordings, '1_george_40.wav'));
    server = await createServer(
      [
        { name: 'reviews', classifier: text },
        { name: 'digits', classifier: audio },
      ],
      { logger: false, limits: { maxTextLength: 200 } },
    );
    url = await server.listen(0);
  });

  afterAll(async () => {
    await server?.close();
    await text?.dispose();
    await audio?.dispose();
  });

  const post = (model: string, body: Buffer | string, type: string) =>
    fetch(`${url}/v1/models/${model}/predict`, { method: 'POST', body, headers: { 'content-type': type } });

  it('classifies JSON text, a JSON batch and text/plain as the library does', async () => {
    const single = (await (await post('reviews', JSON.stringify({ text: 'loved it' }), 'application/json')).json()) as Predictions;
    const [library] = await text.predictMany(['loved it']);
    single.predictions.forEach((p, i) => expect(p.probability).toBeCloseTo(library![i]!.probability, 5));
    const batch = (await (await post('reviews', JSON.stringify({ texts: ['dull', 'superb'] }), 'application/json')).json()) as { results: unknown[] };
    expect(batch.results).toHaveLength(2);
    expect((await post('reviews', 'loved it', 'text/plain')).status).toBe(200);
  });

  it('refuses long texts, malformed JSON and image uploads to a text model', async () => {
    const cases: [Promise<Response>, number, string][] = [
      [post('reviews', JSON.stringify({ text: 'x'.repeat(201) }), 'application/json'), 413, 'text_too_long'],
      [post('reviews', JSON.stringify({ words: 'hi' }), 'application/json'), 400, 'bad_json'],
      [post('reviews', '{"text": ', 'application/json'), 400, 'fst_err_ctp_invalid_json_body'],
      [post('reviews', Buffer.from([0xff, 0xd8, 0xff]), 'image/jpeg'), 415, 'unsupported_media_type'],
    ];
    for (const [pending, status, code] of cases) {
      const response = await pending;
      expect([response.status, ((await response.json()) as { error: { code: string } }).error.code]).toEqual([status, code]);
    }
  });

  it('classifies a WAV upload and refuses what is not one', async () => {
    const response = await post('digits', wav, 'audio/wav');
    expect(response.status).toBe(200);
    const body = (await response.json()) as Predictions;
    const [library] = await audio.predictMany([wav]);
    expect(body.predictions[0]!.label).toBe(library![0]!.label);
    const garbage = await post('digits', Buffer.from('RIFF0000WAVEjunk'), 'audio/wav');
    expect(garbage.status).toBe(400);
    expect((await post('digits', wav, 'image/png')).status).toBe(415);
    expect((await post('digits', wav, 'audio/wav')).status).toBe(200);
  });
});
