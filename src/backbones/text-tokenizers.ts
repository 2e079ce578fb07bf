import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { readJsonFile } from './hf-folder.js';
import { modelError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';

/**
 * Text → token ids for transformer encoders, from a Hugging Face `tokenizer.json`.
 * @huggingface/tokenizers rather than transformers.js: it is the same tokenizer code transformers.js
 * runs, pure JS with no dependencies, without pulling in a second ONNX runtime.
 */
export class HfTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly vocabulary: Map<string, number>,
    /** Special ids the template puts before and after a single sequence ([CLS] … [SEP]). */
    readonly prefix: number[],
    readonly suffix: number[],
    readonly maxLength: number,
    readonly padId: number,
    /** sha256 of tokenizer.json: part of the preprocessing, so a changed tokenizer misses the cache. */
    readonly sha256: string,
  ) {}

  /**
   * Reads `tokenizer.json` (and `tokenizer_config.json`, `config.json` when present). The maximum
   * length is the smallest of the tokenizer's `model_max_length` (ignored when it is the "no limit"
   * sentinel), the truncation length in tokenizer.json and the model's position embeddings (RoBERTa
   * style models offset positions by padding_idx + 1, leaving two fewer).
   */
  static async fromFolder(folder: string, maxLengthOverride?: number): Promise<HfTokenizer> {
    const path = join(folder, 'tokenizer.json');
    if (!(await stat(path).catch(() => undefined))?.isFile()) throw modelError('no tokenizer.json: cannot tokenise text for this model', folder);
    const text = await readFile(path, 'utf8');
    let json: any;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw modelError(`not valid JSON: ${(error as Error).message}`, path, error);
    }
    const config = await optionalJson(join(folder, 'tokenizer_config.json'));
    const modelConfig = await optionalJson(join(folder, 'config.json'));
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(json, config);
    } catch (error) {
      throw modelError(`unsupported tokenizer: ${(error as Error).message}`, path, error);
    }
    const vocabulary = tokenizer.get_vocab(true);
    const { prefix, suffix } = specialFrame(tokenizer, vocabulary);
    const limits: number[] = [];
    if (typeof config.model_max_length === 'number' && config.model_max_length < 1e6) limits.push(config.model_max_length);
    if (typeof json.truncation?.max_length === 'number') limits.push(json.truncation.max_length);
    let positions = Infinity;
    if (typeof modelConfig.max_position_embeddings === 'number') {
      const offset = ['roberta', 'xlm-roberta', 'camembert', 'longformer'].includes(modelConfig.model_type) ? 2 : 0;
      positions = modelConfig.max_position_embeddings - offset;
      limits.push(positions);
    }
    // An override may shorten, never go past the position embeddings (the graph would fail).
    const maxLength = Math.min(maxLengthOverride ?? (limits.length ? Math.min(...limits) : 512), positions);
    if (maxLength <= prefix.length + suffix.length) throw modelError(`maximum length ${maxLength} leaves no room for text`, folder);
    const padToken = typeof config.pad_token === 'string' ? config.pad_token : config.pad_token?.content;
    const padId = (padToken !== undefined ? vocabulary.get(padToken) : undefined) ?? json.padding?.pad_id ?? modelConfig.pad_token_id ?? 0;
    return new HfTokenizer(tokenizer, vocabulary, prefix, suffix, maxLength, padId, sha256(text));
  }

  /** Token ids with the model's special tokens, cut to `maxLength` (the end of the text is dropped). */
  encode(text: string): { ids: number[]; truncated: boolean } {
    const tokens: string[] = this.tokenizer.tokenize(text);
    const room = this.maxLength - this.prefix.length - this.suffix.length;
    const truncated = tokens.length > room;
    const kept = truncated ? tokens.slice(0, room) : tokens;
    const unk: number = this.tokenizer.model?.unk_token_id ?? 0;
    return { ids: [...this.prefix, ...kept.map((t: string) => this.vocabulary.get(t) ?? unk), ...this.suffix], truncated };
  }

  /** Token ids of a text as it is, without the template's special tokens and without truncation (for causal LMs). */
  ids(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of token ids; special tokens are dropped unless `keepSpecial`. */
  decode(ids: readonly number[], keepSpecial = false): string {
    return this.tokenizer.decode([...ids], { skip_special_tokens: !keepSpecial });
  }

  /** The id of a token (e.g. `<|endoftext|>`), if the vocabulary has it. */
  tokenId(token: string): number | undefined {
    return this.vocabulary.get(token);
  }
}

/** Finds the template's special tokens around a single sequence by encoding a probe word with and without them. */
function specialFrame(tokenizer: Tokenizer, vocabulary: Map<string, number>): { prefix: number[]; suffix: number[] } {
  const probe = 'hello';
  const full: number[] = tokenizer.encode(probe).ids;
  const bare = (tokenizer.tokenize(probe) as string[]).map((t) => vocabulary.get(t));
  for (let start = 0; start + bare.length <= full.length; start++) {
    if (bare.every((id, i) => full[start + i] === id)) return { prefix: full.slice(0, start), suffix: full.slice(start + bare.length) };
  }
  return { prefix: [], suffix: [] };
}

async function optionalJson(path: string): Promise<any> {
  if (!(await stat(path).catch(() => undefined))) return {};
  return readJsonFile(path);
}

// The word-vector tokeniser is pure code shared with headstart/web (exported models tokenise in the browser).
export { wordIds, wordTokens } from '../web/word-tokens.js';
