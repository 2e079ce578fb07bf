/**
 * TF.js graph models (`format: 'graph-model'`): a frozen TF GraphDef with Grappler-fused ops
 * (_FusedConv2D, FusedDepthwiseConv2dNative, _FusedMatMul). Converted on demand from the requested
 * node backwards, so unsupported ops the output does not depend on are ignored.
 */
import { modelError } from '../../util/errors.js';
import { depthwiseToOihw, hwioToOihw, isConstant, type Constant, type Emitter, type Operand, type Padding, type Value } from './emitter.js';
import { elementCount, type DecodedWeight } from './weights.js';

interface TfNode {
  name: string;
  op: string;
  input?: string[];
  // TF AttrValue messages as the converter writes them in JSON.
  attr?: Record<string, any>;
}

export const SUPPORTED_OPS = [
  'Placeholder', 'Const', 'Identity', 'StopGradient', 'Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative',
  'MatMul', '_FusedMatMul', 'BiasAdd', 'Add', 'AddV2', 'Sub', 'Mul', 'RealDiv', 'Maximum', 'Minimum', 'Relu', 'Relu6', 'Elu', 'Selu',
  'LeakyRelu', 'Sigmoid', 'Tanh', 'Softplus', 'Softmax', 'LogSoftmax', 'AvgPool', 'MaxPool', 'Mean', 'Squeeze', 'Reshape', 'ConcatV2',
  'Pad', 'PadV2', 'FusedBatchNorm', 'FusedBatchNormV3', 'ResizeBilinear', 'ResizeNearestNeighbor',
];

const FUSABLE_ACTIVATIONS: Record<string, string> = { Relu: 'relu', Relu6: 'relu6', Elu: 'elu', Sigmoid: 'sigmoid', Tanh: 'tanh' };

const decodeBase64 = (text: string): string => Buffer.from(text, 'base64').toString('utf8');

/** `name`, `name:1` → node name and output index; control inputs (`^name`) are not data. */
function parseInput(input: string): { node: string; index: number } | undefined {
  if (input.startsWith('^')) return undefined;
  const match = /^(.*):(\d+)$/.exec(input);
  return match ? { node: match[1]!, index: Number(match[2]) } : { node: input, index: 0 };
}

class NodeAttributes {
  constructor(
    private readonly node: TfNode,
    private readonly fail: (problem: string) => Error,
  ) {}

  private get(key: string): any {
    return this.node.attr?.[key];
  }

  string(key: string, fallback?: string): string {
    const value = this.get(key)?.s;
    if (value === undefined) {
      if (fallback !== undefined) return fallback;
      throw this.fail(`has no "${key}" attribute`);
    }
    return decodeBase64(value);
  }

  strings(key: string): string[] {
    return ((this.get(key)?.list?.s ?? []) as string[]).map(decodeBase64);
  }

  ints(key: string, fallback?: number[]): number[] {
    const list = this.get(key)?.list?.i as (string | number)[] | undefined;
    if (!list || list.length === 0) {
      if (fallback) return fallback;
      throw this.fail(`has no "${key}" attribute`);
    }
    return list.map(Number);
  }

  float(key: string, fallback: number): number {
    const value = this.get(key)?.f;
    return value === undefined ? fallback : Number(value);
  }

  bool(key: string): boolean {
    return this.get(key)?.b === true;
  }
}

/** The constant a Const node holds: from the weights manifest, or inline in its `value` attribute. */
function constantOf(node: TfNode, weights: Map<string, DecodedWeight>): Constant | undefined {
  const weight = weights.get(node.name);
  if (weight) return { constant: weight.data, shape: weight.shape };
  const tensor = node.attr?.['value']?.tensor;
  if (!tensor) return undefined;
  const shape = ((tensor.tensorShape?.dim ?? []) as { size?: string }[]).map((dim) => Number(dim.size ?? 0));
  const count = elementCount(shape);
  const isFloat = tensor.dtype === 'DT_FLOAT';
  const fill = (values: number[]): Float32Array | Int32Array => {
    const data = isFloat ? new Float32Array(count) : new Int32Array(count);
    // TF stores a constant filled with one value as that single value.
    for (let i = 0; i < count; i++) data[i] = values[Math.min(i, values.length - 1)] ?? 0;
    return data;
  };
  if (tensor.tensorContent) {
    const bytes = Buffer.from(tensor.tensorContent, 'base64');
    const copy = new Uint8Array(bytes).buffer;
    return { constant: isFloat ? new Float32Array(copy) : new Int32Array(copy), shape };
  }
  const values = (isFloat ? tensor.floatVal : tensor.intVal) as (number | string)[] | undefined;
  return { constant: fill((values ?? []).map(Number)), shape };
}

export interface GraphConversion {
  output: Value;
  outputLayer: string;
  input: Value;
  inputName: string;
}

/** The node the model's signature (or, failing that, its only sink) names as output. */
function defaultOutput(modelJson: any, nodes: Map<string, TfNode>, origin: string): string {
  const signature = modelJson.signature ?? modelJson.userDefinedMetadata?.signature;
  const outputs = signature?.outputs ? Object.values(signature.outputs as Record<string, { name?: string }>) : [];
  const named = outputs.map((output) => parseInput(String(output.name ?? ''))?.node).find((name) => name && nodes.has(name));
  if (named) return named;
  const consumed = new Set<string>();
  for (const node of nodes.values()) for (const input of node.input ?? []) consumed.add(parseInput(input)?.node ?? '');
  const sinks = [...nodes.values()].filter((node) => !consumed.has(node.name) && node.op !== 'Const' && node.op !== 'NoOp');
  if (sinks.length !== 1) throw modelError(`cannot tell the graph's output (sinks: ${sinks.map((n) => n.name).join(', ')}); pass the output node name`, origin);
  return sinks[0]!.name;
}

export function convertGraphModel(modelJson: any, weights: Map<string, DecodedWeight>, e: Emitter, origin: string, output?: string): GraphConversion {
  const converted = convertGraphNodes(modelJson, weights, e, origin, output === undefined ? undefined : [output]);
  const first = converted.outputs[0]!;
  return { output: first.value, outputLayer: first.node, input: converted.input, inputName: converted.inputName };
}

/** Converts the graph up to several nodes at once (a detector's heatmap and box outputs), sharing what they share. */
export function convertGraphNodes(
  modelJson: any,
  weights: Map<string, DecodedWeight>,
  e: Emitter,
  origin: string,
  outputs?: string[],
): { outputs: { node: string; value: Value }[]; input: Value; inputName: string } {
  const list: TfNode[] = modelJson?.modelTopology?.node;
  if (!Array.isArray(list)) throw modelError('graph model has no modelTopology.node list', origin);
  const nodes = new Map<string, TfNode>();
  for (const node of list) {
    if (nodes.has(node.name)) throw modelError(`two graph nodes are named "${node.name}"`, origin);
    nodes.set(node.name, node);
  }
  const outputNodes = outputs === undefined ? [defaultOutput(modelJson, nodes, origin)] : outputs.map((output) => parseInput(output)?.node ?? output);
  for (const outputNode of outputNodes) {
    if (!nodes.has(outputNode)) {
      const candidates = list.filter((node) => node.op !== 'Const').slice(-8).map((node) => `${node.name} (${node.op})`);
      throw modelError(`no node named "${outputNode}"; the last nodes are: ${candidates.join(', ')}`, origin);
    }
  }

  const results = new Map<string, Operand[]>();
  let graphInput: { node: string; value: Value } | undefined;

  const dataInputs = (node: TfNode) => (node.input ?? []).map(parseInput).filter((input) => input !== undefined);

  const convertNode = (node: TfNode, operands: Operand[]): Operand[] => {
    const describe = `node "${node.name}" (${node.op})`;
    const fail = (problem: string) => modelError(`${describe}: ${problem}`, origin);
    const attrs = new NodeAttributes(node, fail);
    const value = (index: number): Value => {
      const operand = operands[index];
      if (!operand) throw fail(`is missing input ${index}`);
      if (isConstant(operand)) throw fail(`input ${index} is a constant where a computed tensor is expected`);
      return operand;
    };
    const constant = (index: number, what: string): Constant => {
      const operand = operands[index];
      if (!operand || !isConstant(operand)) throw fail(`its ${what} must be a constant`);
      return operand;
    };
    const floats = (c: Constant): Float32Array => (c.constant instanceof Float32Array ? c.constant : Float32Array.from(c.constant));
    const nhwc = () => {
      const format = attrs.string('data_format', 'NHWC');
      if (format !== 'NHWC') throw fail(`data_format ${format} is not supported (only NHWC)`);
    };
    const spatial = (key: string, fallback?: number[]): [number, number] => {
      const values = attrs.ints(key, fallback);
      return [values[1]!, values[2]!];
    };
    const padding = (): Padding => {
      const mode = attrs.string('padding');
      if (mode === 'SAME') return 'same';
      if (mode === 'VALID') return 'valid';
      if (mode === 'EXPLICIT') {
        const pads = attrs.ints('explicit_paddings');
        return { top: pads[2]!, bottom: pads[3]!, left: pads[4]!, right: pads[5]! };
      }
      throw fail(`padding ${mode} is not supported`);
    };
    /** Applies a fused op list after a Conv/MatMul: BiasAdd or FusedBatchNorm, then an activation. */
    const fusedTail = (produce: (bias: Float32Array | undefined, hint: string) => Value): Value => {
      const fused = node.op.startsWith('_Fused') || node.op.startsWith('Fused') ? attrs.strings('fused_ops') : [];
      let [first, ...rest] = fused;
      let y: Value;
      const activationHint = rest.length > 0 || (first && !['BiasAdd', 'FusedBatchNorm'].includes(first)) ? `${node.name}/linear` : node.name;
      if (first === 'BiasAdd') y = produce(floats(constant(2, 'bias')), activationHint);
      else if (first === 'FusedBatchNorm') {
        const [scale, offset, mean, variance] = [0, 1, 2, 3].map((i) => floats(constant(2 + i, 'batch-norm parameter')));
        y = e.batchNorm(produce(undefined, `${node.name}/conv`), { scale: scale!, offset: offset!, mean: mean!, variance: variance!, epsilon: attrs.float('epsilon', 1e-3) }, activationHint);
      } else {
        if (first) rest = [first, ...rest];
        y = produce(undefined, activationHint);
      }
      for (const op of rest) {
        if (op === 'LeakyRelu') y = e.leakyRelu(y, attrs.float('leakyrelu_alpha', 0.2), node.name);
        else if (FUSABLE_ACTIVATIONS[op]) y = e.activation(y, FUSABLE_ACTIVATIONS[op], node.name)!;
        else throw fail(`fused op ${op} is not supported (fused ops: ${fused.join(', ')})`);
      }
      return y;
    };

    switch (node.op) {
      case 'Placeholder': {
        if (graphInput && graphInput.node !== node.name) {
          throw modelError(`the output depends on several inputs ("${graphInput.node}", "${node.name}"); only single-input models are supported`, origin);
        }
        if (graphInput) return [graphInput.value];
        const dtype = node.attr?.['dtype']?.type ?? 'DT_FLOAT';
        if (dtype !== 'DT_FLOAT') throw fail(`input dtype ${dtype} is not supported (only float32)`);
        const dims = node.attr?.['shape']?.shape?.dim as { size?: string }[] | undefined;
        if (!dims) throw fail('declares no input shape');
        const shape = dims.map((dim) => (Number(dim.size ?? -1) > 0 ? Number(dim.size) : -1));
        shape[0] = -1;
        const input: Value = { name: e.graph.addInput(node.name, shape), shape, channelsFirst: false };
        graphInput = { node: node.name, value: input };
        return [input];
      }
      case 'Const': {
        const c = constantOf(node, weights);
        if (!c) throw fail('has no value in the weights manifest');
        return [c];
      }
      case 'Identity':
      case 'StopGradient':
      case 'Snapshot':
        return [operands[0]!];
      case 'Conv2D':
      case '_FusedConv2D': {
        nhwc();
        const filter = constant(1, 'filter');
        const { weights: w, weightShape } = hwioToOihw(floats(filter), filter.shape);
        const x = value(0);
        const group = x.shape[3]! > 0 ? x.shape[3]! / weightShape[1] : 1;
        return [fusedTail((bias, hint) => e.conv(x, { weights: w, weightShape, bias, strides: spatial('strides'), dilations: spatial('dilations', [1, 1, 1, 1]), padding: padding(), group }, hint))];
      }
      case 'DepthwiseConv2dNative':
      case 'FusedDepthwiseConv2dNative': {
        nhwc();
        const filter = constant(1, 'filter');
        const depthwise = depthwiseToOihw(floats(filter), filter.shape);
        const x = value(0);
        return [fusedTail((bias, hint) => e.conv(x, { ...depthwise, bias, strides: spatial('strides'), dilations: spatial('dilations', [1, 1, 1, 1]), padding: padding() }, hint))];
      }
      case 'MatMul':
      case '_FusedMatMul': {
        if (attrs.bool('transpose_a')) throw fail('transpose_a is not supported');
        const kernel = constant(1, 'right-hand side');
        if (kernel.shape.length !== 2) throw fail(`expects a 2-D constant right-hand side, got shape [${kernel.shape}]`);
        const x = value(0);
        return [fusedTail((bias, hint) => e.dense(x, floats(kernel), kernel.shape as [number, number], bias, hint, attrs.bool('transpose_b')))];
      }
      case 'BiasAdd':
        nhwc();
        return [e.binary('Add', value(0), constant(1, 'bias'), node.name)];
      case 'Add':
      case 'AddV2':
      case 'Sub':
      case 'Mul':
      case 'RealDiv':
      case 'Maximum':
      case 'Minimum': {
        const ops = { Add: 'Add', AddV2: 'Add', Sub: 'Sub', Mul: 'Mul', RealDiv: 'Div', Maximum: 'Max', Minimum: 'Min' } as const;
        return [e.binary(ops[node.op], operands[0]!, operands[1]!, node.name)];
      }
      case 'Relu':
      case 'Relu6':
      case 'Elu':
      case 'Selu':
      case 'Sigmoid':
      case 'Tanh':
      case 'Softplus':
        return [e.activation(value(0), node.op.toLowerCase(), node.name)!];
      case 'LeakyRelu':
        return [e.leakyRelu(value(0), attrs.float('alpha', 0.2), node.name)];
      case 'Softmax':
      case 'LogSoftmax':
        return [e.softmax(value(0), -1, node.name, node.op === 'LogSoftmax')];
      case 'AvgPool':
      case 'MaxPool':
        nhwc();
        return [e.pool(node.op === 'MaxPool' ? 'max' : 'average', value(0), { kernel: spatial('ksize'), strides: spatial('strides'), padding: padding() }, node.name)];
      case 'Mean': {
        const axes = Array.from(constant(1, 'axes').constant);
        return [e.reduceMean(value(0), axes, attrs.bool('keep_dims'), node.name)];
      }
      case 'Squeeze':
        return [e.squeeze(value(0), attrs.ints('squeeze_dims', attrs.ints('axis', [])), node.name)];
      case 'Reshape':
        return [e.reshape(value(0), Array.from(constant(1, 'shape').constant), node.name)];
      case 'ConcatV2': {
        const axis = constant(operands.length - 1, 'axis').constant[0]!;
        return [e.concat(operands.slice(0, -1).map((_, i) => value(i)), axis, node.name)];
      }
      case 'Pad':
      case 'PadV2': {
        const paddings = constant(1, 'paddings').constant;
        const pairs = Array.from({ length: paddings.length / 2 }, (_, i) => [paddings[2 * i]!, paddings[2 * i + 1]!] as [number, number]);
        const fillValue = node.op === 'PadV2' ? constant(2, 'constant value').constant[0]! : 0;
        return [e.pad(value(0), pairs, node.name, fillValue)];
      }
      case 'ResizeBilinear':
      case 'ResizeNearestNeighbor': {
        const size = Array.from(constant(1, 'output size').constant);
        if (size.length !== 2) throw fail(`expects a [height, width] size, got [${size}]`);
        const alignCorners = attrs.bool('align_corners');
        const halfPixel = attrs.bool('half_pixel_centers');
        return [e.resize(value(0), [size[0]!, size[1]!], node.op === 'ResizeBilinear' ? 'linear' : 'nearest', alignCorners ? 'align_corners' : halfPixel ? 'half_pixel' : 'asymmetric', node.name)];
      }
      case 'FusedBatchNorm':
      case 'FusedBatchNormV3': {
        nhwc();
        const [scale, offset, mean, variance] = [1, 2, 3, 4].map((i) => floats(constant(i, 'batch-norm parameter')));
        return [e.batchNorm(value(0), { scale: scale!, offset: offset!, mean: mean!, variance: variance!, epsilon: attrs.float('epsilon', 1e-3) }, node.name)];
      }
      default:
        throw modelError(`${describe} is not supported by the TF.js→ONNX converter; supported ops: ${SUPPORTED_OPS.join(', ')}`, origin);
    }
  };

  // Depth-first from the outputs with an explicit stack (graphs can be thousands of nodes deep).
  const pending = [...outputNodes].reverse();
  const expanded = new Set<string>();
  while (pending.length > 0) {
    const name = pending[pending.length - 1]!;
    if (results.has(name)) {
      pending.pop();
      continue;
    }
    const node = nodes.get(name);
    if (!node) throw modelError(`a node refers to a missing input "${name}"`, origin);
    const missing = dataInputs(node).filter((input) => !results.has(input.node));
    if (missing.length > 0) {
      if (expanded.has(name)) throw modelError(`node "${name}" (${node.op}) is part of a cycle`, origin);
      expanded.add(name);
      for (const input of missing) pending.push(input.node);
      continue;
    }
    pending.pop();
    const operands = dataInputs(node).map((input) => {
      const operand = results.get(input.node)![input.index];
      if (!operand) throw modelError(`node "${name}" uses output ${input.index} of "${input.node}", which has no such output`, origin);
      return operand;
    });
    results.set(name, convertNode(node, operands));
  }

  const converted = outputNodes.map((outputNode) => {
    const result = results.get(outputNode)![0]!;
    if (isConstant(result)) throw modelError(`node "${outputNode}" is a constant, not a model output`, origin);
    if (!graphInput) throw modelError(`node "${outputNode}" does not depend on the model input`, origin);
    return { node: outputNode, value: result };
  });
  return { outputs: converted, input: graphInput!.value, inputName: graphInput!.node };
}
