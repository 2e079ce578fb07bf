import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AugmentationView, Backbone, BackboneReference } from './backbone.js';
import { readJsonFile } from './hf-folder.js';
import { createSession, ort } from './onnx-session.js';
import { poolRows, pooledDim, type AudioPooling } from './audio-pooling.js';
import { augmentAudio, decodeAudio, DEFAULT_AUDIO_AUGMENTATION, type AudioAugmentation } from '../data/audio-decode.js';
import { RESAMPLER } from '../data/resample.js';
import { onnxFileFor, type OnnxDtype } from '../hub/files.js';
import { modelError } from '../util/errors.js';
import { sha256File } from '../util/hash.js';

/** The log-mel front end of a Whisper feature extractor, as its `preprocessor_config.json` sets it. */
export interface WhisperPreprocessing {
  kind: 'audio';
  frontEnd: 'whisper-log-mel';
  sampleRate: number;
  resampler: string;
  fftSize: number;
  hopLength: number;
  melBins: number;
  /** Samples per encoder input (30 s for Whisper); longer clips are cut into several, shorter ones padded. */
  chunkSamples: number;
  /** Mel frames per encoder input (3000). */
  chunkFrames: number;
  pooling: AudioPooling;
}

export interface WhisperEncoderSpec {
  id: string;
  model: string;
  sha256: string;
  preprocessing: WhisperPreprocessing;
  /** `mel_filters` from the config when it carries them (`fftSize / 2 + 1` rows × `melBins`), else computed. */
  melFilters?: number[][];
}

/** The encoder of a Whisper export in Hugging Face layout: `preprocessor_config.json` + `onnx/encoder_model*.onnx`. */
export async function readWhisperFolder(folder: string, id: string, dtype: OnnxDtype = 'fp32'): Promise<WhisperEncoderSpec> {
  const file = onnxFileFor(dtype, 'encoder_model');
  const model = join(folder, file);
  if (!(await stat(model).catch(() => undefined))?.isFile()) throw modelError(`no ${file} (dtype ${dtype}) in this model folder`, folder);
  const configPath = join(folder, 'preprocessor_config.json');
  if (!(await stat(configPath).catch(() => undefined))) {
    throw modelError('no preprocessor_config.json: cannot tell how audio must be turned into log-mel features for this encoder', folder);
  }
  const config = await readJsonFile(configPath);
  return { id, model, sha256: await sha256File(model), preprocessing: whisperPreprocessingFromHf(config, configPath), melFilters: config.mel_filters };
}

/** Reads a `WhisperFeatureExtractor` config; other feature extractors (raw-waveform wav2vec 2 and friends) are not supported. */
export function whisperPreprocessingFromHf(config: any, origin: string): WhisperPreprocessing {
  if (config.feature_extractor_type !== 'WhisperFeatureExtractor') {
    throw modelError(`feature_extractor_type is ${JSON.stringify(config.feature_extractor_type)}; only WhisperFeatureExtractor (log-mel) encoders are supported`, origin);
  }
  const sampleRate = config.sampling_rate;
  const hopLength = config.hop_length;
  const chunkSamples = config.n_samples ?? config.chunk_length * sampleRate;
  const preprocessing: WhisperPreprocessing = {
    kind: 'audio',
    frontEnd: 'whisper-log-mel',
    sampleRate,
    resampler: RESAMPLER,
    fftSize: config.n_fft,
    hopLength,
    melBins: config.feature_size,
    chunkSamples,
    chunkFrames: config.nb_max_frames ?? chunkSamples / hopLength,
    pooling: 'mean',
  };
  for (const [key, value] of Object.entries(preprocessing)) {
    if (typeof value === 'number' && !(Number.isInteger(value) && value > 0)) {
      throw modelError(`cannot read ${key} from the feature extractor config (got ${JSON.stringify(value)})`, origin);
    }
  }
  return preprocessing;
}

/** A clip as encoder inputs: one `melBins × chunkFrames` log-mel per 30 s chunk, and how many mel frames of each hold audio. */
export interface WhisperChunks {
  chunks: Float32Array[];
  validFrames: number[];
}

/**
 * A Whisper-style encoder as a backbone: log-mel features per the model's feature extractor, the
 * encoder's `last_hidden_state`, averaged (or averaged and max-pooled) over the positions that
 * cover the clip — not over the padding up to 30 s, which would drown a short clip's content.
 */
export class WhisperEncoderBackbone implements Backbone<Uint8Array, WhisperChunks> {
  readonly batchSize = 4;
  private readonly filters: Float32Array;
  private readonly window: Float64Array;
  private readonly cosines: Float64Array;
  private readonly sines: Float64Array;
  private readonly inputName: string;
  private readonly outputName: string;

  private constructor(
    readonly reference: BackboneReference,
    readonly preprocessing: WhisperPreprocessing,
    private readonly session: ort.InferenceSession,
    spec: WhisperEncoderSpec,
  ) {
    const { fftSize, melBins, sampleRate } = preprocessing;
    const bins = fftSize / 2 + 1;
    this.filters = spec.melFilters ? fromConfigFilters(spec.melFilters, bins, melBins, spec.model) : melFilterBank(bins, melBins, sampleRate);
    // Periodic Hann window, and the DFT's tables (fftSize need not be a power of two: Whisper's is 400).
    this.window = Float64Array.from({ length: fftSize }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / fftSize));
    this.cosines = new Float64Array(bins * fftSize);
    this.sines = new Float64Array(bins * fftSize);
    for (let k = 0; k < bins; k++) {
      for (let n = 0; n < fftSize; n++) {
        const angle = (2 * Math.PI * ((k * n) % fftSize)) / fftSize;
        this.cosines[k * fftSize + n] = Math.cos(angle);
        this.sines[k * fftSize + n] = Math.sin(angle);
      }
    }
    this.inputName = session.inputNames.includes('input_features') ? 'input_features' : session.inputNames[0]!;
    this.outputName = session.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : session.outputNames[0]!;
  }

  static async open(spec: WhisperEncoderSpec, threads?: number): Promise<WhisperEncoderBackbone> {
    const session = await createSession(spec.model, spec.model, threads);
    const reference: BackboneReference = { id: spec.id, sha256: spec.sha256, modality: 'audio', featureDim: 0, featureOutput: '' };
    const backbone = new WhisperEncoderBackbone(reference, spec.preprocessing, session, spec);
    try {
      // A silent chunk tells the hidden size whatever the graph's metadata says, and warms the session up.
      const { chunkFrames, melBins } = spec.preprocessing;
      const outputs = await session.run({ [backbone.inputName]: new ort.Tensor('float32', new Float32Array(melBins * chunkFrames), [1, melBins, chunkFrames]) });
      const dims = outputs[backbone.outputName]!.dims;
      if (dims.length !== 3) throw modelError(`expected ${backbone.outputName} to be [batch, positions, hidden], got [${dims.join(', ')}]`, spec.model);
      reference.featureDim = pooledDim(dims[2]!, spec.preprocessing.pooling);
      reference.featureOutput = `${backbone.outputName} (${spec.preprocessing.pooling === 'mean' ? 'mean' : 'mean and max'} over the positions covering the clip)`;
    } catch (error) {
      await session.release();
      throw error;
    }
    return backbone;
  }

  async prepare(bytes: Uint8Array, view?: AugmentationView): Promise<WhisperChunks> {
    const { sampleRate, chunkSamples, hopLength, chunkFrames } = this.preprocessing;
    let samples = decodeAudio(bytes, sampleRate);
    if (view) samples = augmentAudio(samples, sampleRate, view.seed, (view.settings as AudioAugmentation | undefined) ?? DEFAULT_AUDIO_AUGMENTATION);
    const chunks: Float32Array[] = [];
    const validFrames: number[] = [];
    for (let start = 0; start < samples.length; start += chunkSamples) {
      const chunk = samples.subarray(start, Math.min(samples.length, start + chunkSamples));
      chunks.push(this.logMel(chunk));
      validFrames.push(Math.min(chunkFrames, Math.max(1, Math.ceil(chunk.length / hopLength))));
    }
    return { chunks, validFrames };
  }

  /**
   * Whisper's log-mel spectrogram of one chunk (as transformers' WhisperFeatureExtractor computes
   * it): zero-padded to `chunkSamples`, centred frames (reflect padding), periodic Hann window,
   * power spectrum, mel filters, log10 floored at 1e-10, the last frame dropped, values clamped to
   * 8 below the maximum, then (x + 4) / 4. Returns `melBins × chunkFrames`, row-major.
   */
  logMel(chunk: Float32Array): Float32Array {
    const { fftSize, hopLength, melBins, chunkSamples, chunkFrames } = this.preprocessing;
    const bins = fftSize / 2 + 1;
    const half = fftSize / 2;
    const padded = new Float64Array(chunkSamples + fftSize);
    const source = (i: number) => (i < chunk.length ? chunk[i]! : 0);
    for (let i = 0; i < chunkSamples; i++) padded[half + i] = source(i);
    for (let i = 1; i <= half; i++) {
      padded[half - i] = source(i);
      padded[half + chunkSamples - 1 + i] = source(chunkSamples - 1 - i);
    }
    const logMel = new Float32Array(melBins * chunkFrames);
    const frame = new Float64Array(fftSize);
    const power = new Float64Array(bins);
    const floor = Math.log10(1e-10);
    let max = -Infinity;
    for (let t = 0; t < chunkFrames; t++) {
      let energy = 0;
      for (let n = 0; n < fftSize; n++) {
        frame[n] = padded[t * hopLength + n]! * this.window[n]!;
        energy += frame[n]! * frame[n]!;
      }
      if (energy === 0) {
        // Padding: the DFT of zeros is zeros, whose log-mel is the floor.
        for (let m = 0; m < melBins; m++) logMel[m * chunkFrames + t] = floor;
        max = Math.max(max, floor);
        continue;
      }
      for (let k = 0; k < bins; k++) {
        let re = 0;
        let im = 0;
        const row = k * fftSize;
        for (let n = 0; n < fftSize; n++) {
          re += frame[n]! * this.cosines[row + n]!;
          im += frame[n]! * this.sines[row + n]!;
        }
        power[k] = re * re + im * im;
      }
      for (let m = 0; m < melBins; m++) {
        let energyInBand = 0;
        for (let k = 0; k < bins; k++) energyInBand += this.filters[m * bins + k]! * power[k]!;
        const value = Math.log10(Math.max(energyInBand, 1e-10));
        logMel[m * chunkFrames + t] = value;
        if (value > max) max = value;
      }
    }
    for (let i = 0; i < logMel.length; i++) logMel[i] = (Math.max(logMel[i]!, max - 8) + 4) / 4;
    return logMel;
  }

  async forward(batch: WhisperChunks[]): Promise<Float32Array> {
    const { melBins, chunkFrames, pooling } = this.preprocessing;
    const chunkCount = batch.reduce((sum, item) => sum + item.chunks.length, 0);
    const input = new Float32Array(chunkCount * melBins * chunkFrames);
    let offset = 0;
    for (const item of batch) for (const chunk of item.chunks) (input.set(chunk, offset), (offset += chunk.length));
    const outputs = await this.session.run({ [this.inputName]: new ort.Tensor('float32', input, [chunkCount, melBins, chunkFrames]) });
    const output = outputs[this.outputName]!;
    const [, positions, hidden] = output.dims.map(Number) as [number, number, number];
    const states = output.data as Float32Array;
    const dim = this.reference.featureDim;
    const features = new Float32Array(batch.length * dim);
    let chunkIndex = 0;
    batch.forEach((item, i) => {
      // The encoder downsamples time (3000 frames → 1500 positions): keep the positions that hold audio.
      const valid = item.validFrames.map((frames) => Math.max(1, Math.ceil((frames * positions) / chunkFrames)));
      const rows = new Float32Array(valid.reduce((a, b) => a + b, 0) * hidden);
      let row = 0;
      valid.forEach((count) => {
        const base = chunkIndex++ * positions * hidden;
        rows.set(states.subarray(base, base + count * hidden), row * hidden);
        row += count;
      });
      poolRows(rows, hidden, 0, row, pooling, features, i * dim);
    });
    output.dispose?.();
    return features;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The mel filter bank transformers builds for Whisper (`mel_filter_bank` with the Slaney mel scale
 * and Slaney area normalisation, from 0 Hz to `maxHz`, which WhisperFeatureExtractor fixes at
 * 8 kHz; the same as librosa's default): `melBins × bins`, row-major.
 */
export function melFilterBank(bins: number, melBins: number, sampleRate: number, maxHz = 8000): Float32Array {
  const minLogHz = 1000;
  const minLogMel = 15;
  const logStep = 27 / Math.log(6.4);
  const hzToMel = (hz: number) => (hz < minLogHz ? (3 * hz) / 200 : minLogMel + Math.log(hz / minLogHz) * logStep);
  const melToHz = (mel: number) => (mel < minLogMel ? (200 * mel) / 3 : minLogHz * Math.exp((mel - minLogMel) / logStep));
  const nyquist = sampleRate / 2;
  const maxMel = hzToMel(maxHz);
  // Edges of the triangles: melBins + 2 points evenly spaced in mel.
  const edges = Array.from({ length: melBins + 2 }, (_, i) => melToHz((maxMel * i) / (melBins + 1)));
  const filters = new Float32Array(melBins * bins);
  for (let m = 0; m < melBins; m++) {
    const [lower, centre, upper] = [edges[m]!, edges[m + 1]!, edges[m + 2]!];
    const area = 2 / (upper - lower);
    for (let k = 0; k < bins; k++) {
      const hz = (nyquist * k) / (bins - 1);
      const rising = (hz - lower) / (centre - lower);
      const falling = (upper - hz) / (upper - centre);
      filters[m * bins + k] = Math.max(0, Math.min(rising, falling)) * area;
    }
  }
  return filters;
}

function fromConfigFilters(filters: number[][], bins: number, melBins: number, origin: string): Float32Array {
  if (filters.length !== bins || filters.some((row) => row.length !== melBins)) {
    throw modelError(`mel_filters in preprocessor_config.json should be ${bins} × ${melBins}`, origin);
  }
  const out = new Float32Array(melBins * bins);
  for (let k = 0; k < bins; k++) for (let m = 0; m < melBins; m++) out[m * bins + k] = filters[k]![m]!;
  return out;
}
