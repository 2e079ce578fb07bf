/**
 * TF.js → ONNX converter: the converted model, run by onnxruntime, must compute what TF.js itself
 * computes (wasm backend) on the same inputs — max |difference| ≤ 1e-4 on every output checked
 * (features here are at most ~6 in magnitude, so the bound is absolute).
 */
import { mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  convertTfjsToOnnx,
  NSFWJS_FEATURE_OUTPUTS,
  readNsfwjsModel,
  readTfjsModelFolder,
  type ConvertedModel,
  type TfjsModelSource,
} from '../src/backbones/tfjs/index.js';
import { HeadstartError } from '../src/util/errors.js';
import {
  activationModel,
  asKeras3,
  convolutionModel,
  graphModelSource,
  nestedModel,
  poolingModel,
  quantize,
  randomizeWeights,
  reshapeModel,
  sourceOf,
} from './helpers/tfjs-fixtures.js';
import {
  layersSubModel,
  loadGraphReference,
  loadLayersReference,
  maxAbsDifference,
  onnxPredict,
  onnxSession,
  syntheticImages,
  tf,
  tfjsPredict,
  useWasmBackend,
} from './helpers/tfjs-reference.js';

const TOLERANCE = 1e-4;
/** shared/ sits beside the repository (CI copies it there too). */
const SHARED_MODELS = new URL('../../shared/models/', import.meta.url).pathname;
const MOBILENET_035 = join(SHARED_MODELS, 'mobilenet-v2-0.35-imagenet-tfjs/model.json');
const TEACHABLE_MACHINE = join(SHARED_MODELS, 'teachable-machine-export-example/model.json');

/** Measured differences, printed at the end so a run documents its own numbers. */
const measured: string[] = [];

function opCounts(converted: ConvertedModel): Record<string, number> {
  const model = onnxProto.onnx.ModelProto.decode(converted.onnx);
  const counts: Record<string, number> = {};
  for (const node of model.graph?.node ?? []) counts[node.opType!] = (counts[node.opType!] ?? 0) + 1;
  return counts;
}

type Reference = { kind: 'layers'; layer?: string } | { kind: 'graph'; node: string };

/**
 * Converts `source`, runs the ONNX model and TF.js on two deterministic images (values in
 * [low, high]) and checks the outputs agree. Returns the conversion for further checks.
 */
async function expectParity(
  label: string,
  source: TfjsModelSource,
  options: { output?: string; reference: Reference; range: [number, number]; pooledReference?: boolean },
): Promise<ConvertedModel> {
  const converted = convertTfjsToOnnx(source, options.output ? { output: options.output } : {});
  const shape = [2, ...converted.inputShape.slice(1)];
  const perExample = shape.slice(1).reduce((a, b) => a * b, 1);
  const input =
    shape.length === 4
      ? syntheticImages(2, shape[1]!, shape[2]!, shape[3]!, ...options.range)
      : syntheticImages(2, 1, 1, perExample, ...options.range);

  let expected: Float32Array;
  if (options.reference.kind === 'layers') {
    const model = await loadLayersReference(source);
    const reference = options.reference.layer ? layersSubModel(model, options.reference.layer) : model;
    expected = await tfjsPredict(reference, input, shape);
    model.dispose();
  } else {
    const model = await loadGraphReference(source);
    expected = await tfjsPredict(model, input, shape, options.reference.node);
    model.dispose();
  }
  if (options.pooledReference) {
    // The reference is the 4-D map the converter pooled: average it over H and W here.
    const pixels = expected.length / (2 * converted.featureDim);
    const pooled = tf.tidy(() => tf.mean(tf.tensor(expected, [2, pixels, converted.featureDim]), 1));
    expected = Float32Array.from(await pooled.data());
    pooled.dispose();
  }

  const session = await onnxSession(converted);
  const actual = await onnxPredict(session, converted, input, shape);
  await session.release();
  expect(actual.dims).toEqual([2, converted.featureDim]);
  expect(actual.data.length).toBe(expected.length);
  const difference = maxAbsDifference(actual.data, expected);
  measured.push(`${label}: max |ONNX − TF.js| = ${difference.toExponential(2)} (featureDim ${converted.featureDim})`);
  expect(difference).toBeLessThanOrEqual(TOLERANCE);
  return converted;
}

beforeAll(async () => {
  await useWasmBackend();
});

afterAll(() => {
  console.log(`TF.js→ONNX parity:\n  ${measured.join('\n  ')}`);
});

describe('TF.js → ONNX: real models', () => {
  it('MobileNetV2 α=0.35 layers model (nested Model, float32): 1280-d pooled features', async () => {
    const source = await readTfjsModelFolder(MOBILENET_035);
    const converted = await expectParity('mobilenet-v2-0.35 (default output)', source, { reference: { kind: 'layers' }, range: [-1, 1] });
    expect(converted).toMatchObject({ format: 'layers-model', inputShape: [-1, 224, 224, 3], featureDim: 1280, pooled: false, inputName: 'input1' });
    // BatchNorm folded into the convs, ZeroPadding merged into conv pads, ReLU6 as Clip(0, 6).
    const ops = opCounts(converted);
    expect(ops).toMatchObject({ Transpose: 1, Conv: 52, Clip: 35, Add: 10, GlobalAveragePool: 1 });
    expect(ops['BatchNormalization']).toBeUndefined();
    expect(ops['Pad']).toBeUndefined();

    // A layer inside the nested model: its 7×7 map is globally average-pooled, which is what the model's own output is.
    const inner = await expectParity('mobilenet-v2-0.35 model7/out_relu (pooled by the converter)', source, {
      output: 'out_relu',
      reference: { kind: 'layers' },
      range: [-1, 1],
    });
    expect(inner).toMatchObject({ pooled: true, featureDim: 1280, outputSource: 'model7/out_relu' });
  });

  it('Teachable Machine export (Sequential ⊃ Sequential ⊃ Model, Dense head): final softmax', async () => {
    const source = await readTfjsModelFolder(TEACHABLE_MACHINE);
    const labels = JSON.parse(await readFile(TEACHABLE_MACHINE.replace('model.json', 'metadata.json'), 'utf8')).labels as string[];
    const converted = await expectParity('teachable-machine softmax', source, { reference: { kind: 'layers' }, range: [-1, 1] });
    expect(converted.featureDim).toBe(labels.length);
    expect(converted.inputShape).toEqual([-1, 224, 224, 3]);
  });

  it('nsfwjs mobilenet_v2 (layers, uint8-quantized): flatten_1 features and the softmax', async () => {
    const source = readNsfwjsModel('mobilenet_v2');
    const start = performance.now();
    const features = await expectParity('nsfwjs mobilenet_v2 flatten_1', source, {
      output: NSFWJS_FEATURE_OUTPUTS.mobilenet_v2.output,
      reference: { kind: 'layers', layer: 'flatten_1' },
      range: [0, 1],
    });
    expect(features).toMatchObject({ featureDim: 1280, pooled: false, inputShape: [-1, 224, 224, 3] });
    expect(performance.now() - start).toBeLessThan(60_000);
    const probabilities = await expectParity('nsfwjs mobilenet_v2 softmax', source, { reference: { kind: 'layers' }, range: [0, 1] });
    expect(probabilities.featureDim).toBe(5);
  });

  it('nsfwjs mobilenet_v2_mid (graph model, α=1.4): the 1792-d feature node and the final Identity', async () => {
    const source = readNsfwjsModel('mobilenet_v2_mid');
    const featureNode = NSFWJS_FEATURE_OUTPUTS.mobilenet_v2_mid.output;
    const features = await expectParity('nsfwjs mobilenet_v2_mid SpatialSqueeze', source, {
      output: featureNode,
      reference: { kind: 'graph', node: featureNode },
      range: [0, 1],
    });
    expect(features).toMatchObject({ format: 'graph-model', featureDim: 1792, pooled: false, inputName: 'input', inputShape: [-1, 224, 224, 3] });
    const ops = opCounts(features);
    expect(ops['Conv']).toBe(52);
    expect(ops['MatMul'] ?? ops['Gemm']).toBeUndefined();

    const final = await expectParity('nsfwjs mobilenet_v2_mid Identity', source, { reference: { kind: 'graph', node: 'Identity' }, range: [0, 1] });
    expect(final).toMatchObject({ featureDim: 5, outputName: 'Identity' });
  });

  it('nsfwjs inception_v3 (layers, 299 px): 2048-d flatten_1 features', async () => {
    const source = readNsfwjsModel('inception_v3');
    const converted = await expectParity('nsfwjs inception_v3 flatten_1', source, {
      output: NSFWJS_FEATURE_OUTPUTS.inception_v3.output,
      reference: { kind: 'layers', layer: 'flatten_1' },
      range: [0, 1],
    });
    expect(converted).toMatchObject({ featureDim: 2048, inputShape: [-1, 299, 299, 3] });
    expect(opCounts(converted)).toMatchObject({ Conv: 94, Concat: 15, MaxPool: 4 });
  });
});

describe('TF.js → ONNX: synthetic layers models', () => {
  const built = async (model: tf.LayersModel, seed: number): Promise<TfjsModelSource> => {
    randomizeWeights(model, seed);
    const source = await sourceOf(model);
    model.dispose();
    return source;
  };

  it('convolutions: asymmetric same padding at stride 2, depthwise ×2, separable, BN, Add/Multiply/Concatenate, Flatten, Dense+softmax', async () => {
    const source = await built(convolutionModel(), 11);
    const converted = await expectParity('synthetic convolutions softmax', source, { reference: { kind: 'layers' }, range: [-1, 1] });
    expect(converted.featureDim).toBe(10);
    const flattened = await expectParity('synthetic convolutions flatten', source, { output: 'flatten', reference: { kind: 'layers', layer: 'flatten' }, range: [-1, 1] });
    expect(flattened.featureDim).toBe(2 * 2 * 6);
    // conv_s2_same: 16 px, kernel 3, stride 2 → 1 pixel of padding, at the bottom/right only.
    const model = onnxProto.onnx.ModelProto.decode(converted.onnx);
    const firstConv = model.graph?.node?.find((node) => node.opType === 'Conv');
    expect(firstConv?.attribute?.find((a) => a.name === 'pads')?.ints?.map(Number)).toEqual([0, 0, 1, 1]);
    expect(opCounts(converted)['BatchNormalization']).toBeUndefined();
    // A 4-D map as output is pooled.
    const pooled = await expectParity('synthetic convolutions concat (pooled)', source, {
      output: 'concat',
      reference: { kind: 'layers', layer: 'concat' },
      range: [-1, 1],
      pooledReference: true,
    });
    expect(pooled).toMatchObject({ pooled: true, featureDim: 24 });
  });

  it('pooling: asymmetric ZeroPadding2D, Max/AveragePooling same (asymmetric) and valid, global pools, rank-2 BatchNorm', async () => {
    const source = await built(poolingModel(), 23);
    const converted = await expectParity('synthetic pooling', source, { reference: { kind: 'layers' }, range: [-1, 1] });
    expect(converted.featureDim).toBe(5);
    expect(opCounts(converted)).toMatchObject({ MaxPool: 2, AveragePool: 2, GlobalAveragePool: 1, GlobalMaxPool: 1, BatchNormalization: 1 });
  });

  it('activations: every Keras activation, LeakyReLU / ELU / Softmax / capped ReLU layers, Average / Maximum / Minimum', async () => {
    const source = await built(activationModel(), 37);
    const converted = await expectParity('synthetic activations', source, { reference: { kind: 'layers' }, range: [-2, 2] });
    expect(converted.featureDim).toBe(6 * 6 * 4 * 21);
  });

  it('reshapes: rank-2 input, Dense → Reshape to an image → Conv → Dense on rank 4 → Reshape → Flatten', async () => {
    const source = await built(reshapeModel(), 41);
    const converted = await expectParity('synthetic reshapes', source, { reference: { kind: 'layers' }, range: [-1, 1] });
    expect(converted).toMatchObject({ inputShape: [-1, 24], featureDim: 7 });
  });

  it('nesting: a functional model with a shared layer inside a Sequential', async () => {
    const source = await built(nestedModel(), 53);
    const converted = await expectParity('synthetic nested', source, { reference: { kind: 'layers' }, range: [-1, 1] });
    expect(converted.featureDim).toBe(4);
  });

  it.each(['uint8', 'uint16', 'float16'] as const)('%s-quantized weights decode exactly as TF.js decodes them', async (dtype) => {
    const source = quantize(await built(convolutionModel(), 61), dtype);
    expect(source.modelJson.weightsManifest[0].weights[0].quantization.dtype).toBe(dtype);
    await expectParity(`synthetic convolutions, ${dtype} weights`, source, { output: 'flatten', reference: { kind: 'layers', layer: 'flatten' }, range: [-1, 1] });
  });

  it('the Keras 3 topology format ({args, kwargs} inbound nodes, Functional, batch_shape) converts the same', async () => {
    const source = await built(convolutionModel(), 13);
    const keras3 = asKeras3(source);
    expect(JSON.stringify(keras3.modelJson.modelTopology)).toContain('__keras_tensor__');
    const converted = convertTfjsToOnnx(keras3);
    const reference = convertTfjsToOnnx(source);
    const input = syntheticImages(2, 16, 16, 3, -1, 1);
    const [a, b] = await Promise.all([converted, reference].map(async (model) => {
      const session = await onnxSession(model);
      const result = await onnxPredict(session, model, input, [2, 16, 16, 3]);
      await session.release();
      return result.data;
    }));
    expect(maxAbsDifference(a!, b!)).toBe(0);
    expect(converted.featureDim).toBe(10);
  });

  it('batch size is dynamic', async () => {
    const converted = convertTfjsToOnnx(await built(nestedModel(), 67));
    const session = await onnxSession(converted);
    for (const batch of [1, 3]) {
      const result = await onnxPredict(session, converted, syntheticImages(batch, 8, 8, 3, -1, 1), [batch, 8, 8, 3]);
      expect(result.dims).toEqual([batch, 4]);
    }
    await session.release();
  });
});

describe('TF.js → ONNX: synthetic graph model', () => {
  it('Conv2D/BiasAdd/Relu6 with EXPLICIT padding, Pad, depthwise, pools, ConcatV2, Mean, Reshape, Squeeze, MatMul, Softmax', async () => {
    const source = graphModelSource();
    const final = await expectParity('synthetic graph Identity', source, { reference: { kind: 'graph', node: 'Identity' }, range: [0, 1] });
    expect(final).toMatchObject({ format: 'graph-model', featureDim: 5, inputShape: [-1, 10, 10, 3] });
    const features = await expectParity('synthetic graph features', source, { output: 'features', reference: { kind: 'graph', node: 'features' }, range: [0, 1] });
    expect(features.featureDim).toBe(16);
    const pooled = await expectParity('synthetic graph concat (pooled)', source, { output: 'concat', reference: { kind: 'graph', node: 'concat' }, range: [0, 1], pooledReference: true });
    expect(pooled).toMatchObject({ pooled: true, featureDim: 16 });
  });
});

describe('TF.js → ONNX: errors name what is wrong', () => {
  let folder: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'headstart-tfjs-'));
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  /** Writes a model folder with its weights split into `shardSize`-byte shards, as the TF.js converter does. */
  async function writeModelFolder(name: string, source: TfjsModelSource, shardSize: number): Promise<{ modelJson: string; shards: string[] }> {
    const bytes = new Uint8Array(source.weightData);
    const count = Math.ceil(bytes.byteLength / shardSize);
    const paths = Array.from({ length: count }, (_, i) => `${name}-shard${i + 1}of${count}.bin`);
    const shards: string[] = [];
    for (const [i, path] of paths.entries()) {
      const file = join(folder, path);
      await writeFile(file, bytes.subarray(i * shardSize, (i + 1) * shardSize));
      shards.push(file);
    }
    const modelJson = join(folder, `${name}.json`);
    const manifest = [{ paths, weights: source.modelJson.weightsManifest.flatMap((group: { weights: unknown[] }) => group.weights) }];
    await writeFile(modelJson, JSON.stringify({ ...source.modelJson, weightsManifest: manifest }));
    return { modelJson, shards };
  }

  async function smallSource(): Promise<TfjsModelSource> {
    const model = nestedModel();
    randomizeWeights(model, 71);
    const source = await sourceOf(model);
    model.dispose();
    return source;
  }

  it('reads a sharded folder back to the same weights', async () => {
    const source = await smallSource();
    const { modelJson } = await writeModelFolder('roundtrip', source, 100);
    const read = await readTfjsModelFolder(modelJson);
    expect(new Uint8Array(read.weightData)).toEqual(new Uint8Array(source.weightData));
    expect(convertTfjsToOnnx(read).featureDim).toBe(4);
  });

  it('an unsupported layer is named with its class and the supported list', async () => {
    const model = tf.sequential({ layers: [tf.layers.lstm({ units: 4, inputShape: [5, 3], name: 'my_lstm' })] });
    const source = await sourceOf(model);
    model.dispose();
    expect(() => convertTfjsToOnnx(source)).toThrowError(/layer "my_lstm" \(LSTM\) is not supported by the TF\.js→ONNX converter; supported: InputLayer, Conv2D/);
    expect(() => convertTfjsToOnnx(source)).toThrowError(HeadstartError);
  });

  it('an unsupported graph op is named with its node', () => {
    const source = graphModelSource({ name: 'odd_one', op: 'Cumsum', input: ['logits', 'concat_axis'] });
    expect(() => convertTfjsToOnnx(source)).toThrowError(/node "odd_one" \(Cumsum\) is not supported/);
    // The same graph converts when the output does not depend on that node.
    expect(convertTfjsToOnnx(source, { output: 'features' }).featureDim).toBe(16);
  });

  it('an unknown output name lists the available layers', async () => {
    const source = await smallSource();
    expect(() => convertTfjsToOnnx(source, { output: 'nope' })).toThrowError(/no layer named "nope"; the last layers are: .*head/);
  });

  it('a missing weight shard names the file', async () => {
    const { modelJson, shards } = await writeModelFolder('missing', await smallSource(), 100);
    await unlink(shards[1]!);
    await expect(readTfjsModelFolder(modelJson)).rejects.toThrowError(/missing-shard2of\d+\.bin.*weight shard "missing-shard2of\d+\.bin" listed in the weightsManifest of missing\.json is missing/);
  });

  it('a truncated weight shard names the file and the byte count it should have', async () => {
    const source = await smallSource();
    const total = source.weightData.byteLength;
    const middle = await writeModelFolder('short-middle', source, 100);
    await truncate(middle.shards[1]!, 60);
    await expect(readTfjsModelFolder(middle.modelJson)).rejects.toThrowError(/short-middle-shard2of\d+\.bin: weight shard is truncated: it has 60 bytes, expected 100 /);

    const last = await writeModelFolder('short-last', source, 100);
    const lastSize = total - 100 * (last.shards.length - 1);
    await truncate(last.shards.at(-1)!, lastSize - 8);
    await expect(readTfjsModelFolder(last.modelJson)).rejects.toThrowError(new RegExp(`short-last-shard${last.shards.length}of\\d+\\.bin: weight shard is truncated: it has ${lastSize - 8} bytes, expected ${lastSize} \\(.* need ${total} bytes`));
  });

  it('a model.json that is not JSON names the file', async () => {
    const file = join(folder, 'broken.json');
    await writeFile(file, '{"modelTopology": ');
    await expect(readTfjsModelFolder(file)).rejects.toThrowError(/broken\.json: not valid JSON/);
  });

  it('weight data shorter than the manifest is reported, not read past', async () => {
    const source = await smallSource();
    const short = { ...source, weightData: source.weightData.slice(0, source.weightData.byteLength - 4) };
    expect(() => convertTfjsToOnnx(short)).toThrowError(/weight data ends early: weight ".*" needs bytes \d+\.\.\d+ but there are only \d+ bytes/);
  });
});
