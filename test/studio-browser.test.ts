/**
 * headstart studio end to end in Debian's Chromium (playwright-core): a new user creates a project
 * and two classes, uploads hymenoptera photos, trains, reads the held-out accuracy on the page, tests
 * a photo, downloads the export and runs it in plain onnxruntime-node; records a webcam burst from
 * Chromium's fake camera and a clip from its fake microphone; every screen passes axe-core and is screenshotted; a write from another
 * origin is refused; a restarted server finds the project intact.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as ort from 'onnxruntime-node';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStudioServer, type StudioServer } from '../src/studio/server.js';
import type { TrainStatus } from '../src/studio/training.js';
import { parseExportMetadata, readOnnxMetadata } from '../src/web/format.js';
import { HYMENOPTERA, SHARED, tempDir } from './helpers/images.js';

const CHROMIUM = '/usr/bin/chromium';
const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const ROOT = new URL('../', import.meta.url).pathname;
const PER_CLASS = 6;

/** A tiny Y4M clip (I420) for Chromium's fake camera: moving colour bands, `frames` frames. */
function y4m(width: number, height: number, frames: number): Buffer {
  const parts = [Buffer.from(`YUV4MPEG2 W${width} H${height} F10:1 Ip A1:1 C420jpeg\n`)];
  for (let f = 0; f < frames; f++) {
    const y = Buffer.alloc(width * height);
    for (let r = 0; r < height; r++) for (let c = 0; c < width; c++) y[r * width + c] = ((c + f * 8) % 64) * 3 + 40;
    parts.push(Buffer.from('FRAME\n'), y, Buffer.alloc((width * height) / 4, 90), Buffer.alloc((width * height) / 4, 200));
  }
  return Buffer.concat(parts);
}

describe('headstart studio in Chromium', () => {
  let work: string;
  let projects: string;
  let shots: string;
  let studio: StudioServer;
  let origin: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let evil: Server;
  const errors: string[] = [];
  const axeSource = createRequire(import.meta.url)('axe-core').source as string;
  let photos: { ants: string[]; bees: string[]; test: string };

  const startStudio = async () => {
    studio = await createStudioServer({ dir: projects, assetsDir: join(work, 'page'), cacheDir: join(work, 'cache'), backbones: [MOBILENET_035] });
    origin = await studio.listen(0);
  };

  /** axe-core on the current screen: no violations at all (labels, names, contrast, landmarks…). */
  const axe = async (screen: string) => {
    await page.evaluate(axeSource);
    const violations = (await page.evaluate(async () => {
      const result = await (globalThis as unknown as { axe: { run(context: unknown, options: unknown): Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }> } }).axe.run(
        (globalThis as unknown as { document: unknown }).document,
        { resultTypes: ['violations'] },
      );
      return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    })) as string[];
    expect(violations, screen).toEqual([]);
  };
  const shoot = (name: string) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    work = await tempDir('headstart-studio-e2e-');
    projects = join(work, 'projects');
    shots = process.env.STUDIO_SCREENSHOTS ?? join(work, 'screens');
    // The page as `npm run build` makes it, from the current sources.
    await build({ configFile: join(ROOT, 'studio/vite.config.ts'), logLevel: 'error', build: { outDir: join(work, 'page'), emptyOutDir: true } });
    // The budget for the whole page: 300 kB gzipped.
    const assets = await readdir(join(work, 'page', 'assets'));
    let gzipped = 0;
    for (const file of [...assets.map((a) => join(work, 'page', 'assets', a)), join(work, 'page', 'index.html')]) gzipped += gzipSync(await readFile(file), { level: 9 }).byteLength;
    expect(gzipped).toBeLessThan(300 * 1024);
    const camera = join(work, 'camera.y4m');
    await writeFile(camera, y4m(160, 120, 20));
    const list = async (cls: string) => (await readdir(join(HYMENOPTERA, 'train', cls))).sort().slice(0, PER_CLASS).map((f) => join(HYMENOPTERA, 'train', cls, f));
    photos = { ants: await list('ants'), bees: await list('bees'), test: join(HYMENOPTERA, 'val/bees', (await readdir(join(HYMENOPTERA, 'val/bees'))).sort()[0]!) };
    await startStudio();
    // Another site on this machine, whose page tries to write into the studio.
    evil = createHttpServer((_request, response) => response.end('<!doctype html><title>elsewhere</title>'));
    await new Promise<void>((done) => evil.listen(0, '127.0.0.1', done));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${camera}`],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    // The page must work offline: anything but the studio itself (and the test's other site) is refused.
    await context.route('**/*', (route) => (route.request().url().startsWith('http://127.0.0.1:') ? route.continue() : route.abort()));
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 4\d\d/.test(message.text())) errors.push(message.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await studio?.close();
    evil?.close();
  });

  it('creates a project and two classes with the keyboard, uploads photos, and passes axe', async () => {
    await page.goto(origin);
    await page.getByRole('heading', { name: 'Projects', exact: true }).waitFor();
    await axe('home');
    await shoot('1-home');
    // Keyboard only: the skip link comes first, then the form; Enter submits.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement.textContent)).toBe('Skip to content');
    await page.getByLabel('Name').focus();
    await page.keyboard.type('Ants and bees');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement.name)).toBe('task');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement.textContent)).toBe('Create project');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: /Ants and bees/ }).waitFor();
    expect(page.url()).toContain('#/p/ants-and-bees/data');

    for (const name of ['ants', 'bees']) {
      await page.getByLabel('New class').fill(name);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name, exact: true }).waitFor();
    }
    for (const name of ['ants', 'bees'] as const) {
      const card = page.locator(`article[data-class="${name}"]`);
      await card.locator('input[type=file]').setInputFiles(photos[name]);
      await card.getByText(`${PER_CLASS} examples`).waitFor();
    }
    await page.locator('article[data-class="ants"]').getByRole('button', { name: 'Show examples' }).click();
    await expect.poll(() => page.locator('article[data-class="ants"] img').count()).toBe(PER_CLASS);
    // The photos are on disk in the ImageFolder layout.
    expect((await readdir(join(projects, 'ants-and-bees', 'bees'))).length).toBe(PER_CLASS);
    await axe('data');
    await shoot('2-data');
  });

  it('trains with live progress and shows the held-out validation accuracy', async () => {
    await page.getByRole('link', { name: 'Train' }).click();
    await page.getByRole('heading', { name: 'Train', exact: true }).waitFor();
    expect(await page.locator('select[name=backbone]').inputValue()).toBe(MOBILENET_035);
    await axe('train');
    await page.getByRole('button', { name: 'Train', exact: true }).click();
    await page.locator('#validation-accuracy').waitFor({ timeout: 60_000 });
    const status = (await (await fetch(`${origin}/api/projects/ants-and-bees/train`)).json()) as TrainStatus;
    expect(status.state).toBe('done');
    const accuracy = status.metrics!.validation!.accuracy;
    // The page shows the validation split's accuracy, on the held-out count.
    const text = await page.locator('#validation-accuracy').textContent();
    expect(text).toContain(`${(100 * accuracy).toFixed(1)} %`);
    expect(text).toContain(`on ${status.metrics!.validation!.n} held-out examples`);
    expect(await page.locator('figure.chart').count()).toBeGreaterThanOrEqual(2);
    await axe('train, done');
    await shoot('3-train');

    await page.getByRole('link', { name: 'See the results' }).click();
    await page.getByRole('heading', { name: 'Results', exact: true }).waitFor();
    expect(await page.locator('[data-metric="accuracy"]').first().textContent()).toBe(`${(100 * accuracy).toFixed(1)} %`);
    expect(await page.locator('table.per-class tbody tr').count()).toBe(2);
    // The report (src/report) in its frame, with its confusion matrix drawn.
    const report = page.frameLocator('iframe.report');
    await report.locator('#confusion').waitFor();
    await axe('results');
    await shoot('4-results');
  });

  it('tests a dropped photo with probability bars, the same as the API', async () => {
    await page.getByRole('link', { name: 'Test' }).click();
    await page.getByRole('heading', { name: 'Test', exact: true }).waitFor();
    await page.getByLabel('Drop files here, or choose files to classify').setInputFiles(photos.test);
    const result = page.locator('li.result').first();
    await result.waitFor();
    const bytes = await readFile(photos.test);
    const api = (await (await fetch(`${origin}/api/projects/ants-and-bees/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: bytes })).json()) as { label: string; probability: number }[];
    expect(await result.locator('.result-name strong').textContent()).toBe(api[0]!.label);
    expect(await result.locator('meter').count()).toBe(2);
    const shown = await result.locator('meter').evaluateAll((meters) => meters.map((m) => Number((m as unknown as { value: number }).value)));
    expect(shown).toEqual(api.map((p) => expect.closeTo(p.probability, 6)));
    await axe('test');
    await shoot('5-test');
  });

  it('downloads the ONNX export, which plain onnxruntime-node runs with the studio\'s answer', async () => {
    await page.getByRole('link', { name: 'Export' }).click();
    await page.getByText(/One ONNX file of/).waitFor({ timeout: 60_000 });
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download ants-and-bees.onnx' }).click()]);
    const file = join(work, 'downloaded.onnx');
    await download.saveAs(file);
    const onnx = await readFile(file);
    const metadata = parseExportMetadata(readOnnxMetadata(onnx));
    expect(metadata.labels).toEqual(['ants', 'bees']);
    const input = metadata.input as { kind: 'image'; name: string; width: number; height: number; shortestEdge?: number; resize: string };
    expect(input.kind).toBe('image');
    // The consumer's preprocessing, as the README's plain-Node snippet does it (sharp, no headstart code).
    const photo = await readFile(photos.test);
    const { width, height } = await sharp(photo).metadata();
    const scale = input.shortestEdge! / Math.min(width!, height!);
    const [w, h] = [Math.max(input.width, Math.round(width! * scale)), Math.max(input.height, Math.round(height! * scale))];
    const rgb = await sharp(photo).resize(w, h, { fit: 'fill', kernel: 'linear' })
      .extract({ left: (w - input.width) >> 1, top: (h - input.height) >> 1, width: input.width, height: input.height })
      .flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer();
    const session = await ort.InferenceSession.create(onnx);
    const output = await session.run({ [input.name]: new ort.Tensor('uint8', rgb, [1, input.height, input.width, 3]) });
    const probabilities = Array.from(output[metadata.output.name]!.data as Float32Array);
    await session.release();
    const api = (await (await fetch(`${origin}/api/projects/ants-and-bees/predict`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: photo })).json()) as { label: string; probability: number }[];
    for (const { label, probability } of api) expect(probabilities[metadata.labels.indexOf(label)]).toBeCloseTo(probability, 2);
    expect(await page.locator('pre code').count()).toBe(3);
    await axe('export');
    await shoot('6-export');
  });

  it('records a webcam burst from the fake camera, holding the button with the keyboard', async () => {
    await page.goto(`${origin}/#/`);
    await page.getByLabel('Name').fill('Webcam');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByLabel('New class').waitFor();
    await page.getByLabel('New class').fill('waving');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'waving', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Turn camera on' }).click();
    await page.waitForFunction(() => ((globalThis as any).document.querySelector('#webcam')?.videoWidth ?? 0) > 0);
    const hold = page.getByRole('button', { name: 'Hold to record' });
    await hold.focus();
    await page.keyboard.down('Space');
    await page.waitForTimeout(700);
    await shoot('7-webcam');
    await page.keyboard.up('Space');
    await page.locator('article[data-class="waving"]').getByText(/[1-9]\d* examples?/).waitFor();
    const stored = await readdir(join(projects, 'webcam', 'waving'));
    expect(stored.length).toBeGreaterThanOrEqual(3);
    const frame = await sharp(join(projects, 'webcam', 'waving', stored[0]!)).metadata();
    expect([frame.format, frame.width, frame.height]).toEqual(['jpeg', 320, 320]);
    await axe('webcam');
  });

  it('records a clip from the fake microphone into a sounds project, holding the button with the keyboard', async () => {
    await page.goto(`${origin}/#/`);
    await page.getByLabel('Name').fill('Claps');
    await page.getByLabel('Kind').selectOption('audio');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByLabel('New class').waitFor();
    await page.getByLabel('New class').fill('clap');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'clap', exact: true }).waitFor();
    const hold = page.getByRole('button', { name: 'Hold to record' });
    await hold.focus();
    await page.keyboard.down('Space');
    await page.getByText('recording…').waitFor();
    await page.waitForTimeout(700);
    await page.keyboard.up('Space');
    await page.locator('article[data-class="clap"]').getByText('1 example').waitFor();
    const [clip] = await readdir(join(projects, 'claps', 'clap'));
    const wav = await readFile(join(projects, 'claps', 'clap', clip!));
    // A mono 16-bit RIFF/WAVE file with samples in it (an empty clip was the bug this test found: a
    // suspended AudioContext records nothing), no longer than the button was held.
    expect([wav.toString('ascii', 0, 4), wav.toString('ascii', 8, 12), wav.readUInt16LE(22), wav.readUInt16LE(34)]).toEqual(['RIFF', 'WAVE', 1, 16]);
    const seconds = wav.readUInt32LE(40) / 2 / wav.readUInt32LE(24);
    expect(seconds).toBeGreaterThan(0.05);
    expect(seconds).toBeLessThan(5);
    await axe('microphone');
  });

  it('refuses a write sent by another site\'s page', async () => {
    const address = evil.address() as { port: number };
    const other = await context.newPage();
    await other.goto(`http://127.0.0.1:${address.port}/`);
    const target = `${origin}/api/projects/ants-and-bees/classes/ants/examples`;
    const refused = other.waitForResponse((response) => response.url() === target);
    // A "simple" multipart POST needs no preflight: only the studio's Origin check stops it.
    await other.evaluate(async (url) => {
      const form = new FormData();
      form.append('files', new Blob([new Uint8Array([0xff, 0xd8, 0xff])], { type: 'image/jpeg' }), 'evil.jpg');
      await fetch(url, { method: 'POST', mode: 'no-cors', body: form }).catch(() => undefined);
    }, target);
    expect((await refused).status()).toBe(403);
    await other.close();
    expect((await readdir(join(projects, 'ants-and-bees', 'ants'))).length).toBe(PER_CLASS);
  });

  it('finds the project intact after a restart', async () => {
    const before = (await (await fetch(`${origin}/api/projects/ants-and-bees`)).json()) as { classes: unknown; training: TrainStatus };
    await studio.close();
    await startStudio();
    await page.goto(`${origin}/#/p/ants-and-bees/results`);
    await page.getByRole('heading', { name: 'Results', exact: true }).waitFor();
    const after = (await (await fetch(`${origin}/api/projects/ants-and-bees`)).json()) as { classes: unknown; training: TrainStatus };
    expect(after.classes).toEqual(before.classes);
    expect(after.training.metrics!.validation!.accuracy).toBe(before.training.metrics!.validation!.accuracy);
    expect(await page.locator('[data-metric="accuracy"]').first().textContent()).toBe(`${(100 * before.training.metrics!.validation!.accuracy).toFixed(1)} %`);
    await page.goto(`${origin}/#/p/ants-and-bees/data`);
    await page.locator('article[data-class="bees"]').getByText(`${PER_CLASS} examples`).waitFor();
    expect(errors).toEqual([]);
  });
});
