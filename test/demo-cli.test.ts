import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/images.js';

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** The converted builtin backbone in the cache: its folder, and when its model.onnx was written. */
async function convertedBackbone(cacheDir: string): Promise<{ dir: string; mtimeMs: number }> {
  const names = (await readdir(join(cacheDir, 'converted'))).filter((name) => name.startsWith('builtin-mobilenet-v2-1.4-'));
  expect(names).toHaveLength(1);
  const dir = join(cacheDir, 'converted', names[0]!);
  return { dir, mtimeMs: (await stat(join(dir, 'model.onnx'))).mtimeMs };
}

describe('headstart demo (the main job), small', () => {
  let work: string;
  let cacheDir: string;
  let model: string;

  beforeAll(async () => {
    work = await tempDir('headstart-demo-');
    cacheDir = join(work, 'cache');
    model = join(work, 'demo-model');
  });

  it('trains on the bundled digits with the bundled backbone, prints sane metrics and saves a model predict loads', async () => {
    const result = await runCli(['demo', '--per-class', '2', '--cache-dir', cacheDir, '--out', model, '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('converting builtin-mobilenet-v2-1.4 to ONNX');
    const summary = JSON.parse(result.stdout);
    expect(summary.model).toBe(model);
    expect(summary.labels).toEqual(DIGITS);
    expect(summary.backbone.id).toBe('builtin:mobilenet-v2-1.4');
    const validation = summary.metrics.validation;
    expect(validation.n).toBe(200);
    expect(validation.perClass.map((c: { label: string }) => c.label)).toEqual(DIGITS);
    expect(validation.perClass.every((c: { support: number }) => c.support === 20)).toBe(true);
    expect(validation.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(200);
    // 2 training images per digit: far from perfect, but well above chance (0.1).
    expect(validation.accuracy).toBeGreaterThan(0.3);
    expect(validation.accuracy).toBeLessThanOrEqual(1);
    expect(summary.training.data.counts).toEqual({ train: Array(10).fill(2), validation: Array(10).fill(20) });

    const manifest = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8'));
    expect(manifest.labels).toEqual(DIGITS);
    const seven = join(summary.data, 'val', '7', '0000.png');
    const predicted = await runCli(['predict', model, seven, '--json', '--cache-dir', cacheDir, '--quiet']);
    expect(predicted.code, predicted.stderr).toBe(0);
    const [{ input, predictions }] = JSON.parse(predicted.stdout);
    expect(input).toBe(seven);
    expect(predictions).toHaveLength(3);
    for (const p of predictions) expect(DIGITS).toContain(p.label);
    expect(predictions[0].probability).toBeGreaterThanOrEqual(predictions[1].probability);
  });

  it('a second run reuses the converted backbone and the cached features', async () => {
    const before = await convertedBackbone(cacheDir);
    const result = await runCli(['demo', '--per-class', '2', '--cache-dir', cacheDir, '--out', model, '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain('converting');
    expect(await convertedBackbone(cacheDir)).toEqual(before);
    const summary = JSON.parse(result.stdout);
    expect(summary.training.timings).toMatchObject({ featuresComputed: 0, featuresFromCache: 220 });
  });

  it('--per-class beyond what the bundled digits hold is a usage error (exit 2)', async () => {
    const result = await runCli(['demo', '--per-class', '5000', '--cache-dir', cacheDir, '--out', join(work, 'too-many')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'error: the demo has at most 843 training images per digit (--per-class): the mnist package holds 863 samples of digit 5, and 20 of each digit are kept for validation; asked for 5000',
    );
    expect(await stat(join(work, 'too-many')).catch(() => undefined)).toBeUndefined();
  });
});
