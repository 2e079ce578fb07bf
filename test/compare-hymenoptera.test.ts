import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { compareOnDataset, formatCompareTable, resolveSizes, type CompareResult } from '../src/evaluate/compare.js';
import { rawPixelBaseline } from '../src/evaluate/scratch.js';
import { writeCompareReport } from '../src/report/compare-report.js';
import { runCli } from './helpers/cli.js';
import { HYMENOPTERA, SHARED, makeColourFolder, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');

describe('compare on hymenoptera: MobileNetV2 α=0.35 (ImageNet) vs raw pixels, same linear head', () => {
  let work: string;
  let result: CompareResult;

  beforeAll(async () => {
    work = await tempDir('headstart-compare-');
    const cacheDir = join(work, 'cache');
    const backbone = await openImageBackbone(MOBILENET_035, { cacheDir });
    try {
      result = await compareOnDataset({
        dataset: await readImageFolder(HYMENOPTERA),
        pretrained: backbone,
        scratch: rawPixelBaseline(),
        sizes: [1, 2, 5, 10, 'all'],
        seeds: [0, 1, 2],
        cacheDir,
      });
    } finally {
      await backbone.dispose();
    }
  });

  it('puts the pre-trained curve above the scratch curve at every size', () => {
    const [pretrained, scratch] = result.contenders;
    expect(result.sizes.map((s) => s.label)).toEqual(['1', '2', '5', '10', 'all (≈123)']);
    expect(result.evaluation).toEqual({ name: 'validation', n: 153 });
    result.sizes.forEach((_, i) => expect(pretrained!.points[i]!.accuracy.mean).toBeGreaterThan(scratch!.points[i]!.accuracy.mean));
    expect(pretrained!.points.at(-1)!.accuracy.mean).toBeGreaterThan(0.85);
    expect(scratch!.points.at(-1)!.accuracy.mean).toBeLessThan(0.7);
  });

  it('draws identical training sets for both contenders', () => {
    const [pretrained, scratch] = result.contenders;
    expect(pretrained!.points.map((p) => p.trainSize)).toEqual([2, 4, 10, 20, 245]);
    expect(scratch!.points.map((p) => p.trainSize)).toEqual(pretrained!.points.map((p) => p.trainSize));
    expect(pretrained!.points[0]!.runs.map((r) => r.seed)).toEqual([0, 1, 2]);
  });

  it('says how many examples per class each needs to reach the target, and how long that takes', () => {
    const [pretrained, scratch] = result.contenders;
    expect(result.target.accuracy).toBeCloseTo(0.9 * pretrained!.points.at(-1)!.accuracy.mean, 12);
    expect(pretrained!.toTarget).not.toBeNull();
    expect(pretrained!.toTarget!.seconds).toBeGreaterThan(0);
    expect(scratch!.toTarget).toBeNull();
    const table = formatCompareTable(result);
    expect(table).toMatch(/^examples per class +pre-trained backbone +raw pixels \(scratch\)$/m);
    expect(table).toMatch(/^all \(≈123\) +0\.8\d\d ± 0\.0\d\d +0\.[45]\d\d ± 0\.0\d\d$/m);
    expect(table).toMatch(/raw pixels \(scratch\): not reached/);
  });

  it('writes a learning-curve page that opens in headless Chromium without errors', async () => {
    const file = join(work, 'compare.html');
    await writeCompareReport(file, result, { noun: 'images', settings: { data: HYMENOPTERA } });
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
      page.on('pageerror', (error) => errors.push(error.message));
      page.on('request', (request) => requests.push(request.url()));
      await page.goto(pathToFileURL(file).href);
      const labels = await page.evaluate(() => {
        const chart = (globalThis as unknown as { headstartReport: { charts: Record<string, any> } }).headstartReport.charts.learningCurve;
        return (chart.data.datasets as { label: string; band?: boolean }[]).filter((d) => !d.band).map((d) => d.label);
      });
      expect(labels).toEqual(['pre-trained backbone', 'raw pixels (scratch)', expect.stringMatching(/^target \d+\.\d%$/)]);
      expect(await page.locator('#table tbody tr').first().textContent()).toMatch(/^1/);
      await page.screenshot({ path: join(work, 'compare.png'), fullPage: true });
      expect((await stat(join(work, 'compare.png'))).size).toBeGreaterThan(20_000);
      expect(errors).toEqual([]);
      expect(requests).toEqual([pathToFileURL(file).href]);
    } finally {
      await browser.close();
    }
  });
});

describe('compare sizes and the CLI', () => {
  it('keeps the sizes every class can supply, and refuses explicit ones it cannot', () => {
    expect(resolveSizes([1, 2, 5, 10, 20, 50, 'all'], 12, false)).toEqual([1, 2, 5, 10, 'all']);
    expect(() => resolveSizes([5, 20], 12, true)).toThrow(/smallest class has 12 training examples, fewer than the size 20/);
  });

  it('headstart compare prints the table and writes the chart; --json has everything', async () => {
    const work = await tempDir('headstart-compare-cli-');
    const data = await makeColourFolder(join(work, 'colours'), 8, ['blue', 'red']);
    const out = join(work, 'curve.html');
    const args = ['compare', data, '--backbone', MOBILENET_035, '--sizes', '1,3,all', '--seeds', '2', '--out', out, '--cache-dir', join(work, 'cache'), '--quiet'];
    const text = await runCli(args);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^accuracy on 4 validation examples, mean ± std over 2 seeds:$/m);
    expect(text.stdout).toMatch(/^examples per class +pre-trained backbone +raw pixels \(scratch\)$/m);
    expect(text.stdout).toContain(`learning curve written to ${out}`);
    expect(await readFile(out, 'utf8')).toMatch(/^<!doctype html>/);
    const json = await runCli([...args, '--json']);
    const parsed = JSON.parse(json.stdout) as CompareResult & { report: string };
    expect(parsed.report).toBe(out);
    expect(parsed.contenders.map((c) => c.points.length)).toEqual([3, 3]);
    const refused = await runCli(['compare', data, '--backbone', MOBILENET_035, '--sizes', '50', '--quiet', '--cache-dir', join(work, 'cache')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/smallest class has 6 training examples, fewer than the size 50/);
  });
});
