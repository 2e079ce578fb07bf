/**
 * `export --quantize int8` against fp32 and against onnxruntime's own `quantize_static` (QDQ,
 * per-channel, the same calibration photos; tools/ort_quantize_static.py run by /work/pyenv's
 * Python), all timed in plain onnxruntime-node with the session options headstart uses. The files
 * are timed in turns (short windows, round-robin, median of each), so a machine whose load wanders
 * shifts them all alike: read the ratios, not the absolute rates.
 *
 *   npx tsx bench/quantize.ts            (also called by `npm run bench`)
 *   HEADSTART_BENCH_QUANTIZE=resnet,text npx tsx bench/quantize.ts   (only those rows: mobilenet, digits, resnet, text)
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImagePreprocessing } from '../src/backbones/image-preprocessing.js';
import { createSession, ort } from '../src/backbones/onnx-session.js';
import { Classifier } from '../src/classifier/classifier.js';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { materialiseDemoDigits } from '../src/data/demo-digits.js';
import { prepareImagePixels } from '../src/data/image-decode.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { ExportedModel } from '../src/export/exported-model.js';
import { compareOnLabelled, DEFAULT_CALIBRATION_COUNT, exportClassifier, type LabelledComparison } from '../src/export/onnx-export.js';
import { Rng } from '../src/util/rng.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SHARED = join(ROOT, '../shared');
const HYMENOPTERA = join(SHARED, 'data/images/hymenoptera');
const PYTHON = '/work/pyenv/bin/python';
/** Rounds of the round-robin timing; HEADSTART_BENCH_ROUNDS shortens it for a smoke run. */
const ROUNDS = Number(process.env.HEADSTART_BENCH_ROUNDS ?? 9);
/** Which row groups to run (all by default), to re-measure one group on a quieter moment. */
const ONLY = process.env.HEADSTART_BENCH_QUANTIZE?.split(',');
const runs = (group: 'mobilenet' | 'digits' | 'resnet' | 'text') => !ONLY || ONLY.includes(group);

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);

/** Images/s of each file at `batch`, timed in turns: ROUNDS windows each, the median. */
async function timeFiles(files: Uint8Array[], pixels: Uint8Array[], batch: number, height: number, width: number): Promise<number[]> {
  const sessions = await Promise.all(files.map((file) => createSession(file, 'bench')));
  const data = new Uint8Array(batch * height * width * 3);
  for (let i = 0; i < batch; i++) data.set(pixels[i % pixels.length]!, i * height * width * 3);
  const feeds = { [sessions[0]!.inputNames[0]!]: new ort.Tensor('uint8', data, [batch, height, width, 3]) };
  const rates: number[][] = files.map(() => []);
  try {
    for (const session of sessions) await session.run(feeds);
    const window = batch === 1 ? 400 : 1000;
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, session] of sessions.entries()) {
        let runs = 0;
        const start = performance.now();
        while (performance.now() - start < window || runs < 2) {
          await session.run(feeds);
          runs++;
        }
        rates[i]!.push((runs * batch) / ((performance.now() - start) / 1000));
      }
    }
  } finally {
    for (const session of sessions) await session.release();
  }
  return rates.map((r) => r.sort((a, b) => a - b)[r.length >> 1]!);
}

/** onnxruntime's quantize_static on `fp32`, calibrated on `pixels`; undefined when Python or onnxruntime is missing. */
async function ortQuantizeStatic(work: string, name: string, fp32: Uint8Array, pixels: Uint8Array[]): Promise<Uint8Array | undefined> {
  if (!existsSync(PYTHON)) return undefined;
  const [source, calibration, out] = [join(work, `${name}.onnx`), join(work, `${name}.calibration.bin`), join(work, `${name}.ort-int8.onnx`)];
  await writeFile(source, fp32);
  await writeFile(calibration, Buffer.concat(pixels));
  try {
    execFileSync(PYTHON, [join(ROOT, 'tools/ort_quantize_static.py'), source, calibration, String(pixels.length), out], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    console.log(`(onnxruntime quantize_static failed: ${String((error as { stderr?: Buffer }).stderr ?? error).slice(-300)})`);
    return undefined;
  }
  return readFile(out);
}

const drop = (c: LabelledComparison) => `${(c.accuracyDrop * 100).toFixed(1)} pts`;
const dropNote = (c: LabelledComparison) => `${c.libraryAccuracy.toFixed(3)} → ${c.exportedAccuracy.toFixed(3)}, same top-1 on ${(c.top1Agreement * 100).toFixed(1)} % of ${c.inputs}`;

/** One image model: export fp32 / int8 / int8-weights, onnxruntime's quantize_static beside; speed at batch 16 and 1, accuracy on `evaluate`. */
async function imageRows(work: string, name: string, classifier: Classifier, evaluate: string | undefined, targets: { b16?: number; b1?: number }): Promise<void> {
  const { train } = await readImageFolder((classifier.manifest.training.data as { origin: string }).origin);
  // The same photos for both quantisers: what exportClassifier would draw by default, passed explicitly.
  const photos = await Promise.all(new Rng(0).shuffle([...train]).slice(0, DEFAULT_CALIBRATION_COUNT).map((item) => item.load()));
  const pre = classifier.backbone.preprocessing as ImagePreprocessing;
  const pixels = await Promise.all(photos.map((photo) => prepareImagePixels(photo, pre)));
  let started = performance.now();
  const fp32 = await exportClassifier(classifier);
  const int8 = await exportClassifier(classifier, { quantize: 'int8', calibration: { inputs: photos } });
  const exportSeconds = (performance.now() - started) / 1000;
  const weights = await exportClassifier(classifier, { quantize: 'int8-weights' });
  started = performance.now();
  const theirs = await ortQuantizeStatic(work, name, fp32.onnx, pixels);
  const theirSeconds = (performance.now() - started) / 1000;
  const files = [fp32.onnx, int8.onnx, weights.onnx, ...(theirs ? [theirs] : [])];
  line(`${name}: file sizes fp32 / int8 / int8-weights / ort`, files.map((f) => (f.byteLength / 1e6).toFixed(1)).join(' / ') + ' MB', `headstart int8 export (both) ${exportSeconds.toFixed(1)} s; ort quantize_static ${theirSeconds.toFixed(1)} s`);
  for (const batch of [16, 1]) {
    const [base, ours, weightOnly, ort] = await timeFiles(files, pixels, batch, pre.height, pre.width);
    const target = batch === 16 ? targets.b16 : targets.b1;
    line(`${name}: batch ${batch}, fp32`, `${base!.toFixed(1)} img/s`);
    line(`${name}: batch ${batch}, int8 (headstart)`, `${(ours! / base!).toFixed(2)}×`, `${ours!.toFixed(1)} img/s${target ? ` (target ≥ ${target}×)` : ''}`);
    if (ort !== undefined) line(`${name}: batch ${batch}, onnxruntime quantize_static`, `${(ort / base!).toFixed(2)}×`, `${ort.toFixed(1)} img/s; headstart / onnxruntime ${(ours! / ort).toFixed(2)}×`);
    line(`${name}: batch ${batch}, int8-weights`, `${(weightOnly! / base!).toFixed(2)}×`, `${weightOnly!.toFixed(1)} img/s`);
  }
  if (!evaluate) return;
  const { items } = await classifier.adapter.readLabelled(evaluate, classifier.labels);
  const ours = await compareOnLabelled(classifier, int8.onnx, items);
  line(`${name}: int8 (headstart) accuracy drop`, drop(ours), `${dropNote(ours)} (target ≤ 1 pt)`);
  if (theirs) {
    const ort = await compareOnLabelled(classifier, theirs, items);
    line(`${name}: onnxruntime quantize_static accuracy drop`, drop(ort), dropNote(ort));
  }
  const weightOnly = await compareOnLabelled(classifier, weights.onnx, items);
  line(`${name}: int8-weights accuracy drop`, drop(weightOnly), dropNote(weightOnly));
}

/** Runs/s of `run` on each model in turns (ROUNDS windows each, the median). */
async function timeRuns(models: ExportedModel[], run: (model: ExportedModel) => Promise<unknown>): Promise<number[]> {
  for (const model of models) await run(model);
  const rates: number[][] = models.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, model] of models.entries()) {
      let runs = 0;
      const start = performance.now();
      while (performance.now() - start < 600 || runs < 2) {
        await run(model);
        runs++;
      }
      rates[i]!.push(runs / ((performance.now() - start) / 1000));
    }
  }
  return rates.map((r) => r.sort((a, b) => a - b)[r.length >> 1]!);
}

/** Text (a transformer encoder) and audio (speech embedding): does static int8 pay there? Speed, size and agreement on the training data. */
async function textAndAudioRows(work: string, cacheDir: string): Promise<void> {
  const sst = (await readFile(join(SHARED, 'data/text/sst2/train.tsv'), 'utf8')).split('\n').slice(1, 301).filter(Boolean);
  const csv = join(work, 'sst2-300.csv');
  await writeFile(csv, 'text,label\n' + sst.map((row) => { const [text, label] = row.split('\t'); return `"${text!.replace(/"/g, '""')}",${label}`; }).join('\n') + '\n');
  const fsdd = join(work, 'fsdd');
  for (const digit of ['0', '1', '2', '3']) {
    await mkdir(join(fsdd, digit), { recursive: true });
    for (const speaker of ['george', 'jackson']) for (let take = 0; take < 10; take++) await copyFile(join(SHARED, 'data/audio/fsdd/recordings', `${digit}_${speaker}_${take}.wav`), join(fsdd, digit, `${speaker}_${take}.wav`));
  }
  const cases = [
    { name: 'text: bert-tiny (random weights), 300 SST-2 rows', task: 'text', data: csv, backbone: join(SHARED, 'models/bert-tiny-random'), unit: 'texts/s, batch 16 × 64 tokens' },
    { name: 'audio: speech embedding, 80 FSDD clips', task: 'audio', data: fsdd, backbone: join(SHARED, 'models/speech-embedding-onnx'), unit: 'clips/s, 2 s clips' },
  ] as const;
  for (const { name, task, data, backbone, unit } of cases) {
    const classifier = await Classifier.train({ task, data, backbone, cacheDir });
    try {
      const fp32 = await exportClassifier(classifier);
      const int8 = await exportClassifier(classifier, { quantize: 'int8' });
      const models = await Promise.all([fp32.onnx, int8.onnx].map((bytes) => ExportedModel.load(bytes)));
      const tokens = Array.from({ length: 16 }, (_, i) => Array.from({ length: 64 }, (_, j) => 1000 + ((i * 64 + j) % 5000)));
      const clip = Float32Array.from({ length: 32_000 }, (_, i) => 0.3 * Math.sin(i / 7));
      const [base, ours] = await timeRuns(models, (model) => (task === 'text' ? model.probabilitiesOfTokens(tokens) : model.probabilitiesOfSamples([clip])));
      const perRun = task === 'text' ? 16 : 1;
      for (const model of models) await model.release();
      const { items } = await classifier.adapter.readLabelled(data, classifier.labels);
      const comparison = await compareOnLabelled(classifier, int8.onnx, items);
      line(`${name}: int8 speed`, `${(ours! / base!).toFixed(2)}×`, `${(base! * perRun).toFixed(1)} → ${(ours! * perRun).toFixed(1)} ${unit}; ${(fp32.onnx.byteLength / 1e6).toFixed(1)} → ${(int8.onnx.byteLength / 1e6).toFixed(1)} MB`);
      line(`${name}: int8 accuracy drop`, drop(comparison), dropNote(comparison));
    } finally {
      await classifier.dispose();
    }
  }
}

export async function quantizeBench(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'headstart-bench-quantize-'));
  const cacheDir = join(work, 'cache');
  try {
    section('Static int8 export (`--quantize int8`) vs fp32 and onnxruntime quantize_static (QDQ, per-channel, same 48 calibration photos); round-robin timing, ratios');
    if (runs('mobilenet')) {
      const mobilenet = await ImageClassifier.train({ data: HYMENOPTERA, backbone: 'builtin:mobilenet-v2-1.0', cacheDir });
      try {
        await imageRows(work, 'MobileNetV2 1.0 hymenoptera', mobilenet, join(HYMENOPTERA, 'val'), { b16: 1.5, b1: 1.3 });
      } finally {
        await mobilenet.dispose();
      }
    }
    if (runs('digits')) await digitRows(cacheDir);
    if (runs('resnet')) {
      const resnet = await ImageClassifier.train({ data: HYMENOPTERA, backbone: join(SHARED, 'models/resnet-18-random'), cacheDir });
      try {
        await imageRows(work, 'ResNet-18 (random weights)', resnet, undefined, { b16: 2.5 });
      } finally {
        await resnet.dispose();
      }
    }
    if (runs('text')) await textAndAudioRows(work, cacheDir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Digits: the case where int8 used to lose 7 points (see head-refit.ts). */
async function digitRows(cacheDir: string): Promise<void> {
  const digits = await materialiseDemoDigits(cacheDir, { train: 20, validation: 20 });
  const digitModel = await ImageClassifier.train({ data: digits, backbone: 'builtin:mobilenet-v2-1.0', cacheDir });
  try {
    const { items } = await digitModel.adapter.readLabelled(join(digits, 'val'), digitModel.labels);
    const int8 = await exportClassifier(digitModel, { quantize: 'int8' });
    const ours = await compareOnLabelled(digitModel, int8.onnx, items);
    line('MobileNetV2 1.0 digits (20/class): int8 accuracy drop', drop(ours), `${dropNote(ours)} (target ≤ 1 pt)`);
  } finally {
    await digitModel.dispose();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await quantizeBench();
