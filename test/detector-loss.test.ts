/**
 * The detector's training loss against PyTorch: CenterNet's Gaussian targets (`drawTargets`), its
 * penalty-reduced focal loss and the L1 on box sides (`centerNetLoss` + `batchTargets`), and their
 * gradients through the training graph, on two 1×1 convolutions whose weights and inputs PyTorch
 * chose (test/fixtures/detection/centernet-loss.json, from tools/centernet-loss-reference.py).
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { probeTensorInfo } from '../src/autodiff/tensor-info.js';
import { buildTrainingGraph } from '../src/autodiff/training-graph.js';
import { TrainingSession } from '../src/autodiff/training-session.js';
import { ort } from '../src/backbones/onnx-session.js';
import { OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import type { Box } from '../src/detector/boxes.js';
import { centerNetLoss, FOCAL_BETA, LOSS_INPUTS, SIDES_WEIGHT } from '../src/detector/centernet-loss.js';
import { batchTargets, drawTargets } from '../src/detector/centernet-targets.js';

interface Reference {
  classes: number;
  channels: number;
  grid: number;
  stride: number;
  batch: number;
  boxes: number[][][];
  x: number[];
  weights: Record<'w_class' | 'b_class' | 'w_sides' | 'b_sides', number[]>;
  heatmap: number[];
  loss: number;
  gradients: Record<'w_class' | 'b_class' | 'w_sides' | 'b_sides', number[]>;
}

const reference = JSON.parse(await readFile(new URL('./fixtures/detection/centernet-loss.json', import.meta.url), 'utf8')) as Reference;
const { classes, channels, grid, stride, batch } = reference;

function relativeError(actual: ArrayLike<number>, expected: number[]): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    diff += (actual[i]! - expected[i]!) ** 2;
    norm += expected[i]! ** 2;
  }
  return Math.sqrt(diff / norm);
}

describe('CenterNet training loss against PyTorch', () => {
  const targets = reference.boxes.map((boxes) => drawTargets(boxes.map(([label, ...box]) => ({ label: label!, box: box as Box })), classes, grid, stride));

  it('draws the same Gaussian heatmaps as CenterNet (radius, sigma, the max where boxes overlap)', () => {
    const heatmap = new Float32Array(batch * classes * grid * grid);
    targets.forEach((t, i) => heatmap.set(t.heatmap, i * t.heatmap.length));
    expect(Math.max(...heatmap.map((v, i) => Math.abs(v - reference.heatmap[i]!)))).toBeLessThan(1e-6);
    expect(heatmap.filter((v) => v === 1).length).toBe(reference.boxes.flat().length);
  });

  it('gives the same loss and parameter gradients as PyTorch autograd', async () => {
    const graph = new OnnxGraph();
    const x = graph.addInput('features', [-1, channels, grid, grid]);
    const w = reference.weights;
    const logits = graph.addNode('Conv', [x, graph.addFloatInitializer('w_class', [classes, channels, 1, 1], Float32Array.from(w.w_class)), graph.addFloatInitializer('b_class', [classes], Float32Array.from(w.b_class))], {}, 'class_logits');
    const sides = graph.addNode('Conv', [x, graph.addFloatInitializer('w_sides', [4, channels, 1, 1], Float32Array.from(w.w_sides)), graph.addFloatInitializer('b_sides', [4], Float32Array.from(w.b_sides))], {}, 'sides');
    graph.outputs = [{ name: logits, shape: [-1, classes, grid, grid] }, { name: sides, shape: [-1, 4, grid, grid] }];
    const info = await probeTensorInfo(graph, 'centernet-loss');
    const training = buildTrainingGraph({
      graph,
      info,
      logits,
      extraOutputs: [sides],
      loss: centerNetLoss(logits, sides, classes, grid),
      params: ['w_class', 'b_class', 'w_sides', 'b_sides'].map((name) => ({ name })),
      optimizer: { kind: 'sgd', weightDecay: 0, momentum: 0 },
      origin: 'centernet-loss',
      outputGradients: true,
    });
    const session = await TrainingSession.create(training, (name) => graph.floatInitializer(name)!, 'centernet-loss', 1);
    const t = batchTargets(targets, classes, grid, stride, { beta: FOCAL_BETA, sidesWeight: SIDES_WEIGHT });
    const maps = [batch, classes, grid, grid];
    const sideDims = [batch, 4, grid, grid];
    const result = await session.step(
      { [x]: new ort.Tensor('float32', Float32Array.from(reference.x), [batch, channels, grid, grid]) },
      {
        [LOSS_INPUTS.positiveWeight]: new ort.Tensor('float32', t.positiveWeight, maps),
        [LOSS_INPUTS.negativeWeight]: new ort.Tensor('float32', t.negativeWeight, maps),
        [LOSS_INPUTS.sidesTarget]: new ort.Tensor('float32', t.sidesTarget, sideDims),
        [LOSS_INPUTS.sidesWeight]: new ort.Tensor('float32', t.sidesWeight, sideDims),
      },
      0,
    );
    await session.release();
    expect(Math.abs(result.loss - reference.loss) / reference.loss).toBeLessThan(1e-5);
    for (const name of ['w_class', 'b_class', 'w_sides', 'b_sides'] as const) {
      expect(relativeError(result.gradients!.get(name)!, reference.gradients[name]), name).toBeLessThan(1e-4);
    }
  });
});
