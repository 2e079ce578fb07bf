export { CausalLm, CAUSAL_LM_GRAPHS, causalLmFiles, type OpenCausalLmOptions, type KvCache, type ForwardResult } from './causal-lm.js';
export { generate, streamGenerate, type GenerateCall, type GenerationEvent, type GenerationResult, type FinishReason } from './generate.js';
export { generationDefaultsFrom, resolveGeneration, type GenerationOptions, type GenerationDefaults } from './generation-config.js';
export { perplexity, type PerplexityOptions, type PerplexityResult } from './perplexity.js';
export { candidates, pickToken, applyRepetitionPenalty } from './sampling.js';
