import { existsSync } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Classifier } from '../src/classifier/classifier.js';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { TextClassifier } from '../src/classifier/text-classifier.js';
import { readAudioFolder } from '../src/data/audio-folder.js';
import { isDetailed, type DetailedMetrics } from '../src/evaluate/metrics.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { readPredictions } from '../src/report/predictions.js';
import { REPORT_FILE, writeModelReport } from '../src/report/report.js';
import { FSDD, SPEECH_EMBEDDING_FOLDER, fsddFile } from './helpers/audio.js';
import { runCli } from './helpers/cli.js';
import { HYMENOPTERA, SHARED, makeColourFolder, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const CHROMIUM = '/usr/bin/chromium';

/** Opens a report, recording console errors and every request the page makes. */
async function openReport(browser: Browser, file: string): Promise<{ page: Page; errors: string[]; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  await page.route('**/*', (route) => {
    requests.push(route.request().url());
    return route.request().url() === pathToFileURL(file).href ? route.continue() : route.abort();
  });
  await page.goto(pathToFileURL(file).href);
  await page.waitForFunction(() => Boolean((globalThis as unknown as { headstartReport?: { charts: { confusion?: unknown } } }).headstartReport?.charts.confusion));
  return { page, errors, requests };
}

/** Clicks the heatmap cell (true t, predicted p) where a person would, and returns the listed sources. */
async function clickCell(page: Page, t: number, p: number): Promise<string[]> {
  await page.locator('#confusion').scrollIntoViewIfNeeded();
  const point = await page.evaluate(
    ([t, p]) => {
      type Cell = { t: number; p: number };
      type Element = { getCenterPoint(): { x: number; y: number } };
      const chart = (globalThis as unknown as { headstartReport: { charts: Record<string, any> } }).headstartReport.charts.confusion;
      const cells = chart.data.datasets[0].data as Cell[];
      const index = cells.findIndex((cell) => cell.t === t && cell.p === p);
      const centre = (chart.getDatasetMeta(0).data[index] as Element).getCenterPoint();
      const box = chart.canvas.getBoundingClientRect() as { left: number; top: number };
      return { x: box.left + centre.x, y: box.top + centre.y };
    },
    [t, p],
  );
  // The list of the previous click is still on the page: wait until the panel shows this cell.
  if (await page.locator('#example-list').count()) await page.locator('#example-list').evaluate((list) => (list as unknown as { setAttribute(name: string, value: string): void }).setAttribute('data-stale', ''));
  await page.mouse.click(point.x, point.y);
  await page.locator('#example-list:not([data-stale])').waitFor();
  return page.locator('#example-list li').evaluateAll((items) => items.map((item) => (item as unknown as { dataset: Record<string, string> }).dataset.source!));
}

describe('the model report', () => {
  let browser: Browser;
  let work: string;
  let model: string;
  let classifier: ImageClassifier;

  beforeAll(async () => {
    work = await tempDir('headstart-report-');
    model = join(work, 'hymenoptera-model');
    classifier = await ImageClassifier.train({ data: HYMENOPTERA, backbone: MOBILENET_035, cacheDir: join(work, 'cache') });
    await classifier.save(model);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await classifier?.dispose();
  });

  it('is written after training, with the predictions it needs, in one self-contained file', async () => {
    const html = await readFile(join(model, REPORT_FILE), 'utf8');
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
    expect(html).not.toMatch(/<(script|img|link)[^>]+(src|href)="(https?:)?\/\//i);
    expect(html).toContain('data:image/jpeg;base64,');
    expect((await stat(join(model, REPORT_FILE))).size).toBeLessThan(3_000_000);
    const stored = await readPredictions(model);
    expect(stored!.splits.validation).toHaveLength(153);
  });

  it('stores the temperature fitted on validation, and ECE before and after it', async () => {
    const validation = classifier.metrics.validation!;
    expect(isDetailed(validation)).toBe(true);
    const { calibration } = validation as DetailedMetrics;
    expect(classifier.manifest.calibration).toEqual({ temperature: calibration.temperature, fittedOn: 'validation' });
    expect(calibration.beforeScaling!.ece).toBeGreaterThan(0);
    // Fitted on this very split, so scaling cannot make its log loss worse.
    expect(validation.logLoss).toBeLessThanOrEqual(calibration.beforeScaling!.logLoss + 1e-6);
    // predict applies the same temperature the stored probabilities were made with.
    const stored = (await readPredictions(model))!.splits.validation.slice(0, 4);
    const bytes = await Promise.all(stored.map((r) => readFile(r.source)));
    const probabilities = await classifier.predictProbabilities(bytes);
    stored.forEach((record, i) => record.probabilities.forEach((p, c) => expect(probabilities[i * 2 + c]).toBeCloseTo(p, 4)));
  });

  it('opens in headless Chromium without errors or network requests; a clicked cell lists exactly its examples', async () => {
    const file = join(model, REPORT_FILE);
    const { page, errors, requests } = await openReport(browser, file);
    try {
      const records = (await readPredictions(model))!.splits.validation;
      const predicted = (probabilities: number[]) => (probabilities[1]! > probabilities[0]! ? 1 : 0);
      for (const [t, p] of [
        [0, 1],
        [1, 0],
        [1, 1],
      ] as const) {
        const expected = records.filter((r) => r.label === t && predicted(r.probabilities) === p).map((r) => r.source);
        expect(expected.length).toBeGreaterThan(0);
        const listed = await clickCell(page, t, p);
        expect(listed.sort()).toEqual(expected.sort());
        expect(await page.locator('#examples h3').textContent()).toBe(`true ${classifier.labels[t]} → predicted ${classifier.labels[p]}`);
      }
      // Thumbnails are there for the mistakes listed last.
      await clickCell(page, 0, 1);
      expect(await page.locator('#example-list li img').count()).toBe(await page.locator('#example-list li').count());
      for (const id of ['summary', 'curves', 'confusion', 'classes', 'calibration', 'skipped', 'config']) {
        expect(await page.locator(`section#${id}`).count()).toBe(1);
      }
      expect(await page.locator('#calibration').textContent()).toMatch(/optimistic/);
      const screenshot = join(work, 'report.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect((await stat(screenshot)).size).toBeGreaterThan(50_000);
      expect(errors).toEqual([]);
      expect(requests).toEqual([pathToFileURL(file).href]);
    } finally {
      await page.close();
    }
  });

  it('rebuilds from the folder alone, says which files are gone, and escapes names from the data', async () => {
    const root = join(work, 'tricky');
    const classes = ['<img src=x onerror="window.pwned=1">', 'plain & "quoted"'];
    await makeColourFolder(root, 6, ['red', 'blue']);
    await rename(join(root, 'red'), join(root, classes[0]!));
    await rename(join(root, 'blue'), join(root, classes[1]!));
    const tricky = await ImageClassifier.train({ data: root, backbone: MOBILENET_035, cacheDir: join(work, 'cache'), seed: 1 });
    const dir = join(work, 'tricky-model');
    try {
      await tricky.save(dir, { report: false });
    } finally {
      await tricky.dispose();
    }
    expect(existsSync(join(dir, REPORT_FILE))).toBe(false);
    const gone = (await readPredictions(dir))!.splits.validation[0]!;
    await rename(gone.source, `${gone.source}.moved`);

    const cli = await runCli(['report', dir, '--json', '--quiet']);
    expect(cli.code, cli.stderr).toBe(0);
    const json = JSON.parse(cli.stdout);
    expect(json.report).toBe(join(dir, REPORT_FILE));
    expect(json.labels.sort()).toEqual([...classes].sort());
    expect(json.metrics.validation).toMatchObject({ n: 2, balancedAccuracy: expect.any(Number), intervals: expect.any(Object) });
    expect(json.notes).toEqual(['1 example file is no longer where training found it; listed without a preview.']);

    const { data } = await writeModelReport(dir, { out: join(work, 'tricky.html') });
    const example = data.splits[0]!.examples!.find((e) => e.source === gone.source)!;
    const { page, errors, requests } = await openReport(browser, join(work, 'tricky.html'));
    try {
      const listed = await clickCell(page, example.label, example.predicted);
      expect(listed).toContain(gone.source);
      expect(await page.locator('#example-list li', { hasText: 'file no longer there' }).count()).toBe(1);
      expect(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned)).toBeUndefined();
      expect(await page.locator('img[src="x"]').count()).toBe(0);
      expect(await page.locator('#classes').textContent()).toContain(classes[0]);
      await page.screenshot({ path: join(work, 'report-escaped.png'), fullPage: true });
      expect(errors).toEqual([]);
      expect(requests).toHaveLength(1);
    } finally {
      await page.close();
    }
  });
});

describe('the report of text and audio models', () => {
  let browser: Browser;
  let work: string;

  beforeAll(async () => {
    work = await tempDir('headstart-report-media-');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  afterAll(() => browser?.close());

  it('text: a clicked cell lists the texts themselves; the TF-IDF baseline is shown beside the model', async () => {
    const file = join(work, 'moods.csv');
    const happy = ['a wonderful sunny day', 'what a delightful surprise', 'great fun with good friends', 'lovely warm smile', 'happy and joyful news', 'a brilliant cheerful party'];
    const sad = ['a terrible rainy day', 'what an awful loss', 'sad and lonely night', 'painful bitter tears', 'grim and miserable news', 'a dreadful gloomy funeral'];
    const rows = [...happy.map((t) => `${t},happy`), ...sad.map((t) => `${t},sad`)];
    await writeFile(file, `text,label\n${[...rows, ...rows.map((r) => `so ${r}`)].join('\n')}\n`);
    const classifier = await TextClassifier.train({ data: file, backbone: join(SHARED, 'models/glove-6b-100d-top20k'), cacheDir: join(work, 'cache'), baseline: true });
    const dir = join(work, 'text-model');
    try {
      await classifier.save(dir);
    } finally {
      await classifier.dispose();
    }
    const { page, errors } = await openReport(browser, join(dir, REPORT_FILE));
    try {
      const records = (await readPredictions(dir))!.splits.validation;
      const hit = records.find((r) => r.probabilities[r.label]! > 0.5)!;
      await clickCell(page, hit.label, hit.label);
      const snippets = await page.locator('#example-list li .snippet').allTextContents();
      expect(snippets).toContain(hit.text);
      expect(await page.locator('#config').textContent()).toMatch(/from-scratch baseline, validation.*TF-IDF.*accuracy \d\.\d{4}/);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('audio: a clicked cell lists players for the clips', async () => {
    const data = await readAudioFolder(FSDD, { labelOf: (path) => (fsddFile(path).digit === '0' ? 'zero' : 'one'), validationFraction: 0.5 });
    const keep = (items: typeof data.train) => items.filter((item) => ['0', '1'].includes(fsddFile(item.source).digit) && fsddFile(item.source).take < 6);
    const small = { ...data, train: keep(data.train), validation: keep(data.validation) };
    const classifier = await Classifier.train({ task: 'audio', data: small, backbone: SPEECH_EMBEDDING_FOLDER, cacheDir: join(work, 'cache') });
    const dir = join(work, 'audio-model');
    try {
      await classifier.save(dir);
    } finally {
      await classifier.dispose();
    }
    const { page, errors } = await openReport(browser, join(dir, REPORT_FILE));
    try {
      const records = (await readPredictions(dir))!.splits.validation;
      const label = records[0]!.label;
      const listed = await clickCell(page, label, label);
      expect(listed.length).toBeGreaterThan(0);
      // Players for the first eight of a cell; the rest say why they have none.
      expect(await page.locator('#example-list li audio').count()).toBe(Math.min(8, listed.length));
      expect(await page.locator('#example-list li', { hasText: 'previews at most 8 per cell' }).count()).toBe(Math.max(0, listed.length - 8));
      expect(await page.locator('#example-list li audio').first().getAttribute('src')).toMatch(/^data:audio\/wav;base64,/);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
