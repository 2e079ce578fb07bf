/** `headstart compare <detection data> [--task detect]`: the pre-trained CenterNet vs its architecture from scratch, mAP50 per share of the training images. */
import { resolve } from 'node:path';
import { compareDetectors, formatDetectionCompareTable } from '../detector/compare.js';
import { readDetectionDataset } from '../detector/read-dataset.js';
import { writeDetectionCompareReport } from '../report/compare-report.js';
import { usageError } from '../util/errors.js';
import type { Reporter } from '../util/progress.js';
import { cacheDirOf, emit, type GlobalOptions } from './common.js';

export interface DetectCompareOptions extends GlobalOptions {
  sizes?: (number | 'all')[];
  seed: number;
  epochs?: number;
  batchSize?: number;
  augment?: number;
  valFraction?: number;
  backbone?: string;
  /** Already checked replaceable by the caller. */
  out: string;
  cache: boolean;
}

/** Options of `compare` that only classification (or generation) reads, by flag: refused for detection rather than ignored. */
export const NOT_FOR_DETECTION: Record<string, string> = {
  head: '--head',
  seeds: '--seeds',
  target: '--target',
  scratchCnn: '--scratch-cnn',
  cnnEpochs: '--cnn-epochs',
  cnnSize: '--cnn-size',
  maxTerms: '--max-terms',
  maxSteps: '--max-steps',
};

export async function compareDetect(data: string, options: DetectCompareOptions, given: readonly string[], reporter: Reporter): Promise<void> {
  for (const [name, flag] of Object.entries(NOT_FOR_DETECTION)) {
    if (given.includes(name)) throw usageError(`${flag} does not apply to detection: compare --task detect trains both detectors on one seeded draw per share of the training images (--sizes, --seed)`);
  }
  if (options.backbone && options.backbone !== 'builtin:centernet') throw usageError(`--backbone ${options.backbone}: detection compares builtin:centernet only`);
  const absolute = resolve(data);
  const { out } = options;
  const percents = options.sizes?.map((size) => (size === 'all' ? 100 : size));
  const dataset = await readDetectionDataset(data, { validationFraction: options.valFraction, seed: options.seed });
  const result = await compareDetectors(dataset, {
    percents,
    seed: options.seed,
    epochs: options.epochs,
    batchSize: options.batchSize,
    // --augment is 0 unless given for classifiers; detection's default (1 view) applies unless given, as in train.
    augment: given.includes('augment') ? options.augment : undefined,
    cacheDir: cacheDirOf(options),
    cache: options.cache,
    reporter,
  });
  const b = result.budget;
  const settings = {
    data: absolute, task: 'detect', 'draw seed': result.seed, epochs: b.epochs, batch: b.batchSize, 'augmented views': b.augment, 'learning rate': b.lr, 'early stopping': 'none (same budget)', 'total time': `${result.seconds.toFixed(1)} s`,
  };
  await writeDetectionCompareReport(out, result, settings);
  emit(options, { report: out, ...result }, () => [formatDetectionCompareTable(result), '', `learning curve written to ${out}`].join('\n'));
}
