import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import wavefile from 'wavefile';
import { describe, expect, it } from 'vitest';
import { augmentAudio, decodeAudio, type AudioAugmentation } from '../src/data/audio-decode.js';
import { readAudioFolder, readLabelledAudio } from '../src/data/audio-folder.js';
import { resample } from '../src/data/resample.js';
import { decodeWav, downmix } from '../src/data/wav.js';
import { tempDir, tone, wavBytes } from './helpers/audio.js';

const { WaveFile } = wavefile;

/** A WAV written by wavefile from raw stored sample values (integers as stored, or floats). */
function rawWav(channels: number[][], bitDepth: string, sampleRate = 8000): Uint8Array {
  const wav = new WaveFile();
  wav.fromScratch(channels.length, sampleRate, bitDepth, channels.length === 1 ? channels[0]! : channels);
  return wav.toBuffer();
}

/** Amplitude of the `hz` component (single-bin DFT over the middle 80 %, away from the edges). */
function amplitudeAt(samples: Float32Array, hz: number, sampleRate: number): number {
  const first = Math.floor(samples.length * 0.1);
  const last = samples.length - first;
  let re = 0;
  let im = 0;
  for (let i = first; i < last; i++) {
    re += samples[i]! * Math.cos((2 * Math.PI * hz * i) / sampleRate);
    im += samples[i]! * Math.sin((2 * Math.PI * hz * i) / sampleRate);
  }
  return (2 * Math.hypot(re, im)) / (last - first);
}

function rmsOf(samples: Float32Array): number {
  return Math.sqrt(samples.reduce((sum, v) => sum + v * v, 0) / samples.length);
}

const dB = (ratio: number) => 20 * Math.log10(ratio);

describe('WAV decoding', () => {
  it('scales every integer width and float to [-1, 1] (hand values)', () => {
    const cases: [string, number[], number[]][] = [
      // 8-bit WAV is unsigned, 128 is silence.
      ['8', [192, 64, 128, 0, 255], [0.5, -0.5, 0, -1, 127 / 128]],
      ['16', [16384, -8192, 0, -32768, 32767], [0.5, -0.25, 0, -1, 32767 / 32768]],
      ['24', [4194304, -2097152, 0, -8388608, 1], [0.5, -0.25, 0, -1, 1 / 8388608]],
      ['32', [1073741824, -536870912, 0, -2147483648, 1], [0.5, -0.25, 0, -1, 1 / 2147483648]],
      ['32f', [0.5, -0.25, 0, -1, 0.125], [0.5, -0.25, 0, -1, 0.125]],
    ];
    for (const [bitDepth, stored, expected] of cases) {
      const decoded = decodeWav(rawWav([stored], bitDepth));
      expect(decoded.sampleRate).toBe(8000);
      expect(decoded.channels).toHaveLength(1);
      expect(Array.from(decoded.channels[0]!), bitDepth).toEqual(expected.map((v) => Math.fround(v)));
      expect(decoded.encoding).toBe(bitDepth === '32f' ? 'IEEE float 32-bit' : `PCM ${bitDepth}-bit`);
    }
  });

  it('downmixes stereo to the mean of the channels', () => {
    const decoded = decodeWav(rawWav([[16384, 0, -32768], [0, -16384, -32768]], '16', 44100));
    expect(decoded.channels).toHaveLength(2);
    expect(decoded.sampleRate).toBe(44100);
    expect(Array.from(downmix(decoded.channels))).toEqual([0.25, -0.25, -1]);
  });

  it('rejects files that are not WAVs, or are cut short, saying why', () => {
    expect(() => decodeWav(new TextEncoder().encode('ID3 this is an mp3 file, honestly'))).toThrow(/cannot decode WAV: .*format/);
    const whole = wavBytes([tone(440, 8000, 0.5)], 8000);
    expect(() => decodeWav(whole.subarray(0, 30))).toThrow(/cannot decode WAV: .*data/);
    expect(() => decodeWav(whole.subarray(0, 1000))).toThrow(/cannot decode WAV: truncated \(the data chunk declares 8000 bytes, the file holds 956\)/);
    expect(() => decodeWav(rawWav([[]], '16'))).toThrow(/no samples/);
  });
});

describe('resampling', () => {
  it('8 kHz → 16 kHz doubles the length and keeps a sine’s frequency and amplitude', () => {
    const input = tone(1000, 8000, 1);
    const output = resample(input, 8000, 16000);
    expect(output.length).toBe(16000);
    expect(Math.abs(dB(amplitudeAt(output, 1000, 16000) / 0.5))).toBeLessThan(0.01);
    // Sample by sample it is the same sine sampled at 16 kHz (no delay), away from the edges.
    const ideal = tone(1000, 16000, 1);
    let worst = 0;
    for (let i = 800; i < 15200; i++) worst = Math.max(worst, Math.abs(output[i]! - ideal[i]!));
    expect(worst).toBeLessThan(1e-4);
    // A 3 kHz tone (75 % of the 4 kHz input Nyquist) survives too.
    expect(Math.abs(dB(amplitudeAt(resample(tone(3000, 8000, 1), 8000, 16000), 3000, 16000) / 0.5))).toBeLessThan(0.05);
  });

  it('anti-aliases: tones above the new Nyquist frequency are attenuated by ≥ 40 dB, those below survive', () => {
    for (const [from, hz] of [[48000, 10000], [48000, 12000], [44100, 9000], [22050, 10000]] as const) {
      const output = resample(tone(hz, from, 1), from, 16000);
      expect(output.length).toBe(16000);
      expect(dB(rmsOf(output) / (0.5 / Math.SQRT2)), `${hz} Hz from ${from} Hz`).toBeLessThan(-40);
    }
    for (const [from, hz] of [[48000, 5000], [44100, 3000], [22050, 6000]] as const) {
      const output = resample(tone(hz, from, 1), from, 16000);
      expect(Math.abs(dB(amplitudeAt(output, hz, 16000) / 0.5)), `${hz} Hz from ${from} Hz`).toBeLessThan(0.05);
    }
  });

  it('decodeAudio downmixes and resamples to the rate asked for', () => {
    const left = tone(500, 8000, 0.5, 0.4);
    const right = tone(500, 8000, 0.5, 0.2);
    const audio = decodeAudio(wavBytes([left, right], 8000, '24'), 16000);
    expect(audio.length).toBe(8000);
    expect(Math.abs(dB(amplitudeAt(audio, 500, 16000) / 0.3))).toBeLessThan(0.01);
  });
});

describe('audio augmentation', () => {
  const clip = tone(440, 16000, 0.5, 0.3);
  const settings: AudioAugmentation = { shiftSeconds: 0.1, gainDb: 6, noiseSnrDb: [10, 30] };

  it('is determined by its seed', () => {
    const a = augmentAudio(clip, 16000, 7, settings);
    expect(augmentAudio(clip, 16000, 7, settings)).toEqual(a);
    expect(augmentAudio(clip, 16000, 8, settings)).not.toEqual(a);
  });

  it('shifts by at most shiftSeconds, changes gain within ±gainDb, and adds noise at the SNR asked for', () => {
    for (let seed = 0; seed < 20; seed++) {
      const shifted = augmentAudio(clip, 16000, seed, { shiftSeconds: 0.1, gainDb: 0, noiseSnrDb: null });
      expect(Math.abs(shifted.length - clip.length)).toBeLessThanOrEqual(1600);
      const louder = augmentAudio(clip, 16000, seed, { shiftSeconds: 0, gainDb: 6, noiseSnrDb: null });
      const gain = dB(rmsOf(louder) / rmsOf(clip));
      expect(Math.abs(gain)).toBeLessThanOrEqual(6 + 1e-6);
      const noisy = augmentAudio(clip, 16000, seed, { shiftSeconds: 0, gainDb: 0, noiseSnrDb: [20, 20] });
      const noise = noisy.map((v, i) => v - clip[i]!);
      expect(Math.abs(dB(rmsOf(clip) / rmsOf(noise)) - 20)).toBeLessThan(0.5);
    }
  });
});

describe('WAV folders', () => {
  it('reads class folders, skips what is not a WAV with a reason, and evaluates against known classes', async () => {
    const root = await tempDir('headstart-audio-folder-');
    for (const name of ['no', 'yes']) {
      await mkdir(join(root, name));
      for (let i = 0; i < 5; i++) await writeFile(join(root, name, `${i}.wav`), wavBytes([tone(300 + i, 8000, 0.2)], 8000));
    }
    await writeFile(join(root, 'yes', 'notes.txt'), 'not audio');
    const dataset = await readAudioFolder(root, { validationFraction: 0.2, seed: 1 });
    expect(dataset.classes).toEqual(['no', 'yes']);
    expect(dataset.train).toHaveLength(8);
    expect(dataset.validation).toHaveLength(2);
    expect(dataset.skipped).toEqual([{ source: join(root, 'yes', 'notes.txt'), reason: expect.stringMatching(/not one of the WAV files \(\.txt\)/) }]);
    const labelled = await readLabelledAudio(root, ['no', 'yes']);
    expect(labelled.items).toHaveLength(10);
    await expect(readLabelledAudio(root, ['no', 'maybe'])).rejects.toThrow(/class folder "yes" is not one of the model's classes/);
  });

  it('uses train/val/test folders when they exist', async () => {
    const root = await tempDir('headstart-audio-splits-');
    const counts = { train: 4, val: 2, test: 3 };
    for (const [split, count] of Object.entries(counts)) {
      for (const name of ['bird', 'dog']) {
        await mkdir(join(root, split, name), { recursive: true });
        for (let i = 0; i < count; i++) await writeFile(join(root, split, name, `${i}.wav`), wavBytes([tone(500, 16000, 0.1)], 16000));
      }
    }
    const dataset = await readAudioFolder(root);
    expect(dataset.classes).toEqual(['bird', 'dog']);
    expect([dataset.train.length, dataset.validation.length, dataset.test?.length]).toEqual([8, 4, 6]);
    expect(dataset.validationSource).toBe('given');
  });

  it('takes labels and splits from file names when told how (FSDD style)', async () => {
    const root = await tempDir('headstart-audio-names-');
    for (const digit of ['0', '1']) {
      for (const speaker of ['ann', 'bob']) {
        for (let take = 0; take < 6; take++) await writeFile(join(root, `${digit}_${speaker}_${take}.wav`), wavBytes([tone(200, 8000, 0.1)], 8000));
      }
    }
    const part = (path: string, i: number) => path.replace('.wav', '').split('_')[i]!;
    const official = await readAudioFolder(root, { labelOf: (p) => part(p, 0), splitOf: (p) => (Number(part(p, 2)) < 2 ? 'test' : 'train'), validationFraction: 0.25 });
    expect(official.classes).toEqual(['0', '1']);
    expect(official.test).toHaveLength(8);
    expect(official.train.length + official.validation.length).toBe(16);
    expect(official.validation.filter((item) => item.label === 0)).toHaveLength(2);
    const bySpeaker = await readAudioFolder(root, { labelOf: (p) => part(p, 0), splitOf: (p) => (part(p, 1) === 'bob' ? 'test' : 'train') });
    expect(bySpeaker.test!.every((item) => item.source.includes('_bob_'))).toBe(true);
    expect([...bySpeaker.train, ...bySpeaker.validation].every((item) => item.source.includes('_ann_'))).toBe(true);
  });
});
