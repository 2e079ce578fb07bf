/**
 * Runs a `TrainingGraph` with plain onnxruntime-node sessions. The weights and optimiser state
 * live as tensors that go straight back in as the next step's inputs, and each step writes the
 * updated ones into a second, pre-allocated set (the two swap every step): onnxruntime-node
 * otherwise allocates every output afresh and copies it into a new JavaScript buffer, three times
 * the weights per step (GPT-2 124M: 1.5 GB of fresh pages a step).
 */
import { availableParallelism } from 'node:os';
import { ort } from '../backbones/onnx-session.js';
import { messageOf, modelError } from '../util/errors.js';
import type { TrainingGraph } from './training-graph.js';

export interface StepResult {
  loss: number;
  /** batch × classes (with a custom loss: the `logits` output, whatever its shape). */
  logits: Float32Array;
  /** The graph's `extraOutputs`, by name. */
  extra?: Map<string, Float32Array>;
  /** Loss gradients by parameter name, when the graph outputs them. */
  gradients?: Map<string, Float32Array>;
  /** The global gradient norm before clipping, when the graph clips. */
  gradientNorm?: number;
}

/**
 * A session for a training or evaluation graph. Its worker threads sleep instead of spinning
 * between operators: a step runs hundreds of small operators, and on shared cores spinning
 * threads burned twice the CPU for no speed (measured on 2 cores under load).
 */
async function createTrainingSession(model: Uint8Array, origin: string, threads: number): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(model, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
  } catch (error) {
    throw modelError(`onnxruntime cannot load the generated graph: ${messageOf(error)}`, origin, error);
  }
}

export interface StepOptions {
  /** Fetch the logits (default true); false leaves `StepResult.logits` empty — a language model's are batch × T × vocab floats. */
  logits?: boolean;
}

export class TrainingSession {
  private stepCount = 0;
  private readonly tensors = new Map<string, ort.Tensor>();
  /** Per held tensor (parameter, optimiser state, buffer): the buffer the next step writes its new value into. */
  private readonly spare = new Map<string, ort.Tensor>();

  private constructor(
    readonly graph: TrainingGraph,
    private readonly stepSession: ort.InferenceSession,
    private readonly evaluationSession: ort.InferenceSession,
  ) {}

  /**
   * `weights` gives the starting value of every trainable parameter and buffer (by name);
   * optimiser state starts at zero.
   */
  static async create(graph: TrainingGraph, weights: (name: string) => Float32Array, origin: string, threads = availableParallelism()): Promise<TrainingSession> {
    const stepSession = await createTrainingSession(graph.step, `${origin} (training step)`, threads);
    const evaluationSession = await createTrainingSession(graph.evaluation, `${origin} (evaluation)`, threads);
    const session = new TrainingSession(graph, stepSession, evaluationSession);
    for (const param of graph.params) {
      session.tensors.set(param.input, new ort.Tensor('float32', weights(param.name).slice(), param.dims));
      for (const state of param.state) session.tensors.set(state.input, new ort.Tensor('float32', new Float32Array(param.dims.reduce((a, b) => a * b, 1)), param.dims));
    }
    for (const buffer of graph.buffers) session.tensors.set(buffer.input, new ort.Tensor('float32', weights(buffer.name).slice(), buffer.dims));
    return session;
  }

  get steps(): number {
    return this.stepCount;
  }

  /**
   * One optimiser step on a batch. `targets` is batch × classes (one-hot or smoothed) for the
   * default loss; with a custom loss, its inputs by name.
   */
  async step(batch: Record<string, ort.Tensor>, targets: ort.Tensor | Record<string, ort.Tensor>, learningRate: number, options: StepOptions = {}): Promise<StepResult> {
    this.stepCount++;
    const feeds: Record<string, ort.Tensor> = {
      ...batch,
      ...(targets instanceof ort.Tensor ? { [this.graph.targets]: targets } : (targets as Record<string, ort.Tensor>)),
      [this.graph.learningRate]: new ort.Tensor('float32', Float32Array.of(learningRate), []),
      [this.graph.stepNumber]: new ort.Tensor('float32', Float32Array.of(this.stepCount), []),
    };
    for (const [name, tensor] of this.tensors) feeds[name] = tensor;
    const held = [
      ...this.graph.params.flatMap((param) => [{ input: param.input, output: param.output }, ...param.state]),
      ...this.graph.buffers.map((buffer) => ({ input: buffer.input, output: buffer.output })),
    ];
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const name of this.stepSession.outputNames) if (name !== this.graph.logits || options.logits !== false) fetches[name] = null;
    for (const { input, output } of held) {
      const live = this.tensors.get(input)!;
      let spare = this.spare.get(input);
      if (!spare) {
        spare = new ort.Tensor('float32', new Float32Array(live.data.length), live.dims);
        this.spare.set(input, spare);
      }
      fetches[output] = spare;
    }
    const outputs = await this.stepSession.run(feeds, fetches);
    for (const { input, output } of held) {
      const previous = this.tensors.get(input)!;
      this.tensors.set(input, outputs[output]!);
      this.spare.set(input, previous);
    }
    const withGradients = this.graph.params.filter((param) => param.gradient);
    return {
      loss: Number((outputs[this.graph.loss]!.data as Float32Array)[0]),
      ...(this.graph.gradientNorm ? { gradientNorm: Number((outputs[this.graph.gradientNorm]!.data as Float32Array)[0]) } : {}),
      logits: options.logits === false ? new Float32Array(0) : (outputs[this.graph.logits]!.data as Float32Array),
      ...(this.graph.extraOutputs.length > 0 ? { extra: new Map(this.graph.extraOutputs.map((name) => [name, outputs[name]!.data as Float32Array])) } : {}),
      ...(withGradients.length > 0 ? { gradients: new Map(withGradients.map((param) => [param.name, outputs[param.gradient!]!.data as Float32Array])) } : {}),
    };
  }

  /** Logits of a batch with the current weights (no update). */
  async evaluate(batch: Record<string, ort.Tensor>): Promise<Float32Array> {
    return (await this.evaluateOutputs(batch, [this.graph.evaluationLogits])).get(this.graph.evaluationLogits)!;
  }

  /** The named forward outputs (logits and `extraOutputs`) of a batch with the current weights. */
  async evaluateOutputs(batch: Record<string, ort.Tensor>, names: string[] = [this.graph.evaluationLogits, ...this.graph.extraOutputs]): Promise<Map<string, Float32Array>> {
    const feeds: Record<string, ort.Tensor> = { ...batch };
    for (const param of this.graph.params) feeds[param.input] = this.tensors.get(param.input)!;
    for (const buffer of this.graph.buffers) feeds[buffer.input] = this.tensors.get(buffer.input)!;
    // onnxruntime wants every graph input fed, even those the fetched outputs do not read: the loss's
    // evaluation inputs get zeros when only logits are asked for.
    const rows = Object.values(batch)[0]?.dims[0] ?? 1;
    for (const input of this.graph.evaluationLossInputs) {
      if (feeds[input.name]) continue;
      const dims = input.dims.map((size) => (size < 0 ? rows : size));
      const size = dims.reduce((a, b) => a * b, 1);
      feeds[input.name] = input.dtype === 'int64' ? new ort.Tensor('int64', new BigInt64Array(size), dims) : new ort.Tensor('float32', new Float32Array(size), dims);
    }
    const outputs = await this.evaluationSession.run(feeds, names);
    return new Map(names.map((name) => [name, outputs[name]!.data as Float32Array]));
  }

  /**
   * The outputs of the loss's `evaluation` (`TrainingGraph.evaluationLossOutputs`, e.g. each token's
   * loss) for a batch and the loss inputs it reads, with the current weights: no logits leave onnxruntime.
   */
  async evaluateLoss(batch: Record<string, ort.Tensor>, lossFeeds: Record<string, ort.Tensor>): Promise<Map<string, Float32Array>> {
    const names = this.graph.evaluationLossOutputs;
    if (names.length === 0) throw new Error('this training graph\'s loss has no evaluation outputs');
    const feeds: Record<string, ort.Tensor> = { ...batch };
    for (const input of this.graph.evaluationLossInputs) feeds[input.name] = lossFeeds[input.name]!;
    return this.evaluateOutputs(feeds, names);
  }

  /** The current value of a trainable parameter or buffer (the live array: copy it to keep it). */
  weight(name: string): Float32Array {
    const held = this.graph.params.find((p) => p.name === name) ?? this.graph.buffers.find((b) => b.name === name);
    if (!held) throw new Error(`${name} is not trained by this session`);
    return this.tensors.get(held.input)!.data as Float32Array;
  }

  /** Copies of every trainable parameter and buffer, by name. */
  snapshot(): Map<string, Float32Array> {
    return new Map([...this.graph.params, ...this.graph.buffers].map((held) => [held.name, this.weight(held.name).slice()]));
  }

  async release(): Promise<void> {
    await this.stepSession.release();
    await this.evaluationSession.release();
  }
}
