/**
 * The causal LM's inference graph (with its KV cache) turned into the forward graph training
 * differentiates: no cache inputs or outputs, a fixed block length, output tied to the input
 * embedding again, and optionally LoRA adapters beside the target projections.
 */
import { attr, decodeModel, type OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { ort } from '../backbones/onnx-session.js';
import { unshareInitializers } from '../autodiff/model.js';
import { pruneToOutputs, sortTopologically } from '../autodiff/graph-utils.js';
import { probeTensorInfo, type TensorInfoMap } from '../autodiff/tensor-info.js';
import { modelError, usageError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

export interface LoraSettings {
  rank: number;
  /** PEFT's lora_alpha: the update is scaled by alpha / rank (PEFT's default 8). */
  alpha: number;
  /** Module names the adapters go beside (GPT-2: `c_attn`, the fused query/key/value projection). */
  targetModules: string[];
  /** Modules trained in full beside the adapters and saved in the adapter file (PEFT's `modules_to_save`; `lm_head` = the tied embedding). */
  modulesToSave?: string[];
  /** PEFT's lora_dropout: the probability that an element of the adapter's input is zeroed while training (0: none). */
  dropout?: number;
}

/** One LoRA adapter: its two matrices in PEFT's layout (A: rank × in, B: out × rank) and where it sits. */
export interface LoraAdapter {
  /** The adapted weight's initializer (e.g. `transformer.h.0.attn.c_attn.weight`). */
  weight: string;
  /** PEFT's module path (`transformer.h.0.attn.c_attn`). */
  module: string;
  a: string;
  b: string;
  inFeatures: number;
  outFeatures: number;
  /** The graph's Gemm / MatMul multiplies x by W stored [in, out] (GPT-2's Conv1D; a Linear the exporter pre-transposed). */
  storedInOut: boolean;
  /** PyTorch's module keeps W as [in, out] (GPT-2's Conv1D): PEFT's fan_in_fan_out. A Linear ([out, in]) has it false. */
  fanInFanOut: boolean;
  /**
   * With LoRA dropout: the graph input holding the adapter input's dropout noise, [batch, block, in],
   * keep/(1 − p) − 1 per element (`dropoutNoise`), so that zeros — what evaluation feeds — are no dropout.
   */
  dropoutInput?: string;
}

export interface LmTrainingForward {
  graph: OnnxGraph;
  info: TensorInfoMap;
  logits: string;
  blockLength: number;
  vocabSize: number;
  /** An output-projection initializer that was a copy of the transposed input embedding, now computed from it (tied weights). */
  tied?: { embedding: string; copy: string };
  adapters: LoraAdapter[];
  /** Float weights of the base model (everything full fine-tuning trains). */
  baseWeights: string[];
  /** The PyTorch parameter each base weight holds (`weightParameters`). */
  parameters: Map<string, WeightParameter>;
}

/** A base weight as PyTorch names it: its state-dict key, and whether the graph stores it transposed. */
export interface WeightParameter {
  /** The key in transformers' state dict (`model.layers.0.self_attn.q_proj.weight`). */
  parameter: string;
  /** The module path PEFT uses (`model.layers.0.self_attn.q_proj`). */
  module: string;
  /** The graph holds the transpose of PyTorch's tensor: an nn.Linear weight ([out, in]) the exporter stored [in, out]. */
  transposed: boolean;
}

/** A base weight LoRA trains in full beside the adapters (PEFT's `modules_to_save`), with the keys PEFT saves it under. */
export interface SavedModuleWeight {
  /** The initializer trained. */
  initializer: string;
  /** adapter_model.safetensors keys holding its value (a tied embedding: `transformer.wte.weight` and `lm_head.weight`). */
  keys: string[];
  /** The module name adapter_config.json lists in `modules_to_save`, as PEFT writes it. */
  module: string;
}

/**
 * The base weights of PEFT's `modules_to_save`: `lm_head` of a tied model is the input embedding
 * (PEFT with ensure_weight_tying trains one copy and saves it under both names, listing the
 * embedding's module), any other name the weight and bias of the modules whose path ends with it.
 */
export function savedModuleWeights(forward: LmTrainingForward, modules: readonly string[]): SavedModuleWeight[] {
  const saved: SavedModuleWeight[] = [];
  for (const wanted of modules) {
    if (wanted === 'lm_head') {
      if (!forward.tied) throw usageError('modules to save: "lm_head" is supported for models whose output projection is tied to the input embedding only');
      const module = forward.parameters.get(forward.tied.embedding)?.module ?? modulePath(forward.tied.embedding);
      saved.push({ initializer: forward.tied.embedding, keys: [`base_model.model.${module}.weight`, 'base_model.model.lm_head.weight'], module });
      continue;
    }
    const matches = forward.baseWeights.filter((name) => {
      const { parameter, module } = forward.parameters.get(name)!;
      return /\.(weight|bias)$/.test(parameter) && (module === wanted || module.endsWith(`.${wanted}`));
    });
    if (matches.length === 0) throw usageError(`modules to save: no weight of the model belongs to a module "${wanted}"`);
    for (const name of matches) {
      const { parameter, module, transposed } = forward.parameters.get(name)!;
      if (transposed) throw usageError(`modules to save: "${wanted}" is a projection the exporter stored transposed; target it with LoRA instead`);
      saved.push({ initializer: name, keys: [`base_model.model.${parameter}`], module });
    }
  }
  return saved.filter((item, i) => saved.findIndex((other) => other.initializer === item.initializer) === i);
}

/** PEFT's module path of an initializer: the exporter's wrapper prefix (`m.`) and the `.weight` suffix dropped. */
export function modulePath(initializer: string): string {
  const stripped = initializer.replace(/\.weight$/, '');
  const at = stripped.search(/(^|\.)(transformer|model|lm_head|gpt_neox)(\.|$)/);
  return at > 0 ? stripped.slice(at + 1) : stripped;
}

/**
 * The PyTorch parameter behind each float initializer. Named initializers carry it (after the
 * exporter's wrapper prefix). TorchScript's exporter stores a bias-less nn.Linear's weight
 * pre-transposed under an anonymous name (`onnx::MatMul_699`); then the module is in the name of
 * the MatMul that reads it (`/m/model/layers.0/self_attn/q_proj/MatMul`). Other anonymous
 * initializers (buffers such as RoPE's inv_freq) get none.
 */
export function weightParameters(graph: OnnxGraph, names: readonly string[]): Map<string, WeightParameter> {
  const readers = new Map<string, OnnxGraph['nodes'][number]>();
  for (const node of graph.nodes) if (node.op === 'MatMul' && node.inputs[1]) readers.set(node.inputs[1], node);
  const parameters = new Map<string, WeightParameter>();
  for (const name of names) {
    const reader = readers.get(name);
    if (name.startsWith('onnx::') && reader && graph.initializers.get(name)!.dims.length === 2) {
      const module = modulePath(reader.name.replace(/^\//, '').split('/').slice(0, -1).join('.'));
      parameters.set(name, { parameter: `${module}.weight`, module, transposed: true });
    } else if (!name.startsWith('onnx::')) {
      const suffix = name.match(/\.(weight|bias)$/)?.[0] ?? '';
      const module = modulePath(name.slice(0, name.length - suffix.length));
      parameters.set(name, { parameter: `${module}${suffix}`, module, transposed: false });
    }
  }
  return parameters;
}

/**
 * Derives the training forward graph from an inference graph of the Optimum layout: each
 * `past_key_values.*` input becomes an empty tensor computed in the graph (so the exporter's
 * Concat and Shape arithmetic sees a past of length 0, exactly as on a first generation step), and
 * `logits` is the only output.
 */
export async function lmTrainingForward(
  bytes: Uint8Array,
  origin: string,
  options: { blockLength: number; vocabSize: number; lora?: LoraSettings; rng: Rng; tieEmbeddings: boolean },
): Promise<LmTrainingForward> {
  const graph = decodeModel(bytes, origin);
  const { blockLength } = options;
  const pastInputs = graph.inputs.filter((input) => input.name.startsWith('past_key_values.'));
  graph.inputs.splice(0, graph.inputs.length, ...graph.inputs.filter((input) => !input.name.startsWith('past_key_values.')));
  for (const input of graph.inputs) {
    if (!['input_ids', 'attention_mask', 'position_ids'].includes(input.name)) throw modelError(`unexpected graph input "${input.name}" for training`, origin);
    input.shape = [-1, blockLength];
  }
  const prelude: OnnxGraph['nodes'] = [];
  if (pastInputs.length > 0) {
    const batch = graph.uniqueName('train_prep/batch');
    prelude.push({ name: graph.uniqueName('train_prep/Shape'), op: 'Shape', inputs: ['input_ids'], outputs: [batch], attributes: { start: attr.int(0), end: attr.int(1) } });
    for (const past of pastInputs) {
      const [, heads, , headDim] = past.shape;
      if (!(heads! > 0 && headDim! > 0)) throw modelError(`${past.name} has no fixed heads and head size [batch, heads, past, head]`, origin);
      const rest = graph.addInt64Initializer(`${past.name}/empty_dims`, [heads!, 0, headDim!]);
      const dims = graph.uniqueName(`${past.name}/dims`);
      prelude.push({ name: graph.uniqueName(`${past.name}/Concat`), op: 'Concat', inputs: [batch, rest], outputs: [dims], attributes: { axis: attr.int(0) } });
      prelude.push({ name: graph.uniqueName(`${past.name}/empty`), op: 'ConstantOfShape', inputs: [dims], outputs: [past.name], attributes: { value: attr.tensor({ dtype: 'float32', dims: [1], data: Float32Array.of(0) }) } });
    }
  }
  graph.nodes.unshift(...prelude);
  const logits = 'logits';
  if (!graph.outputs.some((o) => o.name === logits)) throw modelError('the graph has no output "logits"', origin);
  graph.outputs = [{ name: logits, shape: [-1, blockLength, options.vocabSize] }];
  pruneToOutputs(graph);
  unshareInitializers(graph);
  const tied = options.tieEmbeddings ? retie(graph) : undefined;
  const floats = [...graph.initializers].filter(([, init]) => init.dtype === 'float32' && init.data.length >= 2).map(([name]) => name);
  const parameters = weightParameters(graph, floats);
  // Anonymous floats no MatMul reads as a weight are buffers the exporter inlined (RoPE's inv_freq), not parameters.
  const baseWeights = floats.filter((name) => parameters.has(name));
  const adapters = options.lora ? addLora(graph, options.lora, parameters, options.rng, origin, blockLength) : [];
  sortTopologically(graph, origin);
  const info = await probeTensorInfo(graph, origin, (batch) => ({
    ...Object.fromEntries(adapters.filter((a) => a.dropoutInput).map((a) => [a.dropoutInput!, new ort.Tensor('float32', new Float32Array(batch * blockLength * a.inFeatures), [batch, blockLength, a.inFeatures])])),
    input_ids: new ort.Tensor('int64', new BigInt64Array(batch * blockLength), [batch, blockLength]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * blockLength).fill(1n), [batch, blockLength]),
    ...(graph.inputs.some((i) => i.name === 'position_ids')
      ? { position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: batch * blockLength }, (_, i) => BigInt(i % blockLength)), [batch, blockLength]) }
      : {}),
  }));
  return { graph, info, logits, blockLength, vocabSize: options.vocabSize, tied, adapters, baseWeights, parameters };
}

/**
 * PyTorch's exporter folds the tied output projection into its own initializer, the transposed
 * input embedding. Training must update one matrix through both uses, so the copy becomes a
 * Transpose of the embedding again (its gradient then adds to the embedding's).
 */
function retie(graph: OnnxGraph): { embedding: string; copy: string } | undefined {
  const gathers = graph.nodes.filter((n) => n.op === 'Gather' && graph.initializers.get(n.inputs[0]!)?.dtype === 'float32');
  for (const gather of gathers) {
    const embedding = graph.initializers.get(gather.inputs[0]!)!;
    const [vocab, hidden] = embedding.dims as [number, number];
    for (const [name, init] of graph.initializers) {
      if (name === gather.inputs[0] || init.dtype !== 'float32' || init.dims.length !== 2 || init.dims[0] !== hidden || init.dims[1] !== vocab) continue;
      const e = embedding.data as Float32Array;
      const c = init.data as Float32Array;
      let same = true;
      for (let i = 0; i < vocab && same; i += 97) for (let j = 0; j < hidden; j += 13) if (c[j * vocab + i] !== e[i * hidden + j]) same = false;
      if (!same) continue;
      graph.initializers.delete(name);
      graph.nodes.unshift({ name: graph.uniqueName('train_prep/tied_output/Transpose'), op: 'Transpose', inputs: [gather.inputs[0]!], outputs: [name], attributes: { perm: attr.ints([1, 0]) } });
      return { embedding: gather.inputs[0]!, copy: name };
    }
  }
  return undefined;
}

/**
 * LoRA (Hu et al.) as PEFT builds it: y = x·W + b + (alpha/rank)·dropout(x)·Aᵀ·Bᵀ beside each target
 * projection, A from kaiming-uniform(a = √5) — uniform in ±1/√in — and B zero, so training starts
 * from the base model exactly. Dropout multiplies x by (1 + noise), the noise a graph input drawn
 * in TypeScript from the run's seed (`dropoutNoise`): ONNX's own Dropout and RandomUniform draw from
 * onnxruntime's generator, whose state lives in the session, so runs would not be reproducible from
 * headstart's seed, and the evaluation graph (the same forward) would drop too.
 */
function addLora(graph: OnnxGraph, lora: LoraSettings, parameters: Map<string, WeightParameter>, rng: Rng, origin: string, blockLength: number): LoraAdapter[] {
  if (!(Number.isInteger(lora.rank) && lora.rank >= 1)) throw usageError(`LoRA rank must be an integer ≥ 1, got ${lora.rank}`);
  const p = lora.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw usageError(`LoRA dropout must be in [0, 1), got ${lora.dropout}`);
  const adapters: LoraAdapter[] = [];
  const scaling = lora.alpha / lora.rank;
  for (const node of [...graph.nodes]) {
    if (node.op !== 'Gemm' && node.op !== 'MatMul') continue;
    const weightName = node.inputs[1]!;
    const weight = graph.initializers.get(weightName);
    const parameter = parameters.get(weightName);
    if (!weight || weight.dims.length !== 2 || !parameter) continue;
    const { module } = parameter;
    if (!lora.targetModules.some((target) => module === target || module.endsWith(`.${target}`))) continue;
    const transB = node.op === 'Gemm' && node.attributes.transB?.kind === 'int' && node.attributes.transB.value === 1;
    if (node.op === 'Gemm' && node.attributes.transA?.kind === 'int' && node.attributes.transA.value === 1) throw modelError(`LoRA target ${node.name}: transposed input unsupported`, origin);
    const [inFeatures, outFeatures] = transB ? [weight.dims[1]!, weight.dims[0]!] : [weight.dims[0]!, weight.dims[1]!];
    const bound = 1 / Math.sqrt(inFeatures);
    const a = graph.addFloatInitializer(`${module}.lora_A.weight`, [lora.rank, inFeatures], Float32Array.from({ length: lora.rank * inFeatures }, () => rng.uniform(-bound, bound)));
    const b = graph.addFloatInitializer(`${module}.lora_B.weight`, [outFeatures, lora.rank], new Float32Array(outFeatures * lora.rank));
    let x = node.inputs[0]!;
    let dropoutInput: string | undefined;
    if (p > 0) {
      dropoutInput = graph.addInput(`lora_dropout.${module}`, [-1, blockLength, inFeatures], 'float32');
      x = droppedOut(graph, x, dropoutInput, module);
    }
    const original = node.outputs[0]!;
    const base = graph.uniqueName(`${original}/base`);
    node.outputs[0] = base;
    const down = graph.uniqueName(`${module}/lora_down`);
    const up = graph.uniqueName(`${module}/lora_up`);
    // MatMul inputs may carry batch axes; Gemm needs 2-D (GPT-2's Conv1D is exported as a 2-D Gemm).
    const gemm = node.op === 'Gemm';
    graph.nodes.push(
      gemm
        ? { name: graph.uniqueName(`${module}/lora_A/Gemm`), op: 'Gemm', inputs: [x, a], outputs: [down], attributes: { transB: attr.int(1) } }
        : { name: graph.uniqueName(`${module}/lora_A/MatMul`), op: 'MatMul', inputs: [x, transposed(graph, a)], outputs: [down], attributes: {} },
      gemm
        ? { name: graph.uniqueName(`${module}/lora_B/Gemm`), op: 'Gemm', inputs: [down, b], outputs: [up], attributes: { transB: attr.int(1), alpha: attr.float(scaling) } }
        : { name: graph.uniqueName(`${module}/lora_B/MatMul`), op: 'MatMul', inputs: [down, scaledTransposed(graph, b, scaling)], outputs: [up], attributes: {} },
      { name: graph.uniqueName(`${module}/lora/Add`), op: 'Add', inputs: [base, up], outputs: [original], attributes: {} },
    );
    // A weight stored [in, out] is GPT-2's Conv1D unless the exporter transposed a Linear's.
    adapters.push({ weight: weightName, module, a, b, inFeatures, outFeatures, storedInOut: !transB, fanInFanOut: !transB && !parameter.transposed, ...(dropoutInput ? { dropoutInput } : {}) });
  }
  if (adapters.length === 0) throw usageError(`no projection matches the LoRA target modules ${lora.targetModules.join(', ')}`);
  return adapters;
}

/** x · (1 + noise), the noise [batch, block, in] reshaped to x's own shape (GPT-2's Gemm sees [batch·block, in]). */
function droppedOut(graph: OnnxGraph, x: string, noise: string, module: string): string {
  const name = (what: string) => graph.uniqueName(`${module}/lora_dropout/${what}`);
  const [shape, shaped, keep, out] = [name('shape'), name('noise'), name('keep'), name('x')];
  const one = graph.addFloatInitializer(`${module}/lora_dropout/one`, [], Float32Array.of(1));
  graph.nodes.push(
    { name: name('Shape'), op: 'Shape', inputs: [x], outputs: [shape], attributes: {} },
    { name: name('Reshape'), op: 'Reshape', inputs: [noise, shape], outputs: [shaped], attributes: {} },
    { name: name('Add'), op: 'Add', inputs: [shaped, one], outputs: [keep], attributes: {} },
    { name: name('Mul'), op: 'Mul', inputs: [x, keep], outputs: [out], attributes: {} },
  );
  return out;
}

/**
 * Dropout noise for every adapter with a dropout input, for `rows` blocks: each element −1 (dropped,
 * probability p) or p/(1 − p) (kept, scaled by 1/(1 − p) as torch's Dropout does), from `rng`.
 */
export function dropoutNoise(forward: LmTrainingForward, rows: number, p: number, rng: Rng): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  const kept = p / (1 - p);
  for (const adapter of forward.adapters) {
    if (!adapter.dropoutInput) continue;
    const noise = new Float32Array(rows * forward.blockLength * adapter.inFeatures);
    for (let i = 0; i < noise.length; i++) noise[i] = rng.next() < p ? -1 : kept;
    feeds[adapter.dropoutInput] = new ort.Tensor('float32', noise, [rows, forward.blockLength, adapter.inFeatures]);
  }
  return feeds;
}

function transposed(graph: OnnxGraph, tensor: string): string {
  const out = graph.uniqueName(`${tensor}/T`);
  graph.nodes.push({ name: graph.uniqueName(`${tensor}/Transpose`), op: 'Transpose', inputs: [tensor], outputs: [out], attributes: { perm: attr.ints([1, 0]) } });
  return out;
}

function scaledTransposed(graph: OnnxGraph, tensor: string, scale: number): string {
  const factor = graph.addFloatInitializer(`${tensor}/scale`, [], Float32Array.of(scale));
  const out = graph.uniqueName(`${tensor}/scaled`);
  graph.nodes.push({ name: graph.uniqueName(`${tensor}/Mul`), op: 'Mul', inputs: [transposed(graph, tensor), factor], outputs: [out], attributes: {} });
  return out;
}
