/**
 * Explanations of audio predictions: occlusion over time windows of the waveform — each window
 * silenced in turn, the clip classified again, the drop of the target's probability recorded. The
 * clip is decoded once at the backbone's rate and each occluded copy goes back through the
 * backbone's own preparation (as a float WAV at that rate), so any audio backbone is explained.
 */
import { decodeAudio } from '../data/audio-decode.js';
import { wavefileModule } from '../data/wav.js';
import { occlusion } from './occlusion.js';

export interface AudioWindowScore {
  /** Seconds from the clip's start. */
  start: number;
  end: number;
  score: number;
}

export interface AudioExplanation {
  modality: 'audio';
  method: 'occlusion';
  target: number;
  label: string;
  probability: number;
  sampleRate: number;
  duration: number;
  /** Per window of `window` seconds (stride `stride`): the probability drop when it is silenced. */
  windows: AudioWindowScore[];
  /** Per sample position, the mean drop of the windows covering it, downsampled to 100 values per second. */
  timeline: Float32Array;
  /** The waveform's peak |amplitude| per 10 ms, for drawing it. */
  envelope: Float32Array;
}

export interface ExplainableAudioModel {
  sampleRate: number;
  labels: string[];
  /** Probabilities (n × classes) of WAV files. */
  probabilities(clips: Uint8Array[]): Promise<Float32Array>;
}

export function floatWav(samples: Float32Array, sampleRate: number): Uint8Array {
  const wav = new wavefileModule.WaveFile();
  wav.fromScratch(1, sampleRate, '32f', samples);
  return wav.toBuffer();
}

export async function explainAudio(model: ExplainableAudioModel, bytes: Uint8Array, options: { target?: number; window?: number; stride?: number } = {}): Promise<AudioExplanation> {
  const rate = model.sampleRate;
  const samples = decodeAudio(bytes, rate);
  const probabilities = await model.probabilities([floatWav(samples, rate)]);
  let target = options.target ?? 0;
  if (options.target === undefined) for (let c = 1; c < probabilities.length; c++) if (probabilities[c]! > probabilities[target]!) target = c;
  const window = Math.max(1, Math.round((options.window ?? 0.1) * rate));
  const stride = Math.max(1, Math.round((options.stride ?? (options.window ?? 0.1) / 2) * rate));
  const k = model.labels.length;
  const windows: AudioWindowScore[] = [];
  const perSample = await occlusion([samples.length], { size: [window], stride: [stride] }, probabilities[target]!, async (chunk) => {
    const clips = chunk.map(({ start, end }) => {
      const copy = samples.slice();
      copy.fill(0, start[0]!, end[0]!);
      return floatWav(copy, rate);
    });
    const p = await model.probabilities(clips);
    const scores = chunk.map((_, i) => p[i * k + target]!);
    chunk.forEach(({ start, end }, i) => windows.push({ start: start[0]! / rate, end: end[0]! / rate, score: probabilities[target]! - scores[i]! }));
    return scores;
  });
  const hop = Math.max(1, Math.round(rate / 100));
  const frames = Math.ceil(samples.length / hop);
  const timeline = new Float32Array(frames);
  const envelope = new Float32Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    let peak = 0;
    const end = Math.min(samples.length, (f + 1) * hop);
    for (let i = f * hop; i < end; i++) {
      sum += perSample[i]!;
      peak = Math.max(peak, Math.abs(samples[i]!));
    }
    timeline[f] = sum / (end - f * hop);
    envelope[f] = peak;
  }
  return { modality: 'audio', method: 'occlusion', target, label: model.labels[target]!, probability: probabilities[target]!, sampleRate: rate, duration: samples.length / rate, windows, timeline, envelope };
}
