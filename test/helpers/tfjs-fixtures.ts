/**
 * Small TF.js models built in memory for the converter tests: Keras models saved through a save
 * handler, a hand-written graph model, and hand-quantized copies of a model's weights.
 */
import type { TfjsModelSource } from '../../src/backbones/tfjs/index.js';
import { tf } from './tfjs-reference.js';

/** Deterministic weights: uniform in ±`spread`, variances in [0.5, 1.5] so BatchNorm stays sane. */
export function randomizeWeights(model: tf.LayersModel, seed: number, spread = 0.5): void {
  const weights = model.weights.map((variable, index) => {
    const isVariance = variable.originalName.endsWith('moving_variance');
    const shape = variable.shape as number[];
    return isVariance
      ? tf.randomUniform(shape, 0.5, 1.5, 'float32', seed + index)
      : tf.randomUniform(shape, -spread, spread, 'float32', seed + index);
  });
  model.setWeights(weights);
  tf.dispose(weights);
}

/** The model as model.json + weight bytes, exactly as `model.save()` would write them. */
export async function sourceOf(model: tf.LayersModel): Promise<TfjsModelSource> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (saved) => {
      artifacts = saved;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const weightData = artifacts!.weightData!;
  return {
    modelJson: {
      format: 'layers-model',
      modelTopology: artifacts!.modelTopology,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts!.weightSpecs }],
    },
    weightData: Array.isArray(weightData) ? tf.io.concatenateArrayBuffers(weightData) : weightData,
    origin: `memory:${model.name}`,
  };
}

/** float → IEEE half, round-to-nearest (a float16 package could; the test only needs valid half bits). */
function floatToHalf(value: number): number {
  const bits = new Uint32Array(Float32Array.of(value).buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  const mantissa = bits & 0x7fffff;
  if (exponent <= 0) return exponent < -10 ? sign : sign | (((mantissa | 0x800000) >> (1 - exponent)) + 0x1000) >> 13;
  if (exponent >= 31) return sign | 0x7c00;
  return sign | ((exponent << 10) + ((mantissa + 0x1000) >> 13));
}

/** A copy of a float32 model with every weight quantized by hand the way the TF.js converter does. */
export function quantize(source: TfjsModelSource, dtype: 'uint8' | 'uint16' | 'float16'): TfjsModelSource {
  const specs: tf.io.WeightsManifestEntry[] = source.modelJson.weightsManifest.flatMap((group: tf.io.WeightsManifestConfig[number]) => group.weights);
  const all = new Float32Array(source.weightData);
  const chunks: Uint8Array[] = [];
  const quantizedSpecs: tf.io.WeightsManifestEntry[] = [];
  let offset = 0;
  for (const spec of specs) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const values = all.subarray(offset, offset + count);
    offset += count;
    if (dtype === 'float16') {
      chunks.push(new Uint8Array(Uint16Array.from(values, floatToHalf).buffer));
      quantizedSpecs.push({ ...spec, quantization: { dtype: 'float16' } });
      continue;
    }
    const levels = dtype === 'uint8' ? 255 : 65535;
    const min = Math.min(...values);
    const max = Math.max(...values);
    const scale = max > min ? (max - min) / levels : 1;
    const quantized = Array.from(values, (v) => Math.round((v - min) / scale));
    chunks.push(new Uint8Array((dtype === 'uint8' ? Uint8Array.from(quantized) : Uint16Array.from(quantized)).buffer));
    quantizedSpecs.push({ ...spec, quantization: { dtype, scale, min } });
  }
  return {
    modelJson: { ...source.modelJson, weightsManifest: [{ paths: ['weights.bin'], weights: quantizedSpecs }] },
    weightData: tf.io.concatenateArrayBuffers(chunks.map((chunk) => chunk.buffer as ArrayBuffer)),
    origin: `${source.origin}:${dtype}`,
  };
}

// ---- Keras models covering every supported layer ---------------------------------------------

/**
 * Convolutions: stride-2 'same' on even sizes (asymmetric padding) for Conv2D and DepthwiseConv2D,
 * dilated SeparableConv2D, even-kernel 'same', BatchNorm after convs, ReLU(max), Add / Multiply /
 * Concatenate, 'valid' conv, and a Flatten of a 2×2 map (channels-last order matters there).
 */
export function convolutionModel(): tf.LayersModel {
  const input = tf.input({ shape: [16, 16, 3], name: 'image' });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', name: 'conv_s2_same' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'conv_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ maxValue: 6, name: 'conv_relu6' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, useBias: true, name: 'dw_s2_same' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'dw_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu6', name: 'dw_relu6' }).apply(x) as tf.SymbolicTensor;
  const separable = tf.layers.separableConv2d({ filters: 12, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'relu', name: 'sep_dilated' }).apply(x) as tf.SymbolicTensor;
  const evenKernel = tf.layers.conv2d({ filters: 12, kernelSize: 4, padding: 'same', activation: 'elu', name: 'conv_k4_same' }).apply(x) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'add' }).apply([separable, evenKernel]) as tf.SymbolicTensor;
  const product = tf.layers.multiply({ name: 'multiply' }).apply([separable, evenKernel]) as tf.SymbolicTensor;
  const joined = tf.layers.concatenate({ name: 'concat' }).apply([sum, product]) as tf.SymbolicTensor;
  const valid = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'valid', useBias: false, name: 'conv_valid' }).apply(joined) as tf.SymbolicTensor;
  const flat = tf.layers.flatten({ name: 'flatten' }).apply(valid) as tf.SymbolicTensor;
  const dropped = tf.layers.dropout({ rate: 0.5, name: 'dropout' }).apply(flat) as tf.SymbolicTensor;
  const output = tf.layers.dense({ units: 10, activation: 'softmax', name: 'probabilities' }).apply(dropped) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'convolutions' });
}

/**
 * Asymmetric ZeroPadding2D, Max/AveragePooling 'same' (asymmetric) and 'valid', global pools,
 * Dense with BatchNorm on rank 2 (not foldable), tanh.
 */
export function poolingModel(): tf.LayersModel {
  const input = tf.input({ shape: [12, 12, 4], name: 'image' });
  const padded = tf.layers.zeroPadding2d({ padding: [[1, 2], [0, 1]], name: 'zero_pad' }).apply(input) as tf.SymbolicTensor;
  const conv = tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, activation: 'relu', name: 'conv' }).apply(padded) as tf.SymbolicTensor;
  const maxSame = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'max_same' }).apply(conv) as tf.SymbolicTensor;
  const avgSame = tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'avg_same' }).apply(conv) as tf.SymbolicTensor;
  const pooled = tf.layers.concatenate({ axis: 3, name: 'pools' }).apply([maxSame, avgSame]) as tf.SymbolicTensor;
  const maxValid = tf.layers.maxPooling2d({ poolSize: 2, strides: 1, padding: 'valid', name: 'max_valid' }).apply(pooled) as tf.SymbolicTensor;
  const avgValid = tf.layers.averagePooling2d({ poolSize: 2, padding: 'valid', name: 'avg_valid' }).apply(conv) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(maxValid) as tf.SymbolicTensor;
  const gmp = tf.layers.globalMaxPooling2d({ name: 'gmp' }).apply(avgValid) as tf.SymbolicTensor;
  const features = tf.layers.concatenate({ name: 'features' }).apply([gap, gmp]) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: 5, name: 'dense' }).apply(features) as tf.SymbolicTensor;
  const normed = tf.layers.batchNormalization({ name: 'dense_bn' }).apply(dense) as tf.SymbolicTensor;
  const output = tf.layers.activation({ activation: 'tanh', name: 'tanh' }).apply(normed) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'pooling' });
}

/** Every activation as a branch off one conv, plus the activation layers and the other merge layers. */
export function activationModel(): tf.LayersModel {
  const input = tf.input({ shape: [6, 6, 3], name: 'image' });
  const conv = tf.layers.conv2d({ filters: 4, kernelSize: 1, name: 'conv', kernelInitializer: 'glorotUniform' }).apply(input) as tf.SymbolicTensor;
  const activations = ['relu', 'relu6', 'sigmoid', 'tanh', 'elu', 'selu', 'softplus', 'softsign', 'hardSigmoid', 'swish', 'mish', 'gelu', 'linear', 'softmax'] as const;
  // (gelu_new is converted too, but TF.js 4.22 cannot load a model that uses it: it serialises it as "geluNew".)
  const branches = activations.map((activation) => tf.layers.activation({ activation, name: `act_${activation}` }).apply(conv) as tf.SymbolicTensor);
  branches.push(tf.layers.leakyReLU({ alpha: 0.2, name: 'leaky' }).apply(conv) as tf.SymbolicTensor);
  branches.push(tf.layers.elu({ name: 'elu_layer' }).apply(conv) as tf.SymbolicTensor);
  branches.push(tf.layers.softmax({ axis: 3, name: 'softmax_layer' }).apply(conv) as tf.SymbolicTensor);
  branches.push(tf.layers.reLU({ maxValue: 0.3, name: 'relu_capped' }).apply(conv) as tf.SymbolicTensor);
  const three = branches.slice(0, 3);
  branches.push(tf.layers.average({ name: 'average' }).apply(three) as tf.SymbolicTensor);
  branches.push(tf.layers.maximum({ name: 'maximum' }).apply(three) as tf.SymbolicTensor);
  branches.push(tf.layers.minimum({ name: 'minimum' }).apply(three) as tf.SymbolicTensor);
  const joined = tf.layers.concatenate({ name: 'all' }).apply(branches) as tf.SymbolicTensor;
  const output = tf.layers.flatten({ name: 'flatten' }).apply(joined) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'activations' });
}

/** Rank-2 input → Dense → Reshape to an image → Conv → Dense on a rank-4 tensor → Flatten → softmax. */
export function reshapeModel(): tf.LayersModel {
  return tf.sequential({
    name: 'reshapes',
    layers: [
      tf.layers.dense({ units: 48, activation: 'relu', inputShape: [24], name: 'expand' }),
      tf.layers.reshape({ targetShape: [4, 4, 3], name: 'to_image' }),
      tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'sigmoid', name: 'conv' }),
      tf.layers.dense({ units: 5, name: 'pixelwise_dense' }),
      tf.layers.reshape({ targetShape: [16, 5], name: 'to_sequence' }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ units: 7, activation: 'softmax', name: 'probabilities' }),
    ],
  });
}

/** A Sequential wrapping a functional model with a layer shared between two calls (as Teachable Machine nests). */
export function nestedModel(): tf.LayersModel {
  const innerInput = tf.input({ shape: [8, 8, 3], name: 'inner_input' });
  const shared = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', name: 'shared_conv' });
  const twice = shared.apply(shared.apply(innerInput)) as tf.SymbolicTensor;
  const inner = tf.model({ inputs: innerInput, outputs: twice, name: 'inner' });
  return tf.sequential({
    name: 'outer',
    layers: [inner, tf.layers.globalAveragePooling2d({ name: 'gap' }), tf.layers.dense({ units: 4, activation: 'softmax', name: 'head' })],
  });
}

/**
 * The same model in the Keras 3 topology format: class "Functional", `batch_shape`, and inbound
 * nodes as `{args, kwargs}` holding `__keras_tensor__` objects (merge layers get a list in args[0]).
 */
export function asKeras3(source: TfjsModelSource): TfjsModelSource {
  const topology = structuredClone(source.modelJson.modelTopology);
  const config = (topology.model_config ?? topology).config;
  (topology.model_config ?? topology).class_name = 'Functional';
  const kerasTensor = ([layer, node, tensor]: [string, number, number]) => ({
    class_name: '__keras_tensor__',
    config: { shape: null, dtype: 'float32', keras_history: [layer, node, tensor] },
  });
  for (const layer of config.layers) {
    if (layer.config.batch_input_shape) {
      layer.config.batch_shape = layer.config.batch_input_shape;
      delete layer.config.batch_input_shape;
    }
    layer.inbound_nodes = layer.inbound_nodes.map((node: [string, number, number][]) => ({
      args: node.length === 1 ? [kerasTensor(node[0]!)] : [node.map(kerasTensor)],
      kwargs: {},
    }));
  }
  // Keras 3 writes a single input/output as a flat triple.
  if (config.input_layers.length === 1) config.input_layers = config.input_layers[0];
  return { ...source, modelJson: { ...source.modelJson, modelTopology: topology }, origin: `${source.origin}:keras3` };
}

// ---- a hand-written graph model -----------------------------------------------------------------

interface GraphConst {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  values: number[];
}

const base64 = (text: string) => Buffer.from(text).toString('base64');
const ints = (values: number[]) => ({ list: { i: values.map(String) } });
const text = (value: string) => ({ s: base64(value) });
const floatType = { type: 'DT_FLOAT' };

/**
 * A TF graph model using the ops beyond mobilenet_v2_mid's: plain Conv2D + BiasAdd + Relu6 with
 * EXPLICIT padding, Pad, DepthwiseConv2dNative, MaxPool / AvgPool, ConcatV2, Mean, Reshape,
 * Squeeze, MatMul, plus the fused ops and the Mul/Sub input scaling mobilenet_v2_mid has.
 */
export function graphModelSource(extraNode?: { name: string; op: string; input: string[] }): TfjsModelSource {
  let seed = 7;
  const random = (count: number, spread: number) =>
    Array.from({ length: count }, () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return (seed / 2147483648 - 0.5) * 2 * spread;
    });
  const consts: GraphConst[] = [
    { name: 'two', shape: [], dtype: 'float32', values: [2] },
    { name: 'one', shape: [], dtype: 'float32', values: [1] },
    { name: 'w1', shape: [3, 3, 3, 6], dtype: 'float32', values: random(162, 0.5) },
    { name: 'b1', shape: [6], dtype: 'float32', values: random(6, 0.2) },
    { name: 'w2', shape: [2, 2, 6, 4], dtype: 'float32', values: random(96, 0.5) },
    { name: 'b2', shape: [4], dtype: 'float32', values: random(4, 0.2) },
    { name: 'paddings', shape: [4, 2], dtype: 'int32', values: [0, 0, 1, 1, 1, 1, 0, 0] },
    { name: 'dw1_filter', shape: [3, 3, 4, 2], dtype: 'float32', values: random(72, 0.5) },
    { name: 'dw2_filter', shape: [3, 3, 8, 1], dtype: 'float32', values: random(72, 0.5) },
    { name: 'dw2_bias', shape: [8], dtype: 'float32', values: random(8, 0.2) },
    { name: 'concat_axis', shape: [], dtype: 'int32', values: [3] },
    { name: 'mean_axes', shape: [2], dtype: 'int32', values: [1, 2] },
    { name: 'flat_shape', shape: [2], dtype: 'int32', values: [-1, 16] },
    { name: 'wm', shape: [16, 5], dtype: 'float32', values: random(80, 0.5) },
    { name: 'bm', shape: [5], dtype: 'float32', values: random(5, 0.2) },
  ];
  const constNode = (c: GraphConst) => ({
    name: c.name,
    op: 'Const',
    attr: { value: { tensor: { dtype: c.dtype === 'float32' ? 'DT_FLOAT' : 'DT_INT32', tensorShape: { dim: c.shape.map((size) => ({ size: String(size) })) } } }, dtype: { type: c.dtype === 'float32' ? 'DT_FLOAT' : 'DT_INT32' } },
  });
  const conv = (extra: Record<string, unknown>) => ({ T: floatType, data_format: text('NHWC'), dilations: ints([1, 1, 1, 1]), ...extra });
  const nodes = [
    { name: 'input', op: 'Placeholder', attr: { shape: { shape: { dim: [{ size: '-1' }, { size: '10' }, { size: '10' }, { size: '3' }] } }, dtype: floatType } },
    ...consts.map(constNode),
    { name: 'scaled', op: 'Mul', input: ['two', 'input'], attr: { T: floatType } },
    { name: 'centered', op: 'Sub', input: ['scaled', 'one'], attr: { T: floatType } },
    { name: 'conv1', op: '_FusedConv2D', input: ['centered', 'w1', 'b1'], attr: conv({ strides: ints([1, 2, 2, 1]), padding: text('SAME'), num_args: { i: '1' }, fused_ops: { list: { s: [base64('BiasAdd'), base64('Relu')] } }, explicit_paddings: { list: {} } }) },
    { name: 'conv2', op: 'Conv2D', input: ['conv1', 'w2'], attr: conv({ strides: ints([1, 1, 1, 1]), padding: text('EXPLICIT'), explicit_paddings: ints([0, 0, 1, 0, 0, 1, 0, 0]) }) },
    { name: 'conv2_bias', op: 'BiasAdd', input: ['conv2', 'b2'], attr: { T: floatType, data_format: text('NHWC') } },
    { name: 'conv2_relu6', op: 'Relu6', input: ['conv2_bias'], attr: { T: floatType } },
    { name: 'pad', op: 'Pad', input: ['conv2_relu6', 'paddings'], attr: { T: floatType } },
    { name: 'dw1', op: 'DepthwiseConv2dNative', input: ['pad', 'dw1_filter'], attr: conv({ strides: ints([1, 1, 1, 1]), padding: text('VALID') }) },
    { name: 'dw2', op: 'FusedDepthwiseConv2dNative', input: ['dw1', 'dw2_filter', 'dw2_bias'], attr: conv({ strides: ints([1, 2, 2, 1]), padding: text('SAME'), num_args: { i: '1' }, fused_ops: { list: { s: [base64('BiasAdd'), base64('Relu6')] } } }) },
    { name: 'maxpool', op: 'MaxPool', input: ['dw1'], attr: { T: floatType, data_format: text('NHWC'), ksize: ints([1, 2, 2, 1]), strides: ints([1, 2, 2, 1]), padding: text('SAME') } },
    { name: 'sum', op: 'AddV2', input: ['dw2', 'maxpool'], attr: { T: floatType } },
    { name: 'concat', op: 'ConcatV2', input: ['sum', 'maxpool', 'concat_axis'], attr: { T: floatType, N: { i: '2' }, Tidx: { type: 'DT_INT32' } } },
    { name: 'mean', op: 'Mean', input: ['concat', 'mean_axes'], attr: { T: floatType, Tidx: { type: 'DT_INT32' }, keep_dims: { b: true } } },
    { name: 'flat', op: 'Reshape', input: ['mean', 'flat_shape'], attr: { T: floatType, Tshape: { type: 'DT_INT32' } } },
    { name: 'avgpool', op: 'AvgPool', input: ['concat'], attr: { T: floatType, data_format: text('NHWC'), ksize: ints([1, 3, 3, 1]), strides: ints([1, 1, 1, 1]), padding: text('VALID') } },
    { name: 'squeeze', op: 'Squeeze', input: ['avgpool'], attr: { T: floatType, squeeze_dims: ints([1, 2]) } },
    { name: 'features', op: 'AddV2', input: ['flat', 'squeeze'], attr: { T: floatType } },
    { name: 'logits', op: '_FusedMatMul', input: ['features', 'wm', 'bm'], attr: { T: floatType, transpose_a: { b: false }, transpose_b: { b: false }, num_args: { i: '1' }, fused_ops: { list: { s: [base64('BiasAdd')] } } } },
    { name: 'softmax', op: 'Softmax', input: [extraNode ? extraNode.name : 'logits'], attr: { T: floatType } },
    { name: 'Identity', op: 'Identity', input: ['softmax'], attr: { T: floatType } },
    ...(extraNode ? [{ ...extraNode, attr: { T: floatType } }] : []),
  ];
  const bytes = consts.map((c) => new Uint8Array((c.dtype === 'float32' ? Float32Array.from(c.values) : Int32Array.from(c.values)).buffer));
  return {
    modelJson: {
      format: 'graph-model',
      modelTopology: { node: nodes, versions: { producer: 175 } },
      weightsManifest: [{ paths: ['weights.bin'], weights: consts.map(({ name, shape, dtype }) => ({ name, shape, dtype })) }],
    },
    weightData: tf.io.concatenateArrayBuffers(bytes.map((b) => b.buffer as ArrayBuffer)),
    origin: 'memory:graph-model',
  };
}
