export { parseModelReference, formatModelReference, isCommitHash, DEFAULT_REVISION, type ModelReference } from './reference.js';
export { pullModel, type PullOptions, type PulledModel } from './pull.js';
export { filesForModel, onnxFileFor, MissingWeightsError, ONNX_DTYPES, MODEL_SIDE_FILES } from './files.js';
export { hubCacheDir, scanHubCache, removeRepoCache, RepoCache, type CachedRepo, type CachedRevision } from './cache.js';
export { CATALOG, findCatalogEntry, catalogEntryForRepo, type CatalogEntry } from './catalog.js';
