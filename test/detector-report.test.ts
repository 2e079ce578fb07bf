import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DetectionReportData } from '../src/report/detection-report.js';
import { runCli } from './helpers/cli.js';
import { makeRoboflowSet } from './helpers/detection-data.js';
import { tempDir } from './helpers/images.js';

const CHROMIUM = '/usr/bin/chromium';
/** A random-weight YOLO with classes ant, bee, wasp: on the synthetic ant/bee set it makes hits, false positives and misses alike. */
const YOLO = 'test/fixtures/detection/yolo-tiny-random.onnx';
const THRESHOLD = 0.5;

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
  await page.waitForFunction(() => Boolean((globalThis as unknown as { headstartReport?: { charts: { pr?: unknown } } }).headstartReport?.charts.pr));
  return { page, errors, requests };
}

let work: string;
let data: DetectionReportData;
let file: string;
let cliStdout: string;

beforeAll(async () => {
  work = await tempDir('headstart-detector-report-');
  // Seeded synthetic set (test/helpers/detection-data.ts): object crops pasted onto photos, some images empty.
  await makeRoboflowSet(join(work, 'set'), { seed: 7, train: 4, valid: 16 });
  file = join(work, 'report.html');
  const result = await runCli(['report', YOLO, join(work, 'set'), '--out', file, '--threshold', String(THRESHOLD), '--json', '--quiet', '--cache-dir', join(work, 'cache')]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  cliStdout = result.stdout;
  const html = await readFile(file, 'utf8');
  const json = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!;
  data = JSON.parse(json) as DetectionReportData;
}, 120_000);
afterAll(() => rm(work, { recursive: true, force: true }));

describe('the detection report', () => {
  it('`headstart report <detector> <data>` writes one page whose gallery counts agree with COCO\'s P/R at the threshold', () => {
    const printed = JSON.parse(cliStdout) as { report: string; metrics: DetectionReportData['metrics']; split: string };
    expect(printed.report).toBe(file);
    expect(printed.split).toBe('validation');
    expect(data.classes).toEqual(['ant', 'bee']);
    expect(data.gallery).toHaveLength(16);
    // The gallery's matching is written for the page; coco-eval.ts (checked against pycocotools) counts
    // the same detections independently: the totals must agree.
    const tp = data.gallery.flatMap((g) => g.predictions).filter((p) => p.outcome === 'tp').length;
    const fp = data.gallery.flatMap((g) => g.predictions).filter((p) => p.outcome === 'fp').length;
    const missed = data.gallery.flatMap((g) => g.truth).filter((b) => !b.matched && !b.crowd).length;
    expect({ tp, fp, missed }).toEqual({ tp: printed.metrics.atThreshold.truePositives, fp: printed.metrics.atThreshold.falsePositives, missed: printed.metrics.atThreshold.falseNegatives });
    // Enough of each that the filters below select something and leave something out.
    expect(fp).toBeGreaterThan(0);
    expect(missed).toBeGreaterThan(0);
    expect(data.gallery.every((g) => g.thumbnail?.startsWith('data:image/jpeg;base64,'))).toBe(true);
  });

  it.skipIf(!existsSync(CHROMIUM))('opens in headless Chromium with no requests; PR curves, per-class AP, and the gallery filters by class, false positives and misses', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const { page, errors, requests } = await openReport(browser, file);
      for (const id of ['summary', 'classes', 'pr', 'gallery']) expect(await page.locator(`section#${id}`).count(), id).toBe(1);
      expect(await page.locator('section#classes tbody tr').count()).toBe(2);
      expect(await page.locator('section#summary').textContent()).toContain(data.metrics.mAP.toFixed(3));
      const curves = (await page.evaluate('window.headstartReport.charts.pr.data.datasets.length')) as number;
      expect(curves).toBe(data.metrics.prCurves.iou50.filter((c) => c[0] !== -1).length * 2);
      expect(await page.locator('#gallery-list li').count()).toBe(data.gallery.length);

      const filter = (options: { classIndex?: number; falsePositives?: boolean; misses?: boolean }) => page.evaluate((o) => (globalThis as unknown as { headstartReport: { filterGallery(o: unknown): string[] } }).headstartReport.filterGallery(o), options);
      const sources = (keep: (g: DetectionReportData['gallery'][number]) => boolean) => data.gallery.filter(keep).map((g) => g.source);
      expect(await filter({ falsePositives: true })).toEqual(sources((g) => g.predictions.some((p) => p.outcome === 'fp')));
      expect(await page.locator('#gallery-list li').count()).toBe(sources((g) => g.predictions.some((p) => p.outcome === 'fp')).length);
      expect(await filter({ misses: true })).toEqual(sources((g) => g.truth.some((b) => !b.matched && !b.crowd)));
      // Every missed box is drawn as such on the images the misses filter shows.
      expect(await page.locator('#gallery-list rect[data-kind="missed"]').count()).toBe(data.gallery.flatMap((g) => g.truth).filter((b) => !b.matched).length);
      const bee = 1;
      expect(await filter({ classIndex: bee })).toEqual(sources((g) => g.truth.some((b) => b.label === bee) || g.predictions.some((p) => p.label === bee)));
      expect(await page.locator('#gallery-list rect').count()).toBe(data.gallery.flatMap((g) => [...g.truth, ...g.predictions]).filter((b) => b.label === bee).length);
      expect(await filter({ classIndex: bee, falsePositives: true, misses: true })).toEqual(
        sources((g) => g.predictions.some((p) => p.label === bee && p.outcome === 'fp') && g.truth.some((b) => b.label === bee && !b.matched)),
      );
      expect(errors).toEqual([]);
      expect(requests).toEqual([pathToFileURL(file).href]);
      await page.close();
    } finally {
      await browser.close();
    }
  });

  it('asks for data when given a detector without it', async () => {
    const result = await runCli(['report', YOLO, '--quiet']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/evaluates it on data/);
  });
});
