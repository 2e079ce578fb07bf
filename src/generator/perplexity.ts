import { dataError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import type { CausalLm } from './causal-lm.js';

export interface PerplexityOptions {
  /** Tokens per window; default the model's context. */
  maxLength?: number;
  /** How far each window moves; default half the window (each scored token sees at least `maxLength - stride` tokens of context). */
  stride?: number;
  /** Windows run together; default 4. */
  batchSize?: number;
  reporter?: Reporter;
}

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood per scored token (nats). */
  loss: number;
  /** Tokens whose likelihood was scored (every token but the first of the text). */
  scored: number;
  tokens: number;
  windows: number;
}

/**
 * Perplexity of a text longer than the context, by the sliding-window recipe of transformers'
 * "Perplexity of fixed-length models" guide: windows of `maxLength` tokens starting every `stride`
 * tokens, each scoring only the tokens the previous window did not, with the window's earlier tokens
 * as context. The numbers agree with that recipe run in PyTorch (the first token of each window,
 * which has no context inside the window, is not scored when stride = maxLength, as there).
 */
export async function perplexity(lm: CausalLm, text: string | number[], options: PerplexityOptions = {}): Promise<PerplexityResult> {
  const ids = typeof text === 'string' ? lm.tokenizer.ids(text) : text;
  if (ids.length < 2) throw dataError(`perplexity needs at least 2 tokens of text, got ${ids.length}`);
  const maxLength = Math.min(options.maxLength ?? lm.contextLength, lm.contextLength);
  const stride = options.stride ?? Math.max(1, Math.floor(maxLength / 2));
  if (!(stride >= 1 && stride <= maxLength)) throw dataError(`stride must be between 1 and the window (${maxLength}), got ${stride}`);
  const windows: { begin: number; end: number; firstScored: number }[] = [];
  let previousEnd = 0;
  for (let begin = 0; begin < ids.length; begin += stride) {
    const end = Math.min(begin + maxLength, ids.length);
    const targets = end - previousEnd;
    windows.push({ begin, end, firstScored: Math.max(1, end - begin - targets) });
    previousEnd = end;
    if (end === ids.length) break;
  }
  return scoreWindows(lm, ids, windows, options.batchSize ?? 4, options.reporter ?? silentReporter);
}

/** Negative log-likelihood of each window's scored tokens; windows of one length share a batch. */
async function scoreWindows(
  lm: CausalLm,
  ids: readonly number[],
  windows: { begin: number; end: number; firstScored: number }[],
  batchSize: number,
  reporter: Reporter,
): Promise<PerplexityResult> {
  let nll = 0;
  let scored = 0;
  const vocab = lm.vocabSize;
  const progress = reporter.task('perplexity', windows.length, 'windows');
  for (let start = 0; start < windows.length; ) {
    const length = windows[start]!.end - windows[start]!.begin;
    const group = [];
    while (start < windows.length && group.length < batchSize && windows[start]!.end - windows[start]!.begin === length) group.push(windows[start++]!);
    const batch = group.length;
    const input = group.flatMap((w) => ids.slice(w.begin, w.end));
    const mask = new Array<number>(input.length).fill(1);
    const positions = group.flatMap(() => Array.from({ length }, (_, i) => i));
    const { logits } = await lm.forward(input, mask, positions, batch, lm.emptyCache(batch));
    group.forEach((w, b) => {
      for (let i = w.firstScored; i < length; i++) {
        nll -= logSoftmaxAt(logits, (b * length + i - 1) * vocab, vocab, ids[w.begin + i]!);
        scored++;
      }
    });
    progress.tick(batch);
  }
  progress.done();
  const loss = nll / scored;
  return { perplexity: Math.exp(loss), loss, scored, tokens: ids.length, windows: windows.length };
}

/** log softmax(row)[target], in float64 so long texts sum without drift. */
export function logSoftmaxAt(logits: Float32Array, offset: number, vocab: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) if (logits[offset + v]! > max) max = logits[offset + v]!;
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v]! - max);
  return logits[offset + target]! - max - Math.log(sum);
}
