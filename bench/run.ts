/**
 * `npm run bench`: the numbers quoted in closing notes, measured in one run on this machine.
 * Not a test: nothing here asserts; it prints what it measured and against which target.
 */
import { asDense } from '../src/features/sparse.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { ImageBackbone } from '../src/backbones/image-backbone.js';
import { readHfImageModel } from '../src/backbones/hf-folder.js';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { readTfjsModelFolder } from '../src/backbones/tfjs/index.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { extractFeatures } from '../src/features/extract.js';
import { fitHead } from '../src/train/fit.js';
import { shipBench } from './ship.js';
import { quantizeBench } from './quantize.js';
import { textBench } from './text.js';
import { fineTuneBench } from './finetune.js';
import { audioBench } from './audio.js';
import { generateBench } from './generate.js';
import { detectBench } from './detect.js';
import { explainBench } from './explain.js';
import { queueBench } from './queue.js';
import type { FeatureSet } from '../src/heads/head.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SHARED = join(ROOT, '../shared');
const HYMENOPTERA = join(SHARED, 'data/images/hymenoptera');
const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const THREADS = availableParallelism();
const TUNED_TORCH_ENV = {
  GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184',
  OMP_WAIT_POLICY: 'PASSIVE',
};

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);

/** Images/s of `forward` at a batch size: the median of three timed windows (this VM's speed wanders ±15 %). */
async function timeForward(backbone: ImageBackbone, batch: number, seconds = 3): Promise<number> {
  const { width, height } = backbone.preprocessing;
  const inputs = Array.from({ length: batch }, (_, i) => new Float32Array(3 * width * height).fill(0.1 * i));
  await backbone.forward(inputs);
  const rates: number[] = [];
  for (let window = 0; window < 3; window++) {
    let runs = 0;
    const start = performance.now();
    while (performance.now() - start < seconds * 1000 || runs < 2) {
      await backbone.forward(inputs);
      runs++;
    }
    rates.push((runs * batch) / ((performance.now() - start) / 1000));
  }
  return rates.sort((a, b) => a - b)[1]!;
}

async function main() {
  const cacheDir = await mkdtemp(join(tmpdir(), 'headstart-bench-'));
  console.log(`headstart bench — ${new Date().toISOString()} — ${THREADS} cores, node ${process.version}`);
  const dataset = await readImageFolder(HYMENOPTERA);
  const items = [...dataset.train, ...dataset.validation];

  section('Per backbone: forward only (batch 16, onnxruntime-node CPU), then feature extraction on hymenoptera (398 JPEGs: read + decode + resize + forward, no cache)');
  const backbones: [string, string][] = [
    ['default builtin:mobilenet-v2-1.4', 'builtin:mobilenet-v2-1.4'],
    ['builtin:mobilenet-v2-1.0', 'builtin:mobilenet-v2-1.0'],
    ['builtin:inception-v3', 'builtin:inception-v3'],
    ['MobileNetV2 α=0.35 ImageNet (TF.js, converted)', MOBILENET_035],
  ];
  const opened: Record<string, ImageBackbone> = {};
  for (const [label, reference] of backbones) {
    const backbone = await openImageBackbone(reference, { cacheDir });
    opened[reference] = backbone;
    const rate = await timeForward(backbone, 16);
    line(`${label}: forward`, `${rate.toFixed(1)} img/s`, reference === 'builtin:mobilenet-v2-1.0' ? '(target ≥ 80)' : '');
    const result = await extractFeatures(backbone, items);
    // Which builtin is the best default: frozen features + the default linear head, validation accuracy.
    const rowsOf = (inTrain: boolean): FeatureSet => {
      const rows = Array.from(result.itemOfRow.keys()).filter((r) => result.itemOfRow[r]! < dataset.train.length === inTrain);
      const features = new Float32Array(rows.length * result.dim);
      rows.forEach((r, i) => features.set(asDense(result.features).subarray(r * result.dim, (r + 1) * result.dim), i * result.dim));
      return { features, labels: Int32Array.from(rows, (r) => items[result.itemOfRow[r]!]!.label), dim: result.dim, numClasses: 2 };
    };
    const validation = rowsOf(false);
    const { head } = fitHead(rowsOf(true), validation, { head: 'linear' });
    const p = head.predictProba(validation.features);
    const accuracy = validation.labels.reduce((n, label, i) => n + Number((p[i * 2 + 1]! > p[i * 2]! ? 1 : 0) === label), 0) / validation.labels.length;
    line(`${label}: extraction`, `${(items.length / result.seconds).toFixed(1)} img/s`, `${result.dim}-d, linear head val accuracy ${accuracy.toFixed(3)}`);
  }

  section('The same α=0.35 model through @tensorflow/tfjs (wasm backend), batch 16');
  await tf.setBackend('wasm');
  await tf.ready();
  const source = await readTfjsModelFolder(join(MOBILENET_035, 'model.json'));
  const tfModel = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: source.modelJson.modelTopology,
      weightSpecs: source.modelJson.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights),
      weightData: source.weightData,
    }),
  );
  const x = tf.randomUniform([16, 224, 224, 3], -1, 1);
  (tfModel.predict(x) as tf.Tensor).dataSync();
  let runs = 0;
  const tfStart = performance.now();
  while (performance.now() - tfStart < 5000 || runs < 2) {
    (tfModel.predict(x) as tf.Tensor).dataSync();
    runs++;
  }
  const tfRate = (runs * 16) / ((performance.now() - tfStart) / 1000);
  const ortRate = await timeForward(opened[MOBILENET_035]!, 16);
  line('TF.js wasm α=0.35', `${tfRate.toFixed(1)} img/s`);
  line('onnxruntime-node α=0.35 (same weights)', `${ortRate.toFixed(1)} img/s`, `${(ortRate / tfRate).toFixed(1)}× TF.js wasm`);

  section('Head training on hymenoptera features (default backbone, 245 train / 153 val)');
  const backbone = opened['builtin:mobilenet-v2-1.4']!;
  const trainFeatures = await extractFeatures(backbone, dataset.train);
  const valFeatures = await extractFeatures(backbone, dataset.validation);
  const asSet = (f: typeof trainFeatures, source: typeof dataset.train): FeatureSet => ({
    features: f.features,
    labels: Int32Array.from(f.itemOfRow, (i) => source[i]!.label),
    dim: f.dim,
    numClasses: 2,
  });
  const train = asSet(trainFeatures, dataset.train);
  const validation = asSet(valFeatures, dataset.validation);
  for (const [label, options] of [
    ['linear, AdamW (default)', { head: 'linear' }],
    ['linear, L-BFGS', { head: 'linear', optimizer: 'lbfgs' }],
    ['MLP, AdamW', { head: 'mlp' }],
    ['nearest centroid', { head: 'centroid' }],
    ['k-NN', { head: 'knn' }],
  ] as const) {
    const fit = fitHead(train, validation, options);
    const probabilities = fit.head.predictProba(validation.features);
    let correct = 0;
    for (let i = 0; i < validation.labels.length; i++) {
      const predicted = probabilities[i * 2]! >= probabilities[i * 2 + 1]! ? 0 : 1;
      if (predicted === validation.labels[i]) correct++;
    }
    line(label, `${(fit.seconds * 1000).toFixed(0)} ms`, `val accuracy ${(correct / validation.labels.length).toFixed(3)}`);
  }
  for (const b of Object.values(opened)) await b.dispose();

  section('End-to-end `headstart train <hymenoptera>` (built CLI, default backbone), wall time');
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')]);
  const e2eCache = await mkdtemp(join(tmpdir(), 'headstart-bench-e2e-'));
  const out = join(e2eCache, 'model');
  const runTrain = () => {
    const start = performance.now();
    const result = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'train', HYMENOPTERA, '--cache-dir', e2eCache, '--out', out, '--quiet', '--json'], { encoding: 'utf8' });
    const seconds = (performance.now() - start) / 1000;
    if (result.status !== 0) throw new Error(`headstart train failed: ${result.stderr}`);
    return { seconds, accuracy: JSON.parse(result.stdout).metrics.validation.accuracy as number };
  };
  const cold = runTrain();
  const warm = runTrain();
  line('cold cache (includes TF.js→ONNX conversion)', `${cold.seconds.toFixed(2)} s`, `(target ≤ 15 s) val accuracy ${cold.accuracy.toFixed(3)}`);
  line('warm cache (features cached)', `${warm.seconds.toFixed(2)} s`, '(target ≤ 2 s)');

  section(`ResNet-18 forward, batch 16, ${THREADS} threads: onnxruntime-node vs PyTorch CPU (same architecture and weights)`);
  const resnet = await ImageBackbone.open(await readHfImageModel(join(SHARED, 'models/resnet-18-random'), 'resnet-18-random'), THREADS);
  const ortResnet = await timeForward(resnet, 16, 6);
  await resnet.dispose();
  line('onnxruntime-node', `${ortResnet.toFixed(1)} img/s`);
  if (!existsSync('/usr/bin/python3') || spawnSync('/usr/bin/python3', ['-c', 'import torch, torchvision']).status !== 0) {
    line('PyTorch', 'skipped', '(Debian python3-torch / python3-torchvision not installed)');
  } else {
    const torch = spawnSync(
      '/usr/bin/python3',
      [join(ROOT, 'bench/torch_forward.py'), join(SHARED, 'models/fixtures-src'), 'resnet-18', '16', String(THREADS), '6'],
      { encoding: 'utf8', env: { ...process.env, ...TUNED_TORCH_ENV } },
    );
    if (torch.status !== 0) {
      line('PyTorch', 'failed', torch.stderr.trim().split('\n').pop() ?? '');
    } else {
      const result = JSON.parse(torch.stdout.trim().split('\n').pop()!);
      line(`PyTorch ${result.torch} (jit frozen + optimize_for_inference, tuned env)`, `${result.images_per_second.toFixed(1)} img/s`);
      line('ratio onnxruntime / PyTorch', `${(ortResnet / result.images_per_second).toFixed(2)}×`);
    }
  }
}

await main();
// Ship it: export parity and int8 accuracy, then the HTTP server under load (bench/ship.ts).
await shipBench();
// Static int8 export against fp32 and onnxruntime's quantize_static: speed and accuracy (bench/quantize.ts).
await quantizeBench();
// Text encoders' speed and the text targets, TF-IDF beside (bench/text.ts).
await textBench();
// Fine-tuning inside the backbone: training-step speed against PyTorch, hymenoptera frozen vs unfrozen, the scratch CNN (bench/finetune.ts).
await fineTuneBench();
// Audio: speech-embedding extraction speed on FSDD, the official-split accuracy, speakers held out (bench/audio.ts).
await audioBench();
// Text generation: GPT-2 124M decode and training steps against PyTorch, fine-tuning gpt2-tiny-news on fortunes (bench/generate.ts).
await generateBench();

// Detection: the builtin CenterNet's speed, detect end to end, the dataset readers (bench/detect.ts).
await detectBench();

// Explanations: Grad-CAM against one prediction, integrated gradients with 32 steps (bench/explain.ts).
await explainBench();
// Feature extraction on a BullMQ queue: overhead per image, images/s with 1 and 2 workers against in-process (bench/queue.ts).
await queueBench();
