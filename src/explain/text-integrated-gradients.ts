/**
 * Integrated gradients on the token embeddings of a transformer text classifier (BERT-style
 * encoders in Hugging Face ONNX layout): the encoder's word-embedding lookup (Gather of input_ids
 * from a [vocabulary, hidden] table) becomes an input, the backbone's token pooling and the trained
 * head go on top (the export's `HeadGraphBuilder`, as predict computes them), and `src/autodiff`
 * appends the gradient of the target's calibrated logit with respect to those embeddings. The path
 * runs from the [PAD] embedding at every text token (the template's [CLS]/[SEP] kept, so they get
 * no attribution; Captum's usual BERT baseline) to the text's own embeddings, by Gauss–Legendre
 * quadrature in batched steps. Token attributions (summed over the hidden axis) are summed per
 * whitespace word, and completeness — Σ = f(x) − f(baseline) — is reported.
 */
import { readFile } from 'node:fs/promises';
import { transformerOrigin, type TransformerTextBackbone } from '../backbones/text-transformer.js';
import { ort, sessionOptions } from '../backbones/onnx-session.js';
import { decodeModel, encodeModel, OPSET_VERSION } from '../backbones/tfjs/onnx-graph.js';
import { matchScalarRanks, pruneToOutputs, sortTopologically } from '../autodiff/graph-utils.js';
import { readTrainableModel, unshareInitializers } from '../autodiff/model.js';
import { HeadGraphBuilder } from '../export/head-graph.js';
import type { HeadState } from '../heads/head.js';
import { messageOf, modelError } from '../util/errors.js';
import { copyGraph } from './attribution-model.js';
import { addTargetScoreGradient } from './gradient-runner.js';
import { gaussLegendre, pathBatch } from './integrated-gradients.js';

/** Rows (quadrature steps) per onnxruntime run. */
const STEP_BATCH = 8;

export interface TokenIntegratedGradients {
  ids: number[];
  /** Per token: its attribution summed over the hidden axis. */
  tokens: Float64Array;
  /** The target's calibrated logits at the text and at the baseline. */
  logit: number;
  baselineLogit: number;
  completeness: { sum: number; expected: number; relativeError: number };
}

export class TextAttribution {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly names: { embeddings: string; ids?: string; mask: string; types?: string; target: string; logits: string; gradient: string },
    /** The word-embedding table [vocabulary, hidden]. */
    readonly table: Float32Array,
    readonly hidden: number,
    readonly classes: number,
  ) {}

  static async create(backbone: TransformerTextBackbone, head: HeadState, temperature: number, threads?: number): Promise<TextAttribution> {
    const origin = transformerOrigin(backbone.spec);
    const source = backbone.spec.model;
    let graph;
    try {
      graph = decodeModel(typeof source === 'string' ? await readFile(source) : source, origin);
    } catch (error) {
      throw modelError(`cannot read the encoder graph: ${messageOf(error)}`, origin, error);
    }
    unshareInitializers(graph);
    sortTopologically(graph, origin);
    const lookup = graph.nodes.find((node) => node.op === 'Gather' && node.inputs[1] === 'input_ids' && graph.initializers.get(node.inputs[0]!)?.dims.length === 2);
    const table = lookup && graph.initializers.get(lookup.inputs[0]!);
    if (!lookup || table?.dtype !== 'float32') throw modelError('no word-embedding lookup (a Gather of input_ids from a float table) to take integrated gradients on: use --method leave-one-out', origin);
    const hidden = table.dims[1]!;
    graph.nodes.splice(graph.nodes.indexOf(lookup), 1);
    const embeddings = graph.addInput('explain/inputs_embeds', [-1, -1, hidden], 'float32');
    for (const node of graph.nodes) node.inputs = node.inputs.map((input) => (input === lookup.outputs[0] ? embeddings : input));
    const builder = new HeadGraphBuilder(graph, graph.sourceOpset ?? OPSET_VERSION, 'explain/');
    const { pooling, normalize } = backbone.preprocessing;
    const logits = builder.head(builder.poolTokens(backbone.outputName, 'attention_mask', pooling, normalize), head, temperature);
    const classes = (head.config as { numClasses: number }).numClasses;
    graph.outputs = [{ name: logits, shape: [-1, classes] }];
    pruneToOutputs(graph);
    const model = await readTrainableModel(encodeModel(graph, 'text-attribution', 'encoder from its embeddings, pooling and head', { producer: 'headstart explain' }), origin);
    const withGradient = copyGraph(model.graph);
    const info = new Map(model.info);
    const { target, gradient } = addTargetScoreGradient(withGradient, info, logits, classes, embeddings, origin);
    withGradient.outputs = [logits, gradient].map((name) => ({ name, shape: info.get(name)?.dims ?? [] }));
    pruneToOutputs(withGradient);
    matchScalarRanks(withGradient, info);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(encodeModel(withGradient, 'explain', 'logits and the target score gradient with respect to the token embeddings', { producer: 'headstart explain' }), sessionOptions(threads, { spinning: false }));
    } catch (error) {
      throw modelError(`onnxruntime cannot load the explanation graph: ${messageOf(error)}`, origin, error);
    }
    const inputs = new Set(withGradient.inputs.map((input) => input.name));
    const names = { embeddings, mask: 'attention_mask', target, logits, gradient, ids: inputs.has('input_ids') ? 'input_ids' : undefined, types: inputs.has('token_type_ids') ? 'token_type_ids' : undefined };
    return new TextAttribution(session, names, table.data as Float32Array, hidden, classes);
  }

  /** The embedding of each id, [ids.length, hidden]. */
  embed(ids: number[]): Float32Array {
    const out = new Float32Array(ids.length * this.hidden);
    ids.forEach((id, t) => out.set(this.table.subarray(id * this.hidden, (id + 1) * this.hidden), t * this.hidden));
    return out;
  }

  /** Logits and target-logit gradients of `rows` embedded sequences of `ids.length` tokens (all unmasked). */
  async run(rows: Float32Array, ids: number[], target: number): Promise<{ logits: Float32Array; gradient: Float32Array }> {
    const length = ids.length;
    const size = length * this.hidden;
    const count = rows.length / size;
    const logits = new Float32Array(count * this.classes);
    const gradient = new Float32Array(rows.length);
    for (let start = 0; start < count; start += STEP_BATCH) {
      const n = Math.min(STEP_BATCH, count - start);
      const tokens = (value: (t: number) => bigint) => new ort.Tensor('int64', BigInt64Array.from({ length: n * length }, (_, i) => value(i % length)), [n, length]);
      const oneHot = new Float32Array(n * this.classes);
      for (let i = 0; i < n; i++) oneHot[i * this.classes + target] = 1;
      const feeds: Record<string, ort.Tensor> = {
        [this.names.embeddings]: new ort.Tensor('float32', rows.subarray(start * size, (start + n) * size), [n, length, this.hidden]),
        [this.names.mask]: tokens(() => 1n),
        [this.names.target]: new ort.Tensor('float32', oneHot, [n, this.classes]),
      };
      // input_ids may still feed shape computations (position ids); token types are all 0 for one text.
      if (this.names.ids) feeds[this.names.ids] = tokens((t) => BigInt(ids[t]!));
      if (this.names.types) feeds[this.names.types] = tokens(() => 0n);
      const result = await this.session.run(feeds);
      logits.set(result[this.names.logits]!.data as Float32Array, start * this.classes);
      gradient.set(result[this.names.gradient]!.data as Float32Array, start * size);
    }
    return { logits, gradient };
  }

  /**
   * Integrated gradients of the target's logit for the token sequence `ids`; positions in `keep`
   * (the template's special tokens) are the same in the baseline, all others start at `padId`'s embedding.
   */
  async integratedGradients(ids: number[], target: number, options: { steps?: number; padId: number; keep: Set<number> }): Promise<TokenIntegratedGradients> {
    const steps = options.steps ?? 32;
    const { nodes, weights } = gaussLegendre(steps);
    const x = this.embed(ids);
    const base = this.embed(ids.map((id, t) => (options.keep.has(t) ? id : options.padId)));
    const size = x.length;
    const batch = pathBatch(base, x, nodes);
    const { logits, gradient } = await this.run(batch, ids, target);
    const tokens = new Float64Array(ids.length);
    for (let s = 0; s < steps; s++) {
      for (let i = 0; i < size; i++) tokens[Math.floor(i / this.hidden)]! += weights[s]! * gradient[s * size + i]! * (x[i]! - base[i]!);
    }
    const sum = tokens.reduce((a, b) => a + b, 0);
    const logit = logits[(steps + 1) * this.classes + target]!;
    const baselineLogit = logits[steps * this.classes + target]!;
    const expected = logit - baselineLogit;
    return { ids, tokens, logit, baselineLogit, completeness: { sum, expected, relativeError: Math.abs(sum - expected) / Math.max(Math.abs(expected), 1e-12) } };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
