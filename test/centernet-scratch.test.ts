import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSession, ort } from '../src/backbones/onnx-session.js';
import { decodeModel, encodeModel, type OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import { builtinCenterNet, type CenterNetGraph } from '../src/detector/centernet.js';
import { CENTERNET_HEAD, FRESH_CLASS_BIAS } from '../src/detector/centernet-head.js';
import { convParameters, normaliseConvOutputs, reinitialiseConvs } from '../src/detector/centernet-scratch.js';
import { prepareDetectorInput } from '../src/detector/detector-input.js';
import { trainCenterNet } from '../src/detector/train-detector.js';
import { readDetectionDataset } from '../src/detector/read-dataset.js';
import { makeRoboflowSet } from './helpers/detection-data.js';
import { tempDir } from './helpers/images.js';

let dir: string;
let builtin: CenterNetGraph;
let original: OnnxGraph;
beforeAll(async () => {
  dir = await tempDir('headstart-centernet-scratch-');
  builtin = await builtinCenterNet({ cacheDir: join(dir, 'cache') });
  original = decodeModel(await readFile(builtin.model), builtin.origin);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const fresh = () => decodeModel(encodeModel(original, 'centernet', ''), builtin.origin);
const same = (a: { data: ArrayLike<number | bigint> }, b: { data: ArrayLike<number | bigint> }) => Buffer.from((a.data as Float32Array).buffer).equals(Buffer.from((b.data as Float32Array).buffer));

function rms(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v * v;
  return Math.sqrt(sum / values.length);
}

describe('centernet-scratch (the builtin CenterNet from random initialisation)', () => {
  it('re-draws every Conv weight and bias, seeded, and leaves every other tensor as it was', () => {
    const graph = fresh();
    const names = reinitialiseConvs(graph, 7, builtin.origin);
    const convs = graph.nodes.filter((node) => node.op === 'Conv');
    // Every Conv's weight (and bias, where it has one) is a parameter; nothing else is.
    expect(new Set(names)).toEqual(new Set(convs.flatMap((node) => node.inputs.slice(1, 3).filter(Boolean))));
    expect(names.length).toBe(convParameters(original).length);
    for (const name of names) {
      const before = original.initializers.get(name)!;
      const after = graph.initializers.get(name)!;
      expect(after.dims).toEqual(before.dims);
      expect(same(after, before), name).toBe(false);
    }
    for (const [name, initializer] of original.initializers) {
      if (names.includes(name)) continue;
      expect(same(graph.initializers.get(name)!, initializer), name).toBe(true);
    }
    expect(original.initializers.size).toBe(graph.initializers.size);
    // The class branch starts at CenterNet's heatmap prior.
    expect([...(graph.initializers.get(CENTERNET_HEAD.classBias)!.data as Float32Array)].every((v) => Math.abs(v - FRESH_CLASS_BIAS) < 1e-6)).toBe(true);
    // He-normal: a large weight's std is √(2 / fan-in) (the class branch's 1×1 conv: fan-in = its input channels).
    const weight = graph.initializers.get(CENTERNET_HEAD.classWeight)!;
    const fanIn = weight.data.length / weight.dims[0]!;
    const values = weight.data as Float32Array;
    expect(rms(values)).toBeGreaterThan(0.8 * Math.sqrt(2 / fanIn));
    expect(rms(values)).toBeLessThan(1.2 * Math.sqrt(2 / fanIn));

    const again = fresh();
    reinitialiseConvs(again, 7, builtin.origin);
    const other = fresh();
    reinitialiseConvs(other, 8, builtin.origin);
    for (const name of names) expect(same(again.initializers.get(name)!, graph.initializers.get(name)!), name).toBe(true);
    // Another seed draws other weights (the biases are zero or the prior either way).
    const weights = convs.map((node) => node.inputs[1]!);
    expect(weights.filter((name) => same(other.initializers.get(name)!, graph.initializers.get(name)!))).toEqual([]);
  });

  it('rescales the convolutions so the stride-4 map has unit scale, where He alone lets it grow', async () => {
    const data = join(dir, 'data');
    await makeRoboflowSet(data, { seed: 3, train: 3, valid: 1 });
    const { train } = await readDetectionDataset(data);
    const input = async (i: number) => Float32Array.from((await prepareDetectorInput(await train[i]!.load(), 512)).pixels);
    const featureRms = async (graph: OnnxGraph) => {
      const probe = decodeModel(encodeModel(graph, 'probe', ''), builtin.origin);
      probe.outputs = [CENTERNET_HEAD.features, CENTERNET_HEAD.classLogits].map((name) => ({ name, shape: [-1, -1, -1, -1] }));
      const session = await createSession(encodeModel(probe, 'probe', ''), 'probe');
      try {
        // An image the rescaling did not measure.
        const result = await session.run({ [builtin.inputName]: new ort.Tensor('float32', await input(2), [1, 512, 512, 3]) });
        return { features: rms(result[CENTERNET_HEAD.features]!.data as Float32Array), logits: result[CENTERNET_HEAD.classLogits]!.data as Float32Array };
      } finally {
        await session.release();
      }
    };
    const graph = fresh();
    reinitialiseConvs(graph, 0, builtin.origin);
    const he = await featureRms(graph);
    const pixels = new Float32Array(2 * 512 * 512 * 3);
    pixels.set(await input(0), 0);
    pixels.set(await input(1), 512 * 512 * 3);
    await normaliseConvOutputs(graph, { inputName: builtin.inputName, pixels, dims: [2, 512, 512, 3] }, builtin.origin);
    const lsuv = await featureRms(graph);
    // Measured (seed 0, an image not measured): He alone 42, after the rescaling 0.21. The map is a gated
    // product after the last Conv, whose own output has unit rms on the measured images.
    expect(he.features).toBeGreaterThan(10);
    expect(lsuv.features).toBeGreaterThan(0.1);
    expect(lsuv.features).toBeLessThan(2);
    // The class branch keeps its prior: mean heatmap near sigmoid(−2.19) ≈ 0.1, not saturated.
    const meanSigmoid = lsuv.logits.reduce((sum, v) => sum + 1 / (1 + Math.exp(-v)), 0) / lsuv.logits.length;
    expect(meanSigmoid).toBeGreaterThan(0.03);
    expect(meanSigmoid).toBeLessThan(0.3);
  }, 120_000);

  it('refuses from-scratch training with unfrozen blocks (every weight trains already)', async () => {
    const data = await readDetectionDataset(join(dir, 'data'));
    await expect(trainCenterNet(data, { fromScratch: true, unfreeze: 2 }, { cacheDir: join(dir, 'cache') })).rejects.toThrow(/fromScratch trains every weight/);
  }, 60_000);
});
