import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { modelError, messageOf } from '../util/errors.js';

export { ort };

/**
 * One session per graph, on every core: backbones are the hot path. `spinning: false` makes
 * onnxruntime's idle intra-op threads sleep instead of busy-waiting for the next operator, for
 * sessions that share the cores with image decoding. Measured on 2 cores with MobileNetV2 α=1.0:
 * the same batch-16 speed on an idle machine (81 ms) and ~1 ms slower at batch 1, but serving 50
 * single images/s takes 18–21 instead of 32 ms of CPU per request (p99 35–44 instead of 60–65 ms).
 */
export function sessionOptions(threads?: number, { spinning = true } = {}): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads ?? availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    ...(spinning ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
  };
}

export async function createSession(model: string | Uint8Array, origin: string, threads?: number): Promise<ort.InferenceSession> {
  const options = sessionOptions(threads);
  try {
    return typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
  } catch (error) {
    throw modelError(`onnxruntime cannot load this graph: ${messageOf(error)}`, origin, error);
  }
}

/** What backbones need of a session; both `ort.InferenceSession` and `ThreadedSession` offer it. */
export interface SessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  run(feeds: Record<string, ort.Tensor>, fetches: string[]): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

/**
 * The worker's code, plain CommonJS so that it runs the same from `src/` (tsx, vitest) and `dist/`.
 * One message at a time: a run is synchronous inside the worker, and messages queue.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
ort.InferenceSession.create(workerData.model, workerData.options).then(
  (session) => {
    parentPort.postMessage({ ready: true, inputNames: session.inputNames, outputNames: session.outputNames, outputMetadata: session.outputMetadata });
    parentPort.on('message', async ({ id, feeds, fetches, release }) => {
      if (release) {
        await session.release();
        parentPort.postMessage({ id });
        return;
      }
      try {
        const tensors = {};
        for (const [name, t] of Object.entries(feeds)) tensors[name] = new ort.Tensor(t.type, t.data, t.dims);
        const outputs = await session.run(tensors, fetches);
        const result = {};
        const transfer = [];
        for (const [name, t] of Object.entries(outputs)) {
          result[name] = { type: t.type, data: t.data, dims: t.dims };
          transfer.push(t.data.buffer);
        }
        parentPort.postMessage({ id, outputs: result }, transfer);
      } catch (error) {
        parentPort.postMessage({ id, error: String(error && error.message || error) });
      }
    });
  },
  (error) => parentPort.postMessage({ error: String(error && error.message || error) }),
);
`;

interface Pending {
  resolve(outputs: Record<string, ort.Tensor>): void;
  reject(error: Error): void;
}

/**
 * An onnxruntime session on its own thread. onnxruntime-node's `run` is synchronous on the calling
 * thread (it only defers to `setImmediate`): a MobileNetV2 batch of 16 blocks Node's event loop for
 * its whole ~90 ms, so nothing else — HTTP requests, starting the next images' decoding — moves
 * meanwhile. Here the caller's thread stays free; feeds' buffers are transferred, not copied, so a
 * feed's array is unusable (detached) once `run` is called.
 */
export class ThreadedSession implements SessionLike {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    readonly outputMetadata: readonly ort.InferenceSession.ValueMetadata[],
  ) {
    worker.on('message', ({ id, outputs, error }: { id: number; outputs?: Record<string, { type: ort.Tensor.Type; data: ort.Tensor.DataType; dims: number[] }>; error?: string }) => {
      const waiting = this.pending.get(id);
      if (!waiting) return;
      this.settled(id);
      if (error !== undefined) waiting.reject(new Error(error));
      else waiting.resolve(Object.fromEntries(Object.entries(outputs ?? {}).map(([name, t]) => [name, new ort.Tensor(t.type, t.data as Float32Array, t.dims)])));
    });
    const fail = (error: Error) => {
      this.failure = error;
      for (const [id, waiting] of this.pending) {
        this.settled(id);
        waiting.reject(error);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the onnxruntime thread exited (code ${code})`)));
    // An idle session must not keep the process alive; a run in progress must.
    worker.unref();
  }

  static async create(model: string | Uint8Array, origin: string, options: ort.InferenceSession.SessionOptions): Promise<ThreadedSession> {
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath, model, options } });
    const ready = await new Promise<{ inputNames: string[]; outputNames: string[]; outputMetadata: ort.InferenceSession.ValueMetadata[] }>((resolve, reject) => {
      worker.once('message', (message: { ready?: boolean; error?: string; inputNames: string[]; outputNames: string[]; outputMetadata: ort.InferenceSession.ValueMetadata[] }) =>
        message.ready ? resolve(message) : reject(new Error(message.error)),
      );
      worker.once('error', reject);
    }).catch(async (error) => {
      await worker.terminate();
      throw modelError(`onnxruntime cannot load this graph: ${messageOf(error)}`, origin, error);
    });
    return new ThreadedSession(worker, ready.inputNames, ready.outputNames, ready.outputMetadata);
  }

  run(feeds: Record<string, ort.Tensor>, fetches: string[]): Promise<Record<string, ort.Tensor>> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const message: Record<string, { type: string; data: ort.Tensor.DataType; dims: readonly number[] }> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [name, tensor] of Object.entries(feeds)) {
      const data = tensor.data as Float32Array;
      message[name] = { type: tensor.type, data, dims: tensor.dims };
      transfer.push(data.buffer as ArrayBuffer);
    }
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, feeds: message, fetches }, transfer);
    });
  }

  async release(): Promise<void> {
    if (!this.failure) {
      await new Promise<Record<string, ort.Tensor>>((resolve, reject) => {
        const id = this.nextId++;
        if (this.pending.size === 0) this.worker.ref();
        this.pending.set(id, { resolve, reject });
        this.worker.postMessage({ id, release: true });
      }).catch(() => {});
    }
    await this.worker.terminate();
  }

  private settled(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
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
