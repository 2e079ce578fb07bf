/**
 * Fine-tuning inside the backbone, for `npm run bench` (and alone: `npx tsx bench/finetune.ts`):
 * - speed: one training step of the last two blocks (and of the whole network) plus a linear head,
 *   headstart (one ONNX training graph on onnxruntime-node) against PyTorch 2.x CPU eager on the
 *   same graph and batch, measured in the same run (torch.compile too with
 *   HEADSTART_BENCH_TORCH_COMPILE=1: it compiles for minutes on this machine); and backward+update
 *   against forward throughput;
 * - accuracy, MobileNetV2 α=0.35, mean ± std over three seeds: the frozen-backbone head against the
 *   default fine-tuning recipe on MNIST digits and on spectrogram pictures of spoken digits (two
 *   domains ImageNet's features fit poorly), and `unfreeze: 'auto'` on hymenoptera (where they fit);
 * - the small CNN trained from scratch on the same data.
 * Nothing is asserted; the numbers are printed with their targets.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBlocks, weightsOfTopBlocks } from '../src/autodiff/blocks.js';
import { appendLinearHead } from '../src/autodiff/head.js';
import { readTrainableModel } from '../src/autodiff/model.js';
import { partitionModel } from '../src/autodiff/partition.js';
import { nchwcBlockSize } from '../src/autodiff/nchwc.js';
import { buildTrainingGraph } from '../src/autodiff/training-graph.js';
import { TrainingSession } from '../src/autodiff/training-session.js';
import { ort } from '../src/backbones/onnx-session.js';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { readImageFolder } from '../src/data/image-folder.js';
import type { UnfreezeChoice } from '../src/finetune/classifier-hooks.js';
import type { FineTuneOptions } from '../src/finetune/fine-tune.js';
import { trainScratchCnn } from '../src/finetune/scratch-cnn.js';
import { mnistDigitFolder, spokenDigitSpectrogramFolder } from './finetune-data.js';
import { Rng } from '../src/util/rng.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SHARED = join(ROOT, '../shared');
const HYMENOPTERA = join(SHARED, 'data/images/hymenoptera');
const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const THREADS = availableParallelism();
const BATCH = 32;
const CLASSES = 2;
const SEEDS = [0, 1, 2];
const TUNED_TORCH_ENV = {
  GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184',
  OMP_WAIT_POLICY: 'PASSIVE',
};

const line = (label: string, value: string, note = '') => console.log(`${label.padEnd(58)} ${value.padStart(14)}  ${note}`);
const section = (title: string) => console.log(`\n## ${title}`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Median over three windows of the wall milliseconds per call (this VM's speed wanders), and of the
 * CPU milliseconds per call over all threads (what the work costs, whatever else runs on the cores).
 */
async function timeCalls(run: () => Promise<unknown>, seconds: number): Promise<{ ms: number; cpuMs: number }> {
  for (let i = 0; i < 3; i++) await run();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let w = 0; w < 3; w++) {
    let runs = 0;
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    while (performance.now() - start < seconds * 1000 || runs < 3) {
      await run();
      runs++;
    }
    const used = process.cpuUsage(cpuStart);
    wall.push((performance.now() - start) / runs);
    cpu.push((used.user + used.system) / 1000 / runs);
  }
  return { ms: median(wall), cpuMs: median(cpu) };
}

/** The training step of the last two blocks (or all) + a linear head of a fixture model, with a random batch. */
export async function fixtureStep(model: string, nchwcBlock: number | undefined, scope: Scope) {
  const trainable = await readTrainableModel(await readFile(join(SHARED, 'models', model, 'onnx/model.onnx')), model);
  const blocks = findBlocks(trainable, 'pooler_output');
  const weights = weightsOfTopBlocks(blocks, scope === 'all' ? 'all' : 2);
  const partition = partitionModel(trainable, 'pooler_output', weights);
  const rng = new Rng(0);
  const dim = trainable.info.get('pooler_output')!.dims![1]!;
  const head = appendLinearHead({ graph: partition.suffix, info: partition.info, origin: model }, 'pooler_output', {
    weight: Float32Array.from({ length: CLASSES * dim }, () => rng.normal() / Math.sqrt(dim)),
    bias: new Float32Array(CLASSES),
  });
  const params = [...weights, head.weight, head.bias].map((name) => ({ name }));
  const training = buildTrainingGraph({ graph: partition.suffix, info: partition.info, logits: head.logits, params, optimizer: { kind: 'adamw', weightDecay: 0.01 }, origin: model, nchwcBlock });
  const batch = Object.fromEntries(
    partition.frontier.map((tensor) => {
      const size = tensor.dims.reduce((a, b) => a * b, 1);
      return [tensor.name, new ort.Tensor('float32', Float32Array.from({ length: BATCH * size }, () => Math.max(0, rng.normal())), [BATCH, ...tensor.dims])];
    }),
  );
  const targets = new ort.Tensor('float32', Float32Array.from({ length: BATCH * CLASSES }, (_, i) => (i % CLASSES === Math.floor(i / CLASSES) % CLASSES ? 0.95 : 0.05)), [BATCH, CLASSES]);
  return { training, partition, params, batch, targets, weight: (name: string) => partition.suffix.floatInitializer(name)! };
}

/** headstart's step and forward times for the last two blocks (or all) + a linear head of a fixture model. */
async function ourStep(model: string, seconds: number, nchwcBlock: number | undefined, scope: Scope) {
  const { training, partition, params, batch, targets, weight } = await fixtureStep(model, nchwcBlock, scope);
  const session = await TrainingSession.create(training, weight, model, THREADS);
  const step = await timeCalls(() => session.step(batch, targets, 1e-4), seconds);
  const forward = await timeCalls(() => session.evaluate(batch), seconds);
  // What a step copies besides compute: every trained value and its two Adam moments, in and out.
  const values = params.reduce((sum, p) => sum + partition.suffix.initializers.get(p.name)!.data.length, 0);
  const buffer = new Float32Array(values * 3);
  const copy = await timeCalls(async () => buffer.slice(), 0.2);
  await session.release();
  return { stepMs: step.ms, stepCpuMs: step.cpuMs, forwardMs: forward.ms, copyMs: copy.ms, values, cut: partition.frontier.map((tensor) => `[${tensor.dims}]`).join(' + ') };
}

export type Scope = 'top2' | 'all';

/** PyTorch 2.x (CPU) of /work/pyenv, the anchor; Debian's 1.13 was the previous one. */
const TORCH_PYTHON = process.env.HEADSTART_TORCH_PYTHON ?? '/work/pyenv/bin/python';
const TORCH_COMPILE = process.env.HEADSTART_BENCH_TORCH_COMPILE === '1';

function torchStep(model: string, seconds: number, scope: Scope): { step_ms: number; step_cpu_ms: number; forward_ms: number; eager_step_ms: number; mode: string; torch: string } | string {
  if (!existsSync(TORCH_PYTHON) || spawnSync(TORCH_PYTHON, ['-c', 'import torch']).status !== 0) return `skipped (no PyTorch at ${TORCH_PYTHON})`;
  const args = [join(ROOT, 'bench/torch_finetune_step.py'), join(SHARED, 'models/fixtures-src'), model, String(BATCH), String(THREADS), String(seconds), scope, ...(TORCH_COMPILE ? ['compile'] : [])];
  const result = spawnSync(TORCH_PYTHON, args, {
    encoding: 'utf8',
    env: { ...process.env, ...TUNED_TORCH_ENV },
  });
  if (result.status !== 0) return `failed: ${result.stderr.trim().split('\n').pop() ?? ''}`;
  return JSON.parse(result.stdout.trim().split('\n').pop()!);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => Math.sqrt(xs.reduce((s, x) => s + (x - mean(xs)) ** 2, 0) / Math.max(1, xs.length - 1));
const meanStd = (xs: number[]) => `${mean(xs).toFixed(3)} ± ${std(xs).toFixed(3)}`;

export async function fineTuneBench(): Promise<void> {
  await fineTuneSpeedBench();
  await fineTuneAccuracyBench();
}

/** One training step, headstart against PyTorch 2.x (alone: `npx tsx bench/finetune.ts speed`). */
export async function fineTuneSpeedBench(): Promise<void> {
  const nchwcBlock = await nchwcBlockSize();
  section(`Fine-tuning speed: one AdamW step of the last 2 blocks (or all) + linear head, batch ${BATCH}, ${THREADS} threads, same graph (BN folded) in both; convolutions on trained weights ${nchwcBlock ? `in onnxruntime's NCHWc layout (block ${nchwcBlock})` : 'as plain ONNX Conv (no NCHWc kernels here)'}; PyTorch 2.x eager${TORCH_COMPILE ? ' and torch.compile' : ''}`);
  for (const [model, torchName] of [
    ['mobilenet-v2-random', 'mobilenet-v2'],
    ['resnet-18-random', 'resnet-18'],
  ] as const) {
    for (const scope of ['top2', 'all'] as const) {
      const name = `${model} ${scope === 'all' ? 'all' : 'last 2'}`;
      // Interleaved (ours, PyTorch, ours, PyTorch) so both see the same load; each side's faster pass counts.
      const ours = [];
      const torch = [];
      for (let pass = 0; pass < 2; pass++) {
        ours.push(await ourStep(model, 2, nchwcBlock, scope));
        torch.push(torchStep(torchName, 2, scope));
      }
      const fastest = ours.reduce((a, b) => (b.stepMs < a.stepMs ? b : a));
      const step = fastest.stepMs;
      const stepCpu = fastest.stepCpuMs;
      const forward = fastest.forwardMs;
      const first = ours[0]!;
      line(`${name}: headstart step (cut ${first.cut}, ${(first.values / 1e6).toFixed(2)} M trained)`, `${step.toFixed(1)} ms`, `CPU ${stepCpu.toFixed(0)} ms`);
      line(`${name}: headstart forward (same weights as inputs)`, `${forward.toFixed(1)} ms`, `backward+update ${(step - forward).toFixed(1)} ms`);
      line(`${name}: backward+update throughput / forward throughput`, `${(forward / (step - forward)).toFixed(2)}`, '(target ≥ 0.33)');
      const measured = torch.filter((t): t is Exclude<typeof t, string> => typeof t !== 'string');
      if (measured.length === 0) line(`${name}: PyTorch`, String(torch[0]));
      else {
        const torchFastest = measured.reduce((a, b) => (b.step_ms < a.step_ms ? b : a));
        const eager = Math.min(...measured.map((t) => t.eager_step_ms));
        line(`${name}: PyTorch ${torchFastest.torch} step (${torchFastest.mode}, tuned env)`, `${torchFastest.step_ms.toFixed(1)} ms`, `CPU ${torchFastest.step_cpu_ms.toFixed(0)} ms, forward ${torchFastest.forward_ms.toFixed(1)} ms; eager ${eager.toFixed(1)} ms`);
        line(`${name}: headstart step / PyTorch eager step`, `${(step / eager).toFixed(2)}×`, `(target ≤ 1.0; CPU time ${(stepCpu / torchFastest.step_cpu_ms).toFixed(2)}× against ${torchFastest.mode})`);
      }
    }
  }

}

/** Trains an image classifier per seed; validation accuracy, seconds, and what `unfreeze: 'auto'` kept. */
function seedRunner(cacheDir: string) {
  return async (data: string, options: { fineTune?: FineTuneOptions; augment?: number }, seeds = SEEDS) => {
    const result = { accuracy: [] as number[], seconds: [] as number[], kept: [] as string[] };
    for (const seed of seeds) {
      const started = performance.now();
      const classifier = await ImageClassifier.train({ data: await readImageFolder(data, { seed }), backbone: MOBILENET_035, cacheDir, seed, ...options });
      result.seconds.push((performance.now() - started) / 1000);
      result.accuracy.push(classifier.metrics.validation!.accuracy);
      const choice = classifier.manifest.training.unfreezeAuto as UnfreezeChoice | undefined;
      if (choice) result.kept.push(choice.kept);
      await classifier.dispose();
    }
    return result;
  };
}

/** The BatchNorm modes on MNIST digits, seed by seed interleaved (alone: `npx tsx bench/finetune.ts batchnorm`). */
export async function batchNormBench(): Promise<void> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'headstart-bench-finetune-'));
  const runSeeds = seedRunner(cacheDir);
  const data = await mnistDigitFolder(cacheDir, { train: 30, validation: 50 });
  section(`MNIST digits (30 per class, 500 validation), MobileNetV2 α=0.35, unfreeze 2: BatchNorm folded and frozen vs a trainable scale and shift per folded conv, seeds ${SEEDS.join(', ')}`);
  const modes = { frozen: { accuracy: [] as number[], seconds: [] as number[] }, affine: { accuracy: [] as number[], seconds: [] as number[] } };
  for (const seed of SEEDS) {
    for (const mode of ['frozen', 'affine'] as const) {
      const run = await runSeeds(data, { fineTune: { unfreeze: 2, batchNorm: mode } }, [seed]);
      modes[mode].accuracy.push(run.accuracy[0]!);
      modes[mode].seconds.push(run.seconds[0]!);
      console.log(`  seed ${seed} batchNorm ${mode}: ${run.accuracy[0]!.toFixed(3)} (${run.seconds[0]!.toFixed(0)} s)`);
    }
  }
  for (const mode of ['frozen', 'affine'] as const) line(`digits, unfreeze 2, batchNorm ${mode}: val accuracy`, meanStd(modes[mode].accuracy), `per seed ${modes[mode].accuracy.map((a) => a.toFixed(3)).join(', ')}; ${mean(modes[mode].seconds).toFixed(0)} s per run`);
  line('  affine − frozen', `${(100 * (mean(modes.affine.accuracy) - mean(modes.frozen.accuracy))).toFixed(1)} pts`);
}

/** Accuracy of the default recipe and of auto against the frozen head (alone: `npx tsx bench/finetune.ts accuracy`). */
export async function fineTuneAccuracyBench(): Promise<void> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'headstart-bench-finetune-'));
  const runSeeds = seedRunner(cacheDir);
  const report = (label: string, result: Awaited<ReturnType<typeof runSeeds>>, note = '') =>
    line(`${label}: val accuracy`, meanStd(result.accuracy), `per seed ${result.accuracy.map((a) => a.toFixed(3)).join(', ')}; ${mean(result.seconds).toFixed(1)} s per run${result.kept.length ? `; kept ${result.kept.join(', ')}` : ''}${note}`);
  const gain = (tuned: number[], frozen: number[], target: number) => line('  fine-tuned − frozen', `${(100 * (mean(tuned) - mean(frozen))).toFixed(1)} pts`, `(target ≥ +${target})`);

  // Where ImageNet features fit less well, the top blocks have something to learn.
  const domains = [
    ['MNIST digits from ../shared (30 per class for training, 50 for validation)', 'digits', await mnistDigitFolder(cacheDir, { train: 30, validation: 50 }), 5],
    ['spectrogram pictures of spoken digits (FSDD, 30 per class for training, the official 300-clip test set for validation)', 'spectrograms', await spokenDigitSpectrogramFolder(cacheDir, 5), 2],
  ] as const;
  for (const [title, label, data, target] of domains) {
    section(`${title}, MobileNetV2 α=0.35, seeds ${SEEDS.join(', ')}`);
    const frozen = await runSeeds(data, {});
    report(`${label}, frozen backbone, linear head`, frozen);
    const tuned = await runSeeds(data, { fineTune: { unfreeze: 2 } });
    report(`${label}, unfreeze 2 (defaults)`, tuned);
    gain(tuned.accuracy, frozen.accuracy, target);
    const auto = await runSeeds(data, { fineTune: { unfreeze: 'auto' } });
    report(`${label}, unfreeze auto`, auto);
  }

  section(`Hymenoptera (245 train / 153 val), MobileNetV2 α=0.35, where ImageNet features already fit: frozen head vs --unfreeze auto, seeds ${SEEDS.join(', ')}`);
  const frozen = await runSeeds(HYMENOPTERA, {});
  report('hymenoptera, frozen backbone, linear head', frozen);
  const auto = await runSeeds(HYMENOPTERA, { fineTune: { unfreeze: 'auto' } });
  report('hymenoptera, unfreeze auto', auto);
  line('  auto − frozen', `${(100 * (mean(auto.accuracy) - mean(frozen.accuracy))).toFixed(1)} pts`, '(target ≥ 0)');

  section('Small CNN from scratch on hymenoptera (64×64 pixels, 4 augmented views, early stopping on validation), seed 0');
  const scratch = await trainScratchCnn(await readImageFolder(HYMENOPTERA, { seed: 0 }), { seed: 0 });
  line('scratch CNN: val accuracy', scratch.metrics.validation.accuracy.toFixed(3), `${(scratch.parameters / 1e3).toFixed(0)} k weights, best epoch ${scratch.bestEpoch}/${scratch.history.length}, ${scratch.seconds.toFixed(0)} s`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const only = process.argv[2];
  await (only === 'speed' ? fineTuneSpeedBench() : only === 'accuracy' ? fineTuneAccuracyBench() : only === 'batchnorm' ? batchNormBench() : fineTuneBench());
}
