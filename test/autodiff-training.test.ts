/**
 * The training graph: AdamW and SGD updates against a hand-computed step, the error for an op
 * without a gradient rule, and the frozen-prefix split (prefix then suffix = the whole model).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findBlocks, weightsOfTopBlocks } from '../src/autodiff/blocks.js';
import { readTrainableModel } from '../src/autodiff/model.js';
import { partitionModel } from '../src/autodiff/partition.js';
import { probeTensorInfo } from '../src/autodiff/tensor-info.js';
import { buildTrainingGraph, type LossSpec, type OptimizerSpec } from '../src/autodiff/training-graph.js';
import { TrainingSession } from '../src/autodiff/training-session.js';
import { createSession, ort } from '../src/backbones/onnx-session.js';
import { convertTfjsToOnnx, readTfjsModelFolder } from '../src/backbones/tfjs/index.js';
import { attr, encodeModel, OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import { AdamW } from '../src/train/adamw.js';
import { Rng } from '../src/util/rng.js';
import { SHARED } from './helpers/images.js';

const [FEATURES, CLASSES] = [5, 3];

/** logits = x·Wᵀ + b, W and b trainable. */
async function linearModel(rng: Rng) {
  const graph = new OnnxGraph();
  const x = graph.addInput('x', [-1, FEATURES]);
  const weight = Float32Array.from({ length: CLASSES * FEATURES }, () => rng.normal() * 0.5);
  const bias = Float32Array.from({ length: CLASSES }, () => rng.normal() * 0.1);
  const w = graph.addFloatInitializer('W', [CLASSES, FEATURES], weight.slice());
  const b = graph.addFloatInitializer('b', [CLASSES], bias.slice());
  const logits = graph.addNode('Gemm', [x, w, b], { transB: attr.int(1) }, 'logits');
  graph.outputs = [{ name: logits, shape: [-1, CLASSES] }];
  const info = await probeTensorInfo(graph, 'linear');
  return { graph, info, logits, weight, bias };
}

/** Mean cross-entropy gradient of the linear model, in float64: dz = (softmax(z)·Σt − t)/n. */
function handGradient(params: Float64Array, xs: Float32Array, targets: Float32Array, n: number): Float64Array {
  const grad = new Float64Array(params.length);
  const biasOffset = CLASSES * FEATURES;
  for (let r = 0; r < n; r++) {
    const z = Array.from({ length: CLASSES }, (_, k) => {
      let s = params[biasOffset + k]!;
      for (let j = 0; j < FEATURES; j++) s += params[k * FEATURES + j]! * xs[r * FEATURES + j]!;
      return s;
    });
    const max = Math.max(...z);
    const exp = z.map((v) => Math.exp(v - max));
    const total = exp.reduce((a, v) => a + v, 0);
    const targetSum = Array.from({ length: CLASSES }, (_, k) => targets[r * CLASSES + k]!).reduce((a, v) => a + v, 0);
    for (let k = 0; k < CLASSES; k++) {
      const dz = ((exp[k]! / total) * targetSum - targets[r * CLASSES + k]!) / n;
      for (let j = 0; j < FEATURES; j++) grad[k * FEATURES + j]! += dz * xs[r * FEATURES + j]!;
      grad[biasOffset + k]! += dz;
    }
  }
  return grad;
}

function batch(rng: Rng, n: number) {
  const xs = Float32Array.from({ length: n * FEATURES }, () => rng.normal());
  // Smoothed one-hot targets (ε = 0.1), as fine-tuning feeds them.
  const targets = new Float32Array(n * CLASSES).fill(0.1 / CLASSES);
  for (let r = 0; r < n; r++) targets[r * CLASSES + rng.int(CLASSES)]! += 0.9;
  return { xs, targets };
}

async function runSteps(optimizer: OptimizerSpec, rates: number[]) {
  const rng = new Rng(3);
  const model = await linearModel(rng);
  const training = buildTrainingGraph({ graph: model.graph, info: model.info, logits: model.logits, params: [{ name: 'W' }, { name: 'b' }], optimizer, origin: 'linear' });
  const session = await TrainingSession.create(training, (name) => (name === 'W' ? model.weight : model.bias), 'linear', 1);
  const batches = rates.map((_, i) => batch(rng, 4 + i));
  for (const [i, rate] of rates.entries()) {
    const { xs, targets } = batches[i]!;
    const n = targets.length / CLASSES;
    await session.step({ x: new ort.Tensor('float32', xs, [n, FEATURES]) }, new ort.Tensor('float32', targets, [n, CLASSES]), rate);
  }
  const trained = [...session.weight('W'), ...session.weight('b')];
  await session.release();
  return { model, batches, trained };
}

describe('training graph', () => {
  it('AdamW steps match torch.optim.AdamW semantics computed by hand (decoupled decay on W, not on b)', async () => {
    const rates = [0.05, 0.02, 0.01];
    const { model, batches, trained } = await runSteps({ kind: 'adamw', weightDecay: 0.1 }, rates);
    const params = Float64Array.from([...model.weight, ...model.bias]);
    const adamw = new AdamW(params.length, CLASSES * FEATURES, 0.1);
    rates.forEach((rate, i) => {
      const { xs, targets } = batches[i]!;
      adamw.step(params, handGradient(params, xs, targets, targets.length / CLASSES), rate);
    });
    const moved = Math.max(...trained.map((v, i) => Math.abs(v - [...model.weight, ...model.bias][i]!)));
    expect(moved).toBeGreaterThan(0.01);
    for (let i = 0; i < params.length; i++) expect(trained[i]).toBeCloseTo(params[i]!, 5);
  });

  it('AdamW with decay towards the initial weights (L2-SP) matches a hand-computed step', async () => {
    const rates = [0.05, 0.02, 0.01];
    const decay = 0.5;
    const { model, batches, trained } = await runSteps({ kind: 'adamw', weightDecay: decay, decayTowards: 'initial' }, rates);
    const params = Float64Array.from([...model.weight, ...model.bias]);
    const initial = params.slice();
    const adam = new AdamW(params.length, CLASSES * FEATURES, 0);
    rates.forEach((rate, i) => {
      const { xs, targets } = batches[i]!;
      const grad = handGradient(params, xs, targets, targets.length / CLASSES);
      // θ ← θ − lr·λ·(θ − θ₀) on W, then the Adam step from the gradient at the old θ.
      for (let j = 0; j < CLASSES * FEATURES; j++) params[j]! -= rate * decay * (params[j]! - initial[j]!);
      adam.step(params, grad, rate);
    });
    for (let i = 0; i < params.length; i++) expect(trained[i]).toBeCloseTo(params[i]!, 5);
    // Plain decay would have pulled W towards zero: a measurably different result.
    const plain = (await runSteps({ kind: 'adamw', weightDecay: decay }, rates)).trained;
    expect(Math.max(...plain.map((v, i) => Math.abs(v - trained[i]!)))).toBeGreaterThan(1e-3);
  });

  it('SGD with momentum and coupled weight decay matches a hand-computed step', async () => {
    const rates = [0.1, 0.05];
    const momentum = 0.9;
    const decay = 0.01;
    const { model, batches, trained } = await runSteps({ kind: 'sgd', momentum, weightDecay: decay }, rates);
    const params = Float64Array.from([...model.weight, ...model.bias]);
    const buffer = new Float64Array(params.length);
    rates.forEach((rate, i) => {
      const { xs, targets } = batches[i]!;
      const grad = handGradient(params, xs, targets, targets.length / CLASSES);
      for (let j = 0; j < params.length; j++) {
        const g = grad[j]! + (j < CLASSES * FEATURES ? decay * params[j]! : 0);
        buffer[j] = momentum * buffer[j]! + g;
        params[j]! -= rate * buffer[j]!;
      }
    });
    for (let i = 0; i < params.length; i++) expect(trained[i]).toBeCloseTo(params[i]!, 5);
  });

  it('a custom loss (weighted squared error, with its own inputs) trains by SGD exactly as by hand, and returns extra outputs', async () => {
    const rng = new Rng(5);
    const model = await linearModel(rng);
    const probabilities = model.graph.addNode('Sigmoid', [model.logits], {}, 'probabilities');
    model.info.set(probabilities, { dtype: 'float32', dims: [-1, CLASSES] });
    const loss: LossSpec = {
      name: 'weighted squared error',
      build(b) {
        const goal = b.graph.addInput('goal', [-1, CLASSES], 'float32');
        const weight = b.graph.addInput('weight', [-1, CLASSES], 'float32');
        for (const name of [goal, weight]) b.info.set(name, { dtype: 'float32', dims: [-1, CLASSES] });
        const dims = [-1, CLASSES];
        const error = b.op('Sub', [model.logits, goal], {}, 'error', dims);
        const weighted = b.op('Mul', [weight, b.op('Mul', [error, error], {}, 'squared', dims)], {}, 'weighted', dims);
        const sum = b.op('ReduceSum', [weighted], { keepdims: attr.int(0) }, 'squared_error', []);
        return { loss: b.op('Mul', [sum, b.scalar(0.5, 'float32')], {}, 'loss', []), inputs: [{ name: goal, dims: [-1, CLASSES], dtype: 'float32' }, { name: weight, dims: [-1, CLASSES], dtype: 'float32' }] };
      },
    };
    const training = buildTrainingGraph({ graph: model.graph, info: model.info, logits: model.logits, extraOutputs: [probabilities], loss, params: [{ name: 'W' }, { name: 'b' }], optimizer: { kind: 'sgd', weightDecay: 0, momentum: 0 }, origin: 'linear' });
    expect(training.targets).toBe('');
    expect(training.lossInputs.map((input) => input.name)).toEqual(['goal', 'weight']);
    const session = await TrainingSession.create(training, (name) => (name === 'W' ? model.weight : model.bias), 'linear', 1);
    const n = 4;
    const xs = Float32Array.from({ length: n * FEATURES }, () => rng.normal());
    const goal = Float32Array.from({ length: n * CLASSES }, () => rng.normal());
    const weight = Float32Array.from({ length: n * CLASSES }, () => rng.next());
    const rate = 0.05;
    const result = await session.step({ x: new ort.Tensor('float32', xs, [n, FEATURES]) }, { goal: new ort.Tensor('float32', goal, [n, CLASSES]), weight: new ort.Tensor('float32', weight, [n, CLASSES]) }, rate);
    // By hand: z = xWᵀ + b, L = ½Σ w(z − g)², ∂L/∂z = w(z − g).
    const expectedW = Float64Array.from(model.weight);
    const expectedB = Float64Array.from(model.bias);
    let expectedLoss = 0;
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < CLASSES; k++) {
        let z = model.bias[k]!;
        for (let j = 0; j < FEATURES; j++) z += model.weight[k * FEATURES + j]! * xs[r * FEATURES + j]!;
        expect(result.extra!.get(probabilities)![r * CLASSES + k]).toBeCloseTo(1 / (1 + Math.exp(-z)), 5);
        const dz = weight[r * CLASSES + k]! * (z - goal[r * CLASSES + k]!);
        expectedLoss += 0.5 * dz * (z - goal[r * CLASSES + k]!);
        for (let j = 0; j < FEATURES; j++) expectedW[k * FEATURES + j]! -= rate * dz * xs[r * FEATURES + j]!;
        expectedB[k]! -= rate * dz;
      }
    }
    expect(result.loss).toBeCloseTo(expectedLoss, 4);
    session.weight('W').forEach((v, i) => expect(v).toBeCloseTo(expectedW[i]!, 5));
    session.weight('b').forEach((v, i) => expect(v).toBeCloseTo(expectedB[i]!, 5));
    const evaluated = await session.evaluateOutputs({ x: new ort.Tensor('float32', xs, [n, FEATURES]) });
    expect([...evaluated.keys()]).toEqual([model.logits, probabilities]);
    await session.release();
  });

  it('names the node when an op without a gradient rule lies in the trainable part', async () => {
    const rng = new Rng(1);
    const graph = new OnnxGraph();
    const x = graph.addInput('x', [-1, 4]);
    const w1 = graph.addFloatInitializer('W1', [4, 4], Float32Array.from({ length: 16 }, () => rng.normal()));
    const w2 = graph.addFloatInitializer('W2', [2, 4], Float32Array.from({ length: 8 }, () => rng.normal()));
    const hidden = graph.addNode('Gemm', [x, w1], { transB: attr.int(1) }, 'hidden');
    const activated = graph.addNode('Softplus', [hidden], {}, 'activated');
    const logits = graph.addNode('Gemm', [activated, w2], { transB: attr.int(1) }, 'logits');
    graph.outputs = [{ name: logits, shape: [-1, 2] }];
    const info = await probeTensorInfo(graph, 'tiny');
    const spec = { graph, info, logits, optimizer: { kind: 'adamw', weightDecay: 0 } as const, origin: 'tiny.onnx' };
    expect(() => buildTrainingGraph({ ...spec, params: [{ name: 'W1' }, { name: 'W2' }] })).toThrow(
      /tiny\.onnx: no gradient rule for operator Softplus \(node "activated\/Softplus"\)/,
    );
    // Frozen below the op, it is just part of the forward pass.
    expect(() => buildTrainingGraph({ ...spec, params: [{ name: 'W2' }] })).not.toThrow();
  });

  it('finds residual blocks in ResNet-18 and attention / MLP halves in ViT-tiny', async () => {
    const resnet = await readTrainableModel(await readFile(join(SHARED, 'models/resnet-18-random/onnx/model.onnx')), 'resnet-18');
    const resnetBlocks = findBlocks(resnet, 'pooler_output');
    expect(resnetBlocks.slice(-2).map((block) => block.name)).toEqual(['/layer4/layer4.0/conv1/Conv', '/layer4/layer4.1/conv1/Conv']);
    expect(resnetBlocks).toHaveLength(8);
    const vit = await readTrainableModel(await readFile(join(SHARED, 'models/vit-tiny-random/onnx/model.onnx')), 'vit-tiny');
    const vitBlocks = findBlocks(vit, 'pooler_output');
    // Embeddings + layer 0's attention, then one block per residual half, then the final LayerNorm and pooler.
    expect(vitBlocks).toHaveLength(9);
    expect(vitBlocks.at(-1)!.weights).toEqual(['layernorm.weight', 'layernorm.bias', 'pooler.dense.weight', 'pooler.dense.bias']);
    expect(vitBlocks.at(-2)!.weights).toContain('encoder.layer.3.layernorm_after.weight');
    // Cutting below layer 3's MLP caches the residual stream and its normalised copy.
    const partition = partitionModel(vit, 'pooler_output', weightsOfTopBlocks(vitBlocks, 2));
    expect(partition.frontier.map((f) => f.dims)).toEqual([[197, 192], [197, 192]]);
  });

  it('splits MobileNetV2 α=0.35 at its top blocks: cached prefix then trainable suffix reproduce the whole model', async () => {
    const converted = convertTfjsToOnnx(await readTfjsModelFolder(join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs/model.json')));
    const model = await readTrainableModel(converted.onnx, 'mobilenet α=0.35');
    const blocks = findBlocks(model, converted.outputName);
    expect(blocks.length).toBeGreaterThan(5);
    const partition = partitionModel(model, converted.outputName, weightsOfTopBlocks(blocks, 2));
    expect(partition.frontier.map((f) => f.name)).toEqual(['block_14_add']);
    expect(partition.frontier[0]!.dims).toEqual([56, 7, 7]);

    const rng = new Rng(5);
    const images = new ort.Tensor('float32', Float32Array.from({ length: 2 * 224 * 224 * 3 }, () => rng.uniform(-1, 1)), [2, 224, 224, 3]);
    const full = await createSession(converted.onnx, 'full', 1);
    const expected = (await full.run({ [converted.inputName]: images }))[converted.outputName]!.data as Float32Array;
    const prefix = await createSession(encodeModel(partition.prefix!, 'prefix', ''), 'prefix', 1);
    const cut = (await prefix.run({ [converted.inputName]: images }))[partition.prefix!.outputs[0]!.name]!;
    const suffix = await createSession(encodeModel(partition.suffix, 'suffix', ''), 'suffix', 1);
    const actual = (await suffix.run({ block_14_add: cut }))[converted.outputName]!.data as Float32Array;
    expect(actual.length).toBe(expected.length);
    for (let i = 0; i < actual.length; i++) expect(actual[i]).toBeCloseTo(expected[i]!, 4);
    await Promise.all([full.release(), prefix.release(), suffix.release()]);
  });
});
