/**
 * TF.js → ONNX: turns a TF.js layers model (Keras topology) or graph model into an ONNX model that
 * onnxruntime runs, taking the TF.js input as is (NHWC float32, dynamic batch) and producing one
 * rank-2 feature tensor `[batch, featureDim]`.
 */
import { modelError } from '../../util/errors.js';
import { Emitter, type Value } from './emitter.js';
import { convertGraphModel, convertGraphNodes } from './graph-model.js';
import { convertLayersModel } from './layers-model.js';
import { encodeModel, OnnxGraph } from './onnx-graph.js';
import { optimize } from './optimize.js';
import { decodeWeights, parseManifest } from './weights.js';

export { nsfwjsVersion, parseModelJson, readNsfwjsModel, readTfjsModelFolder, type NsfwjsModelName, type TfjsModelSource } from './source.js';
export { SUPPORTED_LAYERS } from './layers-model.js';
export { SUPPORTED_OPS } from './graph-model.js';
import type { NsfwjsModelName, TfjsModelSource } from './source.js';

/**
 * Where the image features of the models bundled in nsfwjs are (their default outputs are the
 * 5-class NSFW softmax): the input of each model's classification head.
 */
export const NSFWJS_FEATURE_OUTPUTS: Record<NsfwjsModelName, { output: string; featureDim: number }> = {
  // Keras: input_1 → MobileNetV2 → out_relu → average_pooling2d_1 (7×7) → flatten_1 → dense_1…
  mobilenet_v2: { output: 'flatten_1', featureDim: 1280 },
  // TF-Hub MobileNetV2 α=1.4 feature vector: Logits/AvgPool → this Squeeze → _FusedMatMul (dense) → Softmax.
  mobilenet_v2_mid: {
    output: 'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze',
    featureDim: 1792,
  },
  // Keras: … → mixed10 → average_pooling2d_10 (8×8) → flatten_1 → dense_1…
  inception_v3: { output: 'flatten_1', featureDim: 2048 },
};

export interface ConvertedModel {
  /** Serialised ONNX ModelProto. */
  onnx: Uint8Array;
  inputName: string;
  outputName: string;
  /** NHWC with -1 for the batch, e.g. [-1, 224, 224, 3]. */
  inputShape: number[];
  featureDim: number;
  format: 'layers-model' | 'graph-model';
  /** The output was a 4-D feature map and the converter appended global average pooling. */
  pooled: boolean;
  /** The Keras layer (nested-model path) or graph node the features come from. */
  outputSource: string;
}

export interface ConvertOptions {
  /** Keras layer name (optionally `model/layer`) or graph node name whose output becomes the ONNX output; default: the model's output. */
  output?: string;
}

function detectFormat(modelJson: any, origin: string): ConvertedModel['format'] {
  const topology = modelJson?.modelTopology;
  if (modelJson?.format === 'graph-model' || Array.isArray(topology?.node)) return 'graph-model';
  if (topology?.model_config || topology?.class_name) return 'layers-model';
  throw modelError('modelTopology is neither a Keras model (class_name / model_config) nor a graph (node list)', origin);
}

/** Rank-2 features: as is, flattened when 1×1 spatially, globally average-pooled when a feature map. */
function toFeatureVector(emitter: Emitter, value: Value, source: string, origin: string): { value: Value; pooled: boolean } {
  const shape = value.shape;
  if (shape.length === 2) return { value, pooled: false };
  if (shape.length === 4 && shape[1] === 1 && shape[2] === 1) return { value: emitter.flatten(value, `${source}/flatten`), pooled: false };
  if (shape.length === 4) return { value: emitter.globalPool('average', value, false, `${source}/global_average_pool`), pooled: true };
  throw modelError(`output "${source}" has shape [${shape}]; expected [batch, features] or a [batch, height, width, channels] feature map`, origin);
}

export function convertTfjsToOnnx(source: TfjsModelSource, options: ConvertOptions = {}): ConvertedModel {
  const { modelJson, origin } = source;
  const format = detectFormat(modelJson, origin);
  const weights = decodeWeights(parseManifest(modelJson, origin), source.weightData, origin);
  const graph = new OnnxGraph();
  const emitter = new Emitter(graph, origin);
  const converted =
    format === 'graph-model'
      ? convertGraphModel(modelJson, weights, emitter, origin, options.output)
      : convertLayersModel(modelJson.modelTopology, weights, emitter, origin, options.output);

  const { value, pooled } = toFeatureVector(emitter, converted.output, converted.outputLayer, origin);
  const featureDim = value.shape[1]!;
  if (!(featureDim > 0)) throw modelError(`the feature size of output "${converted.outputLayer}" is not known at conversion time`, origin);
  const outputName = graph.nameTensor(value.name, pooled ? `${converted.outputLayer}/global_average_pool` : converted.outputLayer);
  graph.output = { name: outputName, shape: [-1, featureDim] };
  optimize(graph);

  const onnx = encodeModel(
    graph,
    converted.outputLayer,
    `Converted from TF.js ${format} ${origin}; output ${converted.outputLayer}${pooled ? ' (global average pooled)' : ''}`,
  );
  return {
    onnx,
    inputName: converted.input.name,
    outputName,
    inputShape: converted.input.shape,
    featureDim,
    format,
    pooled,
    outputSource: converted.outputLayer,
  };
}

export interface ConvertedOutputs {
  onnx: Uint8Array;
  inputName: string;
  /** NHWC with -1 for the batch. */
  inputShape: number[];
  /** One per requested node, in order, in TF's own (NHWC) layout. */
  outputs: { name: string; node: string; shape: number[] }[];
}

/**
 * A graph model cut at several nodes, each an ONNX output as TF.js computes it (no pooling): for
 * models whose useful outputs are maps, like a detector's heatmap and box sides, and whose own tail
 * (top-k decoding) is better done by the caller.
 */
export function convertTfjsGraphOutputs(source: TfjsModelSource, nodes: string[]): ConvertedOutputs {
  const { modelJson, origin } = source;
  if (detectFormat(modelJson, origin) !== 'graph-model') throw modelError('only TF.js graph models can be cut at named nodes', origin);
  const weights = decodeWeights(parseManifest(modelJson, origin), source.weightData, origin);
  const graph = new OnnxGraph();
  const emitter = new Emitter(graph, origin);
  const converted = convertGraphNodes(modelJson, weights, emitter, origin, nodes);
  graph.outputs = converted.outputs.map(({ node, value }) => {
    const logical = emitter.toLogical(value);
    return { name: graph.nameTensor(logical.name, node), shape: logical.shape.map((d, i) => (i === 0 ? -1 : d)) };
  });
  optimize(graph);
  const onnx = encodeModel(graph, nodes.join(','), `Converted from TF.js graph-model ${origin}; outputs ${nodes.join(', ')}`);
  return {
    onnx,
    inputName: converted.input.name,
    inputShape: converted.input.shape,
    outputs: graph.outputs.map((output, i) => ({ name: output.name, node: nodes[i]!, shape: output.shape })),
  };
}
