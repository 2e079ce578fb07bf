import type { AugmentationView, Backbone, BackboneReference } from './backbone.js';
import { createSession, ort } from './onnx-session.js';
import { poolRows, pooledDim, type AudioPooling } from './audio-pooling.js';
import { augmentAudio, decodeAudio, DEFAULT_AUDIO_AUGMENTATION, type AudioAugmentation } from '../data/audio-decode.js';
import { RESAMPLER } from '../data/resample.js';
import { modelError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';

/**
 * Facts of Google's speech_embedding front end as openWakeWord exports it (melspectrogram.onnx +
 * embedding_model.onnx): 16 kHz audio at int16 scale; a 512-sample STFT every 160 samples (10 ms)
 * giving 32 mel bands, rescaled as x / 10 + 2; embeddings of 76-frame (775 ms) windows, 96-d.
 */
export const SPEECH_EMBEDDING = {
  sampleRate: 16_000,
  /** The mel graph's STFT: frames = ⌊(samples − fftSize) / hopSamples⌋ + 1 (checked against the graph in the tests). */
  fftSize: 512,
  hopSamples: 160,
  melBands: 32,
  /** Float samples in [-1, 1] times this are what the mel graph expects (int16 scale). */
  int16Scale: 32768,
  melDivisor: 10,
  melOffset: 2,
  windowFrames: 76,
  /** openWakeWord slides its window by 8 frames (80 ms). */
  hopFrames: 8,
  /** Padding on each side of a clip before windowing: one hop (see `windowsOf`). */
  edgeFrames: 8,
  embeddingDim: 96,
} as const;

export interface SpeechEmbeddingPreprocessing {
  kind: 'audio';
  frontEnd: 'speech-embedding';
  sampleRate: number;
  resampler: string;
  /** Mel output rescaling: x / divisor + offset. */
  melScale: { divisor: number; offset: number };
  windowFrames: number;
  hopFrames: number;
  /** Frames of padding on each side of a clip (and short clips are padded up to a window), with the clip's per-band minimum. */
  edgeFrames: number;
  padding: 'per-band minimum';
  pooling: AudioPooling;
}

export interface SpeechEmbeddingSpec {
  id: string;
  melModel: string;
  embeddingModel: string;
  /** sha256 of the two graphs. */
  melSha256: string;
  embeddingSha256: string;
  pooling?: AudioPooling;
}

/** A clip's padded mel frames (`frames × 32`), and how many 76-frame windows every 8 frames it holds. */
export interface SpeechWindows {
  canvas: Float32Array;
  count: number;
}

/**
 * The speech-embedding backbone: WAV bytes → 16 kHz mono → mel frames (first graph) → 775 ms
 * windows slid by 80 ms → 96-d embeddings (second graph) → pooled over the windows.
 */
export class SpeechEmbeddingBackbone implements Backbone<Uint8Array, SpeechWindows> {
  readonly batchSize = 32;
  /** Most clips of a few seconds give a handful of windows; the embedding graph runs on this many at once. */
  private readonly windowsPerRun = 64;
  private melQueue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly reference: BackboneReference,
    readonly preprocessing: SpeechEmbeddingPreprocessing,
    private readonly mel: ort.InferenceSession,
    private readonly embedding: ort.InferenceSession,
    /** The two graphs' files: `headstart export` merges them into one. */
    readonly spec: SpeechEmbeddingSpec,
  ) {}

  private get embeddingOrigin(): string {
    return this.spec.embeddingModel;
  }

  static async open(spec: SpeechEmbeddingSpec, threads?: number): Promise<SpeechEmbeddingBackbone> {
    const mel = await createSession(spec.melModel, spec.melModel, threads);
    const embedding = await createSession(spec.embeddingModel, spec.embeddingModel, threads).catch(async (error) => {
      await mel.release();
      throw error;
    });
    const pooling = spec.pooling ?? 'mean';
    const reference: BackboneReference = {
      id: spec.id,
      // Both graphs run, so both identify the backbone.
      sha256: sha256(`${spec.melSha256}:${spec.embeddingSha256}`),
      modality: 'audio',
      featureDim: pooledDim(SPEECH_EMBEDDING.embeddingDim, pooling),
      featureOutput: `${embedding.outputNames[0]} (${pooling === 'mean' ? 'mean' : 'mean and max'} over ${SPEECH_EMBEDDING.windowFrames}-frame windows)`,
    };
    const preprocessing: SpeechEmbeddingPreprocessing = {
      kind: 'audio',
      frontEnd: 'speech-embedding',
      sampleRate: SPEECH_EMBEDDING.sampleRate,
      resampler: RESAMPLER,
      melScale: { divisor: SPEECH_EMBEDDING.melDivisor, offset: SPEECH_EMBEDDING.melOffset },
      windowFrames: SPEECH_EMBEDDING.windowFrames,
      hopFrames: SPEECH_EMBEDDING.hopFrames,
      edgeFrames: SPEECH_EMBEDDING.edgeFrames,
      padding: 'per-band minimum',
      pooling,
    };
    const backbone = new SpeechEmbeddingBackbone(reference, preprocessing, mel, embedding, spec);
    try {
      // A short silent clip through both graphs checks their shapes and warms them up.
      await backbone.forward([backbone.windowsOf(await backbone.melFrames(new Float32Array(SPEECH_EMBEDDING.fftSize)))]);
    } catch (error) {
      await backbone.dispose();
      throw error;
    }
    return backbone;
  }

  async prepare(bytes: Uint8Array, view?: AugmentationView): Promise<SpeechWindows> {
    let samples = decodeAudio(bytes, SPEECH_EMBEDDING.sampleRate);
    if (view) {
      const settings = (view.settings as AudioAugmentation | undefined) ?? DEFAULT_AUDIO_AUGMENTATION;
      samples = augmentAudio(samples, SPEECH_EMBEDDING.sampleRate, view.seed, settings);
    }
    return this.windowsOf(await this.melFrames(samples));
  }

  /** Scaled mel frames (`frames × 32`) of 16 kHz samples in [-1, 1]. */
  async melFrames(samples: Float32Array): Promise<Float32Array> {
    // The STFT needs one full frame; anything shorter is completed with silence.
    const input = new Float32Array(Math.max(samples.length, SPEECH_EMBEDDING.fftSize));
    for (let i = 0; i < samples.length; i++) input[i] = samples[i]! * SPEECH_EMBEDDING.int16Scale;
    // One mel run at a time: prepare() is called for many clips concurrently.
    const run = this.melQueue.then(() => this.mel.run({ [this.mel.inputNames[0]!]: new ort.Tensor('float32', input, [1, input.length]) }));
    this.melQueue = run.catch(() => undefined);
    const outputs = await run;
    const output = outputs[this.mel.outputNames[0]!]!;
    const frames = output.data as Float32Array;
    const scaled = new Float32Array(frames.length);
    for (let i = 0; i < frames.length; i++) scaled[i] = frames[i]! / SPEECH_EMBEDDING.melDivisor + SPEECH_EMBEDDING.melOffset;
    output.dispose?.();
    return scaled;
  }

  /**
   * Lays mel frames out for 76-frame windows every 8 frames. The clip is centred on a canvas of
   * max(frames, 76) + 2 × 8 frames, padded with its own noise floor (the minimum of each mel band
   * over the clip), so a short clip is seen at three positions in the window and a long one has its
   * edges covered; frames after the last full window (fewer than 8) are left out, as in
   * openWakeWord's streaming. Measured on FSDD with the shared-folder graphs and a linear head
   * (L-BFGS), 9-fold cross-validation over takes 5–49: one centred window padded with the floor
   * 0.976, three positions 0.984, five 0.987 at 5/3 the cost. Padding with digital silence instead
   * (mel −8, far below any recording's floor) cost 2 points, and the clip at the window's start
   * rather than centred 16 to 22 (validation on takes 5–9).
   */
  windowsOf(mel: Float32Array): SpeechWindows {
    const { windowFrames, hopFrames, melBands, edgeFrames } = SPEECH_EMBEDDING;
    const frames = mel.length / melBands;
    const floor = new Float32Array(melBands).fill(Infinity);
    for (let i = 0; i < mel.length; i++) floor[i % melBands] = Math.min(floor[i % melBands]!, mel[i]!);
    const canvasFrames = Math.max(frames, windowFrames) + 2 * edgeFrames;
    const start = Math.floor((canvasFrames - frames) / 2);
    const canvas = new Float32Array(canvasFrames * melBands);
    for (let f = 0; f < canvasFrames; f++) canvas.set(floor, f * melBands);
    canvas.set(mel, start * melBands);
    return { canvas, count: Math.floor((canvasFrames - windowFrames) / hopFrames) + 1 };
  }

  async forward(batch: SpeechWindows[]): Promise<Float32Array> {
    const { windowFrames, hopFrames, melBands, embeddingDim } = SPEECH_EMBEDDING;
    const windowSize = windowFrames * melBands;
    const total = batch.reduce((sum, item) => sum + item.count, 0);
    const embeddings = new Float32Array(total * embeddingDim);
    // Windows are cut from the canvases run by run, so a long clip never holds all its (overlapping) windows at once.
    const run = new Float32Array(this.windowsPerRun * windowSize);
    let filled = 0;
    let done = 0;
    const flush = async () => {
      const input = new ort.Tensor('float32', run.subarray(0, filled * windowSize), [filled, windowFrames, melBands, 1]);
      const outputs = await this.embedding.run({ [this.embedding.inputNames[0]!]: input });
      const output = outputs[this.embedding.outputNames[0]!]!;
      if (output.data.length !== filled * embeddingDim) {
        throw modelError(`expected a ${embeddingDim}-d embedding per window, got output ${output.dims.join('×')} for ${filled} windows`, this.embeddingOrigin);
      }
      embeddings.set(output.data as Float32Array, done * embeddingDim);
      output.dispose?.();
      done += filled;
      filled = 0;
    };
    for (const { canvas, count } of batch) {
      for (let w = 0; w < count; w++) {
        run.set(canvas.subarray(w * hopFrames * melBands, w * hopFrames * melBands + windowSize), filled * windowSize);
        if (++filled === this.windowsPerRun) await flush();
      }
    }
    if (filled > 0) await flush();
    const dim = this.reference.featureDim;
    const features = new Float32Array(batch.length * dim);
    let row = 0;
    batch.forEach((item, i) => {
      poolRows(embeddings, embeddingDim, row, item.count, this.preprocessing.pooling, features, i * dim);
      row += item.count;
    });
    return features;
  }

  async dispose(): Promise<void> {
    await Promise.all([this.mel.release(), this.embedding.release()]);
  }
}
