/**
 * Explanations of text predictions as a score per word of the text (whitespace-separated spans of
 * the original string, so they can be highlighted in place):
 * - word vectors under a linear head, unnormalised pooling: the exact contribution of each word
 *   to the target's calibrated logit — the pooled features are sums over words (the SIF-weighted
 *   mean) or one word's value (each dimension of the max and min pools), and the head is linear,
 *   so the logit splits exactly into per-word terms plus a constant;
 * - transformer encoders: integrated gradients on the token embeddings
 *   (text-integrated-gradients.ts), each word the sum of its tokens' attributions;
 * - any other text model: leave-one-out, the drop of the target's probability when the word is
 *   removed.
 */
import { TransformerTextBackbone } from '../backbones/text-transformer.js';
import { WordVectorBackbone } from '../backbones/text-word-vectors.js';
import { sifWeights } from '../backbones/text-pooling.js';
import type { Head } from '../heads/head.js';
import { usageError } from '../util/errors.js';
import { wordIds } from '../web/word-tokens.js';
import type { TextAttribution } from './text-integrated-gradients.js';

export type TextMethod = 'word-contributions' | 'integrated-gradients' | 'leave-one-out';

export interface WordScore {
  text: string;
  /** UTF-16 offsets in the input text. */
  start: number;
  end: number;
  score: number;
}

export interface TextExplanation {
  modality: 'text';
  method: TextMethod;
  target: number;
  label: string;
  probability: number;
  /** 'logit': contributions to the target's calibrated logit; 'probability': drops of its probability. */
  unit: 'logit' | 'probability';
  words: WordScore[];
  /** Word contributions: the part of the logit no word carries (bias and standardisation); words + constant = logit. */
  constant?: number;
  logit?: number;
  /** Integrated gradients: Σ word scores against f(text) − f(baseline) of the target's calibrated logit. */
  completeness?: { sum: number; expected: number; relativeError: number };
}

export interface ExplainableTextModel {
  backbone: unknown;
  head: Head;
  temperature: number;
  labels: string[];
  probabilities(texts: string[]): Promise<Float32Array>;
  /** The integrated-gradients graph of a transformer classifier, built on first use and kept. */
  attribution?: () => Promise<TextAttribution>;
}

/** Whitespace-separated spans of `text`. */
export function wordSpans(text: string): { text: string; start: number; end: number }[] {
  return Array.from(text.matchAll(/\S+/g), (match) => ({ text: match[0], start: match.index!, end: match.index! + match[0].length }));
}

export async function explainText(model: ExplainableTextModel, text: string, options: { target?: number; method?: TextMethod; steps?: number } = {}): Promise<TextExplanation> {
  const probabilities = await model.probabilities([text]);
  const target = options.target ?? indexOfMax(probabilities);
  const base = { modality: 'text' as const, target, label: model.labels[target]!, probability: probabilities[target]! };
  const exact = options.method !== 'leave-one-out' ? wordContributions(model, text, target) : undefined;
  if (exact) return { ...base, method: 'word-contributions', unit: 'logit', ...exact };
  const transformer = model.backbone instanceof TransformerTextBackbone && model.attribution && model.head.type !== 'knn';
  if (options.method === 'integrated-gradients' && !transformer) throw usageError('integrated gradients explain transformer text models (the gradient with respect to their token embeddings); use --method leave-one-out');
  if (transformer && (options.method === undefined || options.method === 'integrated-gradients')) {
    const words = await integratedGradientWords(model.backbone as TransformerTextBackbone, await model.attribution!(), text, target, options.steps);
    if (words) return { ...base, method: 'integrated-gradients', unit: 'logit', ...words };
  }
  const spans = wordSpans(text);
  const without = spans.length > 0 ? await model.probabilities(spans.map((span) => text.slice(0, span.start) + text.slice(span.end))) : new Float32Array();
  const k = model.labels.length;
  return {
    ...base,
    method: 'leave-one-out',
    unit: 'probability',
    words: spans.map((span, i) => ({ ...span, score: probabilities[target]! - without[i * k + target]! })),
  };
}

/**
 * Integrated gradients per word: the text's tokens are those of its whitespace words tokenised
 * alone (checked, else undefined: leave-one-out then), so each word's score is the sum of its
 * tokens' attributions. Words past the encoder's maximum length score 0.
 */
async function integratedGradientWords(backbone: TransformerTextBackbone, attribution: TextAttribution, text: string, target: number, steps?: number): Promise<Pick<TextExplanation, 'words' | 'logit' | 'completeness'> | undefined> {
  const { tokenizer } = backbone;
  const [before, after] = [tokenizer.prefix.length, tokenizer.suffix.length];
  const { ids } = tokenizer.encode(text);
  const inner = ids.slice(before, ids.length - after);
  const spans = wordSpans(text);
  const perSpan = spans.map((span) => {
    const own = tokenizer.encode(span.text).ids;
    return own.length - before - after;
  });
  const flat = spans.flatMap((span) => {
    const own = tokenizer.encode(span.text).ids;
    return own.slice(before, own.length - after);
  });
  if (inner.some((id, i) => flat[i] !== id)) return undefined;
  const keep = new Set([...Array.from({ length: before }, (_, i) => i), ...Array.from({ length: after }, (_, i) => ids.length - 1 - i)]);
  const result = await attribution.integratedGradients(ids, target, { steps, padId: tokenizer.padId, keep });
  let token = before;
  const words = spans.map((span, s) => {
    let score = 0;
    for (let i = 0; i < perSpan[s]! && token < ids.length - after; i++) score += result.tokens[token++]!;
    return { ...span, score };
  });
  return { words, logit: result.logit, completeness: result.completeness };
}

/** Exact per-word terms of the target's logit, or undefined when the model is not of that form. */
function wordContributions(model: ExplainableTextModel, text: string, target: number): { words: WordScore[]; constant: number; logit: number } | undefined {
  const backbone = model.backbone;
  if (!(backbone instanceof WordVectorBackbone) || model.head.type !== 'linear' || backbone.preprocessing.normalize) return undefined;
  const { vectors, dim, vocabulary, words } = backbone.table;
  const state = model.head.state();
  const featureDim = backbone.reference.featureDim;
  const weight = state.tensors['weight']!.data.subarray(target * featureDim, (target + 1) * featureDim);
  const bias = state.tensors['bias']!.data[target]!;
  const mean = state.tensors['mean']?.data;
  const std = state.tensors['std']?.data;
  // The head sees z = (x − μ)/σ: per feature, logit gains (W/σ)·x, plus the constant b − Σ W·μ/σ.
  const slope = Float64Array.from(weight, (w, d) => w / (std ? std[d]! : 1));
  let constant = bias;
  if (mean) for (let d = 0; d < featureDim; d++) constant -= slope[d]! * mean[d]!;
  const spans = wordSpans(text);
  const idsPerSpan = spans.map((span) => wordIds(span.text, vocabulary).ids);
  const all = wordIds(text, vocabulary).ids;
  // Spans tokenised alone must give the text's own tokens, or the terms would not add up.
  const flat = idsPerSpan.flatMap((ids) => Array.from(ids));
  if (flat.length !== all.length || flat.some((id, i) => id !== all[i])) return undefined;
  const n = all.length;
  const weights = backbone.preprocessing.pooling === 'mean' ? undefined : sifWeights(words.length, backbone.preprocessing.sifA);
  const perToken = new Float64Array(n);
  all.forEach((id, i) => {
    const w = weights ? weights[id]! : 1;
    let sum = 0;
    for (let d = 0; d < dim; d++) sum += slope[d]! * vectors[id * dim + d]!;
    perToken[i] = (w * sum) / n;
  });
  if (backbone.preprocessing.pooling === 'sif+max+min' && n > 0) {
    // Each dimension of the max (min) pool is one word's value: the first that reaches it, as extremePools keeps it.
    for (let d = 0; d < dim; d++) {
      let hi = 0;
      let lo = 0;
      for (let i = 1; i < n; i++) {
        if (vectors[all[i]! * dim + d]! > vectors[all[hi]! * dim + d]!) hi = i;
        if (vectors[all[i]! * dim + d]! < vectors[all[lo]! * dim + d]!) lo = i;
      }
      perToken[hi]! += slope[dim + d]! * vectors[all[hi]! * dim + d]!;
      perToken[lo]! += slope[2 * dim + d]! * vectors[all[lo]! * dim + d]!;
    }
  }
  const t = model.temperature;
  let offset = 0;
  const scored = spans.map((span, s) => {
    let score = 0;
    for (let i = 0; i < idsPerSpan[s]!.length; i++) score += perToken[offset + i]!;
    offset += idsPerSpan[s]!.length;
    return { ...span, score: score / t };
  });
  const logit = (scored.reduce((sum, word) => sum + word.score * t, 0) + constant) / t;
  return { words: scored, constant: constant / t, logit };
}

function indexOfMax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
