/**
 * `batchNorm: 'affine'`: the scale and shift inserted after folded convolutions start as the
 * identity (the graph's outputs unchanged), their gradients agree with central differences of the
 * loss and with the conv-weight gradients they must equal at the identity, folding them back gives
 * the graph they trained, and a classifier fine-tuned with them saves and loads back identically.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { findBlocks, weightsOfTopBlocks } from '../src/autodiff/blocks.js';
import { foldChannelAffines, insertChannelAffines } from '../src/autodiff/channel-affine.js';
import { weightInitializers } from '../src/autodiff/model.js';
import { partitionModel } from '../src/autodiff/partition.js';
import { probeTensorInfo } from '../src/autodiff/tensor-info.js';
import { buildTrainingGraph } from '../src/autodiff/training-graph.js';
import { TrainingSession } from '../src/autodiff/training-session.js';
import { createSession, ort } from '../src/backbones/onnx-session.js';
import { openImageBackbone } from '../src/backbones/resolve.js';
import { attr, encodeModel, OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import type { Dataset } from '../src/data/dataset.js';
import { readImageFolder } from '../src/data/image-folder.js';
import { readBackboneGraph } from '../src/finetune/backbone-graph.js';
import { Rng } from '../src/util/rng.js';
import { HYMENOPTERA, SHARED, tempDir } from './helpers/images.js';

const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const random = (rng: Rng, n: number, scale = 1) => Float32Array.from({ length: n }, () => scale * rng.normal());

async function run(graph: OnnxGraph, feeds: Record<string, ort.Tensor>, output: string): Promise<Float32Array> {
  const session = await createSession(encodeModel(graph, 'check', '', { producer: 'test' }), 'check', 1);
  try {
    return (await session.run(feeds, [output]))[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** x [2, 3, 6, 6] → Conv 3×3 (bias) → ReLU6 → Conv 1×1 (bias) → global mean → logits [2, 4]. */
async function smallConvNet(rng: Rng) {
  const graph = new OnnxGraph();
  const x = graph.addInput('x', [2, 3, 6, 6], 'float32');
  const w1 = graph.addInitializer('w1', { dtype: 'float32', dims: [4, 3, 3, 3], data: random(rng, 108, 0.5) });
  const b1 = graph.addInitializer('b1', { dtype: 'float32', dims: [4], data: random(rng, 4, 0.5) });
  const w2 = graph.addInitializer('w2', { dtype: 'float32', dims: [4, 4, 1, 1], data: random(rng, 16, 0.5) });
  const b2 = graph.addInitializer('b2', { dtype: 'float32', dims: [4], data: random(rng, 4, 0.5) });
  const zero = graph.addScalar('zero', 0);
  const six = graph.addScalar('six', 6);
  const hidden = graph.addNode('Clip', [graph.addNode('Conv', [x, w1, b1], { pads: attr.ints([1, 1, 1, 1]) }, 'conv1'), zero, six], {}, 'relu6');
  const pooled = graph.addNode('GlobalAveragePool', [graph.addNode('Conv', [hidden, w2, b2], {}, 'conv2')], {}, 'pooled');
  const logits = graph.addNode('Flatten', [pooled], {}, 'logits');
  graph.outputs = [{ name: logits, shape: [2, 4] }];
  const input = new ort.Tensor('float32', random(rng, 2 * 3 * 36), [2, 3, 6, 6]);
  const info = await probeTensorInfo(graph, 'small conv net', () => ({ [x]: input }));
  return { graph, info, input, logits, weights: [w1, b1, w2, b2] };
}

describe("batchNorm: 'affine' (a trainable scale and shift after folded convolutions)", () => {
  it('gradients of the scale and shift match central differences and the conv gradients they equal at the identity', async () => {
    const rng = new Rng(11);
    const net = await smallConvNet(rng);
    const affines = insertChannelAffines(net.graph, net.info, net.weights);
    expect(affines.map((affine) => affine.weight)).toEqual(['w1', 'w2']);
    const targets = Float32Array.of(0.9, 0.05, 0.03, 0.02, 0.1, 0.1, 0.7, 0.1);
    const params = [...net.weights, ...affines.flatMap((affine) => [affine.scale, affine.shift])].map((name) => ({ name }));
    const training = buildTrainingGraph({ graph: net.graph, info: net.info, logits: net.logits, params, optimizer: { kind: 'sgd', weightDecay: 0, momentum: 0 }, origin: 'test', outputGradients: true });
    const initial = (name: string) => net.graph.floatInitializer(name)!;
    const session = await TrainingSession.create(training, initial, 'test', 1);
    const step = await session.step({ x: net.input }, new ort.Tensor('float32', targets, [2, 4]), 0);
    const gradients = step.gradients!;
    await session.release();

    // The loss from the evaluation graph (weights as inputs), cross-entropy in float64.
    const evaluation = await ort.InferenceSession.create(training.evaluation);
    const lossWith = async (name: string, values: Float32Array) => {
      const feeds: Record<string, ort.Tensor> = { x: net.input };
      for (const param of training.params) feeds[param.input] = new ort.Tensor('float32', param.name === name ? values : initial(param.name), param.dims);
      const logits = (await evaluation.run(feeds))[training.evaluationLogits]!.data as Float32Array;
      let loss = 0;
      for (let row = 0; row < 2; row++) {
        const z = Array.from(logits.subarray(row * 4, row * 4 + 4));
        const top = Math.max(...z);
        const logSum = top + Math.log(z.reduce((s, v) => s + Math.exp(v - top), 0));
        z.forEach((v, k) => (loss -= targets[row * 4 + k]! * (v - logSum)));
      }
      return loss / 2;
    };
    const h = 1e-2;
    for (const affine of affines) {
      for (const name of [affine.scale, affine.shift]) {
        const base = initial(name);
        const analytic = gradients.get(name)!;
        const numeric = new Float64Array(base.length);
        for (let i = 0; i < base.length; i++) {
          const at = async (delta: number) => {
            const values = base.slice();
            values[i] = base[i]! + delta;
            return lossWith(name, values);
          };
          numeric[i] = ((await at(h)) - (await at(-h))) / (2 * h);
        }
        const scale = Math.max(...Array.from(numeric, Math.abs));
        expect(scale).toBeGreaterThan(1e-4);
        expect(maxAbs(analytic, numeric) / scale, name).toBeLessThan(1e-2);
      }
      // At s = 1, t = 0: ∂L/∂tᶜ = ∂L/∂bᶜ and ∂L/∂sᶜ = Σₖ W[c, k]·∂L/∂W[c, k] + b[c]·∂L/∂b[c].
      const [w, b, dw, db] = [initial(affine.weight), initial(affine.bias), gradients.get(affine.weight)!, gradients.get(affine.bias)!];
      const perChannel = w.length / b.length;
      const expectedScale = Array.from(b, (bias, c) => {
        let sum = bias * db[c]!;
        for (let k = c * perChannel; k < (c + 1) * perChannel; k++) sum += w[k]! * dw[k]!;
        return sum;
      });
      expect(maxAbs(gradients.get(affine.shift)!, db)).toBeLessThan(1e-6);
      expect(maxAbs(gradients.get(affine.scale)!, expectedScale)).toBeLessThan(1e-5 * Math.max(1, ...expectedScale.map(Math.abs)));
    }
    await evaluation.release();
  });

  it('skips convolutions an un-folded BatchNormalization reads; its γ and β are weights to train', async () => {
    const graph = new OnnxGraph();
    const x = graph.addInput('x', [1, 2, 4, 4], 'float32');
    const w = graph.addInitializer('w', { dtype: 'float32', dims: [3, 2, 1, 1], data: new Float32Array(6).fill(0.5) });
    const b = graph.addInitializer('b', { dtype: 'float32', dims: [3], data: new Float32Array(3) });
    const stats = ['gamma', 'beta', 'mean', 'var'].map((name, i) => graph.addInitializer(name, { dtype: 'float32', dims: [3], data: new Float32Array(3).fill(i === 0 || i === 3 ? 1 : 0) }));
    const y = graph.addNode('BatchNormalization', [graph.addNode('Conv', [x, w, b], {}, 'conv'), ...stats], {}, 'bn');
    graph.outputs = [{ name: y, shape: [1, 3, 4, 4] }];
    const info = await probeTensorInfo(graph, 'conv + bn', () => ({ x: new ort.Tensor('float32', new Float32Array(32), [1, 2, 4, 4]) }));
    expect(insertChannelAffines(graph, info, ['w', 'b', 'gamma', 'beta'])).toEqual([]);
    expect(weightInitializers(graph).sort()).toEqual(['b', 'beta', 'gamma', 'w']);
  });

  describe('MobileNetV2 α=0.35', () => {
    let cacheDir: string;
    beforeAll(async () => {
      cacheDir = join(await tempDir('headstart-bn-affine-'), 'cache');
    });

    it('the identity start leaves the top blocks\' outputs unchanged, and trained values fold back into the convolutions exactly', async () => {
      const backbone = await openImageBackbone(MOBILENET_035, { cacheDir });
      const { model, features } = await readBackboneGraph(backbone);
      const weights = weightsOfTopBlocks(findBlocks(model, features), 2);
      const partition = partitionModel(model, features, weights);
      const rng = new Rng(3);
      const feeds = Object.fromEntries(partition.frontier.map((t) => [t.name, new ort.Tensor('float32', random(rng, 2 * t.dims.reduce((a, b) => a * b, 1)).map((v) => Math.max(0, v)), [2, ...t.dims])]));
      const plain = partition.suffix;
      const before = await run(plain, feeds, features);

      const affineGraph = new OnnxGraph();
      for (const name of plain.initializers.keys()) affineGraph.reserveName(name);
      affineGraph.inputs.push(...plain.inputs);
      for (const [name, initializer] of plain.initializers) affineGraph.initializers.set(name, initializer);
      affineGraph.nodes.push(...plain.nodes.map((node) => ({ ...node, outputs: [...node.outputs] })));
      for (const node of plain.nodes) for (const name of [node.name, ...node.outputs]) affineGraph.reserveName(name);
      affineGraph.outputs = plain.outputs;
      const info = new Map(partition.info);
      const affines = insertChannelAffines(affineGraph, info, weights);
      // Every trained conv of the folded export: 2 blocks × (expand, depthwise, project) + the last 1×1 conv.
      expect(affines.length).toBe(7);
      expect(await run(affineGraph, feeds, features)).toEqual(before);

      // Trained-looking values: the graph with them equals the original graph with them folded in.
      const trained = new Map<string, Float32Array>();
      for (const affine of affines) {
        const channels = affineGraph.initializers.get(affine.scale)!.data.length;
        trained.set(affine.scale, Float32Array.from(random(rng, channels, 0.2), (v) => 1 + v));
        trained.set(affine.shift, random(rng, channels, 0.1));
        affineGraph.initializers.set(affine.scale, { ...affineGraph.initializers.get(affine.scale)!, data: trained.get(affine.scale)! } as never);
        affineGraph.initializers.set(affine.shift, { ...affineGraph.initializers.get(affine.shift)!, data: trained.get(affine.shift)! } as never);
      }
      const withAffine = await run(affineGraph, feeds, features);
      const folded = foldChannelAffines(trained, affines, (name) => plain.floatInitializer(name)!);
      expect([...folded.keys()].every((name) => plain.initializers.has(name))).toBe(true);
      const foldedGraph = new OnnxGraph();
      foldedGraph.inputs.push(...plain.inputs);
      for (const [name, initializer] of plain.initializers) foldedGraph.initializers.set(name, folded.has(name) ? { ...initializer, data: folded.get(name)! } as never : initializer);
      foldedGraph.nodes.push(...plain.nodes);
      foldedGraph.outputs = plain.outputs;
      const after = await run(foldedGraph, feeds, features);
      expect(maxAbs(after, withAffine)).toBeLessThan(1e-4 * Math.max(...Array.from(withAffine, Math.abs)));
      expect(maxAbs(after, before)).toBeGreaterThan(1e-2);
      await backbone.dispose();
    });

    it('a classifier fine-tuned with it saves and loads back with the same predictions', async () => {
      const full = await readImageFolder(HYMENOPTERA);
      const pick = <T extends { label: number }>(items: T[], n: number) => full.classes.flatMap((_, c) => items.filter((item) => item.label === c).slice(0, n));
      const dataset: Dataset<Uint8Array> = { ...full, train: pick(full.train, 12), validation: pick(full.validation, 8) };
      const classifier = await ImageClassifier.train({ data: dataset, backbone: MOBILENET_035, fineTune: { unfreeze: 2, epochs: 2, batchNorm: 'affine' }, cacheDir, seed: 1 });
      const record = classifier.manifest.training.fineTune as { batchNormAffines: number; options: { batchNorm: string } };
      expect(record.options.batchNorm).toBe('affine');
      expect(record.batchNormAffines).toBe(7);
      const dir = join(await tempDir('headstart-bn-affine-model-'), 'model');
      await classifier.save(dir, { report: false });
      const loaded = await ImageClassifier.load(dir, { cacheDir });
      const inputs = await Promise.all(dataset.validation.slice(0, 6).map((item) => readFile(item.source)));
      expect(Array.from(await loaded.predictProbabilities(inputs))).toEqual(Array.from(await classifier.predictProbabilities(inputs)));
      await Promise.all([classifier.dispose(), loaded.dispose()]);
    });
  });
});
