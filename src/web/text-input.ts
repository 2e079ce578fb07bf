/**
 * Texts → the graph inputs of word-vector and TF-IDF exports, from the file's metadata alone, with
 * the library's own tokeniser and featuriser (shared, not copied). Runtime-neutral: it returns
 * typed arrays and shapes, which onnxruntime-node (`ExportedModel`) and onnxruntime-web
 * (`headstart/web`) each wrap in their own Tensor class.
 */
import { padTokenIds, type ExportMetadata, type ExportedTfidfInput, type ExportedWordsInput } from './format.js';
import { TfidfVectorizer } from './tfidf.js';
import { WORD_TOKENIZER_VERSION, wordIds } from './word-tokens.js';

export type PlainTensor = { type: 'int64'; data: BigInt64Array; dims: number[] } | { type: 'float32'; data: Float32Array; dims: number[] };

export interface TextFeaturizer {
  feeds(texts: string[]): Record<string, PlainTensor>;
}

/** The featuriser an export's metadata calls for; undefined for image and transformer exports. */
export function textFeaturizer(metadata: ExportMetadata): TextFeaturizer | undefined {
  const { input } = metadata;
  if (input.kind === 'words') return new WordIdFeaturizer(input, metadata.vocabulary ?? []);
  if (input.kind === 'tfidf') {
    if (!metadata.tfidf) throw new Error('TF-IDF export without its fitted state');
    return new TfidfFeaturizer(input, new TfidfVectorizer(metadata.tfidf));
  }
  return undefined;
}

class WordIdFeaturizer implements TextFeaturizer {
  private readonly vocabulary = new Map<string, number>();

  constructor(
    private readonly input: ExportedWordsInput,
    words: string[],
  ) {
    if (input.tokenizer !== WORD_TOKENIZER_VERSION) {
      throw new Error(`this model was exported with word tokenizer "${input.tokenizer}"; this headstart has "${WORD_TOKENIZER_VERSION}"`);
    }
    // First occurrence wins, as readWordVectorFolder builds it.
    words.forEach((word, id) => {
      if (!this.vocabulary.has(word)) this.vocabulary.set(word, id);
    });
  }

  feeds(texts: string[]): Record<string, PlainTensor> {
    const { ids, mask, length } = padTokenIds(texts.map((text) => wordIds(text, this.vocabulary).ids), this.input.padId);
    const dims = [texts.length, length];
    return { [this.input.idsName]: { type: 'int64', data: ids, dims }, [this.input.maskName]: { type: 'int64', data: mask, dims } };
  }
}

class TfidfFeaturizer implements TextFeaturizer {
  constructor(
    private readonly input: ExportedTfidfInput,
    private readonly vectorizer: TfidfVectorizer,
  ) {}

  feeds(texts: string[]): Record<string, PlainTensor> {
    const { dim, name } = this.input;
    const rows = new Float32Array(texts.length * dim);
    texts.forEach((text, i) => rows.set(this.vectorizer.transform(text), i * dim));
    return { [name]: { type: 'float32', data: rows, dims: [texts.length, dim] } };
  }
}
