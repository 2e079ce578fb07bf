import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import { ImageClassifier } from '../src/classifier/image-classifier.js';
import { TextClassifier } from '../src/classifier/text-classifier.js';
import { calibrateRanges, entropyThreshold, percentileThreshold, type CalibrationRunner } from '../src/export/calibrate.js';
import { compareOnLabelled, exportClassifier, type ExportResult } from '../src/export/onnx-export.js';
import { equalizationPairs, equalizeChannels, planQuantization, uint8Quantization } from '../src/export/quantize-static.js';
import { attr, encodeModel, OnnxGraph } from '../src/backbones/tfjs/onnx-graph.js';
import { Rng } from '../src/util/rng.js';
import { runCli } from './helpers/cli.js';
import { HYMENOPTERA, SHARED, tempDir } from './helpers/images.js';

const { onnx } = onnxProto;
const MOBILENET_035 = join(SHARED, 'models/mobilenet-v2-0.35-imagenet-tfjs');
const GLOVE_20K = join(SHARED, 'models/glove-6b-100d-top20k');

/** The operators onnxruntime actually runs for a file, from the graph it saves after its own rewrites (QDQ → QLinear fusion). */
async function optimizedOps(work: string, model: Uint8Array): Promise<Map<string, number>> {
  const path = join(work, `optimized-${Math.random().toString(36).slice(2)}.onnx`);
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'extended', optimizedModelFilePath: path });
  await session.release();
  const counts = new Map<string, number>();
  for (const node of onnx.ModelProto.decode(await readFile(path)).graph!.node!) counts.set(node.opType!, (counts.get(node.opType!) ?? 0) + 1);
  return counts;
}

function opsOf(model: Uint8Array): onnxProto.onnx.INodeProto[] {
  return onnx.ModelProto.decode(model).graph!.node!;
}

describe('static int8 export (MobileNetV2 α=0.35 on hymenoptera)', () => {
  let work: string;
  let classifier: ImageClassifier;
  let fp32: ExportResult;
  let int8: ExportResult;

  beforeAll(async () => {
    work = await tempDir('headstart-int8-');
    classifier = await ImageClassifier.train({ data: HYMENOPTERA, backbone: MOBILENET_035, cacheDir: join(work, 'cache') });
    fp32 = await exportClassifier(classifier);
    int8 = await exportClassifier(classifier, { quantize: 'int8', calibration: { count: 24 } });
  });

  afterAll(async () => {
    await classifier?.dispose();
  });

  it('runs every backbone convolution on onnxruntime\'s integer kernels, pixel scaling and head in float', async () => {
    const convs = opsOf(fp32.onnx).filter((node) => node.opType === 'Conv').length;
    expect(convs).toBeGreaterThan(30);
    const ops = await optimizedOps(work, int8.onnx);
    expect(ops.get('QLinearConv')).toBe(convs);
    expect(ops.get('Conv') ?? 0).toBe(0);
    // The residual Adds too; the head (Gemm) and the pixel scaling (Cast, Mul) stay float.
    expect(ops.get('QLinearAdd')).toBeGreaterThan(0);
    expect(ops.get('Gemm')).toBe(1);
    expect(ops.get('Cast')).toBe(1);
    expect(int8.quantization).toMatchObject({ tensors: convs, calibration: { method: 'minmax', inputs: 24 } });
    expect(int8.metadata.provenance?.quantization?.scheme).toMatch(/^static int8/);
    expect(int8.onnx.byteLength).toBeLessThan(fp32.onnx.byteLength / 2.5);
  });

  it('agrees with the library on top-1 for ≥ 94 % of the validation photos and loses at most 3 points of accuracy', async () => {
    const { items } = await classifier.adapter.readLabelled(join(HYMENOPTERA, 'val'), classifier.labels);
    const comparison = await compareOnLabelled(classifier, int8.onnx, items);
    expect(comparison.inputs).toBe(153);
    expect(comparison.top1Agreement).toBeGreaterThanOrEqual(0.94);
    expect(comparison.accuracyDrop).toBeLessThanOrEqual(0.03);
    expect(int8.check.top1Agreement).toBe(1);
  });

  it('calibrates with percentile and entropy too: valid uint8 scales, and a file as accurate within margin', async () => {
    const { items } = await classifier.adapter.readLabelled(join(HYMENOPTERA, 'val'), classifier.labels);
    for (const method of ['percentile', 'entropy'] as const) {
      const result = await exportClassifier(classifier, { quantize: 'int8', calibration: { method, count: 8 } });
      expect(result.quantization?.calibration).toMatchObject({ method, inputs: 8 });
      const model = onnx.ModelProto.decode(result.onnx);
      const initializers = new Map(model.graph!.initializer!.map((t) => [t.name!, t]));
      const quantizers = model.graph!.node!.filter((node) => node.opType === 'QuantizeLinear');
      expect(quantizers.length).toBe(result.quantization!.activations);
      for (const node of quantizers) {
        const scale = initializers.get(node.input![1]!)!;
        const zero = initializers.get(node.input![2]!)!;
        expect(zero.dataType).toBe(onnx.TensorProto.DataType.UINT8);
        expect(scale.floatData![0]).toBeGreaterThan(0);
        expect(Number.isFinite(scale.floatData![0])).toBe(true);
      }
      const comparison = await compareOnLabelled(classifier, result.onnx, items.filter((_, i) => i % 5 === 0));
      expect(comparison.top1Agreement, method).toBeGreaterThanOrEqual(0.85);
    }
  });

  it('writes the int8 file from the command line, calibrated on the training data the manifest names', async () => {
    const modelDir = join(work, 'model');
    await classifier.save(modelDir, { report: false });
    const out = join(work, 'cli.int8.onnx');
    const result = await runCli(['export', modelDir, '--quantize', 'int8', '--calibration-count', '8', '--out', out, '--cache-dir', join(work, 'cache')]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/\(\d+\.\d MB, int8\)/);
    expect(result.stdout).toMatch(/int8 +\d+ weight tensors, .*; \d+ activations, minmax calibration on 8 training images/);
    expect(opsOf(await readFile(out)).some((node) => node.opType === 'QuantizeLinear')).toBe(true);

    const misuse = await runCli(['export', modelDir, '--calibrate', HYMENOPTERA, '--out', join(work, 'x.onnx'), '--cache-dir', join(work, 'cache')]);
    expect(misuse.code).toBe(2);
    expect(misuse.stderr).toMatch(/--calibrate sets the activation scales of --quantize int8/);
    const badMethod = await runCli(['export', modelDir, '--quantize', 'int8', '--calibration', 'median', '--out', join(work, 'x.onnx'), '--cache-dir', join(work, 'cache')]);
    expect(badMethod.code).toBe(2);
    expect(badMethod.stderr).toMatch(/minmax, percentile, entropy/);
    const missing = await runCli(['export', modelDir, '--quantize', 'int8', '--calibrate', join(work, 'no-such-data'), '--out', join(work, 'x.onnx'), '--cache-dir', join(work, 'cache')]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/no-such-data.*cannot be read.*--calibrate/);
  });

  it('refuses calibration without inputs', async () => {
    await expect(exportClassifier(classifier, { quantize: 'int8', calibration: { inputs: [] } })).rejects.toThrow(/at least one calibration input/);
  });
});

describe('static int8 where there is nothing for integer kernels', () => {
  it('a word-vector model (table look-ups and a head) is a usage error pointing at int8-weights', async () => {
    const work = await tempDir('headstart-int8-words-');
    const csv = join(work, 'reviews.csv');
    await writeFile(csv, 'text,label\n' + ['good fun', 'great film', 'loved it', 'bad film', 'awful plot', 'hated it'].map((t, i) => `${t},${i < 3 ? 'pos' : 'neg'}`).join('\n') + '\n');
    const classifier = await TextClassifier.train({ data: csv, backbone: GLOVE_20K, cacheDir: join(work, 'cache') });
    try {
      await expect(exportClassifier(classifier, { quantize: 'int8' })).rejects.toThrow(/nothing to run on integer kernels.*--quantize int8-weights/);
    } finally {
      await classifier.dispose();
    }
  });
});

describe('activation calibration', () => {
  /** One "tensor" per entry, its values split over three calibration inputs. */
  function runner(tensors: Record<string, Float32Array>): CalibrationRunner {
    return {
      inputs: 3,
      run: async (i) => Object.fromEntries(Object.entries(tensors).map(([name, values]) => {
        const third = Math.ceil(values.length / 3);
        return [name, values.subarray(i * third, (i + 1) * third)];
      })),
    };
  }
  const rng = new Rng(3);
  const gaussian = Float32Array.from({ length: 30_000 }, () => rng.normal());
  gaussian[17] = 40; // one outlier
  const relu = Float32Array.from(gaussian, (v) => Math.max(0, v));

  it('minmax: the exact extremes seen over all inputs, always including 0', async () => {
    const positive = Float32Array.from({ length: 300 }, (_, i) => 2 + i / 100);
    const ranges = await calibrateRanges(runner({ gaussian, positive }), ['gaussian', 'positive'], { method: 'minmax', percentile: 99.9 });
    expect(ranges.get('gaussian')).toEqual({ min: Math.min(...gaussian), max: 40 });
    expect(ranges.get('positive')).toEqual({ min: 0, max: Math.fround(4.99) });
  });

  it('percentile: the magnitude below which that share of the values lies, to within a histogram bin', async () => {
    const ranges = await calibrateRanges(runner({ gaussian, relu }), ['gaussian', 'relu'], { method: 'percentile', percentile: 99.9 });
    const sorted = Array.from(gaussian, Math.abs).sort((a, b) => a - b);
    const reference = sorted[Math.ceil(0.999 * sorted.length) - 1]!;
    const bin = 40 / 2048;
    expect(Math.abs(ranges.get('gaussian')!.max - reference)).toBeLessThanOrEqual(bin);
    expect(ranges.get('gaussian')!.min).toBeCloseTo(-ranges.get('gaussian')!.max, 6);
    // ReLU outputs keep 0 as their floor; the exact zeros are not counted.
    const positives = Array.from(relu).filter((v) => v > 0).sort((a, b) => a - b);
    expect(ranges.get('relu')!.min).toBe(0);
    expect(Math.abs(ranges.get('relu')!.max - positives[Math.ceil(0.999 * positives.length) - 1]!)).toBeLessThanOrEqual(bin);
    expect(percentileThreshold(Float64Array.of(1, 1, 1, 1), 4, 50)).toBe(2);
  });

  it('entropy: clips a lone outlier far away and keeps the bulk of a Gaussian', async () => {
    const ranges = await calibrateRanges(runner({ gaussian }), ['gaussian'], { method: 'entropy', percentile: 99.9 });
    const { max } = ranges.get('gaussian')!;
    expect(max).toBeGreaterThan(2.5);
    expect(max).toBeLessThan(10);
    // A uniform histogram has nothing to clip: the threshold is its top.
    expect(entropyThreshold(new Float64Array(2048).fill(1), 1)).toBe(1);
  });

  it('entropy: a conv output over a plain background (one spike per channel, as on MNIST digits) keeps all but a sliver of its values', async () => {
    // 16 channels; in each, 80 % of the positions are the channel's value on the background and the
    // rest (the strokes) spread over the channel's range: the histogram is 16 spikes over a thin floor.
    const spiky = (signed: boolean) => {
      const r = new Rng(11);
      const backgrounds = Array.from({ length: 16 }, () => (signed ? r.normal() * 2 : r.next() * 6));
      return Float32Array.from({ length: 16 * 3000 }, (_, i) => {
        const background = backgrounds[Math.floor(i / 3000)]!;
        if (r.next() < 0.8) return background;
        return signed ? r.normal() * 6 : Math.min(6, r.next() * 6);
      });
    };
    const relu6 = spiky(false);
    const bottleneck = spiky(true);
    const ranges = await calibrateRanges(runner({ relu6, bottleneck }), ['relu6', 'bottleneck'], { method: 'entropy', percentile: 99.9 });
    const clippedShare = (values: Float32Array, { min, max }: { min: number; max: number }) => values.filter((v) => v !== 0 && (v > max || v < min)).length / values.filter((v) => v !== 0).length;
    expect(clippedShare(relu6, ranges.get('relu6')!)).toBeLessThanOrEqual(0.001);
    expect(clippedShare(bottleneck, ranges.get('bottleneck')!)).toBeLessThanOrEqual(0.001);
  });

  it('uint8 parameters keep 0 exact and cover the range', () => {
    for (const range of [{ min: -3, max: 5 }, { min: 0, max: 6 }, { min: 0.5, max: 2 }, { min: -4, max: -1 }]) {
      const { scale, zeroPoint } = uint8Quantization(range);
      expect(Number.isInteger(zeroPoint) && zeroPoint >= 0 && zeroPoint <= 255).toBe(true);
      expect(scale * (0 - zeroPoint)).toBeLessThanOrEqual(Math.min(0, range.min) + scale / 2);
      expect(scale * (255 - zeroPoint)).toBeGreaterThanOrEqual(Math.max(0, range.max) - scale / 2);
    }
    expect(uint8Quantization({ min: 0, max: 6 })).toEqual({ scale: Math.fround(6 / 255), zeroPoint: 0 });
  });

  it('rejects unknown methods and percentiles outside (50, 100]', async () => {
    await expect(calibrateRanges(runner({ gaussian }), ['gaussian'], { method: 'median' as never, percentile: 99 })).rejects.toThrow(/unknown calibration method "median"/);
    await expect(calibrateRanges(runner({ gaussian }), ['gaussian'], { method: 'percentile', percentile: 100.5 })).rejects.toThrow(/above 50 and at most 100/);
  });
});

describe('channel equalization before calibrating', () => {
  it('leaves a Conv → Conv pair\'s float output unchanged and evens out the ranges of the tensor between them', async () => {
    const graph = new OnnxGraph();
    const input = graph.addInput('x', [-1, 3, 8, 8]);
    const rng = new Rng(5);
    // Four channels between the convolutions, with ranges 100× apart.
    const first = Float32Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => rng.normal() * [0.05, 1, 5, 0.2][Math.floor(i / 27)]!);
    const second = Float32Array.from({ length: 6 * 4 }, () => rng.normal());
    const middle = graph.addNode('Conv', [input, graph.addFloatInitializer('w1', [4, 3, 3, 3], first), graph.addFloatInitializer('b1', [4], Float32Array.of(0.1, -1, 2, 0))], { pads: attr.ints([1, 1, 1, 1]) }, 'middle');
    const out = graph.addNode('Conv', [middle, graph.addFloatInitializer('w2', [6, 4, 1, 1], second)], {}, 'out');
    graph.outputs = [{ name: out, shape: [-1, 6, 8, 8] }];
    const bytes = encodeModel(graph, 'pair', '');
    /** The model with the tensor between the convolutions as a second output, to read it. */
    const withMiddle = (model: Uint8Array) => {
      const decoded = onnx.ModelProto.decode(model);
      decoded.graph!.output!.push({ name: middle, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
      return onnx.ModelProto.encode(decoded).finish();
    };
    const x = new ort.Tensor('float32', Float32Array.from({ length: 2 * 3 * 64 }, () => rng.normal()), [2, 3, 8, 8]);
    const run = async (model: Uint8Array) => {
      const session = await ort.InferenceSession.create(withMiddle(model));
      const result = await session.run({ x });
      await session.release();
      return { out: result[out]!.data as Float32Array, middle: result[middle]!.data as Float32Array };
    };
    const channelMax = (values: Float32Array) => Array.from({ length: 4 }, (_, c) => Math.max(...Array.from({ length: 2 * 64 }, (_, k) => Math.abs(values[(Math.floor(k / 64) * 4 + c) * 64 + (k % 64)]!))));
    const before = await run(bytes);

    const model = onnx.ModelProto.decode(bytes);
    const plan = planQuantization(model.graph!, () => false);
    const pairs = equalizationPairs(model.graph!, plan);
    expect(pairs.map((pair) => pair.tensor)).toEqual([middle]);
    const ranges = channelMax(before.middle);
    expect(equalizeChannels(model.graph!, pairs, new Map([[middle, Float64Array.from(ranges)]]))).toBe(1);
    const after = await run(onnx.ModelProto.encode(model).finish());
    expect(Math.max(...Array.from(after.out, (v, i) => Math.abs(v - before.out[i]!)))).toBeLessThan(1e-4);
    const spread = (r: number[]) => Math.max(...r) / Math.min(...r);
    expect(spread(channelMax(after.middle))).toBeLessThan(Math.sqrt(spread(ranges)) * 1.01);
    expect(spread(ranges)).toBeGreaterThan(20);
  });
});
