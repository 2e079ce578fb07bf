/** headstart's library API: the CLI, the server and the browser entry are thin shells over this. */
export { ImageClassifier, type ImageInput, type ImageTrainOptions } from './classifier/image-classifier.js';
export { Classifier, type Prediction, type EvaluationResult, type TrainOptions, type LoadOptions } from './classifier/classifier.js';
export { inferTask } from './classifier/modalities.js';
export { openImageBackbone, BUILTIN_IMAGE_BACKBONES, DEFAULT_IMAGE_BACKBONE, type OpenBackboneOptions } from './backbones/resolve.js';
export { ImageBackbone, type ImageGraphSpec } from './backbones/image-backbone.js';
export type { Backbone, BackboneReference, Modality } from './backbones/backbone.js';
export type { ImagePreprocessing } from './backbones/image-preprocessing.js';
export { convertTfjsToOnnx, readTfjsModelFolder, readNsfwjsModel } from './backbones/tfjs/index.js';
export { readImageFolder, readLabelledImages } from './data/image-folder.js';
export type { Dataset, LabelledItem, SkippedInput } from './data/dataset.js';
export { extractFeatures } from './features/extract.js';
export { FeatureCache, defaultCacheDir } from './features/cache.js';
export { fitHead, type FitOptions, type FitResult } from './train/fit.js';
export { headFromState, type Head, type HeadState, type HeadType, type FeatureSet } from './heads/head.js';
export { computeMetrics, formatMetricsTable, type ClassificationMetrics } from './evaluate/metrics.js';
export { HeadstartError } from './util/errors.js';
export { consoleReporter, silentReporter, type Reporter } from './util/progress.js';
