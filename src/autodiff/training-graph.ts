/**
 * Training as inference: one ONNX graph computes the forward pass, the softmax cross-entropy loss,
 * every gradient and the optimiser update. Its inputs are the batch, the soft targets, the
 * trainable weights and the optimiser state (plus the learning rate and step number); its outputs
 * are the loss, the logits, and the updated weights and state, which the caller feeds back.
 * Frozen weights stay initializers (constants onnxruntime can pre-pack).
 */
import { attr, encodeModel, type GraphNode, type OnnxGraph, type TensorDtype } from '../backbones/tfjs/onnx-graph.js';
import { modelError } from '../util/errors.js';
import { GraphBuilder } from './builder.js';
import { addGradients } from './gradients.js';
import { matchScalarRanks } from './graph-utils.js';
import { useNchwcDepthwise } from './nchwc.js';
import { graphLike } from './partition.js';
import type { TensorInfoMap } from './tensor-info.js';

export interface ParamSpec {
  /** An initializer of the forward graph. */
  name: string;
  /** Multiplies the learning rate (discriminative learning rates); default 1. */
  lrScale?: number;
  /** Apply weight decay (default: for tensors of rank ≥ 2, i.e. not biases or norm scales). */
  decay?: boolean;
  /** Overrides the optimiser's `decayTowards` for this weight (a new head's weights decay towards zero). */
  decayTowards?: DecayTarget;
}

/** torch.optim.AdamW and torch.optim.SGD (momentum, coupled L2 weight decay, no dampening), step for step. */
export type OptimizerSpec =
  | { kind: 'adamw'; weightDecay: number; beta1?: number; beta2?: number; epsilon?: number; decayTowards?: DecayTarget }
  | { kind: 'sgd'; weightDecay: number; momentum: number; decayTowards?: DecayTarget };

/**
 * What weight decay pulls the weights towards: 'zero' (plain decay), or 'initial' — their values
 * before training (L2-SP, Li et al. 2018), which keeps a pre-trained backbone near what it knew.
 */
export type DecayTarget = 'zero' | 'initial';

/** An input a loss adds to the step graph, fed with every batch (targets, masks, weights, …). */
export interface LossInput {
  name: string;
  dims: number[];
  dtype: TensorDtype;
}

/**
 * What a step minimises, for tasks whose loss is not softmax cross-entropy over [batch, classes]
 * (detection heatmaps, causal language modelling): `build` adds the loss's own inputs with
 * `b.graph.addInput` (recording them in `b.info`) and its nodes, reading any tensor of the forward
 * graph, and returns the scalar loss. Everything after it — gradients, optimiser — is shared.
 * Give every node it adds its output dims (`b.op`'s last argument; -1 for the batch axis): the
 * gradient rules read shapes. `test/autodiff-training.test.ts` has a worked example.
 */
export interface LossSpec {
  /** Named in the step graph's description. */
  name: string;
  /**
   * `seed`, optional: the loss's gradient with respect to a tensor of the forward graph (e.g. the
   * logits), computed by the loss itself in a fused form; backpropagation then starts there instead
   * of spelling the loss's own operators out pass by pass.
   */
  build(b: GraphBuilder): { loss: string; inputs: LossInput[]; seed?: { tensor: string; gradient: string } };
  /**
   * Optional: what the evaluation graph computes from the logits (its own inputs added as in
   * `build`), so that evaluation returns a small tensor (e.g. each token's loss) instead of the
   * full logits — for a language model those are batch × T × vocab floats copied to JavaScript.
   */
  evaluation?(b: GraphBuilder): { outputs: string[]; inputs: LossInput[] };
}

export interface TrainingGraphSpec {
  /**
   * Forward graph: its inputs are the batch tensors. `logits` is the output that steps and
   * evaluation return: [batch, classes] for the default loss, any shape with a custom `loss`.
   */
  graph: OnnxGraph;
  info: TensorInfoMap;
  logits: string;
  /** Further forward outputs the step and evaluation graphs return (e.g. a detector's box branch). */
  extraOutputs?: string[];
  /** Default: softmax cross-entropy of `logits` against soft targets fed as `targets` [batch, classes]. */
  loss?: LossSpec;
  params: ParamSpec[];
  optimizer: OptimizerSpec;
  origin: string;
  /** Also output each parameter's gradient (for checks against other frameworks). */
  outputGradients?: boolean;
  /**
   * Scale the gradients so their global L2 norm is at most this, as torch.nn.utils.clip_grad_norm_
   * (factor max / (norm + 1e-6), capped at 1) before the update; the step then also outputs the norm
   * before clipping (`gradientNorm`). Default: no clipping.
   */
  clipGradNorm?: number;
  /**
   * BatchNormalization in the graph: 'frozen' (default) keeps the running statistics and trains
   * γ and β; 'update' normalises with batch statistics while training, as torch's train mode does,
   * and updates the running statistics (momentum 0.1, unbiased variance) for evaluation.
   */
  batchNormStatistics?: 'frozen' | 'update';
  /**
   * onnxruntime's NCHWc block size (`nchwcBlockSize()`): run depthwise convolutions on trained
   * weights in its blocked layout (`nchwc.ts`). Absent: plain ONNX operators only.
   */
  nchwcBlock?: number;
}

/** A tensor the step updates without the optimiser (BatchNorm running statistics). */
export interface TrainingBuffer {
  name: string;
  dims: number[];
  input: string;
  output: string;
}

export interface TrainableParam {
  name: string;
  dims: number[];
  /** Graph input and output carrying the weight into and out of a step. */
  input: string;
  output: string;
  /**
   * Optimiser state tensors, same dims as the weight: Adam's moments scaled by 1/(1 − β) (see
   * `buildTrainingGraph`), or SGD's momentum buffer.
   */
  state: { input: string; output: string }[];
  /** Output carrying the loss gradient, when requested. */
  gradient?: string;
}

export interface TrainingGraph {
  /** Serialised step graph. */
  step: Uint8Array;
  /** Serialised forward graph with the weights as inputs; output `logits`. */
  evaluation: Uint8Array;
  batchInputs: { name: string; dims: number[] }[];
  /** The default loss's targets input ('' with a custom loss, whose inputs are `lossInputs`). */
  targets: string;
  /** Every input the loss adds (for the default loss: just `targets`). */
  lossInputs: LossInput[];
  /** `extraOutputs` of the spec, returned by steps and evaluation beside the logits. */
  extraOutputs: string[];
  /** Outputs of the loss's `evaluation` in the evaluation graph, and the inputs it reads (empty without one). */
  evaluationLossOutputs: string[];
  evaluationLossInputs: LossInput[];
  learningRate: string;
  stepNumber: string;
  loss: string;
  /** The global gradient norm before clipping ('' unless `clipGradNorm`). */
  gradientNorm: string;
  logits: string;
  evaluationLogits: string;
  params: TrainableParam[];
  /** Running statistics the step updates (empty unless `batchNormStatistics: 'update'`). */
  buffers: TrainingBuffer[];
  classes: number;
}

/** torch.nn.BatchNorm2d's default momentum for the running statistics. */
export const BATCH_NORM_MOMENTUM = 0.1;

const ADAM_DEFAULTS = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

/** A copy of `source` whose initializers named in `asInputs` are graph inputs instead. */
function withInitializersAsInputs(source: OnnxGraph, asInputs: string[], info: TensorInfoMap, origin: string): OnnxGraph {
  const graph = graphLike(source);
  graph.inputs.push(...source.inputs);
  const fed = new Set(asInputs);
  for (const [name, initializer] of source.initializers) if (!fed.has(name)) graph.initializers.set(name, initializer);
  for (const name of asInputs) {
    const initializer = source.initializers.get(name);
    if (initializer?.dtype !== 'float32') throw modelError(`${name} is not a float32 initializer of the graph`, origin);
    graph.inputs.push({ name, shape: [...initializer.dims], dtype: 'float32' });
    info.set(name, { dtype: 'float32', dims: [...initializer.dims] });
  }
  graph.nodes.push(...source.nodes.map((node) => ({ ...node, inputs: [...node.inputs], outputs: [...node.outputs], attributes: { ...node.attributes } })));
  return graph;
}

export function buildTrainingGraph(spec: TrainingGraphSpec): TrainingGraph {
  const { origin, logits } = spec;
  const info: TensorInfoMap = new Map(spec.info);
  const logitDims = info.get(logits)?.dims;
  if (!logitDims) throw modelError(`the output ${logits} has no known shape`, origin);
  if (!spec.loss && (logitDims.length !== 2 || !(logitDims[1]! > 0))) throw modelError(`the logits ${logits} must be [batch, classes], got [${logitDims}]`, origin);
  const classes = spec.loss ? 0 : logitDims[1]!;
  const extraOutputs = spec.extraOutputs ?? [];
  const outputShape = (name: string) => (info.get(name)?.dims ?? []).map((size, axis) => (axis === 0 ? -1 : size));
  const batchInputs = spec.graph.inputs.map((input) => ({ name: input.name, dims: input.shape }));

  const batchNorms = spec.batchNormStatistics === 'update' ? spec.graph.nodes.filter((node) => node.op === 'BatchNormalization') : [];
  const statistics = [...new Set(batchNorms.flatMap((node) => node.inputs.slice(3, 5)))];
  const fed = [...spec.params.map((param) => param.name), ...statistics];

  const evaluationInfo: TensorInfoMap = new Map(info);
  const evaluation = withInitializersAsInputs(spec.graph, fed, evaluationInfo, origin);
  evaluation.outputs = [logits, ...extraOutputs].map((name) => ({ name, shape: outputShape(name) }));
  const lossSpec = spec.loss ?? softmaxCrossEntropy(logits, classes);
  const evaluationLoss = lossSpec.evaluation?.(new GraphBuilder(evaluation, evaluationInfo, 'eval/')) ?? { outputs: [], inputs: [] };
  evaluation.outputs.push(...evaluationLoss.outputs.map((name) => ({ name, shape: (evaluationInfo.get(name)?.dims ?? []).map((size, axis) => (axis === 0 ? -1 : size)) })));

  const graph = withInitializersAsInputs(spec.graph, fed, info, origin);
  const b = new GraphBuilder(graph, info, 'train/');
  const buffers = batchNorms.flatMap((node) => batchStatisticsForm(b, node, origin));
  const learningRate = graph.addInput('learning_rate', [], 'float32');
  const stepNumber = graph.addInput('step_number', [], 'float32');
  info.set(learningRate, { dtype: 'float32', dims: [] });
  info.set(stepNumber, { dtype: 'float32', dims: [] });

  const { loss, inputs: lossInputs, seed } = lossSpec.build(b);
  const targets = spec.loss ? '' : lossInputs[0]!.name;

  const gradients = addGradients(graph, info, { loss, wrt: spec.params.map((param) => param.name), origin, ...(seed ? { seed } : {}) });
  const gradientNorm = spec.clipGradNorm !== undefined ? clipGradients(b, gradients, spec.clipGradNorm) : '';

  const o = b;
  const params: TrainableParam[] = [];
  const scaledRates = new Map<number, string>();
  const rateFor = (scale: number) => {
    let rate = scaledRates.get(scale);
    if (!rate) {
      rate = scale === 1 ? learningRate : o.op('Mul', [learningRate, o.scalar(scale, 'float32')], {}, 'scaled_learning_rate', []);
      scaledRates.set(scale, rate);
    }
    return rate;
  };
  const optimizer = spec.optimizer;
  const adam = optimizer.kind === 'adamw' ? { ...ADAM_DEFAULTS, ...optimizer } : undefined;
  // The moments are kept scaled, m̃ = m/(1 − β₁) and ṽ = v/(1 − β₂), so each update is one
  // multiply-add per moment; with the bias corrections c₁ = 1 − β₁ᵗ and c₂ = √(1 − β₂ᵗ), torch's
  // step lr·(m/c₁)/(√v/c₂ + ε) equals s·m̃/(√ṽ + ε′) with the scalars s = lr·(1 − β₁)·c₂/(c₁·√(1 − β₂))
  // and ε′ = ε·c₂/√(1 − β₂): the same value in fewer passes over every weight.
  let correctedEpsilon = '';
  let stepScale = '';
  if (adam) {
    const firstCorrection = o.op('Sub', [o.scalar(1, 'float32'), o.op('Pow', [o.scalar(adam.beta1, 'float32'), stepNumber])], {}, 'bias_correction1', []);
    const secondCorrection = o.op('Sqrt', [o.op('Sub', [o.scalar(1, 'float32'), o.op('Pow', [o.scalar(adam.beta2, 'float32'), stepNumber])])], {}, 'bias_correction2_sqrt', []);
    const varianceScale = Math.sqrt(1 - adam.beta2);
    correctedEpsilon = o.op('Mul', [o.scalar(adam.epsilon / varianceScale, 'float32'), secondCorrection], {}, 'corrected_epsilon', []);
    stepScale = o.op('Mul', [o.op('Div', [secondCorrection, firstCorrection]), o.scalar((1 - adam.beta1) / varianceScale, 'float32')], {}, 'step_scale', []);
  }

  for (const param of spec.params) {
    const dims = info.get(param.name)!.dims!;
    const grad = gradients.get(param.name)!;
    const decay = (param.decay ?? dims.length >= 2) && optimizer.weightDecay > 0;
    const rate = rateFor(param.lrScale ?? 1);
    // L2-SP: decay acts on θ − θ₀, with θ₀ a constant copy of the starting weights.
    const towards = decay && (param.decayTowards ?? optimizer.decayTowards) === 'initial' ? graph.addInitializer(`${param.name}/initial`, spec.graph.initializers.get(param.name)!) : undefined;
    if (towards) info.set(towards, { dtype: 'float32', dims });
    const offset = () => (towards ? o.op('Sub', [param.name, towards], {}, `${param.name}/from_initial`, dims) : param.name);
    const stateInput = (suffix: string) => {
      const name = graph.addInput(`${param.name}/${suffix}`, dims, 'float32');
      info.set(name, { dtype: 'float32', dims });
      return name;
    };
    let updated: string;
    const state: TrainableParam['state'] = [];
    if (adam) {
      const m = stateInput('adam_m_scaled');
      const v = stateInput('adam_v_scaled');
      const mNext = o.op('Add', [o.mul(m, o.scalar(adam.beta1, 'float32')), grad], {}, `${param.name}/m`, dims);
      const vNext = o.op('Add', [o.mul(v, o.scalar(adam.beta2, 'float32')), o.mul(grad, grad)], {}, `${param.name}/v`, dims);
      const denominator = o.op('Add', [o.op('Sqrt', [vNext]), correctedEpsilon]);
      const stepSize = o.op('Mul', [rate, stepScale], {}, 'step_size', []);
      const update = o.op('Div', [o.mul(mNext, stepSize), denominator]);
      // Decoupled decay first, as torch.optim.AdamW: θ ← θ·(1 − lr·λ) − step (L2-SP: θ − lr·λ·(θ − θ₀) − step).
      const decayed = !decay
        ? param.name
        : towards
          ? o.op('Sub', [param.name, o.mul(offset(), o.mul(rate, o.scalar(optimizer.weightDecay, 'float32')))])
          : o.mul(param.name, o.op('Sub', [o.scalar(1, 'float32'), o.mul(rate, o.scalar(optimizer.weightDecay, 'float32'))]));
      updated = o.op('Sub', [decayed, update], {}, `${param.name}/updated`, dims);
      state.push({ input: m, output: mNext }, { input: v, output: vNext });
    } else {
      const sgd = optimizer as Extract<OptimizerSpec, { kind: 'sgd' }>;
      const buffer = stateInput('momentum');
      const regularised = decay ? o.op('Add', [grad, o.mul(offset(), o.scalar(sgd.weightDecay, 'float32'))]) : grad;
      const bufferNext = o.op('Add', [o.mul(buffer, o.scalar(sgd.momentum, 'float32')), regularised], {}, `${param.name}/momentum`, dims);
      updated = o.op('Sub', [param.name, o.mul(rate, bufferNext)], {}, `${param.name}/updated`, dims);
      state.push({ input: buffer, output: bufferNext });
    }
    params.push({ name: param.name, dims, input: param.name, output: updated, state, ...(spec.outputGradients ? { gradient: grad } : {}) });
  }
  graph.outputs = [
    { name: loss, shape: [] },
    ...(gradientNorm ? [{ name: gradientNorm, shape: [] }] : []),
    ...[logits, ...extraOutputs].map((name) => ({ name, shape: outputShape(name) })),
    ...buffers.map((buffer) => ({ name: buffer.output, shape: buffer.dims })),
    ...params.flatMap((param) => [param.output, ...param.state.map((s) => s.output), ...(param.gradient ? [param.gradient] : [])].map((name) => ({ name, shape: param.dims }))),
  ];
  matchScalarRanks(graph, info);
  matchScalarRanks(evaluation, evaluationInfo);
  if (spec.nchwcBlock) {
    useNchwcDepthwise(graph, info, spec.nchwcBlock);
    useNchwcDepthwise(evaluation, evaluationInfo, spec.nchwcBlock);
  }
  const producer = { producer: 'headstart autodiff' };
  return {
    step: encodeModel(graph, 'training_step', `training step: forward, ${lossSpec.name}, gradients, ${optimizer.kind} update`, producer),
    evaluation: encodeModel(evaluation, 'evaluation', 'forward pass with the weights as inputs', producer),
    batchInputs,
    targets,
    lossInputs,
    extraOutputs,
    evaluationLossOutputs: evaluationLoss.outputs,
    evaluationLossInputs: evaluationLoss.inputs,
    learningRate,
    stepNumber,
    loss,
    gradientNorm,
    logits,
    evaluationLogits: logits,
    params,
    buffers,
    classes,
  };
}

/** Replaces each gradient by its clipped form (in `gradients`); returns the norm before clipping. */
function clipGradients(b: GraphBuilder, gradients: Map<string, string>, maxNorm: number): string {
  if (!(maxNorm > 0)) throw modelError(`clipGradNorm must be positive, got ${maxNorm}`);
  const squares = [...gradients.values()].map((grad) => b.op('ReduceSum', [b.op('Mul', [grad, grad], {}, 'grad_squared', b.dims(grad))], { keepdims: attr.int(0) }, 'grad_square_sum', []));
  const total = squares.length === 1 ? squares[0]! : b.op('Sum', squares, {}, 'grad_square_total', []);
  const norm = b.op('Sqrt', [total], {}, 'gradient_norm', []);
  const factor = b.op('Min', [b.scalar(1, 'float32'), b.op('Div', [b.scalar(maxNorm, 'float32'), b.op('Add', [norm, b.scalar(1e-6, 'float32')], {}, 'norm_eps', [])], {}, 'clip_ratio', [])], {}, 'clip_factor', []);
  for (const [name, grad] of gradients) gradients.set(name, b.op('Mul', [grad, factor], {}, 'clipped_grad', b.dims(grad)));
  return norm;
}

/** Mean over the batch of −Σₖ tₖ·log softmax(z)ₖ: cross-entropy against (possibly smoothed) targets. */
function softmaxCrossEntropy(logits: string, classes: number): LossSpec {
  return {
    name: 'cross-entropy',
    build(b) {
      const targets = b.graph.addInput('targets', [-1, classes], 'float32');
      b.info.set(targets, { dtype: 'float32', dims: [-1, classes] });
      const logProbabilities = b.op('LogSoftmax', [logits], { axis: attr.int(1) }, 'log_probabilities', [-1, classes]);
      const perExample = b.op('ReduceSum', [b.op('Mul', [logProbabilities, targets], {}, 'weighted', [-1, classes]), b.int64s([1])], { keepdims: attr.int(0) }, 'log_likelihood', [-1]);
      const loss = b.op('Neg', [b.op('ReduceMean', [perExample], { axes: attr.ints([0]), keepdims: attr.int(0) }, 'mean_log_likelihood', [])], {}, 'loss', []);
      return { loss, inputs: [{ name: targets, dims: [-1, classes], dtype: 'float32' }] };
    },
  };
}

/**
 * Replaces an inference BatchNormalization node (in place, keeping its output name) by the
 * train-mode computation: normalise with the batch's mean and (biased) variance over every axis
 * but the channels, and output the running statistics updated with momentum 0.1 and the unbiased
 * variance, as torch.nn.BatchNorm2d does in train mode. Gradients then flow through the batch
 * statistics, by the rules of the operators used.
 */
function batchStatisticsForm(b: GraphBuilder, node: GraphNode, origin: string): TrainingBuffer[] {
  const graph = b.graph;
  const [x, scale, bias, mean, variance] = node.inputs as [string, string, string, string, string];
  const dims = b.dims(x);
  const channels = b.dims(scale)?.[0];
  if (!dims || !channels) throw modelError(`BatchNormalization node "${node.name}": shapes unknown`, origin);
  const epsilon = node.attributes['epsilon']?.kind === 'float' ? node.attributes['epsilon'].value : 1e-5;
  const rank = dims.length;
  const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
  const keptDims = dims.map((size, axis) => (axes.includes(axis) ? 1 : size));
  const perChannelShape = b.int64s([channels, ...new Array<number>(rank - 2).fill(1)]);
  const before = graph.nodes.length;
  const batchMean = b.op('ReduceMean', [x], { axes: attr.ints(axes), keepdims: attr.int(1) }, `${node.name}/batch_mean`, keptDims);
  const centered = b.op('Sub', [x, batchMean], {}, `${node.name}/centered`, dims);
  const batchVariance = b.op('ReduceMean', [b.op('Mul', [centered, centered], {}, `${node.name}/squared`, dims)], { axes: attr.ints(axes), keepdims: attr.int(1) }, `${node.name}/batch_variance`, keptDims);
  const std = b.op('Sqrt', [b.op('Add', [batchVariance, b.scalar(epsilon, x)], {}, `${node.name}/variance_eps`, keptDims)], {}, `${node.name}/std`, keptDims);
  const normalized = b.op('Div', [centered, std], {}, `${node.name}/normalized`, dims);
  const scaled = b.op('Mul', [normalized, b.op('Reshape', [scale, perChannelShape], {}, `${node.name}/scale`, [channels, ...new Array<number>(rank - 2).fill(1)])], {}, `${node.name}/scaled`, dims);
  const shift = b.op('Reshape', [bias, perChannelShape], {}, `${node.name}/shift`, [channels, ...new Array<number>(rank - 2).fill(1)]);
  // Running statistics: (1 − m)·running + m·batch, the variance unbiased by n/(n − 1), n = values per channel.
  const count = b.op('Div', [b.op('CastLike', [b.op('Size', [x]), x]), b.scalar(channels, x)], {}, `${node.name}/count`, []);
  const unbias = b.op('Div', [count, b.op('Sub', [count, b.scalar(1, x)])], {}, `${node.name}/unbias`, []);
  const flat = (t: string) => b.op('Reshape', [t, b.int64s([channels])], {}, `${t}/flat`, [channels]);
  const update = (running: string, batch: string) =>
    b.op('Add', [b.op('Mul', [running, b.scalar(1 - BATCH_NORM_MOMENTUM, x)]), b.op('Mul', [batch, b.scalar(BATCH_NORM_MOMENTUM, x)])], {}, `${running}/updated`, [channels]);
  const meanNext = update(mean, flat(batchMean));
  const varianceNext = update(variance, b.op('Mul', [flat(batchVariance), unbias]));
  // The output keeps the node's name, so everything downstream reads the train-mode value.
  const added = graph.nodes.splice(before);
  added.push({ name: graph.uniqueName(`${node.name}/train_mode`), op: 'Add', inputs: [scaled, shift], outputs: [node.outputs[0]!], attributes: {} });
  const at = graph.nodes.findIndex((candidate) => candidate.name === node.name);
  graph.nodes.splice(at, 1, ...added);
  return [
    { name: mean, dims: [channels], input: mean, output: meanNext },
    { name: variance, dims: [channels], input: variance, output: varianceNext },
  ];
}
