import { stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { ort, sessionOptions, type SessionLike } from '../backbones/onnx-session.js';
import { readJsonFile } from '../backbones/hf-folder.js';
import { HfTokenizer } from '../backbones/text-tokenizers.js';
import { pullModel } from '../hub/pull.js';
import { parseModelReference } from '../hub/reference.js';
import { modelError, messageOf, usageError } from '../util/errors.js';
import type { Reporter } from '../util/progress.js';
import { generationDefaultsFrom, type GenerationDefaults } from './generation-config.js';

/**
 * The two ONNX layouts Optimum and transformers.js use for decoders: `onnx/model.onnx` (one graph,
 * the cache fed empty on the first step) and `onnx/decoder_model_merged.onnx` (both branches in one
 * graph, chosen by `use_cache_branch`).
 */
export const CAUSAL_LM_GRAPHS = ['onnx/model.onnx', 'onnx/decoder_model_merged.onnx'] as const;

export interface OpenCausalLmOptions {
  /** Hub settings for `hf:` references. */
  hub?: { offline?: boolean; token?: string; cacheDir?: string; endpoint?: string; fetch?: typeof fetch };
  /** onnxruntime intra-op threads; default every core. */
  threads?: number;
  reporter?: Reporter;
}

/** The key/value cache of every layer, as the graph returned it (`present.*`), fed back as `past_key_values.*`. */
export type KvCache = ort.Tensor[];

/** One forward pass: the logits of every position (`batch × sequence × vocab`) and the updated cache. */
export interface ForwardResult {
  logits: Float32Array;
  batch: number;
  sequence: number;
  cache: KvCache;
}

/**
 * A causal language model in Hugging Face ONNX layout (config.json, generation_config.json,
 * tokenizer.json, and one of {@link CAUSAL_LM_GRAPHS}), run with onnxruntime.
 */
export class CausalLm {
  private constructor(
    /** What the user gave (an `hf:` reference pinned to its commit, or a folder). */
    readonly reference: string,
    readonly folder: string,
    readonly graphPath: string,
    private readonly session: SessionLike,
    readonly tokenizer: HfTokenizer,
    readonly config: Record<string, any>,
    readonly defaults: GenerationDefaults,
    readonly layers: number,
    /** Positions the model has embeddings for: prompt plus generated tokens may not exceed it. */
    readonly contextLength: number,
    readonly vocabSize: number,
    private readonly cacheShape: { heads: number; headDim: number; dtype: 'float32' | 'float16' },
    private readonly hasPositionIds: boolean,
    private readonly hasCacheBranch: boolean,
  ) {}

  /** Opens a folder or an `hf:<owner>/<repo>[@rev]` reference (pulled through the shared Hugging Face cache). */
  static async open(reference: string, options: OpenCausalLmOptions = {}): Promise<CausalLm> {
    const { folder, id } = await locate(reference, options);
    const graphPath = await findGraph(folder);
    const config = await readJsonFile<Record<string, any>>(join(folder, 'config.json'));
    const generationPath = join(folder, 'generation_config.json');
    const generation = (await stat(generationPath).catch(() => undefined)) ? await readJsonFile(generationPath) : {};
    const tokenizer = await HfTokenizer.fromFolder(folder);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(graphPath, sessionOptions(options.threads));
    } catch (error) {
      throw modelError(`onnxruntime cannot load this graph: ${messageOf(error)}`, graphPath, error);
    }
    const names = new Set(session.inputNames);
    const merged = graphPath.endsWith('decoder_model_merged.onnx');
    const needed = ['input_ids', 'attention_mask', 'past_key_values.0.key', 'past_key_values.0.value', ...(merged ? ['use_cache_branch'] : [])];
    for (const name of needed) {
      if (!names.has(name)) {
        await session.release();
        throw modelError(
          `the graph has no input "${name}", which a causal LM with a KV cache needs (inputs: ${session.inputNames.join(', ')}); export it with Optimum's text-generation-with-past task`,
          graphPath,
        );
      }
    }
    const layers = session.inputNames.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
    for (let i = 0; i < layers; i++) {
      for (const output of [`present.${i}.key`, `present.${i}.value`]) {
        if (!session.outputNames.includes(output)) {
          await session.release();
          throw modelError(`the graph has no output "${output}" for its past_key_values.${i} input`, graphPath);
        }
      }
    }
    if (!session.outputNames.includes('logits')) {
      await session.release();
      throw modelError(`the graph has no output "logits" (outputs: ${session.outputNames.join(', ')})`, graphPath);
    }
    const meta = session.inputMetadata.find((m) => m.name === 'past_key_values.0.key');
    const dims = meta && meta.isTensor ? meta.shape : [];
    const heads = typeof dims[1] === 'number' ? dims[1] : config.num_key_value_heads ?? config.n_head ?? config.num_attention_heads;
    const hidden = config.n_embd ?? config.hidden_size;
    const headDim = typeof dims[3] === 'number' ? dims[3] : config.head_dim ?? hidden / (config.n_head ?? config.num_attention_heads);
    if (!Number.isInteger(heads) || !Number.isInteger(headDim)) {
      await session.release();
      throw modelError('cannot tell the KV cache shape: neither the graph nor config.json gives the heads and head size', folder);
    }
    const dtype = meta && meta.isTensor && meta.type === 'float16' ? 'float16' : 'float32';
    const contextLength = config.n_positions ?? config.max_position_embeddings ?? config.n_ctx ?? tokenizer.maxLength;
    const vocabSize = config.vocab_size;
    if (!Number.isInteger(vocabSize)) {
      await session.release();
      throw modelError('config.json has no vocab_size', join(folder, 'config.json'));
    }
    return new CausalLm(
      id,
      folder,
      graphPath,
      session,
      tokenizer,
      config,
      generationDefaultsFrom(generation, config),
      layers,
      contextLength,
      vocabSize,
      { heads, headDim, dtype },
      names.has('position_ids'),
      merged,
    );
  }

  /** An empty cache for `batch` sequences (past length 0), as the first step feeds it. */
  emptyCache(batch: number): KvCache {
    const { heads, headDim, dtype } = this.cacheShape;
    const empty = () => new ort.Tensor(dtype, dtype === 'float16' ? new Uint16Array(0) : new Float32Array(0), [batch, heads, 0, headDim]);
    return Array.from({ length: this.layers * 2 }, empty);
  }

  /**
   * Runs `inputIds` (`batch × sequence`, row-major) after the cached positions. `attentionMask` covers
   * past + new positions (`batch × (past + sequence)`); `positionIds` the new ones.
   */
  async forward(inputIds: readonly number[], attentionMask: readonly number[], positionIds: readonly number[], batch: number, cache: KvCache): Promise<ForwardResult> {
    const sequence = inputIds.length / batch;
    const total = attentionMask.length / batch;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(inputIds, BigInt), [batch, sequence]),
      attention_mask: new ort.Tensor('int64', BigInt64Array.from(attentionMask, BigInt), [batch, total]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from(positionIds, BigInt), [batch, sequence]);
    if (this.hasCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(cache[0]!.dims[2]! > 0 ? 1 : 0), [1]);
    for (let i = 0; i < this.layers; i++) {
      feeds[`past_key_values.${i}.key`] = cache[2 * i]!;
      feeds[`past_key_values.${i}.value`] = cache[2 * i + 1]!;
    }
    const fetches = ['logits', ...Array.from({ length: this.layers }, (_, i) => [`present.${i}.key`, `present.${i}.value`]).flat()];
    let outputs: Record<string, ort.Tensor>;
    try {
      outputs = await this.session.run(feeds, fetches);
    } catch (error) {
      throw modelError(`the model failed to run: ${messageOf(error)}`, this.graphPath, error);
    }
    const logits = outputs.logits!;
    const data = logits.type === 'float32' ? (logits.data as Float32Array) : Float32Array.from(logits.data as ArrayLike<number>);
    return { logits: data, batch, sequence, cache: fetches.slice(1).map((name) => outputs[name]!) };
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

async function locate(reference: string, options: OpenCausalLmOptions): Promise<{ folder: string; id: string }> {
  const ref = parseModelReference(reference);
  if (ref.kind === 'hf') {
    const pulled = await pullModel(ref.repo, {
      ...options.hub,
      revision: ref.revision,
      reporter: options.reporter,
      files: causalLmFiles,
    });
    return { folder: pulled.snapshotDir, id: `hf:${ref.repo}@${pulled.commit}` };
  }
  if (ref.kind !== 'path') throw usageError(`"${reference}": a language model is a folder in Hugging Face ONNX layout or an hf: reference`);
  const folder = resolvePath(ref.path);
  if (!(await stat(folder).catch(() => undefined))?.isDirectory()) {
    throw usageError(`language model "${reference}" is neither a folder nor an hf: reference`);
  }
  return { folder, id: reference };
}

/** The files a causal LM needs from a Hub repository: the side files and the first graph layout present. */
export function causalLmFiles(listing: string[]): string[] {
  const present = new Set(listing);
  const graph = CAUSAL_LM_GRAPHS.find((g) => present.has(g));
  if (!graph) throw modelError(`no ${CAUSAL_LM_GRAPHS.join(' or ')}: not an ONNX export of a causal LM (look for an onnx-community/ or Xenova/ version)`);
  const side = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
  return [...side.filter((f) => present.has(f)), ...listing.filter((p) => p.startsWith(`${graph}_data`)), graph];
}

/** Whether a folder holds a causal LM (a decoder graph and a config naming a causal-LM architecture, or a headstart generate model). */
export async function isCausalLmFolder(folder: string): Promise<boolean> {
  let graph = false;
  for (const g of CAUSAL_LM_GRAPHS) if ((await stat(join(folder, g)).catch(() => undefined))?.isFile()) graph = true;
  if (!graph) return false;
  const config = await readJsonFile<Record<string, any>>(join(folder, 'config.json')).catch(() => undefined);
  return Array.isArray(config?.architectures) && config.architectures.some((a: unknown) => typeof a === 'string' && /CausalLM$|LMHeadModel$/.test(a));
}

/** The tokenizer's chat template (tokenizer_config.json), the default one when it names several. */
export async function chatTemplateOf(folder: string): Promise<string | undefined> {
  const config = await readJsonFile<Record<string, any>>(join(folder, 'tokenizer_config.json')).catch(() => undefined);
  const template = config?.chat_template;
  if (typeof template === 'string') return template;
  if (Array.isArray(template)) return template.find((t: any) => t?.name === 'default')?.template ?? template[0]?.template;
  return undefined;
}

async function findGraph(folder: string): Promise<string> {
  for (const graph of CAUSAL_LM_GRAPHS) {
    const path = join(folder, graph);
    if ((await stat(path).catch(() => undefined))?.isFile()) return path;
  }
  throw modelError(`not a causal LM folder: no ${CAUSAL_LM_GRAPHS.join(' or ')}`, folder);
}
