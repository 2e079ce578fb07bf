import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SPEECH_EMBEDDING_FOLDER, makeToneFolder } from './helpers/audio.js';
import { runCli } from './helpers/cli.js';
import { SHARED, makeColourFolder, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const CNN = 'small CNN (scratch)';

describe('headstart compare --scratch-cnn', () => {
  let work: string;
  let data: string;
  let cacheDir: string;

  beforeAll(async () => {
    work = await tempDir('headstart-compare-cli-');
    data = await makeColourFolder(join(work, 'colours'), 10, ['blue', 'green', 'red']);
    cacheDir = join(work, 'cache');
  });

  it('adds the from-scratch CNN as a third learning curve, in the table, the JSON and the page', async () => {
    const out = join(work, 'curve.html');
    const args = ['compare', data, '--backbone', MOBILENET_035, '--sizes', '1,2,all', '--seeds', '2', '--scratch-cnn', '--cnn-epochs', '4', '--cnn-size', '32', '--cache-dir', cacheDir, '--out', out, '--quiet'];
    const json = await runCli([...args, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const result = JSON.parse(json.stdout);
    expect(result.contenders.map((c: { name: string }) => c.name)).toEqual(['pre-trained backbone', 'raw pixels (scratch)', CNN]);
    const cnn = result.contenders[2];
    expect(cnn.description).toBe('4-stage CNN (16-32-64-128 channels) on 32×32 pixels, trained from random initialisation, 4 epochs, 4 augmented views');
    expect(cnn.points.map((p: { label: string }) => p.label)).toEqual(['1', '2', 'all (≈8)']);
    for (const point of cnn.points) {
      expect(point.runs.map((r: { seed: number }) => r.seed)).toEqual([0, 1]);
      for (const run of point.runs) {
        expect(run.accuracy).toBeGreaterThanOrEqual(0);
        expect(run.accuracy).toBeLessThanOrEqual(1);
        expect(run.fitSeconds).toBeGreaterThan(0);
      }
    }
    expect(cnn.secondsPerExample).toBeGreaterThan(0);
    const page = await readFile(out, 'utf8');
    expect(page).toContain(`"name":"${CNN}"`);

    // The same runs as text (seeded: the page written again over the earlier one).
    const text = await runCli(args);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^examples per class +pre-trained backbone +raw pixels \\(scratch\\) +small CNN \\(scratch\\)$`, 'm'));
    expect(text.stdout).toContain(`  ${CNN}: `);
  });

  it('--scratch-cnn is for images only; its settings need it; --out never replaces a file of the user\'s (exit 2)', async () => {
    const csv = join(work, 'reviews.csv');
    await writeFile(csv, 'text,label\ngood film,pos\nbad film,neg\nfine film,pos\nawful film,neg\n');
    const text = await runCli(['compare', csv, '--scratch-cnn', '--cache-dir', cacheDir, '--quiet']);
    expect(text.code).toBe(2);
    expect(text.stderr).toBe(`error: --scratch-cnn trains a CNN on image pixels; ${csv} is text data\n`);

    const alone = await runCli(['compare', data, '--cnn-epochs', '3', '--cache-dir', cacheDir, '--quiet']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toBe('error: --cnn-epochs and --cnn-size go with --scratch-cnn\n');

    const notes = join(work, 'notes.html');
    await writeFile(notes, '<p>my notes</p>');
    const clobber = await runCli(['compare', data, '--backbone', MOBILENET_035, '--out', notes, '--cache-dir', cacheDir, '--quiet']);
    expect(clobber.code).toBe(2);
    expect(clobber.stderr).toContain(`error: ${notes}: refusing to write the learning-curve page here: the file exists and is not an HTML page headstart wrote`);
    expect(await readFile(notes, 'utf8')).toBe('<p>my notes</p>');
  });
});

describe('headstart compare on text and audio data', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir('headstart-compare-modalities-');
  });

  it('text: word vectors against TF-IDF on the same seeded draws, every size scored on the same held-out texts', async () => {
    const csv = join(work, 'moods.csv');
    const happy = ['wonderful', 'delightful', 'great', 'lovely', 'happy', 'brilliant', 'cheerful', 'joyful', 'pleasant', 'excellent', 'superb', 'fantastic'];
    const sad = ['terrible', 'awful', 'sad', 'painful', 'miserable', 'dreadful', 'gloomy', 'horrible', 'bitter', 'grim', 'dismal', 'tragic'];
    const rows = [...happy.map((w) => `a ${w} day,happy`), ...sad.map((w) => `a ${w} day,sad`)];
    await writeFile(csv, `text,label\n${rows.join('\n')}\n`);
    const result = await runCli(['compare', csv, '--backbone', join(SHARED, 'models/glove-6b-100d-top20k'), '--sizes', '1,4', '--seeds', '3', '--cache-dir', join(work, 'cache'), '--out', join(work, 'text.html'), '--quiet', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json.contenders.map((c: { name: string }) => c.name)).toEqual(['pre-trained backbone', expect.stringMatching(/TF-IDF/)]);
    for (const contender of json.contenders) {
      expect(contender.points.map((p: { label: string }) => p.label)).toEqual(['1', '4']);
      // Identical draws for both: the same seeds and training-set sizes.
      for (const point of contender.points) {
        expect(point.trainSize).toBe(Number(point.label) * 2);
        expect(point.runs.map((r: { seed: number }) => r.seed)).toEqual([0, 1, 2]);
      }
    }
    // Unseen sentiment words: with one example per class only the pre-trained vectors know which side
    // they are on (at 4 per class TF-IDF's character n-grams, -ful and the like, catch up on 4 test texts).
    const [glove, tfidf] = json.contenders.map((c: { points: { accuracy: { mean: number } }[] }) => c.points[0]!.accuracy.mean);
    expect(glove).toBeGreaterThan(tfidf);
  });

  it('audio: the speech embedding against log-mel statistics', async () => {
    const data = await makeToneFolder(join(work, 'tones'), [300, 500], 8);
    const result = await runCli(['compare', data, '--task', 'audio', '--backbone', SPEECH_EMBEDDING_FOLDER, '--sizes', '1,all', '--seeds', '2', '--cache-dir', join(work, 'cache'), '--out', join(work, 'audio.html'), '--quiet', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json.contenders.map((c: { name: string }) => c.name)).toEqual(['pre-trained backbone', expect.stringMatching(/log-mel/)]);
    for (const contender of json.contenders) for (const point of contender.points) expect(point.runs).toHaveLength(2);
  });
});
