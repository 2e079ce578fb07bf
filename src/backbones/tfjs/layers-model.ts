/**
 * Keras topologies (TF.js `layers-model`): Functional/Model and Sequential configs, nested models
 * (Teachable Machine wraps a MobileNet Model inside Sequentials), both inbound-node formats.
 * Layers are converted on demand from the requested output backwards, so layers the output does
 * not depend on are never looked at.
 */
import { depthwiseToOihw, hwioToOihw, SUPPORTED_ACTIVATIONS, type Emitter, type Padding, type Value } from './emitter.js';
import type { DecodedWeight } from './weights.js';
import { modelError } from '../../util/errors.js';

interface TensorRef {
  layer: string;
  node: number;
  tensor: number;
}

interface KerasLayer {
  className: string;
  name: string;
  // Keras layer configs are free-form JSON.
  config: any;
  /** Inputs of each call of the layer. */
  inboundNodes: TensorRef[][];
}

interface KerasModel {
  name: string;
  layers: Map<string, KerasLayer>;
  inputs: TensorRef[];
  outputs: TensorRef[];
}

const MODEL_CLASSES = new Set(['Model', 'Functional', 'Sequential']);
const IDENTITY_CLASSES = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'ActivityRegularization', 'InputLayer']);

export const SUPPORTED_LAYERS = [
  'InputLayer', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'BatchNormalization', 'ReLU', 'LeakyReLU', 'ELU', 'Softmax',
  'Activation', 'Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum', 'Concatenate', 'ZeroPadding2D',
  'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'Flatten', 'Dense', 'Reshape',
  'Rescaling', 'Dropout (and other inference no-ops)', 'nested Model/Functional/Sequential',
];

const ALIASES: Record<string, string> = {
  Convolution2D: 'Conv2D',
  SeparableConvolution2D: 'SeparableConv2D',
  MaxPool2D: 'MaxPooling2D',
  AvgPool2D: 'AveragePooling2D',
  GlobalAvgPool2D: 'GlobalAveragePooling2D',
  GlobalMaxPool2D: 'GlobalMaxPooling2D',
};

// ---- topology parsing --------------------------------------------------------------------------

function layerName(layer: any): string {
  return String(layer?.name ?? layer?.config?.name ?? '');
}

/** Tensor references of one inbound node: `[["name", node, tensor, {}], …]` or Keras 3's `{args, kwargs}`. */
function parseInboundNode(node: unknown): TensorRef[] {
  if (Array.isArray(node) && (node.length === 0 || Array.isArray(node[0]))) {
    return node.map((entry: any) => ({ layer: String(entry[0]), node: Number(entry[1] ?? 0), tensor: Number(entry[2] ?? 0) }));
  }
  // Keras 3 / newer tf.keras: tensors appear as {class_name: '__keras_tensor__', config: {keras_history}} inside args.
  const refs: TensorRef[] = [];
  const visit = (value: any): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') {
      if (value.class_name === '__keras_tensor__' && Array.isArray(value.config?.keras_history)) {
        const [layer, nodeIndex, tensorIndex] = value.config.keras_history;
        refs.push({ layer: String(layer), node: Number(nodeIndex ?? 0), tensor: Number(tensorIndex ?? 0) });
      } else if ('args' in value) visit(value.args);
      else Object.values(value).forEach(visit);
    }
  };
  visit(node);
  return refs;
}

/** `input_layers` / `output_layers`: `[["name", 0, 0], …]` or a single `["name", 0, 0]`. */
function parseRefList(list: unknown): TensorRef[] {
  if (!Array.isArray(list)) return [];
  const entries = typeof list[0] === 'string' ? [list] : list;
  return entries.map((entry: any) => ({ layer: String(entry[0]), node: Number(entry[1] ?? 0), tensor: Number(entry[2] ?? 0) }));
}

function parseModel(json: any, origin: string): KerasModel {
  const className = json?.class_name;
  const config = json?.config;
  if (className === 'Sequential') return parseSequential(config, origin);
  if (!MODEL_CLASSES.has(className) || !Array.isArray(config?.layers)) {
    throw modelError(`expected a Keras Model, Functional or Sequential topology, got class "${String(className)}"`, origin);
  }
  const layers = new Map<string, KerasLayer>();
  for (const layer of config.layers) {
    const name = layerName(layer);
    layers.set(name, {
      className: String(layer.class_name),
      name,
      config: layer.config ?? {},
      inboundNodes: Array.isArray(layer.inbound_nodes) ? layer.inbound_nodes.map(parseInboundNode) : [],
    });
  }
  return { name: String(config.name ?? ''), layers, inputs: parseRefList(config.input_layers), outputs: parseRefList(config.output_layers) };
}

/**
 * The batch input shape a layer declares, looking into a nested model when the layer is one
 * (Teachable Machine's outer Sequential starts with a Sequential whose first layer is a Model).
 */
function declaredInputShape(layer: any): (number | null)[] | undefined {
  const config = layer?.config;
  const own = config?.batch_input_shape ?? config?.batch_shape;
  if (own) return own;
  if (layer?.class_name === 'Sequential') {
    const list = Array.isArray(config) ? config : config?.layers;
    return Array.isArray(list) && list.length > 0 ? declaredInputShape(list[0]) : undefined;
  }
  if (MODEL_CLASSES.has(layer?.class_name) && Array.isArray(config?.layers)) {
    const [input] = parseRefList(config.input_layers);
    const inputLayer = config.layers.find((candidate: any) => layerName(candidate) === input?.layer);
    return inputLayer ? declaredInputShape(inputLayer) : undefined;
  }
  return undefined;
}

/** A Sequential as the equivalent functional chain. */
function parseSequential(config: any, origin: string): KerasModel {
  const list: any[] = Array.isArray(config) ? config : config?.layers;
  const name = String((Array.isArray(config) ? undefined : config?.name) ?? 'sequential');
  if (!Array.isArray(list) || list.length === 0) throw modelError(`Sequential model "${name}" has no layers`, origin);
  const layers = new Map<string, KerasLayer>();
  let previous: TensorRef;
  const first = list[0];
  if (first.class_name === 'InputLayer') {
    previous = { layer: layerName(first), node: 0, tensor: 0 };
  } else {
    const inputName = `${name}_input`;
    const shape = declaredInputShape(first);
    layers.set(inputName, { className: 'InputLayer', name: inputName, config: { batch_input_shape: shape, dtype: first.config?.dtype ?? 'float32' }, inboundNodes: [] });
    previous = { layer: inputName, node: 0, tensor: 0 };
  }
  const inputs = [previous];
  for (const layer of list) {
    const isInput = layer.class_name === 'InputLayer';
    const current = layerName(layer);
    layers.set(current, { className: String(layer.class_name), name: current, config: layer.config ?? {}, inboundNodes: isInput ? [] : [[previous]] });
    if (!isInput) previous = { layer: current, node: 0, tensor: 0 };
  }
  return { name, layers, inputs, outputs: [previous] };
}

// ---- weights -----------------------------------------------------------------------------------

/**
 * Finds a layer's weights in the manifest. TF.js names them `layer/kernel`, sometimes prefixed by
 * the enclosing model(s) (`model7/Conv1/kernel`); Keras 3 exports name them by index (`layer/vars/0`).
 */
class KerasWeights {
  private readonly byLayerAndWeight = new Map<string, DecodedWeight[]>();

  constructor(
    private readonly weights: Map<string, DecodedWeight>,
    private readonly origin: string,
  ) {
    for (const weight of weights.values()) {
      const tokens = weight.name.split('/').map((token) => token.replace(/^_/, '')).filter((token) => token !== 'vars');
      const key = tokens.slice(-2).join('/');
      this.byLayerAndWeight.set(key, [...(this.byLayerAndWeight.get(key) ?? []), weight]);
    }
  }

  find(path: string[], weightName: string, index: number): DecodedWeight | undefined {
    for (let start = 0; start < path.length; start++) {
      const exact = this.weights.get([...path.slice(start), weightName].join('/'));
      if (exact) return exact;
    }
    const layer = path[path.length - 1]!;
    for (const key of [`${layer}/${weightName}`, `${layer}/${index}`]) {
      const candidates = this.byLayerAndWeight.get(key) ?? [];
      if (candidates.length === 1) return candidates[0];
      // Several nested models with same-named layers: prefer the one whose prefix names our models.
      const scoped = candidates.filter((weight) => path.slice(0, -1).every((model) => weight.name.split('/').includes(model)));
      if (scoped.length === 1) return scoped[0];
    }
    return undefined;
  }

  get(layer: KerasLayer, path: string[], weightName: string, index: number, expectedShape?: (number | undefined)[]): Float32Array {
    const weight = this.find(path, weightName, index);
    const describe = `layer "${layer.name}" (${layer.className})`;
    if (!weight) throw modelError(`${describe}: weight "${layer.name}/${weightName}" is not in the weightsManifest`, this.origin);
    if (weight.dtype !== 'float32') throw modelError(`${describe}: weight "${weight.name}" is ${weight.dtype}, expected float32`, this.origin);
    if (expectedShape && (weight.shape.length !== expectedShape.length || expectedShape.some((size, axis) => size !== undefined && size >= 0 && weight.shape[axis] !== size))) {
      throw modelError(`${describe}: weight "${weight.name}" has shape [${weight.shape}], expected [${expectedShape.map((s) => (s === undefined || s < 0 ? '?' : s))}]`, this.origin);
    }
    return weight.data as Float32Array;
  }
}

// ---- conversion --------------------------------------------------------------------------------

const pair = (value: unknown, fallback: number): [number, number] => {
  if (value === undefined || value === null) return [fallback, fallback];
  if (typeof value === 'number') return [value, value];
  const list = value as number[];
  return [list[0] ?? fallback, list[1] ?? list[0] ?? fallback];
};

interface LayersContext {
  emitter: Emitter;
  weights: KerasWeights;
  origin: string;
  /** The ONNX graph input, created when the top-level input layer is first needed. */
  graphInput?: { layer: string; value: Value };
}

class ModelScope {
  private readonly outputs = new Map<string, Value[]>();
  private readonly children = new Map<string, ModelScope>();

  constructor(
    private readonly context: LayersContext,
    readonly model: KerasModel,
    /** Names of the enclosing model layers, for weight lookup and messages. */
    readonly path: string[],
    /** Values bound to `model.inputs` when this model is nested; undefined at the top. */
    private readonly boundInputs: Value[] | undefined,
  ) {}

  private layer(name: string): KerasLayer {
    const layer = this.model.layers.get(name);
    if (!layer) throw modelError(`model "${this.model.name}" refers to an unknown layer "${name}"`, this.context.origin);
    return layer;
  }

  private describe(layer: KerasLayer): string {
    return `layer "${[...this.path, layer.name].join('/')}" (${layer.className})`;
  }

  /** The node index to use: Keras numbers a nested model's calls from 1 in some exports. */
  private nodeIndex(layer: KerasLayer, node: number): number {
    return node >= layer.inboundNodes.length && layer.inboundNodes.length === 1 ? 0 : node;
  }

  modelOutputs(): Value[] {
    return this.model.outputs.map((ref) => this.tensor(ref));
  }

  tensor(ref: TensorRef): Value {
    const values = this.layerOutputs(ref.layer, ref.node);
    const value = values[ref.tensor];
    if (!value) throw modelError(`layer "${ref.layer}" has no output ${ref.tensor}`, this.context.origin);
    return value;
  }

  /**
   * Outputs of one call of a layer. Resolves the layer's inputs first, depth-first with an explicit
   * stack so deep models do not overflow the call stack.
   */
  layerOutputs(name: string, node: number): Value[] {
    const key = (layer: string, index: number) => `${layer}@${this.nodeIndex(this.layer(layer), index)}`;
    const pending: [string, number][] = [[name, node]];
    const visiting = new Set<string>();
    while (pending.length > 0) {
      const [current, call] = pending[pending.length - 1]!;
      const id = key(current, call);
      if (this.outputs.has(id)) {
        pending.pop();
        continue;
      }
      const layer = this.layer(current);
      const refs = this.inboundRefs(layer, this.nodeIndex(layer, call));
      const missing = refs.filter((ref) => !this.outputs.has(key(ref.layer, ref.node)));
      if (missing.length > 0 && !visiting.has(id)) {
        visiting.add(id);
        for (const ref of missing) pending.push([ref.layer, ref.node]);
        continue;
      }
      if (missing.length > 0) throw modelError(`${this.describe(layer)}: its inputs form a cycle`, this.context.origin);
      pending.pop();
      const inputs = refs.map((ref) => {
        const value = this.outputs.get(key(ref.layer, ref.node))![ref.tensor];
        if (!value) throw modelError(`${this.describe(layer)} uses output ${ref.tensor} of layer "${ref.layer}", which has no such output`, this.context.origin);
        return value;
      });
      this.outputs.set(id, this.apply(layer, this.nodeIndex(layer, call), inputs));
    }
    return this.outputs.get(key(name, node))!;
  }

  private inboundRefs(layer: KerasLayer, node: number): TensorRef[] {
    if (this.isModelInput(layer)) return [];
    const refs = layer.inboundNodes[node];
    if (!refs) throw modelError(`${this.describe(layer)} has no call number ${node}`, this.context.origin);
    return refs;
  }

  private isModelInput(layer: KerasLayer): boolean {
    return this.model.inputs.some((ref) => ref.layer === layer.name) || (layer.className === 'InputLayer' && layer.inboundNodes.length === 0);
  }

  /** The scope of a nested model layer's call, created once. */
  child(name: string, node = 0): ModelScope {
    const layer = this.layer(name);
    const index = this.nodeIndex(layer, node);
    const id = `${name}@${index}`;
    let scope = this.children.get(id);
    if (!scope) {
      const inputs = this.inboundRefs(layer, index).map((ref) => this.tensor(ref));
      scope = new ModelScope(this.context, parseModel({ class_name: layer.className, config: layer.config }, this.context.origin), [...this.path, name], inputs);
      this.children.set(id, scope);
    }
    return scope;
  }

  private modelInput(layer: KerasLayer): Value {
    const position = this.model.inputs.findIndex((ref) => ref.layer === layer.name);
    if (this.boundInputs) {
      const value = this.boundInputs[Math.max(position, 0)];
      if (!value) throw modelError(`nested model "${this.path.join('/')}" is called with too few inputs`, this.context.origin);
      return value;
    }
    const existing = this.context.graphInput;
    if (existing && existing.layer !== layer.name) {
      throw modelError(`the model has several inputs ("${existing.layer}", "${layer.name}"); only single-input image models are supported`, this.context.origin);
    }
    if (existing) return existing.value;
    const dtype = layer.config.dtype ?? 'float32';
    if (dtype !== 'float32') throw modelError(`input "${layer.name}" has dtype ${dtype}; only float32 inputs are supported`, this.context.origin);
    const declared: (number | null)[] | undefined = layer.config.batch_input_shape ?? layer.config.batch_shape;
    if (!Array.isArray(declared)) throw modelError(`input "${layer.name}" declares no batch_input_shape`, this.context.origin);
    const shape = declared.map((size) => (typeof size === 'number' && size > 0 ? size : -1));
    shape[0] = -1;
    const value: Value = { name: this.context.emitter.graph.addInput(layer.name, shape), shape, channelsFirst: false };
    this.context.graphInput = { layer: layer.name, value };
    return value;
  }

  private apply(layer: KerasLayer, node: number, inputs: Value[]): Value[] {
    if (this.isModelInput(layer)) return [this.modelInput(layer)];
    if (MODEL_CLASSES.has(layer.className)) return this.child(layer.name, node).modelOutputs();
    return [this.convertLayer(layer, inputs)];
  }

  private convertLayer(layer: KerasLayer, inputs: Value[]): Value {
    const e = this.context.emitter;
    const c = layer.config;
    const name = layer.name;
    const path = [...this.path, name];
    const x = inputs[0]!;
    const className = ALIASES[layer.className] ?? layer.className;
    const describe = this.describe(layer);
    const fail = (problem: string) => modelError(`${describe}: ${problem}`, this.context.origin);
    const activate = (value: Value, activation: unknown): Value => {
      const result = e.activation(value, activation as string | undefined, name);
      if (!result) throw fail(`activation "${String(activation)}" is not supported; supported: ${SUPPORTED_ACTIVATIONS.join(', ')}`);
      return result;
    };
    /** Tensor name before the layer's activation, so the layer's own name goes to its final output. */
    const linearName = c.activation && c.activation !== 'linear' ? `${name}/linear` : name;
    const weight = (weightName: string, index: number, shape?: (number | undefined)[]) => this.context.weights.get(layer, path, weightName, index, shape);
    const requireRank = (rank: number) => {
      if (x.shape.length !== rank) throw fail(`expects a rank-${rank} input, got shape [${x.shape}]`);
    };
    const channelsLast = () => {
      if (c.data_format && c.data_format !== 'channels_last') throw fail(`data_format "${c.data_format}" is not supported (only channels_last)`);
    };
    const padding = (): Padding => {
      const value = String(c.padding ?? 'valid').toLowerCase();
      if (value !== 'same' && value !== 'valid') throw fail(`padding "${c.padding}" is not supported (only same / valid)`);
      return value;
    };

    if (IDENTITY_CLASSES.has(className)) return x;
    switch (className) {
      case 'Conv2D': {
        requireRank(4);
        channelsLast();
        const groups = Number(c.groups ?? 1);
        const kernelSize = pair(c.kernel_size, 1);
        const kernel = weight('kernel', 0, [...kernelSize, x.shape[3]! > 0 ? x.shape[3]! / groups : undefined, c.filters]);
        const { weights, weightShape } = hwioToOihw(kernel, [...kernelSize, kernel.length / (kernelSize[0] * kernelSize[1] * c.filters), c.filters]);
        const bias = c.use_bias === false ? undefined : weight('bias', 1, [c.filters]);
        const y = e.conv(x, { weights, weightShape, bias, strides: pair(c.strides, 1), dilations: pair(c.dilation_rate, 1), padding: padding(), group: groups }, linearName);
        return activate(y, c.activation);
      }
      case 'DepthwiseConv2D': {
        requireRank(4);
        channelsLast();
        const multiplier = Number(c.depth_multiplier ?? 1);
        const kernelSize = pair(c.kernel_size, 1);
        const channels = x.shape[3]!;
        const kernel = weight('depthwise_kernel', 0, [...kernelSize, channels, multiplier]);
        const depthwise = depthwiseToOihw(kernel, [...kernelSize, kernel.length / (kernelSize[0] * kernelSize[1] * multiplier), multiplier]);
        const bias = c.use_bias === false ? undefined : weight('bias', 1, [depthwise.weightShape[0]]);
        const y = e.conv(x, { ...depthwise, bias, strides: pair(c.strides, 1), dilations: pair(c.dilation_rate, 1), padding: padding() }, linearName);
        return activate(y, c.activation);
      }
      case 'SeparableConv2D': {
        requireRank(4);
        channelsLast();
        const multiplier = Number(c.depth_multiplier ?? 1);
        const kernelSize = pair(c.kernel_size, 1);
        const channels = x.shape[3]!;
        const depthwiseKernel = weight('depthwise_kernel', 0, [...kernelSize, channels, multiplier]);
        const depthwise = depthwiseToOihw(depthwiseKernel, [...kernelSize, depthwiseKernel.length / (kernelSize[0] * kernelSize[1] * multiplier), multiplier]);
        const mid = e.conv(x, { ...depthwise, strides: pair(c.strides, 1), dilations: pair(c.dilation_rate, 1), padding: padding() }, `${name}/depthwise`);
        const pointwiseKernel = weight('pointwise_kernel', 1, [1, 1, depthwise.weightShape[0], c.filters]);
        const pointwise = hwioToOihw(pointwiseKernel, [1, 1, depthwise.weightShape[0], c.filters]);
        const bias = c.use_bias === false ? undefined : weight('bias', 2, [c.filters]);
        const y = e.conv(mid, { ...pointwise, bias, strides: [1, 1], dilations: [1, 1], padding: 'valid', group: 1 }, linearName);
        return activate(y, c.activation);
      }
      case 'BatchNormalization': {
        const rank = x.shape.length;
        const axes = Array.isArray(c.axis) ? c.axis : [c.axis ?? -1];
        if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== rank - 1)) throw fail(`normalising over axis ${JSON.stringify(c.axis)} is not supported (only the last axis)`);
        const channels = x.shape[rank - 1]!;
        let index = 0;
        const ones = new Float32Array(channels).fill(1);
        const scale = c.scale === false ? ones : weight('gamma', index++, [channels]);
        const offset = c.center === false ? new Float32Array(channels) : weight('beta', index++, [channels]);
        const mean = weight('moving_mean', index++, [channels]);
        const variance = weight('moving_variance', index++, [channels]);
        return e.batchNorm(x, { scale, offset, mean, variance, epsilon: Number(c.epsilon ?? 1e-3) }, name);
      }
      case 'ReLU': {
        const maxValue = c.max_value === null || c.max_value === undefined ? undefined : Number(c.max_value);
        const slope = Number(c.negative_slope ?? 0);
        if (Number(c.threshold ?? 0) !== 0) throw fail('a non-zero threshold is not supported');
        if (slope !== 0) {
          const leaky = e.leakyRelu(x, slope, maxValue === undefined ? name : `${name}/leaky`);
          return maxValue === undefined ? leaky : e.clip(leaky, undefined, maxValue, name);
        }
        return maxValue === undefined ? activate(x, 'relu') : e.clip(x, 0, maxValue, name);
      }
      case 'LeakyReLU':
        return e.leakyRelu(x, Number(c.alpha ?? c.negative_slope ?? 0.3), name);
      case 'ELU':
        return e.elu(x, Number(c.alpha ?? 1), name);
      case 'Softmax':
        return e.softmax(x, Array.isArray(c.axis) ? c.axis[0] : Number(c.axis ?? -1), name);
      case 'Activation':
        return activate(x, c.activation);
      case 'Add':
        return e.merge('Sum', inputs, name);
      case 'Subtract':
        return e.merge('Sub', inputs, name);
      case 'Multiply':
        return e.merge('Mul', inputs, name);
      case 'Average':
        return e.merge('Mean', inputs, name);
      case 'Maximum':
        return e.merge('Max', inputs, name);
      case 'Minimum':
        return e.merge('Min', inputs, name);
      case 'Concatenate':
        return e.concat(inputs, Number(c.axis ?? -1), name);
      case 'ZeroPadding2D': {
        requireRank(4);
        channelsLast();
        const spec = c.padding ?? 1;
        const [rows, cols]: [number, number][] =
          typeof spec === 'number' ? [[spec, spec], [spec, spec]]
          : typeof spec[0] === 'number' ? [[spec[0], spec[0]], [spec[1], spec[1]]]
          : [pair(spec[0], 0), pair(spec[1], 0)];
        return e.pad(x, [[0, 0], rows, cols, [0, 0]], name);
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        requireRank(4);
        channelsLast();
        const kernel = pair(c.pool_size, 2);
        const strides = c.strides === null || c.strides === undefined ? kernel : pair(c.strides, 1);
        return e.pool(className === 'MaxPooling2D' ? 'max' : 'average', x, { kernel, strides, padding: padding() }, name);
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        requireRank(4);
        channelsLast();
        return e.globalPool(className === 'GlobalMaxPooling2D' ? 'max' : 'average', x, c.keepdims === true, name);
      case 'Flatten':
        channelsLast();
        return e.flatten(x, name);
      case 'Dense': {
        const inFeatures = x.shape[x.shape.length - 1]!;
        const kernel = weight('kernel', 0, [inFeatures, c.units]);
        const bias = c.use_bias === false ? undefined : weight('bias', 1, [c.units]);
        const y = e.dense(x, kernel, [kernel.length / c.units, c.units], bias, linearName);
        return activate(y, c.activation);
      }
      case 'Reshape': {
        const target: number[] = (c.target_shape ?? []).map((size: number | null) => (size === null ? -1 : Number(size)));
        return e.reshape(x, [0, ...target], name);
      }
      case 'Rescaling': {
        const scale = Number(c.scale ?? 1);
        const offset = Number(c.offset ?? 0);
        const scaled = scale === 1 ? x : e.binary('Mul', x, { constant: Float32Array.of(scale), shape: [] }, offset === 0 ? name : `${name}/scaled`);
        return offset === 0 ? scaled : e.binary('Add', scaled, { constant: Float32Array.of(offset), shape: [] }, name);
      }
      default:
        throw modelError(`${describe} is not supported by the TF.js→ONNX converter; supported: ${SUPPORTED_LAYERS.join(', ')}`, this.context.origin);
    }
  }
}

/** Every layer of the topology with the names of its enclosing model layers. */
function allLayerPaths(model: KerasModel, origin: string, prefix: string[] = []): string[][] {
  const paths: string[][] = [];
  for (const layer of model.layers.values()) {
    paths.push([...prefix, layer.name]);
    if (MODEL_CLASSES.has(layer.className)) {
      paths.push(...allLayerPaths(parseModel({ class_name: layer.className, config: layer.config }, origin), origin, [...prefix, layer.name]));
    }
  }
  return paths;
}

export interface LayersConversion {
  output: Value;
  /** The layer the output comes from, as nested-model path. */
  outputLayer: string;
  input: Value;
  inputName: string;
}

/**
 * Converts a Keras topology into `emitter`'s graph. `output` names a layer anywhere in the
 * (nested) topology, optionally qualified by its enclosing models (`model7/out_relu`).
 */
export function convertLayersModel(modelTopology: any, weights: Map<string, DecodedWeight>, emitter: Emitter, origin: string, output?: string): LayersConversion {
  const topology = modelTopology?.model_config ?? modelTopology;
  const model = parseModel(topology, origin);
  const context: LayersContext = { emitter, weights: new KerasWeights(weights, origin), origin };
  const top = new ModelScope(context, model, [], undefined);

  let value: Value;
  let outputLayer: string;
  if (output === undefined) {
    const outputs = top.modelOutputs();
    value = outputs[0]!;
    outputLayer = model.outputs[0]!.layer;
  } else {
    const wanted = output.split('/');
    const matches = allLayerPaths(model, origin).filter((path) => path.length >= wanted.length && wanted.every((token, i) => path[path.length - wanted.length + i] === token));
    if (matches.length === 0) {
      const names = allLayerPaths(model, origin).map((path) => path.join('/'));
      throw modelError(`no layer named "${output}"; the last layers are: ${names.slice(-12).join(', ')}`, origin);
    }
    if (matches.length > 1) throw modelError(`layer name "${output}" is ambiguous; qualify it: ${matches.map((p) => p.join('/')).join(', ')}`, origin);
    const path = matches[0]!;
    let scope = top;
    for (const modelLayer of path.slice(0, -1)) scope = scope.child(modelLayer);
    value = scope.layerOutputs(path[path.length - 1]!, 0)[0]!;
    outputLayer = path.join('/');
  }
  if (!context.graphInput) throw modelError('the requested output does not depend on the model input', origin);
  return { output: value, outputLayer, input: context.graphInput.value, inputName: context.graphInput.layer };
}
