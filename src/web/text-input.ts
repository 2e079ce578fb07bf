/**
 * Texts → the graph inputs of word-vector and TF-IDF exports, from the file's metadata alone, with
 * the library's own tokeniser and featuriser (shared, not copied). Runtime-neutral: it returns
 * typed arrays and shapes, which onnxruntime-node (`ExportedModel`) and onnxruntime-web
 * (`headstart/web`) each wrap in their own Tensor class.
 */
import { padTokenIds, type ExportMetadata, type ExportedDenseTfidfInput, type ExportedTfidfInput, type ExportedWordsInput } from './format.js';
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
    const vectorizer = new TfidfVectorizer(metadata.tfidf);
    return 'name' in input ? new DenseTfidfFeaturizer(input, vectorizer) : new SparseTfidfFeaturizer(input, vectorizer);
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

/** The texts' rows as one COO sparse tensor: (row, term) pairs, values and the dense shape. */
class SparseTfidfFeaturizer implements TextFeaturizer {
  constructor(
    private readonly input: ExportedTfidfInput,
    private readonly vectorizer: TfidfVectorizer,
  ) {}

  feeds(texts: string[]): Record<string, PlainTensor> {
    const rows = texts.map((text) => this.vectorizer.transformSparse(text));
    const nnz = rows.reduce((sum, row) => sum + row.indices.length, 0);
    const indices = new BigInt64Array(2 * nnz);
    const values = new Float32Array(nnz);
    let at = 0;
    rows.forEach((row, r) => {
      for (let e = 0; e < row.indices.length; e++, at++) {
        indices[2 * at] = BigInt(r);
        indices[2 * at + 1] = BigInt(row.indices[e]!);
      }
      values.set(row.values, at - row.indices.length);
    });
    const { indicesName, valuesName, shapeName, dim } = this.input;
    return {
      [indicesName]: { type: 'int64', data: indices, dims: [nnz, 2] },
      [valuesName]: { type: 'float32', data: values, dims: [nnz] },
      [shapeName]: { type: 'int64', data: BigInt64Array.of(BigInt(texts.length), BigInt(dim)), dims: [2] },
    };
  }
}

/** Format 1 files: dense rows. */
class DenseTfidfFeaturizer implements TextFeaturizer {
  constructor(
    private readonly input: ExportedDenseTfidfInput,
    private readonly vectorizer: TfidfVectorizer,
  ) {}

  feeds(texts: string[]): Record<string, PlainTensor> {
    const { dim, name } = this.input;
    const rows = new Float32Array(texts.length * dim);
    texts.forEach((text, i) => rows.set(this.vectorizer.transform(text), i * dim));
    return { [name]: { type: 'float32', data: rows, dims: [texts.length, dim] } };
  }
}
