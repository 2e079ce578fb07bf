import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iou, type Box } from '../src/detector/boxes.js';
import { Detector, type ImageDetections } from '../src/detector/detector.js';
import type { PreparedPixels } from '../src/detector/layout.js';
import { compareDetections, exportDetector, type DetectorExportCheck } from '../src/export/detector-export.js';
import { tempDir } from './helpers/images.js';
import { staticServer } from './helpers/static-server.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const DARKNET = '/usr/share/darknet/data';
const NAMES = ['dog', 'horses', 'person'];
const THRESHOLD = 0.3;

describe.skipIf(!existsSync(CHROMIUM) || !existsSync(join(DARKNET, 'dog.jpg')))('an exported detector in headless Chromium', () => {
  let work: string;
  let browser: Browser;
  let server: Server;
  let origin: string;
  let library: ImageDetections[];
  let prepared: PreparedPixels[];

  beforeAll(async () => {
    work = await tempDir('headstart-detector-web-');
    const detector = await Detector.load('builtin:centernet', { cacheDir: join(work, 'cache') });
    try {
      await writeFile(join(work, 'centernet.onnx'), (await exportDetector(detector, { threshold: THRESHOLD })).onnx);
      const bytes = await Promise.all(NAMES.map((n) => readFile(join(DARKNET, `${n}.jpg`))));
      library = await detector.detectMany(bytes, { threshold: THRESHOLD });
      prepared = await Promise.all(bytes.map((b) => detector.layout.preparePixels!(b)));
    } finally {
      await detector.dispose();
    }
    await writeFile(join(work, 'pixels.bin'), Buffer.concat(prepared.map((p) => p.pixels)));
    const images = join(work, 'images');
    await mkdir(images);
    for (const name of NAMES) await writeFile(join(images, `${name}.jpg`), await readFile(join(DARKNET, `${name}.jpg`)));
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.web.json'), '--outDir', join(work, 'web')]);
    ({ server, origin } = await staticServer({
      '/examples/web/': join(ROOT, 'examples/web'),
      '/dist/web/': join(work, 'web'),
      '/node_modules/onnxruntime-web/dist/': join(ROOT, 'node_modules/onnxruntime-web/dist'),
      '/models/': work,
      '/images/': images,
    }));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function openExample(query: string): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.route('**/*', (route) => (route.request().url().startsWith(origin) ? route.continue() : route.abort()));
    await page.goto(`${origin}/examples/web/?model=/models/centernet.onnx${query}`);
    await page.waitForFunction('["done", "error"].includes(document.body.dataset.state) || (document.body.dataset.state === "ready" && !location.search.includes("image="))', undefined, { timeout: 120_000 });
    return { page, errors };
  }

  it('gives Detector.detect\'s boxes within 1e-4 when fed the pixels Node prepared (onnxruntime-web in the browser)', async () => {
    const { page, errors } = await openExample('');
    const script = `(async () => {
      const { loadDetector } = await import('headstart/web');
      const detector = await loadDetector('/models/centernet.onnx');
      const all = new Uint8Array(await (await fetch('/models/pixels.bin')).arrayBuffer());
      const size = 512 * 512 * 3;
      const geometry = ${JSON.stringify(prepared.map(({ pixels: _, ...g }) => g))};
      const out = [];
      for (const [i, g] of geometry.entries()) out.push(await detector.detectPixels(all.slice(i * size, (i + 1) * size), g, g.width, g.height));
      await detector.release();
      return out;
    })()`;
    const found = (await page.evaluate(script)) as { label: string; score: number; box: number[] }[][];
    expect(errors).toEqual([]);
    const check: DetectorExportCheck = { images: NAMES.length, sameDetections: true, maxBoxDifference: 0, maxScoreDifference: 0 };
    found.forEach((detections, i) => compareDetections(detections, library[i]!.detections, check));
    expect(library.reduce((n, image) => n + image.detections.length, 0)).toBeGreaterThan(4);
    expect(check.sameDetections).toBe(true);
    expect(check.maxBoxDifference).toBeLessThan(1e-4);
    expect(check.maxScoreDifference).toBeLessThan(1e-4);
    await page.close();
  });

  it('draws boxes on photos by URL on the example page: the canvas resize finds what Node finds', async () => {
    const { page, errors } = await openExample(NAMES.map((n) => `&image=${encodeURIComponent(`/images/${n}.jpg`)}`).join(''));
    expect(await page.evaluate('document.body.dataset.state')).toBe('done');
    expect(errors).toEqual([]);
    const results = (await page.evaluate('window.headstartResults')) as { name: string; detections: { label: string; score: number; box: number[] }[] }[];
    expect(results.map((r) => r.name)).toEqual(NAMES.map((n) => `/images/${n}.jpg`));
    results.forEach((result, i) => {
      // The canvas resamples differently from libvips: the same objects, not the same digits. Each
      // confident library box has a page box of its label overlapping it well.
      for (const d of library[i]!.detections.filter((x) => x.score > THRESHOLD + 0.15)) {
        const match = result.detections.some((p) => p.label === d.label && iou(p.box as Box, d.box) > 0.7);
        expect(match, `${NAMES[i]}: ${d.label} ${d.score.toFixed(2)}`).toBe(true);
      }
    });
    expect(results[0]!.detections.map((d) => d.label)).toContain('dog');
    // One drawn canvas per photo, at the photo's own size.
    const canvases = (await page.evaluate('[...document.querySelectorAll("canvas.boxes")].map((c) => [c.width, c.height])')) as number[][];
    expect(canvases).toHaveLength(NAMES.length);
    expect(canvases.reverse()).toEqual(prepared.map((p) => [p.width, p.height]));
    await page.close();
  });
});
