/**
 * Audio occlusion localises: a spoken digit from FSDD (../shared/data/audio) is placed at a seeded
 * time inside 1.5 s of low noise; a classifier on the speech-embedding backbone learns "zero" vs
 * "one" from such clips, and on held-out clips (other takes, FSDD's official test split) the window
 * whose silencing costs the most probability must lie on the digit for ≥ 80 % of the correctly
 * classified ones. Chance is about the digit's share of the clip (a third).
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Classifier } from '../src/classifier/classifier.js';
import { decodeAudio } from '../src/data/audio-decode.js';
import type { AudioExplanation } from '../src/explain/audio-explainer.js';
import { Rng } from '../src/util/rng.js';
import { FSDD, fsddFile, SPEECH_EMBEDDING_FOLDER, tempDir, wavBytes } from './helpers/audio.js';

const RATE = 16_000;
const CLIP_SECONDS = 1.5;
const DIGITS = { '0': 'zero', '1': 'one' } as const;

interface PlacedDigit {
  wav: Uint8Array;
  label: string;
  /** Seconds: where the recording lies in the clip. */
  start: number;
  end: number;
}

/** The recording at a random offset inside seeded noise (amplitude 0.003, about −50 dB). */
function place(recording: Float32Array, rng: Rng): { samples: Float32Array; start: number; end: number } {
  const samples = new Float32Array(Math.round(CLIP_SECONDS * RATE));
  for (let i = 0; i < samples.length; i++) samples[i] = 0.003 * rng.normal();
  const length = Math.min(recording.length, samples.length);
  const offset = Math.floor(rng.next() * (samples.length - length + 1));
  for (let i = 0; i < length; i++) samples[offset + i]! += recording[i]!;
  return { samples, start: offset / RATE, end: (offset + length) / RATE };
}

async function placedDigits(files: string[], rng: Rng): Promise<PlacedDigit[]> {
  const out: PlacedDigit[] = [];
  for (const file of files) {
    const { samples, start, end } = place(decodeAudio(await readFile(join(FSDD, file)), RATE), rng);
    out.push({ wav: wavBytes([samples], RATE), label: DIGITS[fsddFile(file).digit as keyof typeof DIGITS], start, end });
  }
  return out;
}

describe('explain: audio occlusion localises the deciding sound', () => {
  it("the peak window falls on the placed digit for ≥ 80 % of correctly classified held-out clips", async () => {
    const root = await tempDir('headstart-explain-audio-');
    const all = (await readdir(FSDD)).filter((f) => f.endsWith('.wav') && fsddFile(f).digit in DIGITS).sort();
    // Takes 5–9 of every speaker to train on, takes 0–1 held out (FSDD's test split is takes 0–4).
    const train = all.filter((f) => fsddFile(f).take >= 5 && fsddFile(f).take < 10);
    const heldOut = all.filter((f) => fsddFile(f).take < 2);
    const rng = new Rng(11);
    for (const clip of await placedDigits(train, rng)) {
      const dir = join(root, 'data', clip.label);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `${(await readdir(dir)).length}.wav`), clip.wav);
    }
    const classifier = await Classifier.train({ task: 'audio', data: join(root, 'data'), backbone: SPEECH_EMBEDDING_FOLDER, cacheDir: join(root, 'cache'), validationFraction: 0.2, seed: 0 });
    try {
      let correct = 0;
      let onDigit = 0;
      const clips = await placedDigits(heldOut, rng);
      for (const clip of clips) {
        const explanation = (await classifier.explain(clip.wav, { seconds: { window: 0.15, stride: 0.075 } })) as AudioExplanation;
        if (explanation.label !== clip.label) continue;
        correct++;
        const peak = explanation.windows.reduce((best, w) => (w.score > best.score ? w : best));
        const centre = (peak.start + peak.end) / 2;
        if (centre >= clip.start && centre <= clip.end) onDigit++;
      }
      const share = clips.reduce((sum, c) => sum + (c.end - c.start), 0) / (clips.length * CLIP_SECONDS);
      console.log(`audio occlusion: peak window on the digit for ${onDigit} of ${correct} correctly classified (of ${clips.length}) = ${((100 * onDigit) / correct).toFixed(1)} %; the digits fill ${(100 * share).toFixed(0)} % of the clips`);
      expect(correct).toBeGreaterThanOrEqual(clips.length * 0.7);
      expect(onDigit / correct).toBeGreaterThanOrEqual(0.8);
    } finally {
      await classifier.dispose();
    }
  }, 300_000);
});
