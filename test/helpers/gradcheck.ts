/**
 * Finite-difference checks of the gradient rules: a one-node (or few-node) graph on random inputs,
 * the loss Σ y·R with a fixed random R (so every output element weighs differently), analytic
 * gradients from the generated backward graph against central differences of the same loss, all
 * run by onnxruntime.
 */
import { addGradients } from '../../src/autodiff/gradients.js';
import { probeTensorInfo } from '../../src/autodiff/tensor-info.js';
import { createSession, ort } from '../../src/backbones/onnx-session.js';
import { attr, encodeModel, OnnxGraph, type TensorDtype } from '../../src/backbones/tfjs/onnx-graph.js';
import { Rng } from '../../src/util/rng.js';

type FloatArray = Float32Array | Float64Array;

export interface CheckInput {
  dims: number[];
  /** Default: the case's dtype. Integer inputs are constants, never differentiated. */
  dtype?: TensorDtype;
  /** Default: standard normal draws. */
  values?: (rng: Rng, count: number) => number[];
  /** Differentiate with respect to this input (default: every float input). */
  differentiate?: boolean;
}

export interface GradCheckCase {
  dtype: 'float32' | 'float64';
  inputs: CheckInput[];
  /** Emits the op(s) under test and returns the output whose Σ y·R is the loss. */
  build(graph: OnnxGraph, inputs: string[]): string;
  /**
   * Central-difference step; default 1e-4 (float64) or 1e-2 (float32, where the difference is
   * Richardson-extrapolated from steps h and h/2 to cancel the h² truncation term that float32
   * rounding forbids shrinking away).
   */
  step?: number;
  seed?: number;
}

export interface GradCheckResult {
  /** max |analytic − numeric| / (max |numeric| + 1e-12), over every differentiated element. */
  relativeError: number;
  maxAbsoluteError: number;
  elements: number;
}

const isFloat = (dtype: TensorDtype) => dtype === 'float32' || dtype === 'float64';

function tensorOf(dtype: TensorDtype, values: number[], dims: number[]): ort.Tensor {
  switch (dtype) {
    case 'float32':
      return new ort.Tensor('float32', Float32Array.from(values), dims);
    case 'float64':
      return new ort.Tensor('float64', Float64Array.from(values), dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(Math.round(v)))), dims);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from(values), dims);
    case 'bool':
      return new ort.Tensor('bool', Uint8Array.from(values), dims);
  }
}

export async function gradCheck(testCase: GradCheckCase): Promise<GradCheckResult> {
  const rng = new Rng(testCase.seed ?? 7);
  const graph = new OnnxGraph();
  const inputNames: string[] = [];
  const feeds: Record<string, ort.Tensor> = {};
  const differentiated: string[] = [];
  testCase.inputs.forEach((input, i) => {
    const dtype = input.dtype ?? testCase.dtype;
    const count = input.dims.reduce((a, b) => a * b, 1);
    const values = input.values ? input.values(rng, count) : Array.from({ length: count }, () => rng.normal());
    if (isFloat(dtype)) {
      const name = graph.addInput(`x${i}`, input.dims, dtype);
      feeds[name] = tensorOf(dtype, values, input.dims);
      if (input.differentiate !== false) differentiated.push(name);
      inputNames.push(name);
    } else {
      const initializer = tensorOf(dtype, values, input.dims);
      inputNames.push(graph.addInitializer(`c${i}`, { dtype, dims: input.dims, data: initializer.data } as never));
    }
  });
  const output = testCase.build(graph, inputNames);
  graph.outputs = [{ name: output, shape: [], unknownShape: true, dtype: testCase.dtype }];
  const info = await probeTensorInfo(graph, 'gradcheck', () => feeds);
  const outputDims = info.get(output)!.dims!;
  const weights = Array.from({ length: outputDims.reduce((a, b) => a * b, 1) }, () => rng.normal());
  const weightName = graph.addInitializer('loss_weights', { dtype: testCase.dtype, dims: outputDims, data: testCase.dtype === 'float64' ? Float64Array.from(weights) : Float32Array.from(weights) } as never);
  info.set(weightName, { dtype: testCase.dtype, dims: outputDims });
  const weighted = graph.addNode('Mul', [output, weightName], {}, 'weighted');
  info.set(weighted, { dtype: testCase.dtype, dims: outputDims });
  const loss = graph.addNode('ReduceSum', [weighted], { keepdims: attr.int(0) }, 'loss');
  info.set(loss, { dtype: testCase.dtype, dims: [] });
  graph.outputs = [{ name: loss, shape: [], dtype: testCase.dtype }];
  const lossSession = await createSession(encodeModel(graph, 'loss', '', { producer: 'gradcheck' }), 'gradcheck loss', 1);

  const grads = addGradients(graph, info, { loss, wrt: differentiated, origin: 'gradcheck' });
  graph.outputs = [{ name: loss, shape: [], dtype: testCase.dtype }, ...differentiated.map((name) => ({ name: grads.get(name)!, shape: [], unknownShape: true, dtype: testCase.dtype }))];
  const gradSession = await createSession(encodeModel(graph, 'grad', '', { producer: 'gradcheck' }), 'gradcheck gradients', 1);

  try {
    const analytic = await gradSession.run(feeds);
    const step = testCase.step ?? (testCase.dtype === 'float64' ? 1e-4 : 1e-2);
    const lossAt = async (name: string, data: FloatArray) => {
      const run = await lossSession.run({ ...feeds, [name]: new ort.Tensor(testCase.dtype, data, feeds[name]!.dims) });
      return Number((run[loss]!.data as FloatArray)[0]);
    };
    let maxError = 0;
    let maxNumeric = 0;
    let elements = 0;
    for (const name of differentiated) {
      const base = feeds[name]!.data as FloatArray;
      const grad = analytic[grads.get(name)!]!;
      if (grad.data.length !== base.length) throw new Error(`gradient of ${name} has ${grad.data.length} values, the input ${base.length}`);
      for (let i = 0; i < base.length; i++) {
        const central = async (h: number) => {
          const plus = base.slice() as FloatArray;
          plus[i] = base[i]! + h;
          const minus = base.slice() as FloatArray;
          minus[i] = base[i]! - h;
          // The step actually taken, after rounding to the input's precision.
          return ((await lossAt(name, plus)) - (await lossAt(name, minus))) / (plus[i]! - minus[i]!);
        };
        const numeric = testCase.dtype === 'float64' ? await central(step) : (4 * (await central(step / 2)) - (await central(step))) / 3;
        maxError = Math.max(maxError, Math.abs(numeric - Number(grad.data[i])));
        maxNumeric = Math.max(maxNumeric, Math.abs(numeric));
        elements++;
      }
    }
    return { relativeError: maxError / (maxNumeric + 1e-12), maxAbsoluteError: maxError, elements };
  } finally {
    await lossSession.release();
    await gradSession.release();
  }
}
