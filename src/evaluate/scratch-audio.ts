import type { Backbone } from '../backbones/backbone.js';
import { decodeAudio } from '../data/audio-decode.js';
import { dataError, messageOf } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import type { ScratchBaseline } from './scratch.js';

/**
 * The classic front end of speech recognition before learnt features: 16 kHz mono, 25 ms Hann
 * frames every 10 ms, a 512-point power spectrum, 40 triangular mel filters up to 8 kHz (HTK mel
 * scale), log energies. Nothing here is learnt.
 */
export const LOG_MEL = { sampleRate: 16_000, frameSamples: 400, hopSamples: 160, fftSize: 512, melBands: 40, floor: 1e-10 } as const;

/** Per mel band, the mean and the standard deviation of its log energy over the clip: 2 × 40 numbers. */
export const LOG_MEL_STATISTICS_DIM = 2 * LOG_MEL.melBands;

/** Audio from scratch: log-mel statistics of each clip, fed to the same head as the backbone's features. */
export function logMelStatisticsBaseline(): ScratchBaseline<Uint8Array> {
  const backbone: Backbone<Uint8Array, Float32Array> = {
    reference: {
      id: 'scratch:log-mel-statistics',
      sha256: sha256(`headstart log-mel statistics ${JSON.stringify(LOG_MEL)} v1`),
      modality: 'audio',
      featureDim: LOG_MEL_STATISTICS_DIM,
      featureOutput: 'log-mel mean and std per band',
    },
    preprocessing: { kind: 'log-mel-statistics', ...LOG_MEL },
    batchSize: 64,
    async prepare(input) {
      let samples: Float32Array;
      try {
        samples = decodeAudio(input, LOG_MEL.sampleRate);
      } catch (error) {
        throw dataError(`cannot decode audio: ${messageOf(error)}`, undefined, error);
      }
      return logMelStatistics(samples);
    },
    async forward(batch) {
      const out = new Float32Array(batch.length * LOG_MEL_STATISTICS_DIM);
      batch.forEach((features, i) => out.set(features, i * LOG_MEL_STATISTICS_DIM));
      return out;
    },
    async dispose() {},
  };
  return {
    name: 'log-mel statistics (scratch)',
    description: `mean and standard deviation of ${LOG_MEL.melBands} log-mel bands over the clip; no pre-training`,
    build: async () => backbone,
  };
}

/** Log-mel frames (`frames × 40`, row-major) of 16 kHz samples; a clip shorter than one frame is zero-padded. */
export function logMelFrames(samples: Float32Array): Float32Array {
  const { frameSamples, hopSamples, fftSize, melBands, floor } = LOG_MEL;
  const frames = Math.max(1, 1 + Math.floor((samples.length - frameSamples) / hopSamples));
  const out = new Float32Array(frames * melBands);
  const real = new Float64Array(fftSize);
  const imag = new Float64Array(fftSize);
  const { window, filters } = tables();
  for (let f = 0; f < frames; f++) {
    real.fill(0);
    imag.fill(0);
    for (let i = 0; i < frameSamples; i++) real[i] = (samples[f * hopSamples + i] ?? 0) * window[i]!;
    fft(real, imag);
    for (let band = 0; band < melBands; band++) {
      const { start, weights } = filters[band]!;
      let energy = 0;
      for (let j = 0; j < weights.length; j++) {
        const bin = start + j;
        energy += weights[j]! * (real[bin]! * real[bin]! + imag[bin]! * imag[bin]!);
      }
      out[f * melBands + band] = Math.log(energy + floor);
    }
  }
  return out;
}

/** Mean and (population) standard deviation of each band's log energy: [means…, stds…]. */
export function logMelStatistics(samples: Float32Array): Float32Array {
  const { melBands } = LOG_MEL;
  const frames = logMelFrames(samples);
  const count = frames.length / melBands;
  const out = new Float32Array(2 * melBands);
  for (let band = 0; band < melBands; band++) {
    let sum = 0;
    let sumSquares = 0;
    for (let f = 0; f < count; f++) {
      const value = frames[f * melBands + band]!;
      sum += value;
      sumSquares += value * value;
    }
    const mean = sum / count;
    out[band] = mean;
    out[melBands + band] = Math.sqrt(Math.max(0, sumSquares / count - mean * mean));
  }
  return out;
}

let cachedTables: { window: Float64Array; filters: { start: number; weights: Float64Array }[] } | undefined;

/** The periodic Hann window and the mel filterbank, built once. */
function tables() {
  if (cachedTables) return cachedTables;
  const { frameSamples, fftSize, melBands, sampleRate } = LOG_MEL;
  const window = Float64Array.from({ length: frameSamples }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / frameSamples));
  const mel = (hz: number) => 2595 * Math.log10(1 + hz / 700);
  const hz = (m: number) => 700 * (10 ** (m / 2595) - 1);
  const top = mel(sampleRate / 2);
  // melBands + 2 equally spaced mel points give each filter its left edge, peak and right edge.
  const edges = Array.from({ length: melBands + 2 }, (_, i) => (hz((top * i) / (melBands + 1)) * fftSize) / sampleRate);
  const filters = Array.from({ length: melBands }, (_, band) => {
    const [left, peak, right] = [edges[band]!, edges[band + 1]!, edges[band + 2]!];
    const start = Math.ceil(left);
    const end = Math.min(fftSize / 2, Math.floor(right));
    const weights = Float64Array.from({ length: Math.max(0, end - start + 1) }, (_, j) => {
      const bin = start + j;
      return bin <= peak ? (bin - left) / (peak - left) : (right - bin) / (right - peak);
    });
    return { start, weights };
  });
  cachedTables = { window, filters };
  return cachedTables;
}

/** In-place iterative radix-2 FFT (length a power of two). */
function fft(real: Float64Array, imag: Float64Array): void {
  const n = real.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [real[i], real[j]] = [real[j]!, real[i]!];
      [imag[i], imag[j]] = [imag[j]!, imag[i]!];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const angle = (-2 * Math.PI) / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < size / 2; k++) {
        const wr = Math.cos(angle * k);
        const wi = Math.sin(angle * k);
        const a = start + k;
        const b = a + size / 2;
        const tr = real[b]! * wr - imag[b]! * wi;
        const ti = real[b]! * wi + imag[b]! * wr;
        real[b] = real[a]! - tr;
        imag[b] = imag[a]! - ti;
        real[a]! += tr;
        imag[a]! += ti;
      }
    }
  }
}
