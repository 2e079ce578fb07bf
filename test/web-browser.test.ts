import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImagePreprocessing } from '../src/backbones/image-preprocessing.js';
import { Classifier } from '../src/classifier/classifier.js';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { TextClassifier } from '../src/classifier/text-classifier.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { prepareImagePixels } from '../src/data/image-decode.js';
import { ExportedModel } from '../src/export/exported-model.js';
import { exportClassifier } from '../src/export/onnx-export.js';
import { HYMENOPTERA, SHARED, tempDir } from './helpers/images.js';
import { staticServer } from './helpers/static-server.js';
import { FSDD, makeToneFolder, SPEECH_EMBEDDING_FOLDER, tone, wavBytes } from './helpers/audio.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const BERT_TINY = join(SHARED, 'models/bert-tiny-random');
const GLOVE_20K = join(SHARED, 'models/glove-6b-100d-top20k');
const REVIEWS = [
  ['great movie, loved it', 'pos'],
  ['wonderful acting and a fine story', 'pos'],
  ['a delight from start to end', 'pos'],
  ['superb, moving, funny', 'pos'],
  ['I enjoyed every minute', 'pos'],
  ['brilliant and warm', 'pos'],
  ['terrible, boring film', 'neg'],
  ['awful acting, dull story', 'neg'],
  ['a waste of two hours', 'neg'],
  ['dreadful and slow', 'neg'],
  ['I hated every minute', 'neg'],
  ['bad script, worse ending', 'neg'],
];
/** Texts the page classifies: accents, punctuation, and one long enough to be truncated. */
const TEXTS = ['Loved it!', 'Une œuvre déjà culte, naïve et drôle', 'dull', `${'a very long review that goes on '.repeat(120)}the end`];
/** For the word-vector and TF-IDF models also unknown words only, clitics and hyphens, and no words at all. */
const WORD_TEXTS = [...TEXTS, 'qzxwv blorptangle frumious', "didn't like the well-known ending", '?!'];
const CHROMIUM = '/usr/bin/chromium';
interface PageResult {
  name: string;
  predictions: { label: string; probability: number }[];
}

describe.skipIf(!existsSync(CHROMIUM))('headstart/web in headless Chromium', () => {
  let classifier: ImageClassifier;
  let textClassifier: Classifier;
  let textProbabilities: Float32Array;
  /** Word-vector (GloVe folder) and TF-IDF models: Node's probabilities for WORD_TEXTS. */
  const wordModels: { name: string; labels: string[]; probabilities: Float32Array }[] = [];
  /** The audio model's clips (served under /audio/) and Node's probabilities for them. */
  const audio: { urls: string[]; labels: string[]; probabilities: Float32Array } = { urls: [], labels: [], probabilities: new Float32Array(0) };
  let browser: Browser;
  let server: Server;
  let origin: string;
  /** Fixture photos (ants and bees, validation) and Node's top-1 for each. */
  const fixtures: { file: string; url: string; nodeTop1: string }[] = [];
  /** The library's probabilities for the fixtures, and the pixels it decoded them to. */
  let nodeProbabilities: Float32Array;
  /** onnxruntime-node's probabilities from the static int8 export for the same pixels. */
  let int8Probabilities: Float32Array;

  beforeAll(async () => {
    const work = await tempDir('headstart-web-');
    classifier = await ImageClassifier.train({ data: HYMENOPTERA, backbone: MOBILENET_035, cacheDir: join(work, 'cache') });
    await writeFile(join(work, 'model.onnx'), (await exportClassifier(classifier)).onnx);
    // The static int8 file (integer kernels in onnxruntime-web's wasm too), calibrated on a few training photos.
    const int8 = (await exportClassifier(classifier, { quantize: 'int8', calibration: { count: 8 } })).onnx;
    await writeFile(join(work, 'model.int8.onnx'), int8);
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.web.json'), '--outDir', join(work, 'web')]);

    const validation = (await readImageFolder(HYMENOPTERA)).validation;
    const picked = [...validation.filter((i) => i.label === 0).slice(0, 4), ...validation.filter((i) => i.label === 1).slice(0, 4)];
    for (const [i, item] of picked.entries()) {
      const [top] = await classifier.predict(item.source, { topK: 1 });
      fixtures.push({ file: item.source, url: `/images/${i}.jpg`, nodeTop1: top!.label });
    }
    const imagesDir = join(work, 'images');
    await mkdir(imagesDir);
    for (const [i, fixture] of fixtures.entries()) await writeFile(join(imagesDir, `${i}.jpg`), await readFile(fixture.file));
    const bytes = await Promise.all(fixtures.map((f) => readFile(f.file)));
    nodeProbabilities = await classifier.predictProbabilities(bytes);
    const pixels = await Promise.all(bytes.map((b) => prepareImagePixels(b, classifier.backbone.preprocessing as ImagePreprocessing)));
    await writeFile(join(work, 'pixels.bin'), Buffer.concat(pixels));
    const int8Model = await ExportedModel.load(int8);
    int8Probabilities = await int8Model.probabilities(pixels);
    await int8Model.release();

    await writeFile(join(work, 'reviews.csv'), `text,label\n${REVIEWS.map(([text, label]) => `"${text}",${label}`).join('\n')}\n`);
    textClassifier = await Classifier.train({ task: 'text', data: join(work, 'reviews.csv'), backbone: BERT_TINY, cacheDir: join(work, 'cache') });
    await writeFile(join(work, 'text.onnx'), (await exportClassifier(textClassifier)).onnx);
    textProbabilities = await textClassifier.predictProbabilities(TEXTS);
    for (const [name, backbone] of [['glove', GLOVE_20K], ['tfidf', 'tfidf']] as const) {
      const model = await TextClassifier.train({ data: join(work, 'reviews.csv'), backbone, cacheDir: join(work, 'cache') });
      try {
        await writeFile(join(work, `${name}.onnx`), (await exportClassifier(model)).onnx);
        wordModels.push({ name, labels: model.labels, probabilities: await model.predictProbabilities(WORD_TEXTS) });
      } finally {
        await model.dispose();
      }
    }

    // Audio: FSDD digits (8 kHz, resampled in the page by headstart's resampler), a 16 kHz stereo
    // clip (downmixed) and one shorter than an STFT frame.
    const audioDir = join(work, 'audio');
    await mkdir(audioDir);
    const clips = [
      ...(await Promise.all(['0_jackson_0.wav', '1_nicolas_1.wav', '7_theo_2.wav'].map((name) => readFile(join(FSDD, name))))),
      wavBytes([tone(440, 16_000, 1.3), tone(660, 16_000, 1.3, 0.3)], 16_000),
      wavBytes([tone(1000, 22_050, 0.01)], 22_050, '24'),
    ];
    for (const [i, clip] of clips.entries()) await writeFile(join(audioDir, `${i}.wav`), clip);
    audio.urls = clips.map((_, i) => `/audio/${i}.wav`);
    const audioModel = await Classifier.train({ task: 'audio', data: await makeToneFolder(join(work, 'tones'), [300, 1000, 3000], 6, 8000), backbone: SPEECH_EMBEDDING_FOLDER, cacheDir: join(work, 'cache') });
    try {
      await writeFile(join(work, 'audio.onnx'), (await exportClassifier(audioModel)).onnx);
      audio.labels = audioModel.labels;
      audio.probabilities = await audioModel.predictProbabilities(clips);
    } finally {
      await audioModel.dispose();
    }

    ({ server, origin } = await staticServer({
      '/examples/web/': join(ROOT, 'examples/web'),
      '/dist/web/': join(work, 'web'),
      '/node_modules/onnxruntime-web/dist/': join(ROOT, 'node_modules/onnxruntime-web/dist'),
      '/node_modules/@huggingface/tokenizers/dist/': join(ROOT, 'node_modules/@huggingface/tokenizers/dist'),
      '/models/': work,
      '/images/': imagesDir,
      '/audio/': audioDir,
    }));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    server?.close();
    await classifier?.dispose();
    await textClassifier?.dispose();
  });

  /** Opens the example page on the exported model, failing on any request that leaves 127.0.0.1. */
  async function openExample(query: string, model = '/models/model.onnx'): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.route('**/*', (route) => (route.request().url().startsWith(origin) ? route.continue() : route.abort()));
    await page.goto(`${origin}/examples/web/?model=${model}${query}`);
    await page.waitForFunction('["done", "ready", "error"].includes(document.body.dataset.state)', undefined, { timeout: 60_000 });
    return { page, errors };
  }

  it('classifies fixture photos by URL on the example page with the same top-1 as Node', async () => {
    const query = fixtures.map((f) => `&image=${encodeURIComponent(f.url)}`).join('');
    const { page, errors } = await openExample(query);
    await page.waitForFunction('["done", "error"].includes(document.body.dataset.state)', undefined, { timeout: 60_000 });
    expect(await page.evaluate('document.body.dataset.state')).toBe('done');
    expect(errors).toEqual([]);
    const results = (await page.evaluate('window.headstartResults')) as PageResult[];
    expect(results.map((r) => r.name)).toEqual(fixtures.map((f) => f.url));
    for (const [i, result] of results.entries()) {
      expect(result.predictions.map((p) => p.label).sort()).toEqual(['ants', 'bees']);
      expect(result.predictions[0]!.label, fixtures[i]!.file).toBe(fixtures[i]!.nodeTop1);
      expect(result.predictions.reduce((sum, p) => sum + p.probability, 0)).toBeCloseTo(1, 5);
    }
    expect(await page.locator('.result').count()).toBe(fixtures.length);
    await page.close();
  });

  it('gives the library\'s probabilities within 1e-5 when fed the pixels Node decoded (onnxruntime-web parity)', async () => {
    const { page } = await openExample('');
    const script = `(async () => {
      const { loadClassifier } = await import('headstart/web');
      const model = await loadClassifier('/models/model.onnx');
      const all = new Uint8Array(await (await fetch('/models/pixels.bin')).arrayBuffer());
      const size = 224 * 224 * 3;
      const images = Array.from({ length: all.length / size }, (_, i) => all.subarray(i * size, (i + 1) * size));
      const probabilities = Array.from(await model.probabilitiesOfPixels(images));
      await model.release();
      return probabilities;
    })()`;
    const probabilities = (await page.evaluate(script)) as number[];
    expect(probabilities).toHaveLength(nodeProbabilities.length);
    const worst = Math.max(...probabilities.map((p, i) => Math.abs(p - nodeProbabilities[i]!)));
    expect(worst).toBeLessThan(1e-5);
    await page.close();
  });

  it('runs the static int8 export on the same pixels as onnxruntime-node does: same top-1, probabilities within 0.05', async () => {
    const { page } = await openExample('', '/models/model.int8.onnx');
    const script = `(async () => {
      const { loadClassifier } = await import('headstart/web');
      const model = await loadClassifier('/models/model.int8.onnx');
      const all = new Uint8Array(await (await fetch('/models/pixels.bin')).arrayBuffer());
      const size = 224 * 224 * 3;
      const images = Array.from({ length: all.length / size }, (_, i) => all.subarray(i * size, (i + 1) * size));
      const probabilities = Array.from(await model.probabilitiesOfPixels(images));
      await model.release();
      return probabilities;
    })()`;
    const probabilities = (await page.evaluate(script)) as number[];
    expect(probabilities).toHaveLength(int8Probabilities.length);
    // wasm and native requantise with different rounding, so not bit-identical; the decisions agree
    // (wherever Node's is not a near tie, which a 0.05 difference could flip).
    for (let i = 0; i < probabilities.length; i += 2) {
      if (Math.abs(int8Probabilities[i]! - int8Probabilities[i + 1]!) > 0.1) expect(probabilities[i]! > probabilities[i + 1]!, `image ${i / 2}`).toBe(int8Probabilities[i]! > int8Probabilities[i + 1]!);
    }
    expect(Math.max(...probabilities.map((p, i) => Math.abs(p - int8Probabilities[i]!)))).toBeLessThan(0.05);
    await page.close();
  });

  it('classifies a <canvas>, an ImageBitmap and an <img> to the same top-1 as Node', async () => {
    const { page } = await openExample('');
    const script = `(async () => {
      const { loadClassifier } = await import('headstart/web');
      const model = await loadClassifier('/models/model.onnx');
      const out = [];
      for (const url of ${JSON.stringify(fixtures.map((f) => f.url))}) {
        const bitmap = await createImageBitmap(await (await fetch(url)).blob());
        const canvas = Object.assign(document.createElement('canvas'), { width: bitmap.width, height: bitmap.height });
        canvas.getContext('2d').drawImage(bitmap, 0, 0);
        const img = new Image();
        img.src = url;
        const [fromCanvas] = await model.classify(canvas, { topK: 1 });
        const [fromBitmap] = await model.classify(bitmap, { topK: 1 });
        const [fromImg] = await model.classify(img, { topK: 1 });
        out.push([fromCanvas.label, fromBitmap.label, fromImg.label]);
      }
      const batch = await model.classifyMany(${JSON.stringify(fixtures.map((f) => f.url))}, { topK: 1 });
      await model.release();
      return { out, batch: batch.map((p) => p[0].label) };
    })()`;
    const { out, batch } = (await page.evaluate(script)) as { out: string[][]; batch: string[] };
    out.forEach((labels, i) => expect(labels, fixtures[i]!.file).toEqual([fixtures[i]!.nodeTop1, fixtures[i]!.nodeTop1, fixtures[i]!.nodeTop1]));
    expect(batch).toEqual(fixtures.map((f) => f.nodeTop1));
    await page.close();
  });

  it('tokenises with the embedded tokenizer and gives a text model\'s probabilities within 1e-5', async () => {
    const query = TEXTS.map((text) => `&text=${encodeURIComponent(text)}`).join('');
    const { page, errors } = await openExample(query, '/models/text.onnx');
    await page.waitForFunction('["done", "error"].includes(document.body.dataset.state)', undefined, { timeout: 60_000 });
    expect(await page.evaluate('document.body.dataset.state')).toBe('done');
    expect(errors).toEqual([]);
    const results = (await page.evaluate('window.headstartResults')) as PageResult[];
    const labels = textClassifier.labels;
    expect(results.map((r) => r.name)).toEqual(TEXTS);
    results.forEach((result, i) => {
      for (const { label, probability } of result.predictions) {
        expect(Math.abs(probability - textProbabilities[i * labels.length + labels.indexOf(label)]!)).toBeLessThan(1e-5);
      }
    });
    await page.close();
  });

  it('tokenises with headstart\'s own word tokeniser (GloVe folder) and TF-IDF featuriser: Node\'s top-1, probabilities within 1e-5', async () => {
    const query = WORD_TEXTS.map((text) => `&text=${encodeURIComponent(text)}`).join('');
    for (const { name, labels, probabilities } of wordModels) {
      const { page, errors } = await openExample(query, `/models/${name}.onnx`);
      await page.waitForFunction('["done", "error"].includes(document.body.dataset.state)', undefined, { timeout: 60_000 });
      expect(await page.evaluate('document.body.dataset.state'), name).toBe('done');
      expect(errors).toEqual([]);
      const results = (await page.evaluate('window.headstartResults')) as PageResult[];
      expect(results.map((r) => r.name)).toEqual(WORD_TEXTS);
      results.forEach((result, i) => {
        const row = Array.from(probabilities.subarray(i * labels.length, (i + 1) * labels.length));
        expect(result.predictions[0]!.label, `${name}: ${WORD_TEXTS[i]}`).toBe(labels[row.indexOf(Math.max(...row))]);
        for (const { label, probability } of result.predictions) expect(Math.abs(probability - row[labels.indexOf(label)]!)).toBeLessThan(1e-5);
      });
      await page.close();
    }
  });

  it('classifies WAV files by URL with an audio model (speech embedding): Node\'s probabilities within 1e-5', async () => {
    const { page, errors } = await openExample(audio.urls.map((url) => `&audio=${encodeURIComponent(url)}`).join(''), '/models/audio.onnx');
    await page.waitForFunction('["done", "error"].includes(document.body.dataset.state)', undefined, { timeout: 60_000 });
    expect(await page.evaluate('document.body.dataset.state')).toBe('done');
    expect(errors).toEqual([]);
    const results = (await page.evaluate('window.headstartResults')) as PageResult[];
    expect(results.map((r) => r.name)).toEqual(audio.urls);
    const k = audio.labels.length;
    results.forEach((result, i) => {
      for (const { label, probability } of result.predictions) expect(Math.abs(probability - audio.probabilities[i * k + audio.labels.indexOf(label)]!), audio.urls[i]).toBeLessThan(1e-5);
    });
    await page.close();
  });
});
