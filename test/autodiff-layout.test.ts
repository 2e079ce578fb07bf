/**
 * The two rewrites that make training graphs fast on onnxruntime without changing what they
 * compute: rank-0 operands given their partner's rank, and depthwise convolutions on trained
 * weights moved to onnxruntime's NCHWc layout. Each is checked against the graph without it.
 */
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { matchScalarRanks } from '../src/autodiff/graph-utils.js';
import { nchwcBlockSize, useNchwcDepthwise } from '../src/autodiff/nchwc.js';
import { probeTensorInfo, type TensorInfoMap } from '../src/autodiff/tensor-info.js';
import { buildTrainingGraph } from '../src/autodiff/training-graph.js';
import { TrainingSession } from '../src/autodiff/training-session.js';
import { ort } from '../src/backbones/onnx-session.js';
import { attr, encodeModel, OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import { Rng } from '../src/util/rng.js';

async function run(graph: OnnxGraph, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(encodeModel(graph, 'test', 'test'));
  const output = (await session.run(feeds))[graph.outputs[0]!.name]!.data as Float32Array;
  await session.release();
  return output;
}

describe('matchScalarRanks', () => {
  it('reshapes rank-0 constants and computed scalars to the rank of their partner, values unchanged', async () => {
    const build = () => {
      const graph = new OnnxGraph();
      const x = graph.addInput('x', [2, 3]);
      const s = graph.addInput('s', []);
      const half = graph.addScalar('half', 0.5);
      const scaled = graph.addNode('Mul', [x, half], {}, 'scaled');
      const computed = graph.addNode('Sqrt', [s], {}, 'computed');
      const shifted = graph.addNode('Add', [graph.addNode('Sqrt', [scaled], {}, 'root'), computed], {}, 'shifted');
      const y = graph.addNode('Where', [graph.addNode('Greater', [shifted, half], {}, 'mask'), shifted, graph.addScalar('zero', 0)], {}, 'y');
      graph.outputs = [{ name: y, shape: [2, 3] }];
      return graph;
    };
    const feeds = () => ({ x: new ort.Tensor('float32', Float32Array.of(0.1, 1, 2, 3, 4, 0.01), [2, 3]), s: new ort.Tensor('float32', Float32Array.of(0.25), []) });
    const plain = build();
    const rewritten = build();
    const info = await probeTensorInfo(rewritten, 'scalars');
    matchScalarRanks(rewritten, info);

    expect(Array.from(await run(rewritten, feeds()))).toEqual(Array.from(await run(plain, feeds())));
    // No rank-0 operand is left beside a rank-2 one; the constants became [1, 1] constants.
    for (const node of rewritten.nodes.filter((n) => ['Mul', 'Add', 'Greater', 'Where'].includes(n.op))) {
      for (const input of node.inputs) expect(rewritten.initializers.get(input)?.dims ?? info.get(input)?.dims ?? [0]).not.toEqual([]);
    }
    expect(rewritten.initializers.has('half')).toBe(false);
    expect([...rewritten.initializers.values()].filter((i) => i.dtype === 'float32').map((i) => i.dims)).toEqual([
      [1, 1],
      [1, 1],
    ]);
    expect(rewritten.nodes.some((n) => n.op === 'Reshape' && n.inputs[0] === 'computed')).toBe(true);
  });
});

describe('convolutions in the NCHWc layout', async () => {
  const block = await nchwcBlockSize();

  // Without NCHWc kernels (another CPU) the graphs stay plain; the rest has nothing to compare.
  it.runIf(block !== undefined)('a training step computes what the plain graph computes', async () => {
    const channels = 2 * block!;
    const [n, height, width, classes] = [3, 6, 5, 2];
    const rng = new Rng(11);
    const random = (length: number, scale: number) => Float32Array.from({ length }, () => rng.normal() * scale);
    const graph = new OnnxGraph();
    const x = graph.addInput('x', [-1, channels, height, width]);
    const w = graph.addFloatInitializer('depthwise', [channels, 1, 3, 3], random(channels * 9, 0.3));
    const b = graph.addFloatInitializer('depthwise_bias', [channels], random(channels, 0.1));
    const conv = graph.addNode('Conv', [x, w, b], { group: attr.int(channels), pads: attr.ints([1, 1, 1, 1]) }, 'conv');
    const dense = graph.addFloatInitializer('dense', [channels, channels, 3, 3], random(channels * channels * 9, 0.05));
    const mixed = graph.addNode('Conv', [conv, dense], { pads: attr.ints([1, 1, 1, 1]) }, 'mixed');
    const activated = graph.addNode('Clip', [mixed, graph.addScalar('min', 0), graph.addScalar('max', 6)], {}, 'relu6');
    const pooled = graph.addNode('Flatten', [graph.addNode('GlobalAveragePool', [activated], {}, 'pool')], {}, 'pooled');
    const head = graph.addFloatInitializer('head', [classes, channels], random(classes * channels, 0.3));
    const logits = graph.addNode('Gemm', [pooled, head], { transB: attr.int(1) }, 'logits');
    graph.outputs = [{ name: logits, shape: [-1, classes] }];
    const info = await probeTensorInfo(graph, 'depthwise');
    const params = [{ name: w }, { name: b }, { name: dense }, { name: head }];
    const spec = { graph, info, logits, params, optimizer: { kind: 'adamw' as const, weightDecay: 0.01 }, origin: 'depthwise', outputGradients: true };

    const plain = buildTrainingGraph(spec);
    const blocked = buildTrainingGraph({ ...spec, nchwcBlock: block });
    // Both forward convolutions, the depthwise weight gradient's and the 3×3 input gradient's (the
    // batch needs no input gradient); the 3×3 weight gradient's unfolding has constant weights and stays.
    const nodes = onnxProto.onnx.ModelProto.decode(blocked.step).graph!.node!;
    expect(nodes.filter((node) => node.domain === 'com.microsoft.nchwc' && node.opType === 'Conv')).toHaveLength(4);
    expect(nodes.filter((node) => node.opType === 'Conv' && !node.domain).map((node) => node.input?.[1])).toEqual([expect.stringMatching(/unfold_kernel/)]);

    const input = new ort.Tensor('float32', random(n * channels * height * width, 1), [n, channels, height, width]);
    const targets = new ort.Tensor('float32', Float32Array.from({ length: n * classes }, (_, i) => (i % classes === i % n % classes ? 0.95 : 0.05)), [n, classes]);
    const weightsOf = (name: string) => graph.floatInitializer(name)!;
    const sessions = [await TrainingSession.create(plain, weightsOf, 'plain', 1), await TrainingSession.create(blocked, weightsOf, 'nchwc', 1)];
    const [a, c] = [await sessions[0]!.step({ [x]: input }, targets, 0.01), await sessions[1]!.step({ [x]: input }, targets, 0.01)];
    expect(c.loss).toBeCloseTo(a.loss, 6);
    for (const { name } of params) {
      const expected = a.gradients!.get(name)!;
      const actual = c.gradients!.get(name)!;
      const scale = Math.max(...expected.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThan(1e-5 * scale);
    }
    // The updated weights feed the evaluation graph, also rewritten.
    const [evaluatedPlain, evaluatedBlocked] = [await sessions[0]!.evaluate({ [x]: input }), await sessions[1]!.evaluate({ [x]: input })];
    for (let i = 0; i < evaluatedPlain.length; i++) expect(evaluatedBlocked[i]).toBeCloseTo(evaluatedPlain[i]!, 5);
    for (const session of sessions) await session.release();
  });

  it('leaves convolutions it cannot run in NCHWc alone', async () => {
    const graph = new OnnxGraph();
    const x = graph.addInput('x', [-1, 24, 4, 4]);
    const w = graph.addInput('w', [24, 1, 3, 3]);
    const constant = graph.addFloatInitializer('constant', [24, 1, 3, 3], new Float32Array(24 * 9));
    const grouped = graph.addInput('grouped', [24, 2, 3, 3]);
    graph.addNode('Conv', [x, w], { group: attr.int(24) }, 'channels_not_a_multiple_of_16');
    graph.addNode('Conv', [x, constant], { group: attr.int(24) }, 'constant_weights');
    graph.addNode('Conv', [x, grouped], { group: attr.int(12) }, 'grouped');
    const pointwise = graph.addInput('pointwise', [32, 24, 1, 1]);
    graph.addNode('Conv', [x, pointwise], {}, 'pointwise_gains_nothing');
    const info: TensorInfoMap = new Map([w, constant, grouped].map((name, i) => [name, { dtype: 'float32' as const, dims: [24, i === 2 ? 2 : 1, 3, 3] }]));
    info.set(pointwise, { dtype: 'float32', dims: [32, 24, 1, 1] });
    expect(useNchwcDepthwise(graph, info, 16)).toBe(0);
    expect(useNchwcDepthwise(graph, info, 8)).toBe(1);
  });
});
