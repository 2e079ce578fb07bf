import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { SHARED, tempDir } from './helpers/images.js';

const GLOVE_20K = join(SHARED, 'models/glove-6b-100d-top20k');

const POSITIVE = ['a wonderful, moving film', 'great acting and a great story', 'brilliant and funny', 'i loved every minute', 'a delight from start to end', 'superb, beautiful work', 'charming and clever', 'the best film this year', 'warm, witty and wise', 'an excellent cast'];
const NEGATIVE = ['boring and far too long', 'awful, a waste of time', 'dull and stupid', 'i hated every minute', 'terrible script, bad acting', 'a mess from start to end', 'ugly, cheap work', 'the worst film this year', 'cold, flat and silly', 'a poor cast'];

describe('headstart CLI on text', () => {
  let work: string;
  let data: string;
  let model: string;
  let cacheDir: string;

  beforeAll(async () => {
    work = await tempDir('headstart-text-cli-');
    data = join(work, 'reviews.csv');
    // A quoted review with a comma and a line break, and a row without a label that must be skipped.
    const rows = [...POSITIVE.map((t) => `"${t}",pos`), ...NEGATIVE.map((t) => `"${t}",neg`), '"what a film,\nreally",pos', '"no label",'];
    await writeFile(data, `review,sentiment\n${rows.join('\n')}\n`);
    model = join(work, 'model');
    cacheDir = join(work, 'cache');
  });

  it('train reads the CSV, trains on word vectors and prints the TF-IDF baseline beside the model', async () => {
    const result = await runCli(['train', data, '--backbone', GLOVE_20K, '--out', model, '--cache-dir', cacheDir, '--val-fraction', '0.3', '--no-report']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/validation \(6 texts\):/);
    expect(result.stdout).toMatch(/beside the from-scratch baseline, TF-IDF \(word 1–2-grams \+ char 2–4-grams, \d+ terms, sublinear tf\)/);
    expect(result.stdout).toMatch(/^validation {2}\d\.\d{4} {4}\d\.\d{4} {4}\d\.\d{4} {4}\d\.\d{4}$/m);
    expect(result.stdout).toMatch(/skipped 1 input:\n.*reviews\.csv:24: missing label/);
    const manifest = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8'));
    expect(manifest.modality).toBe('text');
    expect(manifest.labels).toEqual(['neg', 'pos']);
    expect(manifest.training.baseline.metrics.validation.n).toBe(6);
  });

  it('train --backbone tfidf keeps every term unless --max-terms caps them', async () => {
    const terms = async (flags: string[], out: string) => {
      const result = await runCli(['train', data, '--backbone', 'tfidf', '--out', out, '--cache-dir', cacheDir, '--val-fraction', '0.3', '--no-report', '--quiet', ...flags]);
      expect(result.code, result.stderr).toBe(0);
      return JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')).backbone.preprocessing.terms.length as number;
    };
    const all = await terms([], join(work, 'tfidf-all'));
    expect(all).toBeGreaterThan(500);
    expect(await terms(['--max-terms', '120'], join(work, 'tfidf-120'))).toBe(120);
    const refused = await runCli(['train', data, '--backbone', 'tfidf', '--max-terms', '0', '--out', join(work, 'tfidf-0'), '--quiet']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/--max-terms/);
  });

  it('predict takes texts as arguments and from a file of lines; eval re-reads a labelled CSV', async () => {
    const lines = join(work, 'lines.txt');
    await writeFile(lines, 'a great and wonderful film\n\nboring, awful and bad\n');
    const predicted = await runCli(['predict', model, 'brilliant, a delight', '--file', lines, '--top-k', '1', '--json', '--cache-dir', cacheDir, '--quiet']);
    expect(predicted.code, predicted.stderr).toBe(0);
    const parsed = JSON.parse(predicted.stdout) as { input: string; predictions: { label: string }[] }[];
    expect(parsed.map((p) => [p.input, p.predictions[0]!.label])).toEqual([
      ['brilliant, a delight', 'pos'],
      ['a great and wonderful film', 'pos'],
      ['boring, awful and bad', 'neg'],
    ]);
    const evaluated = await runCli(['eval', model, data, '--json', '--cache-dir', cacheDir, '--quiet']);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    const result = JSON.parse(evaluated.stdout);
    expect(result.metrics.n).toBe(21);
    expect(result.skipped).toHaveLength(1);
    expect(result.metrics.accuracy).toBeGreaterThan(0.8);
  });

  it('train --shots runs the few-shot protocol and prints mean ± std for the backbone and TF-IDF', async () => {
    const result = await runCli(['train', data, '--backbone', GLOVE_20K, '--shots', '3', '--seeds', '4', '--test-fraction', '0.3', '--cache-dir', cacheDir, '--quiet']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^few-shot: 3 per class × 4 seeds \(0, 1, 2, 3\), scored on test \(6 texts\)$/m);
    expect(result.stdout).toMatch(new RegExp(`^${GLOVE_20K.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} +\\d\\.\\d{3} ± \\d\\.\\d{3} +\\d\\.\\d{3} ± \\d\\.\\d{3}$`, 'm'));
    expect(result.stdout).toMatch(/^tfidf \(baseline\) +\d\.\d{3} ± \d\.\d{3} +\d\.\d{3} ± \d\.\d{3}$/m);
  });

  it('names the file and line of invalid UTF-8', async () => {
    const bad = join(work, 'bad.csv');
    await writeFile(bad, Buffer.concat([Buffer.from('text,label\nfine,a\n'), Buffer.from([0xff]), Buffer.from(',b\n')]));
    const result = await runCli(['train', bad, '--cache-dir', cacheDir, '--quiet']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`${bad}:3: not valid UTF-8`);
  });
});
