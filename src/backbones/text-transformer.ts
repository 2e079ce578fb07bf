import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backbone, BackboneReference } from './backbone.js';
import { readJsonFile } from './hf-folder.js';
import { createSession, ort } from './onnx-session.js';
import { firstTokenPool, l2NormalizeRows, maskedMeanPool } from './text-pooling.js';
import { HfTokenizer } from './text-tokenizers.js';
import { modelError } from '../util/errors.js';

export type TransformerPooling = 'mean' | 'cls' | 'none';

/** JSON-able; part of the manifest and of every feature-cache key. */
export interface TransformerPreprocessing {
  kind: 'text-transformer';
  /** Longest token sequence, special tokens included; longer texts lose their end. */
  maxLength: number;
  /** `mean`: average over the attention mask; `cls`: the first token; `none`: the output is already one vector. */
  pooling: TransformerPooling;
  normalize: boolean;
  /** sha256 of tokenizer.json: the same graph with another tokenizer gives other features. */
  tokenizerSha256: string;
}

export interface TransformerSpec {
  id: string;
  /** A Hugging Face model folder with tokenizer.json. */
  folder: string;
  /** The .onnx graph: a path, or its bytes (a backbone fine-tuned in this process). */
  model: string | Uint8Array;
  sha256: string;
  /** Graph output holding token vectors (`last_hidden_state`) or one vector per text. */
  outputName?: string;
  pooling: Exclude<TransformerPooling, 'none'>;
  normalize: boolean;
  maxLength?: number;
}

/** A tokenised text: ids with the model's special tokens, and whether the text had to be cut. */
export interface TokenizedText {
  ids: number[];
  truncated: boolean;
}

/**
 * Runs at most this many sequences, and this many (padded) tokens, through the graph at once.
 * Attention costs grow with the padded length, so small micro-batches of similar length beat one
 * large batch padded to its longest text.
 */
const MICRO_BATCH = { sequences: 32, tokens: 8192 };

/**
 * A transformer encoder in Hugging Face ONNX layout (BERT, MiniLM, BGE, DistilBERT, RoBERTa…):
 * tokenised by its own tokenizer.json, padded per micro-batch to the longest text in it, pooled
 * to one vector per text.
 */
export class TransformerTextBackbone implements Backbone<string, TokenizedText> {
  /**
   * Texts per `forward` call. The extractor hands over texts in dataset order; `forward` sorts each
   * call's texts by length into micro-batches, so a larger call means less padding.
   */
  readonly batchSize = 256;

  private constructor(
    readonly reference: BackboneReference,
    readonly preprocessing: TransformerPreprocessing,
    readonly tokenizer: HfTokenizer,
    private readonly session: ort.InferenceSession,
    readonly outputName: string,
    /** Where the graph and tokenizer came from (export reads them again). */
    readonly spec: TransformerSpec,
  ) {}

  static async open(spec: TransformerSpec, threads?: number): Promise<TransformerTextBackbone> {
    const tokenizer = await HfTokenizer.fromFolder(spec.folder, spec.maxLength);
    const origin = transformerOrigin(spec);
    const session = await createSession(spec.model, origin, threads);
    if (!session.inputNames.includes('input_ids')) {
      throw modelError(`not a text encoder: the graph has no input_ids input (inputs: ${session.inputNames.join(', ')})`, origin);
    }
    const outputs = session.outputMetadata.map((m) => ({ name: m.name, rank: m.isTensor ? m.shape.length : 0 }));
    // A masked-language-model export's rank-3 output is `logits`, vocabulary scores per token: never features.
    const chosen = spec.outputName
      ? outputs.find((o) => o.name === spec.outputName)
      : (outputs.find((o) => o.name === 'last_hidden_state') ?? outputs.find((o) => o.rank === 3 && o.name !== 'logits'));
    if (!chosen && !spec.outputName && outputs.some((o) => o.name === 'logits')) {
      throw modelError(
        `this graph outputs only "logits" (vocabulary scores per token: a fill-mask export), not token vectors; ` +
          `use the repository's feature-extraction export (a graph with last_hidden_state), or name an output with --feature-output`,
        origin,
      );
    }
    if (!chosen) {
      throw modelError(
        spec.outputName
          ? `the graph has no output "${spec.outputName}" (outputs: ${session.outputNames.join(', ')})`
          : `no token-vector output (last_hidden_state) among ${session.outputNames.join(', ')}; name one with --feature-output`,
        origin,
      );
    }
    const pooling: TransformerPooling = chosen.rank === 2 ? 'none' : spec.pooling;
    const preprocessing: TransformerPreprocessing = {
      kind: 'text-transformer',
      maxLength: tokenizer.maxLength,
      pooling,
      normalize: spec.normalize,
      tokenizerSha256: tokenizer.sha256,
    };
    const described = pooling === 'mean' ? 'mean over the attention mask' : pooling === 'cls' ? 'first token' : 'as output';
    const reference: BackboneReference = {
      id: spec.id,
      sha256: spec.sha256,
      modality: 'text',
      featureDim: 0,
      featureOutput: `${chosen.name} (${described}${spec.normalize ? ', L2-normalised' : ''})`,
    };
    const backbone = new TransformerTextBackbone(reference, preprocessing, tokenizer, session, chosen.name, spec);
    // One short text tells the feature size whatever the metadata says, and warms the session up.
    reference.featureDim = (await backbone.forward([await backbone.prepare('hello')])).length;
    return backbone;
  }

  /** The graph's inputs (input_ids, and attention_mask / token_type_ids when it takes them). */
  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  async prepare(text: string): Promise<TokenizedText> {
    return this.tokenizer.encode(text);
  }

  async forward(batch: TokenizedText[]): Promise<Float32Array> {
    const order = batch.map((_, i) => i).sort((a, b) => batch[b]!.ids.length - batch[a]!.ids.length || a - b);
    let dim = this.reference.featureDim;
    let out = new Float32Array(batch.length * dim);
    for (let start = 0; start < order.length; ) {
      // Sorted longest first, so the first sequence of a micro-batch sets its padded length.
      const length = batch[order[start]!]!.ids.length;
      const count = Math.max(1, Math.min(MICRO_BATCH.sequences, Math.floor(MICRO_BATCH.tokens / length), order.length - start));
      const members = order.slice(start, start + count);
      const pooled = await this.run(members.map((i) => batch[i]!.ids), length);
      if (dim === 0) {
        dim = pooled.length / members.length;
        out = new Float32Array(batch.length * dim);
      }
      members.forEach((item, row) => out.set(pooled.subarray(row * dim, (row + 1) * dim), item * dim));
      start += count;
    }
    return out;
  }

  /** One padded micro-batch through the graph, pooled. */
  private async run(sequences: number[][], length: number): Promise<Float32Array> {
    const count = sequences.length;
    const ids = new BigInt64Array(count * length).fill(BigInt(this.tokenizer.padId));
    const mask = new BigInt64Array(count * length);
    sequences.forEach((sequence, row) => {
      sequence.forEach((id, t) => {
        ids[row * length + t] = BigInt(id);
        mask[row * length + t] = 1n;
      });
    });
    const dims = [count, length];
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', ids, dims) };
    if (this.session.inputNames.includes('attention_mask')) feeds.attention_mask = new ort.Tensor('int64', mask, dims);
    if (this.session.inputNames.includes('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(count * length), dims);
    const outputs = await this.session.run(feeds, [this.outputName]);
    const output = outputs[this.outputName]!;
    const data = output.data as Float32Array;
    const dim = Number(output.dims[output.dims.length - 1]);
    const pooled =
      this.preprocessing.pooling === 'none'
        ? data.slice()
        : this.preprocessing.pooling === 'cls'
          ? firstTokenPool(data, count, length, dim)
          : maskedMeanPool(data, mask, count, length, dim);
    output.dispose?.();
    return this.preprocessing.normalize ? l2NormalizeRows(pooled, dim) : pooled;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Where a transformer's graph came from, for messages: its path, or its id when it is held in memory. */
export function transformerOrigin(spec: TransformerSpec): string {
  return typeof spec.model === 'string' ? spec.model : spec.id;
}

/**
 * How a sentence-transformers folder says to pool: `modules.json` lists a Pooling module (its
 * `config.json` names the mode) and, for normalised embeddings, a Normalize module; the max
 * length is in `sentence_bert_config.json`. Undefined fields: the folder does not say.
 */
export async function sentenceTransformersRecipe(folder: string): Promise<{ pooling?: 'mean' | 'cls'; normalize?: boolean; maxLength?: number }> {
  const modulesPath = join(folder, 'modules.json');
  if (!(await stat(modulesPath).catch(() => undefined))) return {};
  const modules = (await readJsonFile<{ type?: string; path?: string }[]>(modulesPath)) ?? [];
  const recipe: { pooling?: 'mean' | 'cls'; normalize?: boolean; maxLength?: number } = {
    normalize: modules.some((m) => m.type?.endsWith('.Normalize')),
  };
  const poolingModule = modules.find((m) => m.type?.endsWith('.Pooling'));
  if (poolingModule?.path !== undefined) {
    const config = await readJsonFile<Record<string, unknown>>(join(folder, poolingModule.path, 'config.json')).catch(() => ({}) as Record<string, unknown>);
    if (config.pooling_mode_cls_token) recipe.pooling = 'cls';
    else if (config.pooling_mode_mean_tokens) recipe.pooling = 'mean';
  }
  const bertConfig = await readJsonFile<{ max_seq_length?: number }>(join(folder, 'sentence_bert_config.json')).catch(() => undefined);
  if (typeof bertConfig?.max_seq_length === 'number') recipe.maxLength = bertConfig.max_seq_length;
  return recipe;
}
