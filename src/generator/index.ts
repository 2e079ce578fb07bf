export { CausalLm, CAUSAL_LM_GRAPHS, causalLmFiles, type OpenCausalLmOptions, type KvCache, type ForwardResult } from './causal-lm.js';
export { generate, streamGenerate, type GenerateCall, type GenerationEvent, type GenerationResult, type FinishReason } from './generate.js';
export { generationDefaultsFrom, resolveGeneration, type GenerationOptions, type GenerationDefaults } from './generation-config.js';
export { perplexity, type PerplexityOptions, type PerplexityResult } from './perplexity.js';
export { candidates, pickToken, applyRepetitionPenalty } from './sampling.js';
export { fineTuneLm, type LmFineTuneOptions, type LmFineTuneResult } from './fine-tune.js';
export { readCorpus, packCorpus, type LmDocument, type PackedCorpus } from './corpus.js';
export { saveLmFolder, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from './lm-folder.js';
export type { LoraSettings } from './lm-graph.js';
