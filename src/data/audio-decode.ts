import { Rng } from '../util/rng.js';
import { resample } from './resample.js';
import { decodeWav, downmix } from './wav.js';

/** Random changes drawn per augmented view; all of them keep the spoken content. */
export interface AudioAugmentation {
  /** Largest time shift, seconds: the clip starts up to this much later (silence prepended) or earlier (leading samples dropped). */
  shiftSeconds: number;
  /** Largest gain change, dB, drawn uniformly in [−gainDb, +gainDb]; the result is clipped to full scale as a recording would be. */
  gainDb: number;
  /** Additive white Gaussian noise at a signal-to-noise ratio drawn uniformly from [low, high] dB; null for none. */
  noiseSnrDb: [number, number] | null;
}

export const DEFAULT_AUDIO_AUGMENTATION: AudioAugmentation = { shiftSeconds: 0.1, gainDb: 6, noiseSnrDb: [10, 30] };

/** A WAV file's bytes as one mono signal at `sampleRate` Hz, samples in [-1, 1]. */
export function decodeAudio(bytes: Uint8Array, sampleRate: number): Float32Array {
  const decoded = decodeWav(bytes);
  return resample(downmix(decoded.channels), decoded.sampleRate, sampleRate);
}

/**
 * One augmented view of a clip, fully determined by `seed`: the same (clip, seed, settings) always
 * gives the same samples, so augmented features can be cached like plain ones.
 */
export function augmentAudio(samples: Float32Array, sampleRate: number, seed: number, settings: AudioAugmentation): Float32Array {
  checkAugmentation(settings);
  const rng = new Rng(seed);
  const shift = Math.round(rng.uniform(-1, 1) * settings.shiftSeconds * sampleRate);
  const gain = 10 ** (rng.uniform(-1, 1) * settings.gainDb / 20);
  const snrDb = settings.noiseSnrDb ? rng.uniform(settings.noiseSnrDb[0], settings.noiseSnrDb[1]) : undefined;

  // A shift never drops more than half the clip, so short clips keep their content.
  const dropped = shift < 0 ? Math.min(-shift, Math.floor(samples.length / 2)) : 0;
  const delay = Math.max(0, shift);
  const out = new Float32Array(samples.length - dropped + delay);
  for (let i = dropped; i < samples.length; i++) out[i - dropped + delay] = Math.max(-1, Math.min(1, samples[i]! * gain));

  if (snrDb !== undefined) {
    let power = 0;
    for (let i = 0; i < out.length; i++) power += out[i]! * out[i]!;
    power /= out.length;
    const noiseStd = Math.sqrt(power / 10 ** (snrDb / 10));
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + noiseStd * rng.normal();
  }
  return out;
}

function checkAugmentation(settings: AudioAugmentation): void {
  const { shiftSeconds, gainDb, noiseSnrDb } = settings;
  if (!(shiftSeconds >= 0) || !(gainDb >= 0)) {
    throw new RangeError(`audio augmentation: shiftSeconds and gainDb must be ≥ 0, got ${shiftSeconds} and ${gainDb}`);
  }
  if (noiseSnrDb && !(Number.isFinite(noiseSnrDb[0]) && noiseSnrDb[1] >= noiseSnrDb[0])) {
    throw new RangeError(`audio augmentation: noiseSnrDb must be [low, high] dB with low ≤ high, got ${JSON.stringify(noiseSnrDb)}`);
  }
}
