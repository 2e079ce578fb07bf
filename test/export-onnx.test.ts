import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImagePreprocessing } from '../src/backbones/image-preprocessing.js';
import { attr, encodeModel, OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import onnxProto from 'onnx-proto';
import { Classifier } from '../src/classifier/classifier.js';
import { TextClassifier } from '../src/classifier/text-classifier.js';
import { readTextRecords } from '../src/data/text-dataset.js';
import { decodeAudio } from '../src/data/audio-decode.js';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { prepareImagePixels } from '../src/data/image-decode.js';
import { compareOnLabelled, compareWithLibrary, exportClassifier, type ExportResult } from '../src/export/onnx-export.js';
import { quantizeSymmetric } from '../src/export/quantize.js';
import { parseExportMetadata, readOnnxMetadata } from '../src/web/format.js';
import { runCli } from './helpers/cli.js';
import { FSDD, makeToneFolder, SPEECH_EMBEDDING_FOLDER } from './helpers/audio.js';
import { HYMENOPTERA, SHARED, makeColourFolder, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const require = createRequire(import.meta.url);
const { onnx } = onnxProto;

/**
 * What a consumer without headstart does: onnxruntime-node and onnxruntime-web (its Node build), the
 * file, and RGB bytes. Runs in a child process that imports nothing else, and prints the
 * probabilities of each runtime as JSON.
 */
async function runWithoutHeadstart(work: string, model: string, pixels: Uint8Array[]): Promise<{ node: number[]; web: number[]; dims: number[] }> {
  const script = join(work, 'plain-consumer.mjs');
  await writeFile(join(work, 'pixels.bin'), Buffer.concat(pixels));
  await writeFile(
    script,
    `import { readFileSync } from 'node:fs';
import ortNode from ${JSON.stringify(pathToFileURL(require.resolve('onnxruntime-node')).href)};
import * as ortWeb from ${JSON.stringify(new URL('../node_modules/onnxruntime-web/dist/ort.node.min.mjs', import.meta.url).href)};
const [model, pixelFile, count] = process.argv.slice(2);
const bytes = readFileSync(model);
const pixels = new Uint8Array(readFileSync(pixelFile));
const out = {};
for (const [name, ort] of [['node', ortNode], ['web', ortWeb]]) {
  const session = await ort.InferenceSession.create(bytes);
  const input = new ort.Tensor('uint8', pixels, [Number(count), 224, 224, 3]);
  const result = await session.run({ [session.inputNames[0]]: input });
  const output = result[session.outputNames[0]];
  out[name] = Array.from(output.data);
  out.dims = output.dims;
}
console.log(JSON.stringify(out));
`,
  );
  const { stdout } = await promisify(execFile)(process.execPath, [script, model, join(work, 'pixels.bin'), String(pixels.length)], { maxBuffer: 1 << 24 });
  return JSON.parse(stdout);
}

const maxAbsDifference = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (x, i) => Math.abs(x - b[i]!)));

describe('ONNX export of a hymenoptera classifier (MobileNetV2 α=0.35)', () => {
  let work: string;
  let cacheDir: string;
  let classifier: ImageClassifier;
  let fp32: ExportResult;
  let images: Uint8Array[];
  let pixels: Uint8Array[];

  beforeAll(async () => {
    work = await tempDir('headstart-export-');
    cacheDir = join(work, 'cache');
    classifier = await ImageClassifier.train({ data: HYMENOPTERA, backbone: MOBILENET_035, cacheDir });
    fp32 = await exportClassifier(classifier);
    await writeFile(join(work, 'model.onnx'), fp32.onnx);
    const validation = (await readImageFolder(HYMENOPTERA)).validation;
    images = await Promise.all(validation.filter((_, i) => i % 8 === 0).map((item) => item.load()));
    pixels = await Promise.all(images.map((image) => prepareImagePixels(image, classifier.backbone.preprocessing as ImagePreprocessing)));
  });

  afterAll(async () => {
    await classifier?.dispose();
  });

  it('folds the calibration temperature in (training fitted one)', () => {
    expect(classifier.manifest.calibration?.temperature).toBeDefined();
    expect(classifier.manifest.calibration!.temperature).not.toBe(1);
    expect(fp32.metadata.provenance?.temperature).toBe(classifier.manifest.calibration!.temperature);
  });

  it('gives the library\'s probabilities within 1e-5 in plain onnxruntime-node and onnxruntime-web, without headstart code', async () => {
    const library = await classifier.predictProbabilities(images);
    const plain = await runWithoutHeadstart(work, join(work, 'model.onnx'), pixels);
    expect(plain.dims).toEqual([images.length, 2]);
    expect(maxAbsDifference(plain.node, library)).toBeLessThan(1e-5);
    expect(maxAbsDifference(plain.web, library)).toBeLessThan(1e-5);
    expect(fp32.check.maxAbsDifference).toBeLessThan(1e-5);
  });

  it('carries labels, input geometry and provenance in metadata_props', async () => {
    const metadata = parseExportMetadata(readOnnxMetadata(await readFile(join(work, 'model.onnx'))));
    expect(metadata.labels).toEqual(['ants', 'bees']);
    expect(metadata.input).toMatchObject({ kind: 'image', name: 'pixels', dtype: 'uint8', layout: 'NHWC', width: 224, height: 224, resize: 'shortest-edge-crop', shortestEdge: 256 });
    expect(metadata.output).toEqual({ name: 'probabilities', kind: 'probabilities', classes: 2 });
    expect(metadata.provenance).toMatchObject({
      backbone: { id: classifier.manifest.backbone.id, sha256: classifier.manifest.backbone.sha256, featureDim: 1280 },
      head: { type: 'linear' },
      quantization: null,
    });
    expect(metadata.provenance!.validationAccuracy).toBe(classifier.metrics.validation!.accuracy);
  });

  it('exports int8 weights 3× smaller that lose at most 2 points of accuracy on the labelled validation set', async () => {
    const int8 = await exportClassifier(classifier, { quantize: 'int8-weights' });
    expect(int8.quantization!.tensors).toBeGreaterThan(30);
    expect(int8.onnx.byteLength).toBeLessThan(fp32.onnx.byteLength / 3);
    expect(int8.metadata.provenance?.quantization).toMatchObject({ tensors: int8.quantization!.tensors });
    const { items } = await classifier.adapter.readLabelled(join(HYMENOPTERA, 'val'), classifier.labels);
    const comparison = await compareOnLabelled(classifier, int8.onnx, items);
    expect(comparison.inputs).toBe(153);
    expect(comparison.accuracyDrop).toBeLessThanOrEqual(0.02);
    expect(comparison.top1Agreement).toBeGreaterThanOrEqual(0.97);
    // And the same file runs in both plain runtimes.
    await writeFile(join(work, 'model.int8.onnx'), int8.onnx);
    const plain = await runWithoutHeadstart(work, join(work, 'model.int8.onnx'), pixels.slice(0, 4));
    expect(maxAbsDifference(plain.node, plain.web)).toBeLessThan(1e-4);
  });

  it('exports MLP (GELU), k-NN and centroid heads with the same parity', async () => {
    for (const options of [{ head: 'mlp', activation: 'gelu' }, { head: 'knn', k: 7 }, { head: 'centroid' }] as const) {
      const other = await ImageClassifier.train({ data: HYMENOPTERA, backbone: MOBILENET_035, cacheDir, ...options });
      try {
        const result = await exportClassifier(other);
        const comparison = await compareWithLibrary(other, result.onnx, images);
        expect(comparison.maxAbsDifference, options.head).toBeLessThan(1e-5);
        expect(comparison.top1Agreement).toBe(1);
      } finally {
        await other.dispose();
      }
    }
  });

  it('writes the file from the command line and compares it on labelled data', async () => {
    const modelDir = join(work, 'hymenoptera-model');
    await classifier.save(modelDir, { report: false });
    // A few labelled photos per class: the full validation set is compared above.
    const labelled = join(work, 'labelled');
    for (const label of ['ants', 'bees']) {
      await mkdir(join(labelled, label), { recursive: true });
      for (const file of (await readdir(join(HYMENOPTERA, 'val', label))).slice(0, 3)) await copyFile(join(HYMENOPTERA, 'val', label, file), join(labelled, label, file));
    }
    const out = join(work, 'cli.int8.onnx');
    const result = await runCli(['export', modelDir, '--format', 'onnx', '--quantize', 'int8-weights', '--out', out, '--evaluate', labelled, '--cache-dir', cacheDir, '--json', '--quiet']);
    expect(result.code, result.stderr).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json).toMatchObject({ file: out, quantization: { tensors: expect.any(Number) }, evaluation: { inputs: 6, accuracyDrop: expect.any(Number) } });
    expect((await stat(out)).size).toBe(json.bytes);
    const text = await runCli(['export', modelDir, '--out', join(work, 'cli.onnx'), '--cache-dir', cacheDir, '--quiet']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/input {3}pixels: uint8 \[batch, 224, 224, 3\]/);
  });
});

describe('ONNX export of other graph shapes', () => {
  /**
   * A tiny random "backbone" in the layout of Hugging Face vision exports: NCHW float input,
   * `last_hidden_state` either a feature map (pooled by spatial mean) or a token sequence (pooled by
   * its first token), so both pooling paths and the NCHW transpose are exported.
   */
  async function tinyBackbone(dir: string, tokens: boolean): Promise<string> {
    const graph = new OnnxGraph();
    const input = graph.addInput('pixel_values', [-1, 3, 224, 224]);
    const weights = Float32Array.from({ length: 8 * 3 * 16 * 16 }, (_, i) => Math.sin(i * 12.9898) * 0.05);
    const conv = graph.addNode('Conv', [input, graph.addFloatInitializer('w', [8, 3, 16, 16], weights)], { strides: attr.ints([16, 16]) }, 'conv');
    let output = graph.addNode('Relu', [conv], {}, 'relu');
    if (tokens) {
      const flat = graph.addNode('Reshape', [output, graph.addInt64Initializer('shape', [0, 8, 196])], {}, 'flat');
      output = graph.addNode('Transpose', [flat], { perm: attr.ints([0, 2, 1]) }, 'tokens');
    }
    graph.output = { name: graph.nameTensor(output, 'last_hidden_state'), shape: tokens ? [-1, 196, 8] : [-1, 8, 14, 14] };
    const path = join(dir, tokens ? 'tokens.onnx' : 'feature-map.onnx');
    await writeFile(path, encodeModel(graph, 'tiny', ''));
    return path;
  }

  it('pools feature maps and token sequences in the graph as the library does', async () => {
    const work = await tempDir('headstart-export-shapes-');
    const data = await makeColourFolder(join(work, 'colours'), 8, ['blue', 'red', 'green']);
    const probes = await readImageFolder(data);
    const images = await Promise.all([...probes.train, ...probes.validation].slice(0, 6).map((item) => item.load()));
    for (const tokens of [false, true]) {
      const classifier = await ImageClassifier.train({ data, backbone: await tinyBackbone(work, tokens), cacheDir: join(work, 'cache') });
      try {
        expect(classifier.manifest.backbone.featureOutput).toBe(tokens ? 'last_hidden_state (first-token)' : 'last_hidden_state (spatial-mean)');
        const result = await exportClassifier(classifier);
        expect(result.metadata.preprocessing).toMatchObject({ layout: 'NCHW', mean: [0.485, 0.456, 0.406] });
        const comparison = await compareWithLibrary(classifier, result.onnx, images);
        expect(comparison.maxAbsDifference).toBeLessThan(1e-5);
      } finally {
        await classifier.dispose();
      }
    }
  });

  it('exports a transformer text model with its tokenizer', async () => {
    const work = await tempDir('headstart-export-text-');
    const reviews = ['great movie', 'loved every minute', 'a fine story', 'superb and funny', 'boring film', 'hated it', 'dull story', 'a waste of time'];
    await writeFile(join(work, 'reviews.csv'), `text,label\n${reviews.map((t, i) => `"${t}",${i < 4 ? 'pos' : 'neg'}`).join('\n')}\n`);
    const text = await Classifier.train({ task: 'text', data: join(work, 'reviews.csv'), backbone: join(SHARED, 'models/bert-tiny-random'), cacheDir: join(work, 'cache') });
    try {
      const result = await exportClassifier(text);
      expect(result.metadata.input).toMatchObject({ kind: 'text', idsName: 'input_ids', maskName: 'attention_mask', maxLength: 512, prefix: [2], suffix: [3] });
      expect(result.metadata.tokenizer?.tokenizer).toMatchObject({ model: expect.any(Object) });
      const parsed = parseExportMetadata(readOnnxMetadata(result.onnx));
      expect(parsed.tokenizer).toEqual(result.metadata.tokenizer);
      const texts = ['what a film', 'Ünïcödé — and a very long text '.repeat(80), ''];
      expect((await compareWithLibrary(text, result.onnx, texts)).maxAbsDifference).toBeLessThan(1e-5);
    } finally {
      await text.dispose();
    }
  });

  it('says which models export when asked for another kind', async () => {
    const whisperLike = { backbone: { reference: { id: 'hf:openai/whisper-tiny' } }, manifest: { modality: 'audio' } } as unknown as Classifier;
    await expect(exportClassifier(whisperLike)).rejects.toThrow(
      /cannot export this audio model \(backbone hf:openai\/whisper-tiny\): export covers image models, text models \(transformers, word vectors, TF-IDF\) and audio models on the speech-embedding backbone/,
    );
  });
});

const GLOVE_20K = join(SHARED, 'models/glove-6b-100d-top20k');
/** Known words, clitics and hyphens, unknown words only, no words at all, an empty text, a long one. */
const PROBE_TEXTS = [
  'FREE entry: win a £1,000 cash prize, text WIN to 80086 now!',
  "I didn't know you'd be late -- see you at the well-known café tomorrow?",
  'qzxwv blorptangle frumious',
  '!!! ...',
  '',
  `${'call me when you get home, ok? '.repeat(150)}bye`,
];

/**
 * What a consumer without headstart's Node code does with a word-vector or TF-IDF export: the
 * file, onnxruntime-node (and onnxruntime-web's Node build), and headstart/web's text featuriser
 * compiled on its own (no Node built-ins) — the code the browser runs. Prints probabilities per runtime.
 */
async function runTextWithoutHeadstart(work: string, webDir: string, model: string, texts: string[]): Promise<{ node: number[]; web: number[]; dims: number[] }> {
  const script = join(work, 'plain-text-consumer.mjs');
  await writeFile(join(work, 'texts.json'), JSON.stringify(texts));
  await writeFile(
    script,
    `import { readFileSync } from 'node:fs';
import ortNode from ${JSON.stringify(pathToFileURL(require.resolve('onnxruntime-node')).href)};
import * as ortWeb from ${JSON.stringify(new URL('../node_modules/onnxruntime-web/dist/ort.node.min.mjs', import.meta.url).href)};
import { parseExportMetadata, readOnnxMetadata } from ${JSON.stringify(pathToFileURL(join(webDir, 'format.js')).href)};
import { textFeaturizer } from ${JSON.stringify(pathToFileURL(join(webDir, 'text-input.js')).href)};
const [model, textFile] = process.argv.slice(2);
const bytes = readFileSync(model);
const texts = JSON.parse(readFileSync(textFile, 'utf8'));
const feeds = textFeaturizer(parseExportMetadata(readOnnxMetadata(bytes))).feeds(texts);
const out = {};
for (const [name, ort] of [['node', ortNode], ['web', ortWeb]]) {
  const session = await ort.InferenceSession.create(bytes);
  const tensors = Object.fromEntries(Object.entries(feeds).map(([key, t]) => [key, new ort.Tensor(t.type, t.data, t.dims)]));
  const result = await session.run(tensors);
  const output = result[session.outputNames[0]];
  out[name] = Array.from(output.data);
  out.dims = output.dims;
}
console.log(JSON.stringify(out));
`,
  );
  const { stdout } = await promisify(execFile)(process.execPath, [script, model, join(work, 'texts.json')], { maxBuffer: 1 << 24 });
  return JSON.parse(stdout);
}

describe('ONNX export of word-vector and TF-IDF text models', () => {
  let work: string;
  let webDir: string;
  let data: string;
  let cacheDir: string;

  beforeAll(async () => {
    work = await tempDir('headstart-export-words-');
    cacheDir = join(work, 'cache');
    const { records } = await readTextRecords(join(SHARED, 'data/text/sms-spam/SMSSpamCollection'));
    const quote = (text: string) => `"${text.replace(/"/g, '""')}"`;
    data = join(work, 'sms.csv');
    await writeFile(data, `text,label\n${records.slice(0, 400).map((r) => `${quote(r.text)},${r.label}`).join('\n')}\n`);
    await writeFile(join(work, 'held-out.csv'), `text,label\n${records.slice(400, 700).map((r) => `${quote(r.text)},${r.label}`).join('\n')}\n`);
    webDir = join(work, 'web');
    await promisify(execFile)(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', new URL('../tsconfig.web.json', import.meta.url).pathname, '--outDir', webDir]);
  });

  /** Exports, checks the library's parity through ExportedModel and through a plain consumer, and returns the export. */
  async function exportAndCompare(classifier: Classifier, name: string): Promise<ExportResult> {
    const result = await exportClassifier(classifier);
    expect(result.check.maxAbsDifference).toBeLessThan(1e-5);
    const file = join(work, `${name}.onnx`);
    await writeFile(file, result.onnx);
    const library = await classifier.predictProbabilities(PROBE_TEXTS);
    expect((await compareWithLibrary(classifier, result.onnx, PROBE_TEXTS)).maxAbsDifference, name).toBeLessThan(1e-5);
    const plain = await runTextWithoutHeadstart(work, webDir, file, PROBE_TEXTS);
    expect(plain.dims).toEqual([PROBE_TEXTS.length, classifier.labels.length]);
    expect(maxAbsDifference(plain.node, library), name).toBeLessThan(1e-5);
    expect(maxAbsDifference(plain.web, library), name).toBeLessThan(1e-5);
    return result;
  }

  it('exports GloVe (SIF mean ⊕ max ⊕ min, the default) with its whole table and vocabulary: the library\'s probabilities within 1e-5', async () => {
    const classifier = await TextClassifier.train({ data, backbone: GLOVE_20K, cacheDir });
    try {
      expect(classifier.manifest.backbone.preprocessing).toMatchObject({ kind: 'word-vectors', pooling: 'sif+max+min' });
      expect(classifier.manifest.calibration?.temperature).not.toBe(1);
      const result = await exportAndCompare(classifier, 'glove');
      expect(result.metadata.input).toEqual({ kind: 'words', idsName: 'input_ids', maskName: 'attention_mask', padId: 0, tokenizer: 'glove-words-1', vocabularySize: 20_000 });
      const parsed = parseExportMetadata(readOnnxMetadata(result.onnx));
      expect(parsed.vocabulary).toHaveLength(20_000);
      expect(parsed.vocabulary!.slice(0, 3)).toEqual(['the', ',', '.']);
      // 20,000 × 100 float32 vectors, 20,000 SIF weights, the words and the head.
      expect(result.onnx.byteLength).toBeGreaterThan(8_000_000);
      expect(result.onnx.byteLength).toBeLessThan(8_400_000);
      // And from the command line, on the saved model folder.
      const modelDir = join(work, 'glove-model');
      await classifier.save(modelDir, { report: false });
      const cli = await runCli(['export', modelDir, '--out', join(work, 'glove-cli.onnx'), '--evaluate', join(work, 'held-out.csv'), '--cache-dir', cacheDir, '--quiet']);
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toMatch(/input {3}input_ids, attention_mask: int64 \[batch, words\] from headstart's word tokeniser over the embedded vocabulary \(20000 words\)/);
      expect(cli.stdout).toMatch(/held-out\.csv \(300 texts\): accuracy (\S+) library, \1 exported \(drop 0\.000\); same top-1 on 100\.0 %/);
    } finally {
      await classifier.dispose();
    }
  });

  it('stores the vector table as int8 rows with --quantize int8-weights (3.5× smaller), dequantising only the gathered rows', async () => {
    const classifier = await TextClassifier.train({ data, backbone: GLOVE_20K, cacheDir });
    try {
      const fp32 = await exportClassifier(classifier);
      const int8 = await exportClassifier(classifier, { quantize: 'int8-weights' });
      expect(int8.quantization).toMatchObject({ tensors: 1, floatBytes: 8_000_000, int8Bytes: 2_080_000 });
      expect(int8.onnx.byteLength).toBeLessThan(fp32.onnx.byteLength / 3.5);
      const { items } = await classifier.adapter.readLabelled(join(work, 'held-out.csv'), classifier.labels);
      const comparison = await compareOnLabelled(classifier, int8.onnx, items);
      expect(comparison.inputs).toBe(300);
      expect(comparison.top1Agreement).toBeGreaterThanOrEqual(0.99);
      expect(comparison.maxAbsDifference).toBeLessThan(0.05);
      await writeFile(join(work, 'glove.int8.onnx'), int8.onnx);
      const plain = await runTextWithoutHeadstart(work, webDir, join(work, 'glove.int8.onnx'), PROBE_TEXTS);
      expect(maxAbsDifference(plain.node, plain.web)).toBeLessThan(1e-5);
    } finally {
      await classifier.dispose();
    }
  });

  it('exports the other word poolings (SIF mean L2-normalised with an MLP head, plain mean with k-NN) with the same parity', async () => {
    for (const [pooling, options] of [['sif', { normalize: true, head: 'mlp' }], ['mean', { normalize: false, head: 'knn' }]] as const) {
      const classifier = await TextClassifier.train({ data, backbone: GLOVE_20K, cacheDir, head: options.head, preprocessing: { pooling, normalize: options.normalize } });
      try {
        expect(classifier.manifest.backbone.preprocessing).toMatchObject({ pooling, normalize: options.normalize });
        await exportAndCompare(classifier, `glove-${pooling}`);
      } finally {
        await classifier.dispose();
      }
    }
  });

  it('exports TF-IDF with its whole fitted state (every term, trained on sparse rows) in the metadata: the library\'s probabilities within 1e-5', async () => {
    const classifier = await TextClassifier.train({ data, backbone: 'tfidf', cacheDir });
    try {
      const result = await exportAndCompare(classifier, 'tfidf');
      const dim = classifier.backbone.reference.featureDim;
      expect(dim).toBeGreaterThan(1000);
      expect(result.metadata.input).toEqual({ kind: 'tfidf', indicesName: 'tfidf_indices', valuesName: 'tfidf_values', shapeName: 'tfidf_shape', dim });
      const parsed = parseExportMetadata(readOnnxMetadata(result.onnx));
      expect(parsed.tfidf).toEqual(classifier.manifest.backbone.preprocessing);
      expect(parsed.preprocessing).toEqual({ kind: 'tfidf', settings: parsed.tfidf!.settings });
    } finally {
      await classifier.dispose();
    }
  });

  it('exports an uncapped TF-IDF vocabulary (SST-2, 100k+ terms) as sparse rows: onnxruntime-node and -web give the library\'s probabilities within 1e-5', async () => {
    const classifier = await TextClassifier.train({ data: join(SHARED, 'data/text/sst2'), backbone: 'tfidf', cacheDir, cache: false });
    try {
      const dim = classifier.backbone.reference.featureDim;
      expect(dim).toBeGreaterThan(100_000);
      const result = await exportAndCompare(classifier, 'tfidf-sst2');
      // The file holds the head and the state, never a dense [batch, dim] input.
      const graph = onnx.ModelProto.decode(result.onnx).graph!;
      expect(graph.input!.map((input) => input.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue))))).toEqual([['nnz', 2], ['nnz'], [2]]);
      // A batch with no term at all (nnz = 0), and one text with terms beside empty ones.
      for (const texts of [[''], ['', 'a gripping, beautifully acted film', '!!!']]) {
        expect((await compareWithLibrary(classifier, result.onnx, texts)).maxAbsDifference, JSON.stringify(texts)).toBeLessThan(1e-5);
      }
    } finally {
      await classifier.dispose();
    }
  });

  it('still reads format 1 TF-IDF exports, which took dense rows', async () => {
    const { textFeaturizer } = await import('../src/web/text-input.js');
    const { TfidfVectorizer } = await import('../src/web/tfidf.js');
    const state = { kind: 'tfidf' as const, settings: { wordNgrams: [1, 1] as [number, number], charNgrams: null, minDf: 1, maxFeatures: null, sublinearTf: true }, terms: ['w:bad', 'w:good'], idf: [1.5, 1.2] };
    const metadata = { format: 1, modality: 'text' as const, labels: ['neg', 'pos'], input: { kind: 'tfidf' as const, name: 'tfidf', dim: 2 }, output: { name: 'probabilities', kind: 'probabilities' as const, classes: 2 }, preprocessing: null, provenance: null, tfidf: state };
    const feeds = textFeaturizer(metadata)!.feeds(['good good', 'nothing']);
    expect(feeds['tfidf']).toEqual({ type: 'float32', data: Float32Array.from([...new TfidfVectorizer(state).transform('good good'), 0, 0]), dims: [2, 2] });
  });

  it('refuses a word-vector export whose tokeniser rules this headstart does not have, naming them', async () => {
    const classifier = await TextClassifier.train({ data, backbone: GLOVE_20K, cacheDir });
    const result = await exportClassifier(classifier).finally(() => classifier.dispose());
    const metadata = parseExportMetadata(readOnnxMetadata(result.onnx));
    const { textFeaturizer } = await import('../src/web/text-input.js');
    expect(() => textFeaturizer({ ...metadata, input: { ...(metadata.input as object), tokenizer: 'glove-words-0' } as typeof metadata.input })).toThrow(
      /exported with word tokenizer "glove-words-0"; this headstart has "glove-words-1"/,
    );
  });
});

/** onnxruntime-node and onnxruntime-web (Node build) on an audio export, one clip per run, nothing else. */
async function runAudioWithoutHeadstart(work: string, model: string, clips: Float32Array[]): Promise<{ node: number[]; web: number[] }> {
  const script = join(work, 'plain-audio-consumer.mjs');
  await writeFile(join(work, 'clips.json'), JSON.stringify(clips.map((clip) => Array.from(clip))));
  await writeFile(
    script,
    `import { readFileSync } from 'node:fs';
import ortNode from ${JSON.stringify(pathToFileURL(require.resolve('onnxruntime-node')).href)};
import * as ortWeb from ${JSON.stringify(new URL('../node_modules/onnxruntime-web/dist/ort.node.min.mjs', import.meta.url).href)};
const [model, clipFile] = process.argv.slice(2);
const bytes = readFileSync(model);
const clips = JSON.parse(readFileSync(clipFile, 'utf8'));
const out = {};
for (const [name, ort] of [['node', ortNode], ['web', ortWeb]]) {
  const session = await ort.InferenceSession.create(bytes);
  out[name] = [];
  for (const clip of clips) {
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', Float32Array.from(clip), [1, clip.length]) });
    out[name].push(...result[session.outputNames[0]].data);
  }
}
console.log(JSON.stringify(out));
`,
  );
  const { stdout } = await promisify(execFile)(process.execPath, [script, model, join(work, 'clips.json')], { maxBuffer: 1 << 26 });
  return JSON.parse(stdout);
}

describe('ONNX export of an audio model (speech embedding: mel graph, windows, embedding graph, pooling in one file)', () => {
  it('gives the library\'s probabilities within 1e-5 on clips shorter than one STFT frame, than a window, and of seconds, at 8 and 16 kHz', async () => {
    const work = await tempDir('headstart-export-audio-');
    const data = await makeToneFolder(join(work, 'tones'), [300, 1000, 3000], 6, 8000);
    // Spoken digits as well as tones, at their own 8 kHz (resampled by the library, as a consumer would).
    const clips = await Promise.all((await readdir(FSDD)).filter((f) => f.endsWith('.wav')).slice(0, 4).map((f) => readFile(join(FSDD, f))));
    for (const pooling of ['mean', 'mean-max'] as const) {
      const classifier = await Classifier.train({ task: 'audio', data, backbone: SPEECH_EMBEDDING_FOLDER, cacheDir: join(work, 'cache'), backboneOptions: { preprocessing: { pooling } as object } });
      try {
        expect(classifier.manifest.backbone.preprocessing).toMatchObject({ frontEnd: 'speech-embedding', pooling });
        const result = await exportClassifier(classifier);
        expect(result.metadata.input).toMatchObject({ kind: 'audio', name: 'samples', sampleRate: 16_000, batch: 1 });
        expect(result.check.maxAbsDifference, pooling).toBeLessThan(1e-5);
        const comparison = await compareWithLibrary(classifier, result.onnx, clips);
        expect(comparison.maxAbsDifference, pooling).toBeLessThan(1e-5);
        // Plain onnxruntime-node and -web, fed the library's 16 kHz samples, one clip per run.
        await writeFile(join(work, `${pooling}.onnx`), result.onnx);
        const samples = clips.map((clip) => decodeAudio(clip, 16_000));
        const plain = await runAudioWithoutHeadstart(work, join(work, `${pooling}.onnx`), samples);
        const library = await classifier.predictProbabilities(clips);
        expect(maxAbsDifference(plain.node, library), pooling).toBeLessThan(1e-5);
        expect(maxAbsDifference(plain.web, library), pooling).toBeLessThan(1e-5);
        if (pooling === 'mean') {
          // From the command line too (the CLI runs under tsx, another module loader).
          await classifier.save(join(work, 'model'), { report: false });
          const cli = await runCli(['export', join(work, 'model'), '--out', join(work, 'cli.onnx'), '--evaluate', data, '--cache-dir', join(work, 'cache'), '--quiet']);
          expect(cli.code, cli.stderr).toBe(0);
          expect(cli.stdout).toMatch(/input {3}samples: float32 \[1, samples\] one mono clip at 16000 Hz in \[-1, 1\]/);
          expect(cli.stdout).toMatch(/on 4 probe clips/);
          expect(cli.stdout).toMatch(/\(18 clips\): accuracy (\S+) library, \1 exported \(drop 0\.000\)/);
        }
      } finally {
        await classifier.dispose();
      }
    }
  });
});

describe('int8 quantisation', () => {
  it('scales each output channel so its largest weight maps to ±127', () => {
    const values = Float32Array.from([0.3, -1, 0.25, 0, 0, 0, 2, 3, -8]);
    const { quantized, scales } = quantizeSymmetric(values, [3, 3], 0);
    expect(Array.from(scales)).toEqual([1 / 127, 1, 8 / 127].map(Math.fround));
    expect(Array.from(quantized)).toEqual([38, -127, 32, 0, 0, 0, 32, 48, -127]);
    const perTensor = quantizeSymmetric(values, [3, 3], null);
    expect(perTensor.scales).toHaveLength(1);
    expect(Math.max(...Array.from(perTensor.quantized, Math.abs))).toBe(127);
  });
});
