import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { makeToneFolder, tempDir } from './helpers/audio.js';

describe('headstart CLI on audio', () => {
  let work: string;
  let data: string;
  let model: string;
  let cacheDir: string;

  beforeAll(async () => {
    work = await tempDir('headstart-audio-cli-');
    data = await makeToneFolder(join(work, 'tones'), [300, 1000, 3000], 8, 8000);
    await writeFile(join(data, '1000hz', 'broken.wav'), 'RIFF....WAVEfmt this file was cut off');
    model = join(work, 'model');
    cacheDir = join(work, 'cache');
  });

  it('train --task audio writes a model folder, reports clips, and lists the broken file as skipped', async () => {
    const result = await runCli(['train', data, '--task', 'audio', '--pooling', 'mean-max', '--out', model, '--cache-dir', cacheDir, '--no-report']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/validation \(\d+ clips\):/);
    expect(result.stdout).toMatch(/broken\.wav/);
    const manifest = JSON.parse(await readFile(join(model, 'manifest.json'), 'utf8'));
    expect(manifest.modality).toBe('audio');
    expect(manifest.labels).toEqual(['1000hz', '3000hz', '300hz']);
    expect(manifest.backbone).toMatchObject({ id: 'builtin:speech-embedding', featureDim: 192 });
    expect(manifest.backbone.preprocessing).toMatchObject({ frontEnd: 'speech-embedding', sampleRate: 16000, pooling: 'mean-max' });
    expect(manifest.skipped).toEqual([{ source: join(data, '1000hz', 'broken.wav'), reason: expect.stringMatching(/^cannot decode WAV: /) }]);
  });

  it('predict names the label of WAV files, and eval scores a labelled folder', async () => {
    const clip = join(data, '3000hz', '3000-2.wav');
    const predict = await runCli(['predict', model, clip, '--json', '--cache-dir', cacheDir, '--quiet']);
    expect(predict.code, predict.stderr).toBe(0);
    const [first] = JSON.parse(predict.stdout);
    expect(first.input).toBe(clip);
    expect(first.predictions[0].label).toBe('3000hz');

    const evaluation = await runCli(['eval', model, data, '--json', '--cache-dir', cacheDir, '--quiet']);
    expect(evaluation.code, evaluation.stderr).toBe(0);
    const result = JSON.parse(evaluation.stdout);
    expect(result.metrics.n).toBe(24);
    expect(result.metrics.accuracy).toBeGreaterThan(0.9);
    expect(result.skipped.map((s: { source: string }) => s.source)).toEqual([join(data, '1000hz', 'broken.wav')]);
  });

  it('predict on a file that is not a WAV names it and the problem', async () => {
    const text = join(work, 'notes.wav');
    await writeFile(text, 'just some text');
    const result = await runCli(['predict', model, text, '--cache-dir', cacheDir, '--quiet']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(text);
    expect(result.stderr).toMatch(/cannot decode WAV/);
  });
});
