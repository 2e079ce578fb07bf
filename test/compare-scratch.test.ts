import { asDense, type SparseRows } from '../src/features/sparse.js';
import { describe, expect, it } from 'vitest';
import { LOG_MEL, LOG_MEL_STATISTICS_DIM, logMelFrames, logMelStatistics } from '../src/evaluate/scratch-audio.js';
import { rawPixelBaseline, scratchBaselineFor } from '../src/evaluate/scratch.js';
import { fitHead } from '../src/train/fit.js';
import { Rng } from '../src/util/rng.js';
import { makeImage } from './helpers/images.js';

/** 16-bit PCM mono WAV bytes of samples in [-1, 1]. */
function wav(samples: Float32Array, sampleRate: number): Uint8Array {
  const bytes = new Uint8Array(44 + samples.length * 2);
  const view = new DataView(bytes.buffer);
  const tag = (offset: number, text: string) => [...text].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  tag(0, 'RIFF');
  view.setUint32(4, 36 + samples.length * 2, true);
  tag(8, 'WAVE');
  tag(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  tag(36, 'data');
  view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => view.setInt16(44 + i * 2, Math.round(Math.max(-1, Math.min(1, s)) * 32767), true));
  return bytes;
}

function tone(hz: number, seconds: number, sampleRate = 16_000, noise = 0, rng = new Rng(0)): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * sampleRate) }, (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * i) / sampleRate) + noise * rng.normal());
}

describe('log-mel statistics (the audio scratch baseline)', () => {
  it('puts a pure tone in the mel band that contains its frequency', () => {
    const frames = logMelFrames(tone(1000, 0.5));
    expect(frames.length % LOG_MEL.melBands).toBe(0);
    expect(frames.length / LOG_MEL.melBands).toBe(1 + Math.floor((8000 - 400) / 160));
    const first = Array.from(frames.subarray(0, LOG_MEL.melBands));
    const loudest = first.indexOf(Math.max(...first));
    // HTK mel: 1 kHz is 1000.0 mel; 8 kHz is 2840.0; 40 bands have peaks every 2840/41 mel.
    const peakMel = (band: number) => ((band + 1) * 2595 * Math.log10(1 + 8000 / 700)) / 41;
    expect(Math.abs(peakMel(loudest) - 2595 * Math.log10(1 + 1000 / 700))).toBeLessThan(2840 / 41);
  });

  it('summarises a clip as mean and std per band, finite even for silence and very short clips', () => {
    const silence = logMelStatistics(new Float32Array(1600));
    expect(silence).toHaveLength(LOG_MEL_STATISTICS_DIM);
    expect(silence[0]).toBeCloseTo(Math.log(LOG_MEL.floor), 5);
    expect(silence[LOG_MEL.melBands]).toBe(0);
    expect(Array.from(logMelStatistics(new Float32Array(10))).every(Number.isFinite)).toBe(true);
  });

  it('is a backbone over WAV bytes whose features separate low from high tones with the usual head', async () => {
    const backbone = await (await scratchBaselineFor('audio')).build([]);
    expect(backbone.reference).toMatchObject({ modality: 'audio', featureDim: 80 });
    const rng = new Rng(1);
    const clips = Array.from({ length: 24 }, (_, i) => {
      const label = i % 2;
      const hz = label === 0 ? 300 + rng.uniform(0, 200) : 2000 + rng.uniform(0, 1000);
      return { label, bytes: wav(tone(hz, 0.3 + rng.uniform(0, 0.3), 8000, 0.05, rng), 8000) };
    });
    const features = asDense(await backbone.forward(await Promise.all(clips.map((c) => backbone.prepare(c.bytes)))));
    const labels = Int32Array.from(clips, (c) => c.label);
    const train = { features: features.subarray(0, 16 * 80), labels: labels.subarray(0, 16), dim: 80, numClasses: 2 };
    const { head } = fitHead(train, undefined, { seed: 0 });
    expect(Array.from(head.predict(features.subarray(16 * 80)))).toEqual(Array.from(labels.subarray(16)));
    await expect(backbone.prepare(new Uint8Array([1, 2, 3]))).rejects.toThrow(/cannot decode audio/);
  });
});

describe('raw pixels (the image scratch baseline)', () => {
  it('is the centred square at 32×32, RGB in [0, 1]', async () => {
    const backbone = await rawPixelBaseline().build([]);
    expect(backbone.reference).toMatchObject({ modality: 'image', featureDim: 3072 });
    const red = await backbone.prepare(await makeImage(64, 40, { r: 255, g: 0, b: 0 }));
    const features = asDense(await backbone.forward([red]));
    expect(features).toHaveLength(3072);
    expect(Array.from(features.subarray(0, 6))).toEqual([1, 0, 0, 1, 0, 0]);
    expect(await scratchBaselineFor('image')).toMatchObject({ name: 'raw pixels (scratch)' });
  });
});

describe('TF-IDF (the text scratch baseline)', () => {
  it('learns its vocabulary from the training texts only', async () => {
    const baseline = await scratchBaselineFor('text');
    expect(baseline.name).toBe('TF-IDF (scratch)');
    const item = (text: string, label: number) => ({ source: text, label, load: async () => text });
    const backbone = (await baseline.build([item('a great film', 1), item('a dull film', 0)])) as Awaited<ReturnType<typeof baseline.build>>;
    expect(backbone.reference.modality).toBe('text');
    const [seen, unseen] = await Promise.all(['great film', 'zzzz'].map((text) => backbone.prepare(text as never)));
    // TF-IDF rows are sparse: row 0 has non-zeros, row 1 none.
    const features = (await backbone.forward([seen, unseen])) as SparseRows;
    expect(features).toMatchObject({ kind: 'csr', rows: 2, dim: backbone.reference.featureDim });
    expect(features.indptr[1]).toBeGreaterThan(0);
    expect(Array.from(features.values.subarray(0, features.indptr[1])).every((x) => x > 0)).toBe(true);
    // No term of an unseen word is in the vocabulary, except character n-grams it shares: none here.
    expect(features.indptr[2]).toBe(features.indptr[1]);
  });
});
