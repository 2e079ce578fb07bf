/**
 * Graphs that return, beside the logits, the gradient of a class score with respect to the input
 * pixels or to the last block's feature map — `addGradients` from `src/autodiff` on the attribution
 * model, with score = Σₙ logitsₙ · targetₙ (targetₙ one-hot, so each row's gradient is that of its
 * own class's logit). Grad-CAM's graph differentiates only from the feature map up, so its backward
 * pass skips the whole trunk below it.
 */
import { attr, encodeModel, type OnnxGraph } from '../backbones/tfjs/onnx-graph.js';
import { ort, sessionOptions } from '../backbones/onnx-session.js';
import { GraphBuilder } from '../autodiff/builder.js';
import { addGradients } from '../autodiff/gradients.js';
import { matchScalarRanks, pruneToOutputs } from '../autodiff/graph-utils.js';
import type { TensorInfoMap } from '../autodiff/tensor-info.js';
import { messageOf, modelError } from '../util/errors.js';
import { copyGraph, type AttributionModel } from './attribution-model.js';

export type GradientTarget = 'input' | 'feature-map' | 'none';

export interface GradientResult {
  /** batch × classes. */
  logits: Float32Array;
  /** The gradient, laid out as the tensor it is taken with respect to (batch first). */
  gradient?: Float32Array;
  /** The feature map's values (Grad-CAM), batch first. */
  activations?: Float32Array;
  /** Attention probabilities per layer, batch first (`forward-only` runs of ViT-style models). */
  attention?: Float32Array[];
}

/** Examples per onnxruntime run: integrated gradients' steps go through in batches of this many. */
export const GRADIENT_BATCH = 8;

/**
 * Appends to `graph` a one-hot target input [batch, classes] and the gradient of
 * Σₙ logitsₙ · targetₙ with respect to `tensor`: each row's gradient is that of its own class's logit.
 */
export function addTargetScoreGradient(graph: OnnxGraph, info: TensorInfoMap, logits: string, classes: number, tensor: string, origin: string): { target: string; gradient: string } {
  const b = new GraphBuilder(graph, info, 'explain/');
  const target = graph.addInput('explain/target', [-1, classes], 'float32');
  info.set(target, { dtype: 'float32', dims: [-1, classes] });
  const weighted = b.op('Mul', [logits, target], {}, 'target_logits', [-1, classes]);
  const score = b.op('ReduceSum', [weighted, b.int64s([0, 1])], { keepdims: attr.int(0) }, 'score', []);
  return { target, gradient: addGradients(graph, info, { loss: score, wrt: [tensor], origin, prefix: 'explain/grad/' }).get(tensor)! };
}

export class GradientRunner {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly source: AttributionModel,
    private readonly target: string,
    private readonly outputs: { logits: string; gradient?: string; activations?: string; attention: string[] },
    readonly inputDims: number[],
  ) {}

  static async create(source: AttributionModel, wrt: GradientTarget, threads?: number): Promise<GradientRunner> {
    const graph = copyGraph(source.model.graph);
    const info: TensorInfoMap = new Map(source.model.info);
    let target = '';
    const outputs: { logits: string; gradient?: string; activations?: string; attention: string[] } = { logits: source.logits, attention: [] };
    if (wrt !== 'none') {
      const tensor = wrt === 'input' ? source.input : source.featureMap?.tensor;
      if (!tensor) throw modelError('this backbone has no spatial feature map to take Grad-CAM on (a token-sequence backbone): use integrated gradients or attention rollout', source.model.origin);
      ({ target, gradient: outputs.gradient } = addTargetScoreGradient(graph, info, source.logits, source.classes, tensor, source.model.origin));
      if (wrt === 'feature-map') outputs.activations = tensor;
    } else {
      outputs.attention = source.attention?.tensors ?? [];
    }
    const names = [outputs.logits, outputs.gradient, outputs.activations, ...outputs.attention].filter((name): name is string => !!name);
    graph.outputs = names.map((name) => ({ name, shape: info.get(name)?.dims ?? [] }));
    pruneToOutputs(graph);
    matchScalarRanks(graph, info);
    const bytes = encodeModel(graph, 'explain', `logits and the target score's gradient with respect to the ${wrt}`, { producer: 'headstart explain' });
    // Threads sleep between operators, as training sessions' do: the backbone's own session, image
    // decoding and (when serving) HTTP share the cores with this one, and spinning threads starve them.
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions(threads, { spinning: false }));
    } catch (error) {
      throw modelError(`onnxruntime cannot load the explanation graph: ${messageOf(error)}`, source.model.origin, error);
    }
    const inputDims = source.model.info.get(source.input)!.dims!.slice(1);
    return new GradientRunner(session, source, wrt === 'none' ? '' : target, outputs, inputDims);
  }

  get inputSize(): number {
    return this.inputDims.reduce((a, b) => a * b, 1);
  }

  /** Runs `inputs` (n × inputSize, as the backbone takes them) for per-row target classes, in batches. */
  async run(inputs: Float32Array, targets: Int32Array | number[]): Promise<GradientResult> {
    const n = targets.length;
    const size = this.inputSize;
    if (inputs.length !== n * size) throw new Error(`expected ${n} inputs of ${size} values, got ${inputs.length} values`);
    const k = this.source.classes;
    const parts: GradientResult[] = [];
    for (let start = 0; start < n; start += GRADIENT_BATCH) {
      const count = Math.min(GRADIENT_BATCH, n - start);
      const feeds: Record<string, ort.Tensor> = {
        [this.source.input]: new ort.Tensor('float32', inputs.subarray(start * size, (start + count) * size), [count, ...this.inputDims]),
      };
      if (this.target) {
        const oneHot = new Float32Array(count * k);
        for (let i = 0; i < count; i++) oneHot[i * k + targets[start + i]!] = 1;
        feeds[this.target] = new ort.Tensor('float32', oneHot, [count, k]);
      }
      const result = await this.session.run(feeds);
      const take = (name: string | undefined) => {
        if (!name) return undefined;
        const tensor = result[name]!;
        const data = (tensor.data as Float32Array).slice();
        tensor.dispose?.();
        return data;
      };
      parts.push({
        logits: take(this.outputs.logits)!,
        gradient: take(this.outputs.gradient),
        activations: take(this.outputs.activations),
        attention: this.outputs.attention.map((name) => take(name)!),
      });
    }
    const join = (pick: (part: GradientResult) => Float32Array | undefined) => {
      if (!parts.every((part) => pick(part))) return undefined;
      const total = parts.reduce((sum, part) => sum + pick(part)!.length, 0);
      const out = new Float32Array(total);
      let offset = 0;
      for (const part of parts) {
        out.set(pick(part)!, offset);
        offset += pick(part)!.length;
      }
      return out;
    };
    return {
      logits: join((part) => part.logits)!,
      gradient: join((part) => part.gradient),
      activations: join((part) => part.activations),
      attention: this.outputs.attention.map((_, layer) => join((part) => part.attention?.[layer])!),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
