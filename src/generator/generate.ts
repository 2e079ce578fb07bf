import { usageError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { CausalLm } from './causal-lm.js';
import { resolveGeneration, type GenerationOptions, type ResolvedGeneration } from './generation-config.js';
import { applyRepetitionPenalty, pickToken } from './sampling.js';

export type FinishReason = 'eos' | 'stop' | 'length';

/** One streamed piece: new text of prompt `index` (possibly empty while a stop string may be starting), or its end. */
export type GenerationEvent =
  /** `tokenId` -1: text held back until the end (it did not become a stop string). */
  | { type: 'token'; index: number; tokenId: number; text: string }
  | { type: 'done'; index: number; result: GenerationResult };

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  promptTokens: number;
  /** Tokens dropped from the prompt's beginning to fit the context (`truncatePrompt: 'left'`). */
  truncatedPromptTokens: number;
  seed: number;
}

export interface GenerateCall extends GenerationOptions {
  /** Stops generation early (e.g. a client disconnected); each unfinished sequence ends with finishReason `length`. */
  signal?: AbortSignal;
}

/** Tokenised prompts, left-padded, with what the loop needs per row. */
interface Row {
  prompt: number[];
  truncated: number;
  generated: number[];
  text: string;
  /** Characters of `text` already streamed. */
  emitted: number;
  finish?: FinishReason;
}

/**
 * Generates continuations of `prompts` as one left-padded batch with a KV cache, yielding text as
 * it is decided. Text is held back while it could still be the start of a stop string, or ends in
 * an incomplete UTF-8 character.
 */
export async function* streamGenerate(lm: CausalLm, prompts: readonly string[], call: GenerateCall = {}): AsyncGenerator<GenerationEvent> {
  if (prompts.length === 0) return;
  const settings = resolveGeneration(lm.defaults, call);
  const rows = prompts.map((p) => tokenisePrompt(lm, p, settings));
  const rng = new Rng(settings.seed);
  const batch = rows.length;
  const width = Math.max(...rows.map((r) => r.prompt.length));
  const pad = settings.padTokenId ?? settings.eosTokenIds[0] ?? 0;
  const ids: number[] = [];
  const mask: number[] = [];
  const positions: number[] = [];
  for (const row of rows) {
    const padding = width - row.prompt.length;
    for (let i = 0; i < width; i++) {
      ids.push(i < padding ? pad : row.prompt[i - padding]!);
      mask.push(i < padding ? 0 : 1);
      // transformers: cumsum(mask) - 1, with padded positions set to 1 (they are masked anyway).
      positions.push(i < padding ? 1 : i - padding);
    }
  }
  const budget = Math.min(settings.maxNewTokens, lm.contextLength - width);
  let cache = lm.emptyCache(batch);
  let stepIds = ids;
  let stepPositions = positions;
  let fullMask = mask;
  const reported = new Set<number>();
  for (let step = 0; step < budget && !call.signal?.aborted; step++) {
    const { logits, sequence, cache: next } = await lm.forward(stepIds, fullMask, stepPositions, batch, cache);
    cache = next;
    const vocab = lm.vocabSize;
    const nextIds: number[] = [];
    for (let b = 0; b < batch; b++) {
      const row = rows[b]!;
      if (row.finish) {
        nextIds.push(pad);
        continue;
      }
      const offset = (b * sequence + sequence - 1) * vocab;
      // A view, unless the penalty must change values (the logits are read-only otherwise).
      const last = settings.repetitionPenalty === 1 ? logits.subarray(offset, offset + vocab) : logits.slice(offset, offset + vocab);
      if (settings.repetitionPenalty !== 1) applyRepetitionPenalty(last, [...row.prompt, ...row.generated], settings.repetitionPenalty);
      const token = pickToken(last, settings, rng);
      nextIds.push(token);
      if (settings.eosTokenIds.includes(token)) {
        row.finish = 'eos';
        continue;
      }
      row.generated.push(token);
      const piece = advanceText(lm, row, settings);
      yield { type: 'token', index: b, tokenId: token, text: piece };
    }
    for (let b = 0; b < batch; b++) {
      if (rows[b]!.finish && !reported.has(b)) {
        reported.add(b);
        yield* finish(b, rows[b]!, settings);
      }
    }
    if (reported.size === batch) return;
    // The next step feeds each row's new token at the next position, attending to everything before it.
    const total = fullMask.length / batch;
    const grown: number[] = [];
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < total; i++) grown.push(fullMask[b * total + i]!);
      grown.push(1);
    }
    fullMask = grown;
    stepPositions = rows.map((r) => r.prompt.length + step);
    stepIds = nextIds;
  }
  for (let b = 0; b < batch; b++) {
    if (reported.has(b)) continue;
    rows[b]!.finish ??= 'length';
    yield* finish(b, rows[b]!, settings);
  }
}

/** Generates to completion; the results are in the order of the prompts. */
export async function generate(lm: CausalLm, prompts: readonly string[], call: GenerateCall = {}): Promise<GenerationResult[]> {
  const results: GenerationResult[] = new Array(prompts.length);
  for await (const event of streamGenerate(lm, prompts, call)) if (event.type === 'done') results[event.index] = event.result;
  return results;
}

function tokenisePrompt(lm: CausalLm, prompt: string, settings: ResolvedGeneration): Row {
  let ids = lm.tokenizer.ids(prompt);
  // A causal LM needs one token to condition on; GPT-2 style models start documents with BOS.
  if (ids.length === 0) {
    const bos = settings.bosTokenId ?? settings.eosTokenIds[0];
    if (bos === undefined) throw usageError('empty prompt, and the model has no BOS token to start from');
    ids = [bos];
  }
  const room = lm.contextLength - 1;
  let truncated = 0;
  if (ids.length > room) {
    if (settings.truncatePrompt !== 'left') {
      throw usageError(`the prompt has ${ids.length} tokens; this model's context is ${lm.contextLength} tokens, leaving room for at most ${room} (shorten it, or truncate it on the left: truncatePrompt 'left', --truncate-prompt on the command line)`);
    }
    truncated = ids.length - room;
    ids = ids.slice(truncated);
  }
  return { prompt: ids, truncated, generated: [], text: '', emitted: 0 };
}

/**
 * Decodes the row's tokens and returns the newly settled text (empty when nothing is). A
 * stop string ends the row with the text cut before it.
 */
function advanceText(lm: CausalLm, row: Row, settings: ResolvedGeneration): string {
  const text = lm.tokenizer.decode(row.generated);
  row.text = text;
  for (const stop of settings.stop) {
    const at = text.indexOf(stop);
    if (at >= 0) {
      row.text = text.slice(0, at);
      row.finish = 'stop';
      return flush(row);
    }
  }
  // Hold back an incomplete character (decoded as U+FFFD) and any tail that could begin a stop string.
  let settled = text.endsWith('\uFFFD') ? text.length - 1 : text.length;
  for (const stop of settings.stop) {
    for (let n = Math.min(stop.length - 1, settled); n > 0; n--) {
      if (text.slice(settled - n, settled) === stop.slice(0, n)) {
        settled -= n;
        break;
      }
    }
  }
  if (settled <= row.emitted) return '';
  const piece = text.slice(row.emitted, settled);
  row.emitted = settled;
  return piece;
}

function flush(row: Row): string {
  const piece = row.text.slice(row.emitted);
  row.emitted = row.text.length;
  return piece;
}

/** The row's end: any text held back (it did not turn into a stop string), then its result. */
function* finish(index: number, row: Row, settings: ResolvedGeneration): Generator<GenerationEvent> {
  const rest = flush(row);
  if (rest) yield { type: 'token', index, tokenId: -1, text: rest };
  yield {
    type: 'done',
    index,
    result: {
      text: row.text,
      tokenIds: row.generated,
      finishReason: row.finish ?? 'length',
      promptTokens: row.prompt.length,
      truncatedPromptTokens: row.truncated,
      seed: settings.seed,
    },
  };
}
