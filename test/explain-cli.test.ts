/** `headstart explain` and POST /v1/models/<name>/explain, on a small trained model and its export. */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { exportClassifier } from '../src/export/onnx-export.js';
import { createServer } from '../src/serve/server.js';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { runCli } from './helpers/cli.js';
import { HYMENOPTERA, SHARED, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');

describe('explain: CLI and server', () => {
  let root: string;
  let classifier: ImageClassifier;
  let photos: string[];

  beforeAll(async () => {
    root = await tempDir();
    classifier = await ImageClassifier.train({ data: HYMENOPTERA, backbone: MOBILENET_035, cacheDir: join(root, 'cache') });
    await classifier.save(join(root, 'model'), { report: false });
    await writeFile(join(root, 'model.onnx'), (await exportClassifier(classifier)).onnx);
    photos = (await readdir(join(HYMENOPTERA, 'val/ants'))).sort().slice(0, 2).map((name) => join(HYMENOPTERA, 'val/ants', name));
  }, 120_000);

  it('--json prints one record per input with the map on the photo and the peak in its pixels; --out writes overlays', async () => {
    const out = join(root, 'overlays');
    const result = await runCli(['explain', join(root, 'model'), ...photos, '--json', '--out', out, '--cache-dir', join(root, 'cache'), '--quiet']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const records = JSON.parse(result.stdout) as { input: string; label: string; probability: number; peak: { x: number; y: number }; map: { width: number; height: number; values: number[] } }[];
    expect(records.map((r) => r.input)).toEqual(photos);
    const predictions = await classifier.predictMany(photos);
    for (const [i, record] of records.entries()) {
      expect(Object.keys(record).sort()).toEqual(['input', 'label', 'map', 'peak', 'probability']);
      expect(record.label).toBe(predictions[i]![0]!.label);
      expect(record.probability).toBeCloseTo(predictions[i]![0]!.probability, 5);
      const { width, height } = await sharp(photos[i]!).metadata();
      expect([record.map.width, record.map.height]).toEqual([width, height]);
      expect(record.map.values).toHaveLength(width! * height!);
      expect(record.map.values[record.peak.y * width! + record.peak.x]).toBe(1);
      const overlay = await sharp(join(out, `${photos[i]!.split('/').pop()!.replace(/\.jpg$/, '')}.gradcam.png`)).metadata();
      expect([overlay.format, overlay.width, overlay.height]).toEqual(['png', width, height]);
    }
  }, 60_000);

  it('--steps auto: the JSON record and the text say the steps used and the gap, and plainly when --max-steps cut it short; the server takes steps=auto', async () => {
    const args = ['explain', join(root, 'model'), photos[0]!, '--method', 'integrated-gradients', '--steps', 'auto', '--max-steps', '32', '--cache-dir', join(root, 'cache'), '--quiet'];
    const json = await runCli([...args, '--json']);
    expect(json.stderr).toBe('');
    const [record] = JSON.parse(json.stdout) as { completeness: { sum: number; expected: number; relativeError: number; steps: number; rule: string; capped: boolean } }[];
    expect(record!.completeness).toMatchObject({ steps: 32, rule: 'trapezoid' });
    const { sum, expected, relativeError, capped } = record!.completeness;
    expect(relativeError).toBeCloseTo(Math.abs(sum - expected) / Math.abs(expected), 6);
    expect(capped).toBe(relativeError > 0.01);
    const text = await runCli(args);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('with 32 steps (trapezoid)');
    expect(text.stdout).toMatch(capped ? /stopped at the cap \(--max-steps\)/ : /auto: within 1 %/);
    const badSteps = await runCli(['explain', join(root, 'model'), photos[0]!, '--method', 'integrated-gradients', '--steps', 'many', '--quiet']);
    expect(badSteps.code).not.toBe(0);
    expect(badSteps.stderr).toMatch(/--steps must be an integer/);
    const server = await createServer([{ name: 'insects', classifier }], { logger: false });
    try {
      const answer = await server.app.inject({ method: 'POST', url: '/v1/models/insects/explain?method=integrated-gradients&steps=auto&max_steps=32', headers: { 'content-type': 'image/jpeg' }, payload: await readFile(photos[0]!) });
      expect(answer.statusCode, answer.body).toBe(200);
      expect(answer.json().explanations[0].completeness).toMatchObject({ steps: 32, rule: 'trapezoid', capped });
      const tooMany = await server.app.inject({ method: 'POST', url: '/v1/models/insects/explain?method=integrated-gradients&steps=auto&max_steps=4096', headers: { 'content-type': 'image/jpeg' }, payload: await readFile(photos[0]!) });
      expect([tooMany.statusCode, tooMany.json().error.code]).toEqual([400, 'bad_explain_option']);
    } finally {
      await server.close();
    }
  }, 180_000);

  it('refuses to overwrite a file it did not write, and unknown labels, with clear errors', async () => {
    const out = join(root, 'taken');
    const name = photos[0]!.split('/').pop()!.replace(/\.jpg$/, '');
    await mkdir(out, { recursive: true });
    await writeFile(join(out, `${name}.gradcam.png`), 'my own file');
    const refused = await runCli(['explain', join(root, 'model'), photos[0]!, '--out', out, '--cache-dir', join(root, 'cache'), '--quiet']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/gradcam\.png/);
    expect(await readFile(join(out, `${name}.gradcam.png`), 'utf8')).toBe('my own file');
    const unknown = await runCli(['explain', join(root, 'model'), photos[0]!, '--target', 'wasps', '--cache-dir', join(root, 'cache'), '--quiet']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown target label "wasps"/);
  }, 60_000);

  it('explains an exported ONNX file by occlusion', async () => {
    const result = await runCli(['explain', join(root, 'model.onnx'), photos[0]!, '--json', '--quiet']);
    expect(result.code).toBe(0);
    const [record] = JSON.parse(result.stdout) as { label: string; map: { width: number } }[];
    expect(record!.label).toBe((await classifier.predict(photos[0]!))[0]!.label);
    const gradients = await runCli(['explain', join(root, 'model.onnx'), photos[0]!, '--method', 'saliency', '--quiet']);
    expect(gradients.code).toBe(2);
    expect(gradients.stderr).toMatch(/occlusion only/);
  }, 60_000);

  it('POST /v1/models/<name>/explain answers as the CLI does, with the predict route\'s limits', async () => {
    const server = await createServer([{ name: 'insects', classifier }], { logger: false, limits: { maxBodyBytes: 200_000 } });
    const photo = await readFile(photos[0]!);
    const response = await server.app.inject({ method: 'POST', url: '/v1/models/insects/explain?method=saliency', headers: { 'content-type': 'image/jpeg' }, payload: photo });
    expect(response.statusCode).toBe(200);
    const body = response.json() as { model: string; explanations: { label: string; peak: { x: number; y: number }; map: { width: number; values: number[] } }[] };
    const direct = await classifier.explain(photos[0]!, { method: 'saliency' });
    expect(body.model).toBe('insects');
    expect(body.explanations[0]!.label).toBe(direct.label);
    expect(body.explanations[0]!.peak).toEqual(direct.peak);
    expect(body.explanations[0]!.map.width).toBe(direct.map.width);
    const badMethod = await server.app.inject({ method: 'POST', url: '/v1/models/insects/explain?method=magic', headers: { 'content-type': 'image/jpeg' }, payload: photo });
    expect([badMethod.statusCode, badMethod.json().error.code]).toEqual([400, 'bad_explain_option']);
    const unknown = await server.app.inject({ method: 'POST', url: '/v1/models/nope/explain', headers: { 'content-type': 'image/jpeg' }, payload: photo });
    expect(unknown.statusCode).toBe(404);
    const tooLarge = await server.app.inject({ method: 'POST', url: '/v1/models/insects/explain', headers: { 'content-type': 'image/jpeg' }, payload: Buffer.alloc(300_000) });
    expect(tooLarge.statusCode).toBe(413);
    const broken = { method: 'POST' as const, headers: { 'content-type': 'image/jpeg' }, payload: Buffer.from('not a jpeg') };
    const [explainBroken, predictBroken] = await Promise.all([server.app.inject({ ...broken, url: '/v1/models/insects/explain' }), server.app.inject({ ...broken, url: '/v1/models/insects/predict' })]);
    expect(explainBroken.statusCode).toBe(400);
    expect(explainBroken.json()).toEqual(predictBroken.json());
    await server.close();
  }, 60_000);

  it('report --explain: explained examples per cell and a most-confident-mistakes gallery, one self-contained file in Chromium', async () => {
    const out = join(root, 'report.html');
    const result = await runCli(['report', join(root, 'model'), '--explain', '--out', out, '--cache-dir', join(root, 'cache'), '--quiet', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const stored = JSON.parse((await readFile(out, 'utf8')).match(/<script type="application\/json" id="report-data">([^<]*)<\/script>/)![1]!) as {
      explained: { perCell: number; mistakes: number; methods: string[] };
      splits: { examples: { label: number; predicted: number; confidence: number; explanation?: { src?: string } }[] }[];
    };
    expect(stored.explained).toEqual({ perCell: 2, mistakes: 8, methods: ['gradcam'] });
    const examples = stored.splits[0]!.examples;
    const wrong = examples.filter((e) => e.label !== e.predicted).sort((a, b) => b.confidence - a.confidence);
    expect(wrong.length).toBeGreaterThan(0);
    for (const e of wrong.slice(0, 8)) expect(e.explanation?.src).toMatch(/^data:image\/jpeg;base64,/);
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
      await page.route('**/*', (route) => {
        requests.push(route.request().url());
        return route.request().url() === pathToFileURL(out).href ? route.continue() : route.abort();
      });
      await page.goto(pathToFileURL(out).href);
      const gallery = page.locator('#mistakes-validation-list li');
      await gallery.first().waitFor();
      expect(await gallery.count()).toBe(Math.min(8, wrong.length));
      expect(await page.locator('#mistakes-validation-list li img.explanation-map').count()).toBe(Math.min(8, wrong.length));
      const loaded = await page.locator('#mistakes-validation-list img.explanation-map').evaluateAll((images) => images.every((image) => (image as unknown as { naturalWidth: number }).naturalWidth > 0));
      expect(loaded).toBe(true);
      await page.evaluate(() => (globalThis as unknown as { headstartReport: { showCell(t: number, p: number): void } }).headstartReport.showCell(0, 0));
      expect(await page.locator('#example-list li').nth(0).locator('img.explanation-map').count()).toBe(1);
      expect(errors).toEqual([]);
      expect(requests).toEqual([pathToFileURL(out).href]);
    } finally {
      await browser.close();
    }
  }, 90_000);
});
