/**
 * Turning token vectors into one vector per text: the pooling of transformer outputs (mean over the
 * attention mask, or the first token) and of word vectors (plain or SIF-weighted mean), and L2
 * normalisation. Plain functions over flat arrays so they can be checked against hand-computed values.
 */

/**
 * Mean of each sequence's token vectors where the mask is 1 (padding excluded), as
 * sentence-transformers pools. `hidden` is batch × tokens × dim, `mask` batch × tokens.
 */
export function maskedMeanPool(hidden: Float32Array, mask: ArrayLike<number | bigint>, batch: number, tokens: number, dim: number): Float32Array {
  const out = new Float32Array(batch * dim);
  const sum = new Float64Array(dim);
  for (let b = 0; b < batch; b++) {
    sum.fill(0);
    let count = 0;
    for (let t = 0; t < tokens; t++) {
      if (Number(mask[b * tokens + t]) === 0) continue;
      count++;
      const base = (b * tokens + t) * dim;
      for (let d = 0; d < dim; d++) sum[d] += hidden[base + d]!;
    }
    // sentence-transformers clamps the count at 1e-9: an all-padding row pools to zeros.
    const divisor = Math.max(count, 1e-9);
    for (let d = 0; d < dim; d++) out[b * dim + d] = sum[d]! / divisor;
  }
  return out;
}

/** The first token's vector ([CLS] for BERT-style models) of each sequence. */
export function firstTokenPool(hidden: Float32Array, batch: number, tokens: number, dim: number): Float32Array {
  const out = new Float32Array(batch * dim);
  for (let b = 0; b < batch; b++) out.set(hidden.subarray(b * tokens * dim, b * tokens * dim + dim), b * dim);
  return out;
}

/** Scales each row to unit Euclidean length in place (a zero row stays zero). */
export function l2NormalizeRows(rows: Float32Array, dim: number): Float32Array {
  for (let base = 0; base < rows.length; base += dim) {
    let squares = 0;
    for (let d = 0; d < dim; d++) squares += rows[base + d]! ** 2;
    if (squares === 0) continue;
    const scale = 1 / Math.sqrt(squares);
    for (let d = 0; d < dim; d++) rows[base + d]! *= scale;
  }
  return rows;
}

/**
 * Smooth inverse frequency weights (Arora, Liang & Ma, ICLR 2017): a / (a + p(w)), so frequent
 * words ("the", ",") count little and rare, informative ones almost fully. Word-vector files list
 * words by descending frequency but carry no counts, so p(w) is Zipf's law on the rank r (1-based):
 * p(w_r) = 1 / (r · H_V), H_V the V-th harmonic number, which makes the V probabilities sum to 1.
 */
export function sifWeights(vocabularySize: number, a: number): Float32Array {
  let harmonic = 0;
  for (let r = 1; r <= vocabularySize; r++) harmonic += 1 / r;
  const weights = new Float32Array(vocabularySize);
  for (let r = 1; r <= vocabularySize; r++) weights[r - 1] = a / (a + 1 / (r * harmonic));
  return weights;
}

/**
 * Weighted mean of word vectors: Σ weight(w)·v(w) / n over the n words of the text (SIF divides by
 * the word count, not by the weights' sum). `weights` undefined = plain mean. No words = zeros.
 */
export function poolWordVectors(ids: ArrayLike<number>, vectors: Float32Array, dim: number, weights: Float32Array | undefined, out: Float32Array, offset: number): void {
  if (ids.length === 0) return;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const w = weights ? weights[id]! : 1;
    const base = id * dim;
    for (let d = 0; d < dim; d++) out[offset + d]! += w * vectors[base + d]!;
  }
  const scale = 1 / ids.length;
  for (let d = 0; d < dim; d++) out[offset + d]! *= scale;
}
