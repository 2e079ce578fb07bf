/**
 * The text modality's `BackboneGraph`: a transformer encoder in Hugging Face ONNX layout, opened
 * for fine-tuning. The training graph runs at one fixed padded length T (the longest tokenised
 * training or validation text), so every tensor has a static per-example shape and the frozen
 * encoder layers' outputs can be cached per text; the backbone's own pooling (mean over the
 * attention mask, or the first token, then optionally L2) is appended in-graph by the export's
 * `HeadGraphBuilder.poolTokens`, the same nodes `headstart export` and the explainer use. The
 * attention mask makes padding invisible, so features at T equal those the backbone computes
 * padded per micro-batch (up to float round-off). The fine-tuned file is the encoder with its new
 * weights and its own outputs, dynamic in length again; the model folder carries it as a Hugging
 * Face ONNX folder with the tokenizer beside it.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backbone } from '../backbones/backbone.js';
import { ort } from '../backbones/onnx-session.js';
import { TransformerTextBackbone, transformerOrigin, type TokenizedText } from '../backbones/text-transformer.js';
import { decodeModel, encodeModel, OPSET_VERSION } from '../backbones/tfjs/onnx-graph.js';
import { pruneToOutputs } from '../autodiff/graph-utils.js';
import { readTrainableModel } from '../autodiff/model.js';
import type { Dataset } from '../data/dataset.js';
import { HeadGraphBuilder } from '../export/head-graph.js';
import { messageOf, modelError, usageError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { graphWithWeights, type BackboneGraph } from './backbone-graph.js';

const MASK = 'attention_mask';

/**
 * Transformers are fine-tuned whole (Devlin et al.'s recipe; on bert-tiny-random over 1,000 SST-2
 * sentences the last two blocks gained nothing: 0.625 against the frozen head's 0.620, all blocks
 * 0.705). Their blocks are sub-blocks (attention, MLP: seven in BERT-tiny), so ULMFiT's ÷2.6 per
 * layer is about ÷1.6 per block; ÷2.6 per block left the embeddings at 1/800 of the head's rate and
 * gained nothing (0.620), ÷1.6 gave 0.705, no decay 0.700 (measured, one seed).
 */
export const TEXT_FINE_TUNE_DEFAULTS = { unfreeze: 'all' as const, discriminativeFactor: 1.6 };

/** Refuses text backbones without a network to train (TF-IDF, word vectors), naming what to use instead. */
export function checkTextUnfreezable(backbone: Backbone<unknown, unknown>): asserts backbone is TransformerTextBackbone {
  if (backbone instanceof TransformerTextBackbone) return;
  throw textUnfreezeRefusal(backbone.reference.id, (backbone.preprocessing as { kind?: string }).kind);
}

/** The refusal for a text backbone of `kind` (its preprocessing kind: tfidf, word-vectors…). */
export function textUnfreezeRefusal(id: string, kind: string | undefined): Error {
  const what = kind === 'tfidf' ? 'TF-IDF, fitted on the training texts,' : kind === 'word-vectors' ? 'a table of word vectors, pooled,' : 'not a transformer encoder, so it';
  return usageError(
    `--unfreeze: the text backbone ${id} is ${what} has no layers to fine-tune; ` +
      'fine-tuning needs a transformer encoder in Hugging Face ONNX layout (an hf: reference or a folder with config.json, onnx/model.onnx and tokenizer.json); drop --unfreeze to train a head on its features',
  );
}

/** The padded length of the training graph: the longest tokenised text of the training and validation splits. */
async function sequenceLength(backbone: TransformerTextBackbone, dataset: Dataset<string>): Promise<number> {
  let longest = 0;
  for (const item of [...dataset.train, ...dataset.validation]) {
    // Unreadable texts are skipped by extraction; they do not set the length.
    const text = await item.load().catch(() => undefined);
    if (text !== undefined) longest = Math.max(longest, backbone.tokenizer.encode(text).ids.length);
  }
  return Math.max(longest, backbone.tokenizer.prefix.length + backbone.tokenizer.suffix.length + 1);
}

export async function readTextBackboneGraph(source: Backbone<unknown, unknown>, dataset: Dataset<string>): Promise<BackboneGraph<string, TokenizedText>> {
  checkTextUnfreezable(source);
  const backbone = source;
  const { spec, tokenizer } = backbone;
  const origin = transformerOrigin(spec);
  const bytes = typeof spec.model === 'string' ? await readFile(spec.model) : spec.model;
  const length = await sequenceLength(backbone, dataset);
  const inputs = [...backbone.inputNames];
  const { pooling, normalize } = backbone.preprocessing;

  // The encoder with the backbone's pooling appended, pruned to the pooled features.
  let graph;
  try {
    graph = decodeModel(bytes, origin);
  } catch (error) {
    throw modelError(`cannot read the encoder graph: ${messageOf(error)}`, origin, error);
  }
  // Mean pooling reads the mask even when the encoder does not take one.
  if (pooling === 'mean' && !graph.inputs.some((input) => input.name === MASK)) graph.inputs.push({ name: MASK, shape: [-1, -1], dtype: 'int64' });
  const builder = new HeadGraphBuilder(graph, graph.sourceOpset ?? OPSET_VERSION, 'finetune/');
  const pooled = builder.poolTokens(backbone.outputName, MASK, pooling, normalize);
  graph.outputs = [{ name: pooled, shape: [-1, -1] }];
  pruneToOutputs(graph);
  const names = graph.inputs.map((input) => input.name);

  const feeds = (batch: TokenizedText[]): Record<string, ort.Tensor> => {
    const count = batch.length;
    const ids = new BigInt64Array(count * length).fill(BigInt(tokenizer.padId));
    const mask = new BigInt64Array(count * length);
    batch.forEach((text, row) =>
      text.ids.slice(0, length).forEach((id, t) => {
        ids[row * length + t] = BigInt(id);
        mask[row * length + t] = 1n;
      }),
    );
    const dims = [count, length];
    const all: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, dims),
      [MASK]: new ort.Tensor('int64', mask, dims),
      // One segment, as the backbone feeds it.
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(count * length), dims),
    };
    return Object.fromEntries(names.map((name) => [name, all[name]!]));
  };
  const unknown = names.filter((name) => !['input_ids', MASK, 'token_type_ids'].includes(name));
  if (unknown.length > 0) throw modelError(`cannot fine-tune an encoder that takes ${unknown.join(', ')} (expected input_ids, attention_mask, token_type_ids)`, origin);
  // Shapes are probed at the fixed length with real-looking feeds: a full mask, [PAD] ids.
  const probe = (batch: number) => feeds(Array.from({ length: batch }, () => ({ ids: new Array<number>(length).fill(tokenizer.padId), truncated: false })));
  const model = await readTrainableModel(encodeModel(graph, 'text encoder', 'encoder with pooling, for fine-tuning', { producer: 'headstart fine-tune' }), origin, probe);
  const hidden = model.info.get(backbone.outputName)?.dims;

  return {
    model,
    features: pooled,
    backbone,
    preprocessing: { ...backbone.preprocessing, sequenceLength: length },
    defaults: TEXT_FINE_TUNE_DEFAULTS,
    prepare: (text) => backbone.prepare(text),
    feeds,
    write: (weights, description) => {
      const written = graphWithWeights(model, weights);
      // The encoder's own interface: its inputs and the output the backbone pools, any length.
      written.inputs.splice(0, written.inputs.length, ...written.inputs.filter((input) => inputs.includes(input.name)));
      written.outputs = [{ name: backbone.outputName, shape: hidden && hidden.length === 3 ? [-1, -1, hidden[2]!] : [-1, hidden?.[1] ?? -1] }];
      pruneToOutputs(written);
      return encodeModel(written, 'fine-tuned text encoder', description, { producer: 'headstart fine-tune' });
    },
    open: (tuned, threads) => TransformerTextBackbone.open({ ...spec, model: tuned, sha256: sha256(tuned) }, threads),
  };
}

/** Tokenizer and config files copied beside the fine-tuned graph (those the original folder has). */
const FOLDER_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt'];

/** The files of a fine-tuned encoder's Hugging Face ONNX folder, named under `folder` in the model folder. */
export async function textBackboneFiles(backbone: Backbone<unknown, unknown>, folder: string): Promise<Record<string, Uint8Array>> {
  if (!(backbone instanceof TransformerTextBackbone)) throw new Error('the fine-tuned text backbone is not a transformer encoder');
  const { spec } = backbone;
  const files: Record<string, Uint8Array> = { [`${folder}/onnx/model.onnx`]: typeof spec.model === 'string' ? await readFile(spec.model) : spec.model };
  for (const name of FOLDER_FILES) {
    const path = join(spec.folder, name);
    if ((await stat(path).catch(() => undefined))?.isFile()) files[`${folder}/${name}`] = await readFile(path);
  }
  return files;
}
