/**
 * The audio section of `npm run bench`: clips/s of speech-embedding feature extraction on FSDD, the
 * official-split test accuracy, and the speaker-held-out protocol. Prints only; nothing is asserted.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_AUDIO_BACKBONE, openAudioBackbone } from '../src/backbones/audio-resolve.js';
import type { AudioPooling } from '../src/backbones/audio-pooling.js';
import { Classifier } from '../src/classifier/classifier.js';
import { readAudioFolder } from '../src/data/audio-folder.js';
import { decodeWav, downmix } from '../src/data/wav.js';
import { resample } from '../src/data/resample.js';
import { formatMeanStd } from '../src/evaluate/few-shot.js';
import { leaveOneGroupOut } from '../src/evaluate/held-out-groups.js';
import { FeatureCache } from '../src/features/cache.js';
import { extractFeatures } from '../src/features/extract.js';
import { readFile } from 'node:fs/promises';

const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));
const FSDD = join(SHARED, 'data/audio/fsdd/recordings');
const SHARED_SPEECH_EMBEDDING = join(SHARED, 'models/speech-embedding-onnx');

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);

/** FSDD names its files `{digit}_{speaker}_{take}.wav`; takes 0–4 are the official test set. */
function fsddFile(path: string): { digit: string; speaker: string; take: number } {
  const [digit, speaker, take] = path.replace(/^.*\//, '').replace('.wav', '').split('_');
  return { digit: digit!, speaker: speaker!, take: Number(take) };
}

export async function audioBench(): Promise<void> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'headstart-bench-audio-'));
  const data = await readAudioFolder(FSDD, {
    labelOf: (path) => fsddFile(path).digit,
    splitOf: (path) => (fsddFile(path).take < 5 ? 'test' : 'train'),
    validationFraction: 0.1,
  });
  const items = [...data.train, ...data.validation, ...data.test!];

  section(`Audio front end on FSDD (${items.length} WAVs, 8 kHz mono): decode, resample to 16 kHz`);
  const bytes = await Promise.all(items.map((item) => readFile(item.source)));
  let started = performance.now();
  const decoded = bytes.map((b) => downmix(decodeWav(b).channels));
  const decodeMs = (performance.now() - started) / items.length;
  started = performance.now();
  for (const samples of decoded) resample(samples, 8000, 16000);
  const resampleMs = (performance.now() - started) / items.length;
  const meanSeconds = decoded.reduce((sum, s) => sum + s.length, 0) / decoded.length / 8000;
  line('decode (wavefile container + typed reads)', `${decodeMs.toFixed(3)} ms/clip`, `mean clip ${meanSeconds.toFixed(2)} s`);
  line('resample 8 → 16 kHz (Kaiser-windowed sinc, polyphase)', `${resampleMs.toFixed(3)} ms/clip`);

  const backbones = [
    { label: 'shared folder graphs', reference: SHARED_SPEECH_EMBEDDING },
    { label: `${DEFAULT_AUDIO_BACKBONE} (npm, the default)`, reference: DEFAULT_AUDIO_BACKBONE },
  ];
  const poolings: AudioPooling[] = ['mean', 'mean-max'];

  section('Speech-embedding feature extraction on FSDD (read + decode + resample + mel + windows + embedding, no cache)');
  for (const { label, reference } of backbones) {
    for (const pooling of poolings) {
      const backbone = await openAudioBackbone(reference, { cacheDir, preprocessing: { pooling } });
      const extracted = await extractFeatures(backbone, items, { cache: FeatureCache.forBackbone(cacheDir, backbone) });
      await backbone.dispose();
      line(`${label}, ${pooling}`, `${(items.length / extracted.seconds).toFixed(1)} clips/s`, `${extracted.seconds.toFixed(1)} s for ${items.length}, ${extracted.skipped.length} skipped`);
    }
  }

  section(`FSDD official split: train on takes 5–49 (${data.train.length} + ${data.validation.length} validation), test on takes 0–4 (${data.test!.length}); linear head (target ≥ 0.98)`);
  for (const { label, reference } of backbones) {
    for (const pooling of poolings) {
      const classifier = await Classifier.train({ task: 'audio', data, backbone: reference, backboneOptions: { preprocessing: { pooling } as object }, cacheDir });
      line(`${label}, ${pooling}`, `${classifier.metrics.test!.accuracy.toFixed(4)}`, `validation ${classifier.metrics.validation!.accuracy.toFixed(4)}`);
      await classifier.dispose();
    }
  }

  section('FSDD speaker held out: train on five speakers, test on the sixth (500 clips), each in turn; linear head, mean pooling');
  for (const { label, reference } of backbones) {
    const backbone = await openAudioBackbone(reference, { cacheDir });
    const extracted = await extractFeatures(backbone, items, { cache: FeatureCache.forBackbone(cacheDir, backbone) });
    await backbone.dispose();
    const set = { features: extracted.features, labels: Int32Array.from(extracted.itemOfRow, (i) => items[i]!.label), dim: extracted.dim, numClasses: data.classes.length };
    const speakers = Array.from(extracted.itemOfRow, (i) => fsddFile(items[i]!.source).speaker);
    const result = leaveOneGroupOut(set, speakers, data.classes);
    line(`${label}: accuracy, mean ± std over speakers`, formatMeanStd(result.accuracy), result.groups.map((g) => `${g.group} ${g.accuracy.toFixed(3)}`).join(', '));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await audioBench();
