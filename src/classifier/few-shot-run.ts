import type { Modality } from '../backbones/backbone.js';
import type { LabelledItem } from '../data/dataset.js';
import { fewShot, formatMeanStd, type ShotsResult } from '../evaluate/few-shot.js';
import { defaultCacheDir, FeatureCache } from '../features/cache.js';
import { extractFeatures } from '../features/extract.js';
import type { FeatureSet } from '../heads/head.js';
import type { FitOptions } from '../train/fit.js';
import { dataError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { modalityAdapter } from './modalities.js';
import type { BackboneOptions, ReadDatasetOptions } from './modality.js';

export interface FewShotRunOptions {
  task: Modality;
  /** A path the modality reads, as for training. */
  data: string;
  backbone?: string;
  backboneOptions?: Omit<BackboneOptions, 'cacheDir' | 'reporter'>;
  datasetOptions?: ReadDatasetOptions;
  /** Training examples per class in each draw. */
  shots: number;
  /** Draws; seeds `seed`, `seed + 1`, …. */
  seeds: number;
  seed?: number;
  validationFraction?: number;
  fit?: Partial<FitOptions>;
  cacheDir?: string;
  cache?: boolean;
  /** Text: run the same draws with the TF-IDF baseline too. */
  baseline?: boolean;
  reporter?: Reporter;
}

export interface FewShotReport {
  backbone: string;
  shots: number;
  seeds: number[];
  classes: string[];
  /** The test split when there is one, else the validation split; the head never sees it. */
  evaluatedOn: 'test' | 'validation';
  evaluationSize: number;
  result: ShotsResult;
  baseline?: ShotsResult & { backbone: string };
}

/**
 * "How little data do I need?": reads the dataset as training would, computes the backbone's
 * features once (cached), and runs the few-shot protocol on them — N examples per class drawn
 * per seed, a head fitted on them alone, scored on the held-out split — for any modality.
 */
export async function runFewShot(options: FewShotRunOptions): Promise<FewShotReport> {
  const reporter = options.reporter ?? silentReporter;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const seed = options.seed ?? 0;
  const seeds = Array.from({ length: options.seeds }, (_, i) => seed + i);
  const adapter = await modalityAdapter(options.task);
  const dataset = await adapter.readDataset(options.data, { ...options.datasetOptions, validationFraction: options.validationFraction, seed });
  const evaluatedOn = dataset.test?.length ? 'test' : 'validation';
  const evaluation = dataset.test?.length ? dataset.test : dataset.validation;
  const reference = options.backbone ?? adapter.defaultBackbone;
  const protocol = { shots: options.shots, seeds, fit: options.fit };
  const report = { shots: options.shots, seeds, classes: dataset.classes, evaluatedOn, evaluationSize: evaluation.length } as const;

  // TF-IDF is fitted per draw, so it has its own loop (text only, loaded on demand).
  const text = options.task === 'text' ? await import('./text-classifier.js') : undefined;
  if (text && reference === text.TFIDF_BACKBONE) {
    const result = await text.tfidfFewShot(dataset.train as LabelledItem<string>[], evaluation as LabelledItem<string>[], dataset.classes, protocol);
    return { ...report, backbone: reference, result };
  }

  const backbone = await adapter.openBackbone(reference, { ...options.backboneOptions, cacheDir, reporter });
  let result: ShotsResult;
  try {
    const cache = options.cache === false ? undefined : FeatureCache.forBackbone(cacheDir, backbone);
    const featuresOf = async (items: LabelledItem<Uint8Array | string>[], label: string): Promise<FeatureSet> => {
      const extracted = await extractFeatures(backbone, items, { cache, reporter, label });
      return {
        features: extracted.features,
        labels: Int32Array.from(extracted.itemOfRow, (item) => items[item]!.label),
        dim: extracted.dim,
        numClasses: dataset.classes.length,
      };
    };
    const train = await featuresOf(dataset.train, 'train features');
    const held = await featuresOf(evaluation, `${evaluatedOn} features`);
    if (held.labels.length === 0) throw dataError(`no readable ${evaluatedOn} inputs`, dataset.origin);
    result = fewShot(train, held, dataset.classes, protocol);
  } finally {
    await backbone.dispose();
  }
  const baseline =
    text && options.baseline
      ? { backbone: text.TFIDF_BACKBONE, ...(await text.tfidfFewShot(dataset.train as LabelledItem<string>[], evaluation as LabelledItem<string>[], dataset.classes, protocol)) }
      : undefined;
  return { ...report, backbone: backbone.reference.id, result, ...(baseline ? { baseline } : {}) };
}

/** The report as a small table: one row per feature source, mean ± std over the draws. */
export function formatFewShot(report: FewShotReport, noun: string): string {
  const rows: [string, ShotsResult][] = [[report.backbone, report.result], ...(report.baseline ? [[`${report.baseline.backbone} (baseline)`, report.baseline] as [string, ShotsResult]] : [])];
  const width = Math.max(...rows.map(([name]) => name.length), 8);
  return [
    `few-shot: ${report.shots} per class × ${report.seeds.length} seeds (${report.seeds.join(', ')}), scored on ${report.evaluatedOn} (${report.evaluationSize} ${noun})`,
    `${''.padEnd(width)}  ${'accuracy'.padEnd(15)}  macro-F1`,
    ...rows.map(([name, r]) => `${name.padEnd(width)}  ${formatMeanStd(r.accuracy).padEnd(15)}  ${formatMeanStd(r.macroF1)}`),
  ].join('\n');
}
