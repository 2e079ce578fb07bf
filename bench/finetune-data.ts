/**
 * The image sets the fine-tuning bench (and its tests) measure on, written once as PNG files in
 * ImageFolder layout from ../shared, so they run through exactly the path a user's photos take:
 * - MNIST digits (../shared/data/images/mnist-10k), dark ink on light paper as in photos;
 * - spectrogram images of the Free Spoken Digit Dataset: each clip's 32-band mel spectrogram (the
 *   speech-embedding front end's own mel graph) as a grayscale picture, low frequencies at the
 *   bottom — a domain far from ImageNet's photos.
 * Both are deterministic (no seed): the seeds of a run pick the model's initialisation and shuffles.
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { createSession, ort } from '../src/backbones/onnx-session.js';
import { SPEECH_EMBEDDING } from '../src/backbones/audio-speech-embedding.js';
import { decodeAudio } from '../src/data/audio-decode.js';
import { cacheEntryGuard, writeDirAtomic } from '../src/util/atomic.js';

const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));
const MNIST = join(SHARED, 'data/images/mnist-10k');
const FSDD = join(SHARED, 'data/audio/fsdd/recordings');
const MEL_MODEL = join(SHARED, 'models/speech-embedding-onnx/melspectrogram.onnx');
const SIDE = 28;
/** Spectrogram pictures are squares (the MobileNet preprocessing crops the centred square). */
const SPECTROGRAM_SIDE = 64;

/** The first `train` then the next `validation` MNIST digits of each class. */
export async function mnistDigitFolder(root: string, perClass: { train: number; validation: number }): Promise<string> {
  const dir = join(root, `mnist-${perClass.train}-${perClass.validation}`);
  if (await stat(join(dir, 'val')).catch(() => undefined)) return dir;
  const [images, labels] = await Promise.all([readFile(join(MNIST, 'images_u8_28x28.bin')), readFile(join(MNIST, 'labels_u8.bin'))]);
  await writeDirAtomic(dir, async (temp) => {
    const seen = new Array<number>(10).fill(0);
    for (let i = 0; i < labels.length; i++) {
      const digit = labels[i]!;
      const index = seen[digit]++;
      if (index >= perClass.train + perClass.validation) continue;
      const split = index < perClass.train ? 'train' : 'val';
      const out = join(temp, split, String(digit));
      await mkdir(out, { recursive: true });
      // MNIST stores light ink on black; photos of handwriting have dark ink on light paper.
      const pixels = Buffer.from(images.subarray(i * SIDE * SIDE, (i + 1) * SIDE * SIDE).map((v) => 255 - v));
      await sharp(pixels, { raw: { width: SIDE, height: SIDE, channels: 1 } }).png().toFile(join(out, `${String(i).padStart(5, '0')}.png`));
    }
  }, cacheEntryGuard('bench digits', 'val'));
  return dir;
}

/**
 * FSDD as spectrogram pictures: training images from takes 5… of every speaker (`trainPerSpeaker`
 * per digit and speaker), validation the official test set (takes 0–4: 30 per digit).
 */
export async function spokenDigitSpectrogramFolder(root: string, trainPerSpeaker: number): Promise<string> {
  const dir = join(root, `fsdd-spectrograms-${trainPerSpeaker}`);
  if (await stat(join(dir, 'val')).catch(() => undefined)) return dir;
  const files = (await readdir(FSDD)).filter((name) => name.endsWith('.wav'));
  const parsed = files.map((name) => {
    const [digit, speaker, take] = name.replace(/\.wav$/, '').split('_');
    return { name, digit: digit!, speaker: speaker!, take: Number(take) };
  });
  const picked = parsed.filter((clip) => clip.take < 5 || clip.take < 5 + trainPerSpeaker);
  const mel = await createSession(MEL_MODEL, MEL_MODEL, 1);
  try {
    await writeDirAtomic(dir, async (temp) => {
      for (const clip of picked) {
        const split = clip.take < 5 ? 'val' : 'train';
        const out = join(temp, split, clip.digit);
        await mkdir(out, { recursive: true });
        const samples = decodeAudio(await readFile(join(FSDD, clip.name)), SPEECH_EMBEDDING.sampleRate);
        const input = new Float32Array(Math.max(samples.length, SPEECH_EMBEDDING.fftSize));
        samples.forEach((v, i) => (input[i] = v * SPEECH_EMBEDDING.int16Scale));
        const outputs = await mel.run({ [mel.inputNames[0]!]: new ort.Tensor('float32', input, [1, input.length]) });
        const frames = outputs[mel.outputNames[0]!]!.data as Float32Array;
        const bands = SPEECH_EMBEDDING.melBands;
        const count = frames.length / bands;
        // Rows are bands (highest on top), columns frames; the clip's own range maps to 0…255.
        let [lo, hi] = [Infinity, -Infinity];
        for (const v of frames) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
        const pixels = Buffer.alloc(bands * count);
        for (let f = 0; f < count; f++) for (let b = 0; b < bands; b++) pixels[(bands - 1 - b) * count + f] = Math.round((255 * (frames[f * bands + b]! - lo)) / Math.max(hi - lo, 1e-6));
        await sharp(pixels, { raw: { width: count, height: bands, channels: 1 } })
          .resize(SPECTROGRAM_SIDE, SPECTROGRAM_SIDE, { fit: 'fill', kernel: 'linear' })
          .png()
          .toFile(join(out, clip.name.replace(/\.wav$/, '.png')));
      }
    }, cacheEntryGuard('bench spectrograms', 'val'));
  } finally {
    await mel.release();
  }
  return dir;
}
