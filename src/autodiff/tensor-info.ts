/**
 * What the gradient rules need to know about every tensor of a graph: its dtype and its shape, with
 * the batch-dependent dimensions marked. Dtypes follow from the operators; shapes are found by
 * running the graph itself (every intermediate tensor exposed as an output) at two batch sizes, so
 * exporter-specific shape arithmetic (Shape → Gather → Concat → Reshape) needs no symbolic engine:
 * a dimension that changes with the batch is dynamic (-1), every other one is what it measured.
 */
import { createSession, ort } from '../backbones/onnx-session.js';
import { encodeModel, OnnxGraph, type GraphInput, type GraphNode, type TensorDtype } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

export interface TensorInfo {
  dtype: TensorDtype;
  /** -1 where the size depends on the batch; undefined for generated tensors of unrecorded shape. */
  dims: number[] | undefined;
  /** The sizes measured at each probe batch size (`PROBE_BATCHES`), for graph tensors. */
  probed?: number[][];
  /**
   * For small integer tensors computed from shapes and constants alone (`shapeDerived`): the values,
   * when every probe measured the same ones. With the batch the only free dimension, such a tensor is
   * a constant of the graph (RoPE's rotate_half bounds, `head_size / 2` from Shape → Gather → Div).
   */
  value?: number[];
}

/** Integer tensors at most this long have their values recorded by the probe. */
const RECORDED_VALUES = 64;
const RANDOM_OPS = new Set(['RandomUniform', 'RandomNormal', 'RandomUniformLike', 'RandomNormalLike', 'Multinomial', 'Bernoulli', 'Dropout']);

/**
 * Tensors whose values follow from the inputs' shapes and the graph's constants alone, never from
 * input values: integer initializers, Constant and Shape / Size outputs, and what nodes compute from them.
 */
export function shapeDerived(graph: OnnxGraph): Set<string> {
  const derived = new Set<string>();
  for (const [name, initializer] of graph.initializers) if (initializer.dtype === 'int64' || initializer.dtype === 'int32') derived.add(name);
  for (const node of graph.nodes) {
    const fromShapes = node.op === 'Shape' || node.op === 'Size' || node.op === 'Constant'
      || (!RANDOM_OPS.has(node.op) && node.inputs.some((i) => i !== '') && node.inputs.every((i) => i === '' || derived.has(i)));
    if (fromShapes) for (const output of node.outputs) if (output) derived.add(output);
  }
  return derived;
}

export type TensorInfoMap = Map<string, TensorInfo>;

const BOOL_OPS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);
const DTYPE_OF_ONNX: Record<number, TensorDtype> = { 1: 'float32', 11: 'float64', 7: 'int64', 6: 'int32', 9: 'bool' };

export function dtypeFromOnnx(dataType: number, where: string): TensorDtype {
  const dtype = DTYPE_OF_ONNX[dataType];
  if (!dtype) throw modelError(`${where}: data type ${dataType} is not supported`);
  return dtype;
}

/** The dtype of each output of `node`, given its inputs' dtypes. */
export function outputDtypes(node: GraphNode, dtypeOf: (tensor: string) => TensorDtype | undefined): TensorDtype[] {
  const first = node.inputs.find((input) => input !== '');
  const same = (first ? dtypeOf(first) : undefined) ?? 'float32';
  const attribute = (name: string) => node.attributes[name];
  return node.outputs.map((_, index) => {
    if (BOOL_OPS.has(node.op)) return 'bool';
    if (INT64_OPS.has(node.op)) return 'int64';
    switch (node.op) {
      case 'Cast': {
        const to = attribute('to');
        return dtypeFromOnnx(to?.kind === 'int' ? to.value : 0, `node ${node.name}`);
      }
      case 'CastLike':
        return dtypeOf(node.inputs[1]!) ?? same;
      case 'ConstantOfShape': {
        const value = attribute('value');
        return value?.kind === 'tensor' ? value.value.dtype : 'float32';
      }
      case 'Where':
        return dtypeOf(node.inputs[1]!) ?? same;
      case 'OneHot':
        return dtypeOf(node.inputs[2]!) ?? same;
      case 'MaxPool':
      case 'TopK':
        return index === 1 ? 'int64' : same;
      case 'Dropout':
        return index === 1 ? 'bool' : same;
      default:
        return same;
    }
  });
}

/** Dtypes of every tensor: initializers and inputs as declared, node outputs by `outputDtypes`. */
export function inferDtypes(graph: OnnxGraph): Map<string, TensorDtype> {
  const dtypes = new Map<string, TensorDtype>();
  for (const [name, initializer] of graph.initializers) dtypes.set(name, initializer.dtype);
  for (const input of graph.inputs) dtypes.set(input.name, input.dtype ?? 'float32');
  for (const node of graph.nodes) {
    outputDtypes(node, (tensor) => dtypes.get(tensor)).forEach((dtype, i) => {
      if (node.outputs[i]) dtypes.set(node.outputs[i]!, dtype);
    });
  }
  return dtypes;
}

export type ProbeFeeds = (batch: number) => Record<string, ort.Tensor>;

/** Batch sizes the probe runs at; neither is 1, so a size-1 dimension is never mistaken for the batch. */
export const PROBE_BATCHES = [2, 3] as const;

/**
 * Random float inputs and zero integer inputs (valid token ids / indices) for each graph input,
 * with every dynamic dimension set to `batch`.
 */
export function defaultProbeFeeds(inputs: GraphInput[], seed = 0): ProbeFeeds {
  return (batch) => {
    const rng = new Rng(seed + batch);
    const feeds: Record<string, ort.Tensor> = {};
    for (const input of inputs) {
      const dims = input.shape.map((size) => (size < 0 ? batch : size));
      const count = dims.reduce((a, b) => a * b, 1);
      const dtype = input.dtype ?? 'float32';
      if (dtype === 'float32') feeds[input.name] = new ort.Tensor('float32', Float32Array.from({ length: count }, () => rng.normal()), dims);
      else if (dtype === 'float64') feeds[input.name] = new ort.Tensor('float64', Float64Array.from({ length: count }, () => rng.normal()), dims);
      else if (dtype === 'int64') feeds[input.name] = new ort.Tensor('int64', new BigInt64Array(count), dims);
      else if (dtype === 'int32') feeds[input.name] = new ort.Tensor('int32', new Int32Array(count), dims);
      else feeds[input.name] = new ort.Tensor('bool', new Uint8Array(count).fill(1), dims);
    }
    return feeds;
  };
}

/**
 * Dtype and shape of every tensor of `graph`, found by running it at batch sizes 2 and 3 (once when
 * no input has a dynamic dimension). `feeds` supplies inputs per batch size when random floats and
 * zero integers are not valid inputs.
 */
export async function probeTensorInfo(graph: OnnxGraph, origin: string, feeds: ProbeFeeds = defaultProbeFeeds(graph.inputs)): Promise<TensorInfoMap> {
  const dtypes = inferDtypes(graph);
  const info: TensorInfoMap = new Map();
  for (const [name, initializer] of graph.initializers) info.set(name, { dtype: initializer.dtype, dims: [...initializer.dims] });

  const probeGraph = new OnnxGraph();
  probeGraph.inputs.push(...graph.inputs);
  probeGraph.nodes.push(...graph.nodes);
  for (const [name, initializer] of graph.initializers) probeGraph.initializers.set(name, initializer);
  const measured = graph.nodes.flatMap((node) => node.outputs.filter((output) => output !== ''));
  const derived = shapeDerived(graph);
  const values = new Map<string, (number[] | undefined)[]>();
  probeGraph.outputs = measured.map((name) => ({ name, shape: [], unknownShape: true, dtype: dtypes.get(name)! }));
  const bytes = encodeModel(probeGraph, 'probe', 'shape probe', { producer: 'headstart autodiff' });
  const session = await createSession(bytes, origin);
  try {
    const dynamic = graph.inputs.some((input) => input.shape.some((size) => size < 0));
    const batches: number[] = dynamic ? [...PROBE_BATCHES] : [PROBE_BATCHES[0]];
    const runs: Record<string, number[]>[] = [];
    for (const batch of batches) {
      const inputFeeds = feeds(batch);
      const outputs = await session.run(inputFeeds, measured);
      const dims: Record<string, number[]> = {};
      for (const input of graph.inputs) dims[input.name] = inputFeeds[input.name]!.dims.map(Number);
      for (const name of measured) {
        const output = outputs[name]!;
        dims[name] = output.dims.map(Number);
        if (derived.has(name) && (output.type === 'int64' || output.type === 'int32') && output.size <= RECORDED_VALUES) {
          values.set(name, [...(values.get(name) ?? []), Array.from(output.data as BigInt64Array | Int32Array, Number)]);
        }
        output.dispose?.();
      }
      runs.push(dims);
    }
    for (const name of [...graph.inputs.map((input) => input.name), ...measured]) {
      const [first, second] = runs.map((run) => run[name]!);
      const dims = first!.map((size, axis) => (second && second[axis] !== size ? -1 : size));
      if (second && second.length !== first!.length) throw modelError(`tensor ${name} changes rank with the batch size`, origin);
      const seen = values.get(name);
      const same = seen?.length === runs.length && seen.every((v) => v!.length === seen[0]!.length && v!.every((x, i) => x === seen[0]![i]));
      info.set(name, { dtype: dtypes.get(name) ?? 'float32', dims, probed: runs.map((run) => run[name]!), ...(same ? { value: seen[0] } : {}) });
    }
  } finally {
    await session.release();
  }
  return info;
}

/** True when axis 0 of `tensor` is the batch (it measured as the batch size at every probe) and no other axis varies. */
export function isPerExample(info: TensorInfo | undefined): boolean {
  if (!info?.dims || !info.probed || info.probed.length !== PROBE_BATCHES.length) return false;
  return info.probed.every((dims, i) => dims[0] === PROBE_BATCHES[i]) && info.dims.slice(1).every((size) => size >= 0);
}
