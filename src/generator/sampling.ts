import type { Rng } from '../util/rng.js';

/** What picks a token from one row of logits; the processors run in transformers' order. */
export interface SamplingSettings {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
}

/**
 * CTRL's repetition penalty as transformers applies it: each distinct token already in the sequence
 * has its logit divided by the penalty when positive, multiplied when negative. In place.
 */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const v = logits[id]!;
    logits[id] = v < 0 ? v * penalty : v / penalty;
  }
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! > bestValue) {
      bestValue = logits[i]!;
      best = i;
    }
  }
  return best;
}

/**
 * The ids that survive temperature, top-k, top-p and min-p, most likely first, with their
 * probabilities renormalised over the survivors (transformers' TopK/TopP/MinP warpers; each keeps
 * at least one token).
 */
export function candidates(logits: Float32Array, settings: Pick<SamplingSettings, 'temperature' | 'topK' | 'topP' | 'minP'>): { ids: number[]; probabilities: number[] } {
  const n = logits.length;
  const k = settings.topK > 0 && settings.topK < n ? settings.topK : n;
  // Top-k by a bounded selection, so a vocabulary of 50k tokens is not sorted for the usual k = 50.
  let ids: number[];
  if (k < n) ids = topKIds(logits, k);
  else {
    ids = Array.from({ length: n }, (_, i) => i);
    ids.sort((a, b) => logits[b]! - logits[a]!);
  }
  const t = settings.temperature > 0 ? settings.temperature : 1;
  const max = logits[ids[0]!]! / t;
  let weights = ids.map((id) => Math.exp(logits[id]! / t - max));
  let total = weights.reduce((a, b) => a + b, 0);
  if (settings.topP < 1) {
    let cumulative = 0;
    let keep = ids.length;
    for (let i = 0; i < weights.length; i++) {
      cumulative += weights[i]! / total;
      if (cumulative >= settings.topP) {
        keep = i + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
    weights = weights.slice(0, keep);
    total = weights.reduce((a, b) => a + b, 0);
  }
  if (settings.minP > 0) {
    // Relative to the most likely token, whose weight is 1 by construction.
    let keep = weights.findIndex((w) => w < settings.minP);
    if (keep === 0) keep = 1;
    if (keep > 0) {
      ids = ids.slice(0, keep);
      weights = weights.slice(0, keep);
      total = weights.reduce((a, b) => a + b, 0);
    }
  }
  return { ids, probabilities: weights.map((w) => w / total) };
}

/** The next token of one row: argmax when not sampling, else a draw from the surviving candidates. */
export function pickToken(logits: Float32Array, settings: SamplingSettings, rng: Rng): number {
  if (!settings.doSample) return argmax(logits);
  const { ids, probabilities } = candidates(logits, settings);
  let u = rng.next();
  for (let i = 0; i < ids.length; i++) {
    u -= probabilities[i]!;
    if (u < 0) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}

/** The k largest entries' indices, largest first: a min-heap of size k over one pass. */
function topKIds(values: Float32Array, k: number): number[] {
  const heap = new Int32Array(k);
  let size = 0;
  const less = (a: number, b: number) => values[a]! < values[b]! || (values[a] === values[b] && a > b);
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && less(heap[l]!, heap[m]!)) m = l;
      if (r < size && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let id = 0; id < values.length; id++) {
    if (size < k) {
      heap[size] = id;
      let i = size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!less(heap[i]!, heap[p]!)) break;
        [heap[i], heap[p]] = [heap[p]!, heap[i]!];
        i = p;
      }
    } else if (less(heap[0]!, id)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return Array.from(heap).sort((a, b) => values[b]! - values[a]! || a - b);
}
