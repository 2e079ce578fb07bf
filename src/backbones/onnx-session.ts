import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { modelError, messageOf } from '../util/errors.js';

export { ort };

/** One session per graph, on every core: backbones are the hot path. */
export async function createSession(model: string | Uint8Array, origin: string, threads?: number): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads ?? availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  };
  try {
    return typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
  } catch (error) {
    throw modelError(`onnxruntime cannot load this graph: ${messageOf(error)}`, origin, error);
  }
}

/** How a feature output becomes one vector per input. */
export type Pooling = 'none' | 'spatial-mean' | 'first-token' | 'token-mean';

/** Reduces a batch output tensor to `batch × dim` features. */
export function poolOutput(tensor: ort.Tensor, pooling: Pooling): { features: Float32Array; dim: number } {
  const data = tensor.data as Float32Array;
  const dims = tensor.dims.map(Number);
  const batch = dims[0]!;
  if (pooling === 'none' || dims.length === 2) {
    const dim = data.length / batch;
    return { features: data.slice(), dim };
  }
  if (pooling === 'spatial-mean') {
    // NCHW: average each channel's H×W plane.
    const [, channels, height, width] = dims as [number, number, number, number];
    const plane = height * width;
    const out = new Float32Array(batch * channels);
    for (let i = 0; i < batch * channels; i++) {
      let sum = 0;
      for (let p = 0, o = i * plane; p < plane; p++) sum += data[o + p]!;
      out[i] = sum / plane;
    }
    return { features: out, dim: channels };
  }
  const [, tokens, dim] = dims as [number, number, number];
  const out = new Float32Array(batch * dim);
  for (let b = 0; b < batch; b++) {
    const base = b * tokens * dim;
    if (pooling === 'first-token') {
      out.set(data.subarray(base, base + dim), b * dim);
      continue;
    }
    for (let t = 0; t < tokens; t++) for (let d = 0; d < dim; d++) out[b * dim + d]! += data[base + t * dim + d]!;
    for (let d = 0; d < dim; d++) out[b * dim + d]! /= tokens;
  }
  return { features: out, dim };
}

/** Stacks equally-sized per-item tensors into one batch buffer. */
export function stack(items: Float32Array[]): Float32Array {
  const size = items[0]?.length ?? 0;
  const out = new Float32Array(items.length * size);
  items.forEach((item, i) => out.set(item, i * size));
  return out;
}
