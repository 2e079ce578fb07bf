/**
 * Test helpers for the TF.js→ONNX converter: TF.js itself as the reference (wasm backend, models
 * loaded from memory), onnxruntime for the converted model, and deterministic inputs.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as ort from 'onnxruntime-node';
import type { ConvertedModel, TfjsModelSource } from '../../src/backbones/tfjs/index.js';

export { tf };

let backendReady: Promise<void> | undefined;

/** TF.js on its wasm backend (XNNPACK): ~20× faster than the pure-JS cpu backend. */
export function useWasmBackend(): Promise<void> {
  backendReady ??= (async () => {
    if (!(await tf.setBackend('wasm'))) throw new Error('TF.js wasm backend failed to initialise');
    await tf.ready();
  })();
  return backendReady;
}

/** The TF.js IOHandler artifacts of a model source (all manifest groups flattened, as TF.js does). */
export function artifactsOf(source: TfjsModelSource): tf.io.ModelArtifacts {
  const { modelJson } = source;
  return {
    modelTopology: modelJson.modelTopology,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
    userDefinedMetadata: modelJson.userDefinedMetadata,
    signature: modelJson.signature,
    weightSpecs: (modelJson.weightsManifest ?? []).flatMap((group: { weights: tf.io.WeightsManifestEntry[] }) => group.weights),
    weightData: source.weightData,
  };
}

export function loadLayersReference(source: TfjsModelSource): Promise<tf.LayersModel> {
  return tf.loadLayersModel(tf.io.fromMemory(artifactsOf(source)));
}

export function loadGraphReference(source: TfjsModelSource): Promise<tf.GraphModel> {
  return tf.loadGraphModel(tf.io.fromMemory(artifactsOf(source)));
}

/** A sub-model of a layers model ending at `layerName` (searched inside nested models too). */
export function layersSubModel(model: tf.LayersModel, layerName: string): tf.LayersModel {
  return tf.model({ inputs: model.inputs, outputs: model.getLayer(layerName).output as tf.SymbolicTensor });
}

/**
 * Deterministic "images": smooth gradients plus pseudo-random noise, in [low, high]. Smooth parts
 * give realistic activations, the noise exercises every weight.
 */
export function syntheticImages(count: number, height: number, width: number, channels: number, low: number, high: number, seed = 1): Float32Array {
  let state = seed >>> 0 || 1;
  const random = () => {
    // xorshift32 (seedrandom could; three lines keep the inputs obviously deterministic)
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const data = new Float32Array(count * height * width * channels);
  let i = 0;
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < channels; c++) {
          const smooth = 0.5 + 0.4 * Math.sin((x * (c + 1)) / (7 + n) + (y * (n + 2)) / 11 + c);
          const value = 0.7 * smooth + 0.3 * random();
          data[i++] = low + (high - low) * value;
        }
      }
    }
  }
  return data;
}

export async function tfjsPredict(model: tf.LayersModel | tf.GraphModel, input: Float32Array, shape: number[], outputNode?: string): Promise<Float32Array> {
  const x = tf.tensor(input, shape, 'float32');
  try {
    const y = (
      model instanceof tf.GraphModel ? (outputNode ? model.execute(x, outputNode) : model.execute(x)) : model.predict(x)
    ) as tf.Tensor;
    const data = (await y.data()) as Float32Array;
    y.dispose();
    return Float32Array.from(data);
  } finally {
    x.dispose();
  }
}

export async function onnxSession(converted: ConvertedModel): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(converted.onnx, { intraOpNumThreads: 2, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
}

export async function onnxPredict(session: ort.InferenceSession, converted: ConvertedModel, input: Float32Array, shape: number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const result = await session.run({ [converted.inputName]: new ort.Tensor('float32', input, shape) });
  const output = result[converted.outputName]!;
  return { data: output.data as Float32Array, dims: output.dims };
}

export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

export function maxAbs(values: Float32Array): number {
  let max = 0;
  for (const value of values) max = Math.max(max, Math.abs(value));
  return max;
}
