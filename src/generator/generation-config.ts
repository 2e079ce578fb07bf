import { usageError } from '../util/errors.js';

/** How to pick each next token. Unset fields take the model's generation_config.json, then transformers' defaults. */
export interface GenerationOptions {
  /** Tokens to generate at most (default: generation_config's max_new_tokens, else 20 as in transformers). */
  maxNewTokens?: number;
  /** 0 means greedy. Setting any sampling option (temperature > 0, topK, topP, minP) turns sampling on unless `doSample: false`. */
  temperature?: number;
  /** Keep only the k most likely tokens (0: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probabilities sum to at least p (1: all). */
  topP?: number;
  /** Drop tokens less likely than minP × the most likely one's probability (0: none). */
  minP?: number;
  /** > 1 discourages tokens already in the prompt or output (CTRL's penalty, as transformers applies it). */
  repetitionPenalty?: number;
  doSample?: boolean;
  /** Seed of the sampling RNG (default: a random one, reported in the result). */
  seed?: number;
  /** Generation stops before any of these strings; the text returned ends before it. */
  stop?: string[];
  /** Token ids that end a sequence (default: generation_config's eos_token_id). */
  eosTokenIds?: number[];
  /**
   * A prompt longer than the context leaves: `error` (the default) or `left` (its beginning is dropped,
   * and the result says how many tokens were).
   */
  truncatePrompt?: 'error' | 'left';
}

/** The settings a model folder ships (generation_config.json, config.json), in our names. */
export interface GenerationDefaults {
  maxNewTokens: number;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  eosTokenIds: number[];
  bosTokenId?: number;
  padTokenId?: number;
}

/** The fully resolved settings of one generation call. */
export type ResolvedGeneration = GenerationDefaults & { seed: number; stop: string[]; truncatePrompt: 'error' | 'left' };

const ids = (value: unknown): number[] => (Array.isArray(value) ? value.filter(Number.isInteger) : Number.isInteger(value) ? [value as number] : []);

/** transformers' GenerationConfig defaults, overridden by generation_config.json, falling back to config.json for the token ids. */
export function generationDefaultsFrom(generation: Record<string, any>, config: Record<string, any>): GenerationDefaults {
  const eos = ids(generation.eos_token_id ?? config.eos_token_id);
  const number = (value: unknown, fallback: number) => (typeof value === 'number' && Number.isFinite(value) ? value : fallback);
  const bos = generation.bos_token_id ?? config.bos_token_id;
  const pad = generation.pad_token_id ?? config.pad_token_id;
  return {
    maxNewTokens: number(generation.max_new_tokens, 20),
    doSample: generation.do_sample === true,
    temperature: number(generation.temperature, 1),
    topK: number(generation.top_k, 50),
    topP: number(generation.top_p, 1),
    minP: number(generation.min_p, 0),
    repetitionPenalty: number(generation.repetition_penalty, 1),
    eosTokenIds: eos,
    bosTokenId: Number.isInteger(bos) ? bos : undefined,
    padTokenId: Number.isInteger(pad) ? pad : undefined,
  };
}

/** Options over defaults, checked. */
export function resolveGeneration(defaults: GenerationDefaults, options: GenerationOptions): ResolvedGeneration {
  const check = (name: string, value: number | undefined, ok: (v: number) => boolean, expected: string) => {
    if (value !== undefined && !(Number.isFinite(value) && ok(value))) throw usageError(`${name} must be ${expected}, got ${value}`);
  };
  check('maxNewTokens', options.maxNewTokens, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  check('temperature', options.temperature, (v) => v >= 0, '≥ 0');
  check('topK', options.topK, (v) => Number.isInteger(v) && v >= 0, 'an integer ≥ 0');
  check('topP', options.topP, (v) => v > 0 && v <= 1, 'in (0, 1]');
  check('minP', options.minP, (v) => v >= 0 && v <= 1, 'in [0, 1]');
  check('repetitionPenalty', options.repetitionPenalty, (v) => v > 0, '> 0');
  const asksSampling =
    (options.temperature !== undefined && options.temperature > 0) || options.topK !== undefined || options.topP !== undefined || options.minP !== undefined;
  let doSample = options.doSample ?? (asksSampling ? true : defaults.doSample);
  if (options.temperature === 0) doSample = false;
  return {
    ...defaults,
    maxNewTokens: options.maxNewTokens ?? defaults.maxNewTokens,
    doSample,
    temperature: options.temperature ?? defaults.temperature,
    topK: options.topK ?? defaults.topK,
    topP: options.topP ?? defaults.topP,
    minP: options.minP ?? defaults.minP,
    repetitionPenalty: options.repetitionPenalty ?? defaults.repetitionPenalty,
    eosTokenIds: options.eosTokenIds ?? defaults.eosTokenIds,
    seed: options.seed ?? Math.floor(Math.random() * 2 ** 32),
    stop: (options.stop ?? []).filter((s) => s.length > 0),
    truncatePrompt: options.truncatePrompt ?? 'error',
  };
}
