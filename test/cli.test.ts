import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluatePredictions } from '../src/evaluate/metrics.js';
import { runCli } from './helpers/cli.js';
import { SHARED, makeColourFolder, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');

describe('headstart CLI', () => {
  let work: string;
  let data: string;
  let model: string;
  let cacheDir: string;

  beforeAll(async () => {
    work = await tempDir('headstart-cli-');
    data = await makeColourFolder(join(work, 'data'), 8, ['blue', 'green', 'red']);
    model = join(work, 'model');
    cacheDir = join(work, 'cache');
  });

  it('train writes a model folder and prints the evaluation table', async () => {
    // A relative backbone path (the CLI runs in the project root) is recorded absolute.
    const result = await runCli(['train', data, '--backbone', relative(process.cwd(), MOBILENET_035), '--out', model, '--cache-dir', cacheDir, '--seed', '2']);
    expect(result.stderr).toMatch(/train features: .* in [\d.]+s/);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/validation \(6 images\):/);
    expect(result.stdout).toMatch(/accuracy/);
    expect(result.stdout).toContain(`model written to ${model}`);
    const manifest = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8'));
    expect(manifest.labels).toEqual(['blue', 'green', 'red']);
    expect(manifest.training.seed).toBe(2);
    expect(manifest.backbone.id).toBe(MOBILENET_035);
  });

  it('predict prints top-k labels, and JSON with --json', async () => {
    const image = join(data, 'red', 'red-3.png');
    const text = await runCli(['predict', model, image, '--top-k', '2', '--cache-dir', cacheDir, '--quiet']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split('\n')[0]).toBe(image);
    expect(text.stdout.split('\n')[1]).toMatch(/^\s+\d+\.\d%\s+red$/);
    const json = await runCli(['predict', model, image, '--json', '--cache-dir', cacheDir, '--quiet']);
    const parsed = JSON.parse(json.stdout);
    expect(parsed[0].input).toBe(image);
    expect(parsed[0].predictions).toHaveLength(3);
    expect(parsed[0].predictions[0].label).toBe('red');
    expect(parsed[0].predictions.reduce((s: number, p: { probability: number }) => s + p.probability, 0)).toBeCloseTo(1, 5);
  });

  it('eval re-evaluates on a labelled folder with the full evaluation train gives', async () => {
    const result = await runCli(['eval', model, data, '--json', '--cache-dir', cacheDir, '--quiet']);
    expect(result.code, result.stderr).toBe(0);
    const parsed = JSON.parse(result.stdout);
    expect(parsed.model).toBe(model);
    expect(parsed.labels).toEqual(['blue', 'green', 'red']);
    const { metrics } = parsed;
    expect(metrics.n).toBe(24);
    expect(metrics.accuracy).toBe(1);
    expect(parsed.predictions).toHaveLength(24);
    // Everything a full evaluation holds, and the same numbers it gives for these predictions.
    const labels = Int32Array.from(parsed.predictions, (p: { label: number }) => p.label);
    const probabilities = Float32Array.from(parsed.predictions.flatMap((p: { probabilities: number[] }) => p.probabilities));
    const expected = evaluatePredictions(labels, probabilities, parsed.labels);
    for (const key of ['balancedAccuracy', 'cohenKappa', 'matthews', 'rocAuc', 'prAuc', 'topK', 'intervals', 'confusionNormalized', 'mostConfused', 'micro'] as const) {
      expect(metrics[key], key).toEqual(JSON.parse(JSON.stringify(expected[key])));
    }
    expect(metrics.calibration.ece).toBeCloseTo(expected.calibration.ece, 10);
    // The model's temperature (fitted on its validation split) and ECE on this data before it.
    const manifest = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8'));
    expect(metrics.calibration.temperature).toBe(manifest.calibration.temperature);
    expect(metrics.calibration.fittedOn).toBe('validation');
    expect(metrics.calibration.beforeScaling.ece).toBeGreaterThanOrEqual(0);

    const text = await runCli(['eval', model, data, '--cache-dir', cacheDir, '--quiet']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${data} (24 images):`);
    expect(text.stdout).toMatch(/balanced accuracy 1\.0000 {3}Cohen's kappa 1\.0000 {3}Matthews 1\.0000/);
    expect(text.stdout).toMatch(/ROC-AUC 1\.0000 {3}PR-AUC 1\.0000 {3}\(macro, one-vs-rest\)/);
    expect(text.stdout).toMatch(/95% CI \(bootstrap, 1000 resamples\): accuracy 1\.000–1\.000/);
    expect(text.stdout).toMatch(/calibration: ECE \d\.\d{4} → \d\.\d{4} with temperature [\d.]+ \(fitted on validation\)/);
  });

  it('exits with codes scripts can trust, and says what is wrong', async () => {
    const missingData = await runCli(['train', join(work, 'nope'), '--cache-dir', cacheDir, '--quiet']);
    expect(missingData.code).toBe(3);
    expect(missingData.stderr).toContain(`error: ${join(work, 'nope')}: no such folder`);

    const notModel = await runCli(['predict', data, join(data, 'red', 'red-0.png'), '--cache-dir', cacheDir]);
    expect(notModel.code).toBe(4);
    expect(notModel.stderr).toMatch(/not a headstart model folder/);

    const badOption = await runCli(['train', data, '--epochs', 'many']);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toMatch(/--epochs must be an integer/);

    const badImage = await runCli(['predict', model, join(work, 'missing.jpg'), '--cache-dir', cacheDir, '--quiet']);
    expect(badImage.code).toBe(3);
    expect(badImage.stderr).toContain(`${join(work, 'missing.jpg')}: cannot read`);
  });

  it('refuses to write over data that headstart did not write (exit 2), and leaves it as it was', async () => {
    const listing = async (dir: string) => (await readdir(dir, { recursive: true })).sort();
    const before = await listing(data);
    const image = join(data, 'red', 'red-0.png');
    const imageBytes = await readFile(image);

    const train = await runCli(['train', data, '--out', data, '--backbone', MOBILENET_035, '--cache-dir', cacheDir, '--quiet']);
    expect(train.code).toBe(2);
    expect(train.stderr).toContain(`error: ${data}: refusing to write the model folder here: the folder is not empty (3 entries: "blue", "green", "red")`);
    expect(train.stderr).toContain('choose a new or empty folder');
    expect(await listing(data)).toEqual(before);

    const exported = await runCli(['export', model, '--out', image, '--cache-dir', cacheDir, '--quiet']);
    expect(exported.code).toBe(2);
    expect(exported.stderr).toContain(`error: ${image}: refusing to write the ONNX export here: the file exists and is not an ONNX file headstart exported`);
    const report = await runCli(['report', model, '--out', image, '--quiet']);
    expect(report.code).toBe(2);
    expect(report.stderr).toContain(`error: ${image}: refusing to write the report here: the file exists and is not an HTML page headstart wrote`);
    expect(await readFile(image)).toEqual(imageBytes);
    expect(await listing(data)).toEqual(before);

    // Its own earlier output is fair game: the report rewritten in place.
    const again = await runCli(['report', model, '--quiet']);
    expect(again.code, again.stderr).toBe(0);
  });
});
