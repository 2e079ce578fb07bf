import type { Modality } from '../backbones/backbone.js';
import { TFIDF_BACKBONE } from '../backbones/text-tfidf.js';
import type { SkippedInput } from '../data/dataset.js';
import { defaultCacheDir, FeatureCache } from '../features/cache.js';
import { extractFeatures, type AugmentedViews } from '../features/extract.js';
import type { QueueOptions } from '../queue/coordinator.js';
import { usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { remoteExtraction } from './classifier.js';
import { modalityAdapter } from './modalities.js';
import type { BackboneOptions, ReadDatasetOptions } from './modality.js';

export interface ExtractDatasetOptions {
  task: Modality;
  /** A path the modality reads, as for training. */
  data: string;
  backbone?: string;
  backboneOptions?: Omit<BackboneOptions, 'cacheDir' | 'reporter'>;
  datasetOptions?: ReadDatasetOptions;
  /** Augmented views per training input, as `train --augment` will ask for them. */
  augment?: number;
  validationFraction?: number;
  seed?: number;
  cacheDir?: string;
  queue?: QueueOptions;
  reporter?: Reporter;
}

export interface ExtractDatasetReport {
  backbone: { id: string; sha256: string; featureDim: number };
  /** The feature cache folder the vectors are in. */
  cache: string;
  inputs: number;
  vectors: number;
  computed: number;
  fromCache: number;
  skipped: SkippedInput[];
  seconds: number;
}

/**
 * Fills the feature cache for every split of a dataset, exactly as `train` with the same backbone,
 * seed and augmentation will look the vectors up — so a later `train` only fits the head. With
 * `queue`, the vectors are computed by workers.
 */
export async function extractDataset(options: ExtractDatasetOptions): Promise<ExtractDatasetReport> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const adapter = await modalityAdapter(options.task);
  const reference = options.backbone ?? adapter.defaultBackbone;
  if (reference === TFIDF_BACKBONE) throw usageError('the TF-IDF backbone is fitted on the training texts when training; there are no features to extract ahead');
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const seed = options.seed ?? 0;
  const remote = await remoteExtraction({ queue: options.queue, backboneOptions: options.backboneOptions });
  const dataset = await adapter.readDataset(options.data, { ...options.datasetOptions, validationFraction: options.validationFraction, seed });
  const backbone = await adapter.openBackbone(reference, { ...options.backboneOptions, cacheDir, reporter });
  try {
    const cache = FeatureCache.forBackbone(cacheDir, backbone);
    // The views training asks for: the same count, seed and settings make the same cache keys.
    const views: AugmentedViews | undefined = options.augment ? { count: options.augment, seed, settings: { ...adapter.defaultAugmentation } } : undefined;
    const splits = [
      { label: 'train features', items: dataset.train, views },
      { label: 'validation features', items: dataset.validation },
      ...(dataset.test?.length ? [{ label: 'test features', items: dataset.test }] : []),
    ];
    const report: ExtractDatasetReport = {
      backbone: { id: backbone.reference.id, sha256: backbone.reference.sha256, featureDim: backbone.reference.featureDim },
      cache: cache.dir,
      inputs: 0,
      vectors: 0,
      computed: 0,
      fromCache: 0,
      skipped: [...dataset.skipped],
      seconds: 0,
    };
    for (const split of splits) {
      const extracted = await extractFeatures(backbone, split.items, { cache, reporter, label: split.label, views: split.views, remote });
      report.inputs += split.items.length;
      report.vectors += extracted.itemOfRow.length;
      report.computed += extracted.computed;
      report.fromCache += extracted.cacheHits;
      report.skipped.push(...extracted.skipped);
    }
    report.seconds = (performance.now() - started) / 1000;
    return report;
  } finally {
    await backbone.dispose();
  }
}
