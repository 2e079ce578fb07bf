/**
 * Whole-model gradients and one optimiser step against PyTorch 1.13, from the numbers committed in
 * test/fixtures/autodiff (written by tools/autodiff-torch-reference.py, so CI needs no PyTorch):
 * a small CNN (exported to ONNX by the same script), ViT-tiny and BERT-tiny under a linear head, and
 * the text fine-tuning graph (BERT-tiny pooled in-graph at a fixed padded length).
 */
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { appendLinearHead } from '../src/autodiff/head.js';
import { readTrainableModel, type TrainableModel } from '../src/autodiff/model.js';
import { buildTrainingGraph, type OptimizerSpec } from '../src/autodiff/training-graph.js';
import { TrainingSession, type StepResult } from '../src/autodiff/training-session.js';
import { ort } from '../src/backbones/onnx-session.js';
import { openTextBackbone } from '../src/backbones/text-resolve.js';
import type { Dataset } from '../src/data/dataset.js';
import { readTextBackboneGraph } from '../src/finetune/text-graph.js';
import { SHARED } from './helpers/images.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/autodiff/', import.meta.url));

interface ParameterReference {
  torch: string;
  onnx: string;
  size: number;
  gradNorm: number;
  gradDotPattern: number;
  indices: number[];
  grad: number[];
  afterAdamW: number[];
  afterSgd: number[];
}

interface Reference {
  batch: number;
  classes: number;
  labelSmoothing: number;
  labels: number[];
  adamw: { lr: number; weight_decay: number };
  sgd: { lr: number; momentum: number; weight_decay: number };
  loss: number;
  logits: number[];
  /** Images: pixels from pattern(); BERT: token ids, attention mask and token types as given. */
  input: { shape: number[]; pattern?: { scale: number; offset: number }; ids?: number[]; attentionMask?: number[]; tokenTypeIds?: number[] };
  head?: { weightPattern: { scale: number; offset: number } };
  parameters: ParameterReference[];
  pooling?: { pooling: 'mean' | 'cls'; normalize: boolean };
  trainModeBatchNorm?: { loss: number; momentum: number; runningMean: number[]; runningVar: number[]; gradients: Record<string, number[]> };
}

/** The script's pattern(): ((i·7919 + 13) mod 2003)/1001.5 − 1, in float64, then float32. */
function pattern(count: number, scale = 1, offset = 0): Float32Array {
  return Float32Array.from({ length: count }, (_, k) => ((((k + offset) * 7919 + 13) % 2003) / 1001.5 - 1) * scale);
}

/**
 * ‖ours − theirs‖ / max(‖theirs‖, floor). The floor keeps gradients that are zero in exact
 * arithmetic (attention's key bias: softmax ignores a shift shared by all keys) from comparing
 * float32 round-off with round-off.
 */
const relativeL2 = (ours: ArrayLike<number>, theirs: ArrayLike<number>, floor = 1e-30) => {
  let error = 0;
  let norm = 0;
  for (let i = 0; i < theirs.length; i++) {
    error += (ours[i]! - theirs[i]!) ** 2;
    norm += theirs[i]! ** 2;
  }
  return Math.sqrt(error) / Math.max(Math.sqrt(norm), floor);
};

async function stepOnce(
  model: TrainableModel,
  logits: string,
  reference: Reference,
  optimizer: OptimizerSpec,
  lr: number,
  batchNormStatistics: 'frozen' | 'update' = 'frozen',
): Promise<{ result: StepResult; after: Map<string, Float32Array> }> {
  const training = buildTrainingGraph({
    graph: model.graph,
    info: model.info,
    logits,
    // torch.optim decays every parameter unless told otherwise.
    params: reference.parameters.map((p) => ({ name: p.onnx, decay: true })),
    optimizer,
    origin: 'reference',
    outputGradients: true,
    batchNormStatistics,
  });
  const session = await TrainingSession.create(training, (name) => model.graph.floatInitializer(name)!, 'reference');
  const { batch, classes, labels, labelSmoothing } = reference;
  const targets = new Float32Array(batch * classes).fill(labelSmoothing / classes);
  labels.forEach((label, n) => (targets[n * classes + label]! += 1 - labelSmoothing));
  const result = await session.step(inputsOf(reference), new ort.Tensor('float32', targets, [batch, classes]), lr);
  const after = session.snapshot();
  await session.release();
  return { result, after };
}

/** The graph inputs the reference ran on. */
function inputsOf(reference: Reference): Record<string, ort.Tensor> {
  const { shape, pattern: pixels, ids, attentionMask, tokenTypeIds } = reference.input;
  if (pixels) return { pixel_values: new ort.Tensor('float32', pattern(shape.reduce((a, b) => a * b, 1), pixels.scale, pixels.offset), shape) };
  const int64 = (values: number[]) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), shape);
  return { input_ids: int64(ids!), attention_mask: int64(attentionMask!), token_type_ids: int64(tokenTypeIds!) };
}

const report: string[] = [];
const ADAM_EPSILON = 1e-8;

async function compare(name: string, model: TrainableModel, logits: string, reference: Reference, tolerance: { grad: number; step: number }) {
  const adamw = await stepOnce(model, logits, reference, { kind: 'adamw', weightDecay: reference.adamw.weight_decay }, reference.adamw.lr);
  const sgd = await stepOnce(model, logits, reference, { kind: 'sgd', momentum: reference.sgd.momentum, weightDecay: reference.sgd.weight_decay }, reference.sgd.lr);
  expect(adamw.result.loss).toBeCloseTo(reference.loss, 5);
  expect(relativeL2(adamw.result.logits, reference.logits)).toBeLessThan(1e-5);

  // A millionth of the largest parameter gradient: far above float32 round-off, far below any real gradient.
  const floor = 1e-6 * Math.max(...reference.parameters.map((p) => p.gradNorm));
  let worstGrad = 0;
  let worstNorm = 0;
  let worstDot = 0;
  let worstAdamW = 0;
  let worstSgd = 0;
  for (const parameter of reference.parameters) {
    const grad = adamw.result.gradients!.get(parameter.onnx)!;
    expect(grad.length, parameter.torch).toBe(parameter.size);
    const sampled = parameter.indices.map((i) => grad[i]!);
    const sampledNorm = Math.sqrt(parameter.grad.reduce((s, g) => s + g * g, 0));
    worstGrad = Math.max(worstGrad, relativeL2(sampled, parameter.grad, floor * Math.sqrt(parameter.indices.length / parameter.size) + (sampledNorm === 0 ? 1e-30 : 0)));
    const norm = Math.sqrt(grad.reduce((s, g) => s + g * g, 0));
    worstNorm = Math.max(worstNorm, Math.abs(norm - parameter.gradNorm) / Math.max(parameter.gradNorm, floor));
    const probe = pattern(grad.length, 1, 17);
    const dot = grad.reduce((s, g, i) => s + g * probe[i]!, 0);
    worstDot = Math.max(worstDot, Math.abs(dot - parameter.gradDotPattern) / (Math.max(parameter.gradNorm, floor) * Math.sqrt(grad.length)));
    // Steps are compared in units of the learning rate: how far each weight moved.
    const initial = model.graph.floatInitializer(parameter.onnx)!;
    // Adam's first step is g/(|g| + ε) per element: where |g| is round-off (below 100·ε) it is noise.
    for (const [k, i] of parameter.indices.entries()) {
      if (Math.abs(parameter.grad[k]!) < 100 * ADAM_EPSILON) continue;
      const moved = (adamw.after.get(parameter.onnx)![i]! - initial[i]!) / reference.adamw.lr;
      const expected = (parameter.afterAdamW[k]! - initial[i]!) / reference.adamw.lr;
      worstAdamW = Math.max(worstAdamW, Math.abs(moved - expected));
    }
    const movedSgd = parameter.indices.map((i) => sgd.after.get(parameter.onnx)![i]! - initial[i]!);
    const expectedSgd = parameter.indices.map((i, k) => parameter.afterSgd[k]! - initial[i]!);
    worstSgd = Math.max(worstSgd, relativeL2(movedSgd, expectedSgd, reference.sgd.lr * floor));
  }
  report.push(
    `${name}: loss ${adamw.result.loss.toFixed(6)} (torch ${reference.loss.toFixed(6)}); worst over ${reference.parameters.length} parameters: ` +
      `gradient rel. L2 ${worstGrad.toExponential(1)}, norm ${worstNorm.toExponential(1)}, pattern dot ${worstDot.toExponential(1)}; ` +
      `AdamW step max |Δ − Δtorch|/lr ${worstAdamW.toExponential(1)}; SGD step rel. L2 ${worstSgd.toExponential(1)}`,
  );
  expect(worstGrad).toBeLessThan(tolerance.grad);
  expect(worstNorm).toBeLessThan(tolerance.grad);
  expect(worstDot).toBeLessThan(tolerance.grad);
  expect(worstAdamW).toBeLessThan(tolerance.step);
  expect(worstSgd).toBeLessThan(tolerance.grad);
}

describe('gradients and optimiser steps match PyTorch (1.13; BERT 2.x)', () => {
  afterAll(() => console.log(report.join('\n')));

  it('small CNN: Conv (strided, depthwise, dilated, 1×1), Clip, BatchNormalization, Relu, MaxPool, Tanh, Add, Pad, AveragePool, ReduceMean, Gemm', async () => {
    const reference = JSON.parse(await readFile(join(FIXTURES, 'small-cnn.json'), 'utf8')) as Reference;
    const model = await readTrainableModel(await readFile(join(FIXTURES, 'small-cnn.onnx')), 'small-cnn.onnx');
    await compare('small CNN', model, 'logits', reference, { grad: 1e-4, step: 1e-3 });
  });

  it('small CNN with BatchNorm in train mode: batch statistics in the gradients, running statistics updated', async () => {
    const reference = JSON.parse(await readFile(join(FIXTURES, 'small-cnn.json'), 'utf8')) as Reference;
    const model = await readTrainableModel(await readFile(join(FIXTURES, 'small-cnn.onnx')), 'small-cnn.onnx');
    const expected = reference.trainModeBatchNorm!;
    const { result, after } = await stepOnce(model, 'logits', reference, { kind: 'sgd', momentum: 0, weightDecay: 0 }, 0, 'update');
    expect(result.loss).toBeCloseTo(expected.loss, 5);
    const floor = 1e-6 * Math.max(...Object.values(expected.gradients).map((g) => Math.hypot(...g)));
    let worst = 0;
    for (const [name, grad] of Object.entries(expected.gradients)) worst = Math.max(worst, relativeL2(result.gradients!.get(name)!, grad, floor));
    expect(worst).toBeLessThan(1e-4);
    expect(relativeL2(after.get('bn1.running_mean')!, expected.runningMean)).toBeLessThan(1e-5);
    expect(relativeL2(after.get('bn1.running_var')!, expected.runningVar)).toBeLessThan(1e-5);
    report.push(`small CNN, train-mode BatchNorm: loss ${result.loss.toFixed(6)} (torch ${expected.loss.toFixed(6)}); worst gradient rel. L2 ${worst.toExponential(1)}`);
  });

  it('ViT-tiny (4 layers, decomposed LayerNorm, attention, GELU) under a linear head, every weight trained', async () => {
    const reference = JSON.parse(await readFile(join(FIXTURES, 'vit-tiny.json'), 'utf8')) as Reference;
    const model = await readTrainableModel(await readFile(join(SHARED, 'models/vit-tiny-random/onnx/model.onnx')), 'vit-tiny-random');
    const head = appendLinearHead(
      model,
      'pooler_output',
      { weight: pattern(reference.classes * 192, reference.head!.weightPattern.scale, reference.head!.weightPattern.offset), bias: new Float32Array(reference.classes) },
      { weight: 'head.weight', bias: 'head.bias' },
    );
    await compare('ViT-tiny', model, head.logits, reference, { grad: 1e-3, step: 1e-3 });
  });

  it('BERT-tiny (2 layers, embeddings by Gather, padded batch with the additive mask bias, token types, LayerNorm, GELU, attention, tanh pooler) under a linear head, every weight trained', async () => {
    const reference = JSON.parse(await readFile(join(FIXTURES, 'bert-tiny.json'), 'utf8')) as Reference;
    // Probed at the reference's sequence length, so every tensor's shape is known but the batch.
    const length = reference.input.shape[1]!;
    const feeds = (batch: number) => {
      const zeros = () => new ort.Tensor('int64', new BigInt64Array(batch * length), [batch, length]);
      return { input_ids: zeros(), attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * length).fill(1n), [batch, length]), token_type_ids: zeros() };
    };
    const model = await readTrainableModel(await readFile(join(SHARED, 'models/bert-tiny-random/onnx/model.onnx')), 'bert-tiny-random', feeds);
    const head = appendLinearHead(
      model,
      'pooler_output',
      { weight: pattern(reference.classes * 128, reference.head!.weightPattern.scale, reference.head!.weightPattern.offset), bias: new Float32Array(reference.classes) },
      { weight: 'head.weight', bias: 'head.bias' },
    );
    await compare('BERT-tiny', model, head.logits, reference, { grad: 1e-3, step: 1e-3 });
  });

  // The graph `headstart train --unfreeze` trains on texts (src/finetune/text-graph.ts), built by
  // the library itself: padded to the longest text (here 10 words + [CLS] + [SEP] = the fixture's 12),
  // pooled in-graph as the backbone pools.
  for (const [file, label] of [
    ['bert-tiny-text-mean.json', 'mean over the attention mask'],
    ['bert-tiny-text-cls-l2.json', 'first token, L2-normalised (Max and ReduceSumSquare gradients)'],
  ] as const) {
    it(`BERT-tiny text fine-tuning graph: fixed padded length, ${label}, under a linear head, every weight trained but the pruned pooler`, async () => {
      const reference = JSON.parse(await readFile(join(FIXTURES, file), 'utf8')) as Reference;
      const backbone = await openTextBackbone(join(SHARED, 'models/bert-tiny-random'), { cacheDir: tmpdir(), preprocessing: reference.pooling });
      try {
        const text = 'the cat sat on the mat and the dog ran';
        const dataset = { train: [{ load: async () => text }], validation: [] } as unknown as Dataset<string>;
        const graph = await readTextBackboneGraph(backbone, dataset);
        expect(graph.preprocessing).toMatchObject({ sequenceLength: reference.input.shape[1], pooling: reference.pooling!.pooling, normalize: reference.pooling!.normalize });
        const head = appendLinearHead(
          graph.model,
          graph.features,
          { weight: pattern(reference.classes * 128, reference.head!.weightPattern.scale, reference.head!.weightPattern.offset), bias: new Float32Array(reference.classes) },
          { weight: 'head.weight', bias: 'head.bias' },
        );
        await compare(`BERT-tiny text graph (${label})`, graph.model, head.logits, reference, { grad: 1e-3, step: 1e-3 });
      } finally {
        await backbone.dispose();
      }
    });
  }
});
