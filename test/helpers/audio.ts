import wavefile from 'wavefile';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SplitName } from '../../src/data/dataset.js';
import { SHARED } from './images.js';

const { WaveFile } = wavefile;

export const FSDD = join(SHARED, 'data/audio/fsdd/recordings');
export const SPEECH_EMBEDDING_FOLDER = join(SHARED, 'models/speech-embedding-onnx');

/** FSDD names its files `{digit}_{speaker}_{take}.wav`. */
export function fsddFile(path: string): { digit: string; speaker: string; take: number } {
  const match = /(\d)_([a-z]+)_(\d+)\.wav$/.exec(path);
  if (!match) throw new Error(`not an FSDD file name: ${path}`);
  return { digit: match[1]!, speaker: match[2]!, take: Number(match[3]) };
}

/** The official split: takes 0–4 are the test set. */
export const fsddOfficialSplit = (path: string): SplitName => (fsddFile(path).take < 5 ? 'test' : 'train');

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A sine tone (optionally two, summed), in [-1, 1]. */
export function tone(hz: number, sampleRate: number, seconds: number, amplitude = 0.5, phase = 0): Float32Array {
  const out = new Float32Array(Math.round(sampleRate * seconds));
  for (let i = 0; i < out.length; i++) out[i] = amplitude * Math.sin((2 * Math.PI * hz * i) / sampleRate + phase);
  return out;
}

/** A WAV file (via wavefile) holding `channels`, stored with `bitDepth` ('8', '16', '24', '32', '32f'). */
export function wavBytes(channels: Float32Array[], sampleRate: number, bitDepth = '16'): Uint8Array {
  const full = bitDepth === '32f' ? 1 : 2 ** (Number(bitDepth) - 1);
  const offset = bitDepth === '8' ? 128 : 0;
  const scale = (v: number) => (bitDepth === '32f' ? v : Math.max(-full, Math.min(full - 1, Math.round(v * full))) + offset);
  const wav = new WaveFile();
  wav.fromScratch(channels.length, sampleRate, bitDepth, channels.length === 1 ? Array.from(channels[0]!, scale) : channels.map((c) => Array.from(c, scale)));
  return wav.toBuffer();
}

/**
 * A class-per-folder WAV dataset of tones: class `<hz>hz` holds `perClass` clips of that pitch with
 * varied length, level and a little noise, at `sampleRate`.
 */
export async function makeToneFolder(root: string, pitches: number[], perClass: number, sampleRate = 16_000): Promise<string> {
  for (const hz of pitches) {
    const dir = join(root, `${hz}hz`);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const samples = tone(hz * (1 + 0.01 * i), sampleRate, 0.4 + 0.1 * (i % 5), 0.2 + 0.05 * (i % 4));
      for (let j = 0; j < samples.length; j++) samples[j]! += 0.01 * Math.sin(j * 12.9898 + i) ;
      await writeFile(join(dir, `${hz}-${i}.wav`), wavBytes([samples], sampleRate));
    }
  }
  return root;
}
