/** `headstart train <data> --task detect` (or detection data guessed from its layout): fine-tunes the builtin CenterNet. */
import { checkReplaceable } from '../util/atomic.js';
import { MODEL_FOLDER_GUARD } from '../artifacts/model-folder.js';
import { Detector } from '../detector/detector.js';
import { formatDetectionMetrics } from '../detector/format-metrics.js';
import { usageError } from '../util/errors.js';
import type { Reporter } from '../util/progress.js';
import { cacheDirOf, emit, type GlobalOptions } from './common.js';

export interface DetectTrainOptions extends GlobalOptions {
  out: string;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  weightDecay?: number;
  patience?: number;
  augment?: number;
  scaleCrop?: boolean;
  valFraction?: number;
  seed?: number;
  cache?: boolean;
  unfreeze?: number | 'all' | 'auto';
  backbone?: string;
}

export async function trainDetect(data: string, options: DetectTrainOptions, reporter: Reporter): Promise<void> {
  if (options.backbone && options.backbone !== 'builtin:centernet') throw usageError(`--backbone ${options.backbone}: detectors fine-tune builtin:centernet only`);
  if (options.unfreeze !== undefined && typeof options.unfreeze !== 'number') throw usageError(`--unfreeze ${options.unfreeze}: detection takes a block count`);
  await checkReplaceable(options.out, 'folder', MODEL_FOLDER_GUARD);
  const detector = await Detector.train(
    data,
    {
      epochs: options.epochs, lr: options.lr, batchSize: options.batchSize, weightDecay: options.weightDecay, patience: options.patience,
      // --augment defaults to 0 for classifiers; detection's default (1 view) applies unless given.
      augment: options.augment || undefined, scaleCrop: options.scaleCrop, unfreeze: options.unfreeze, validationFraction: options.valFraction, seed: options.seed,
    },
    { cacheDir: cacheDirOf(options), cache: options.cache, seed: options.seed, reporter },
  );
  try {
    await detector.save(options.out);
    const metrics = detector.manifest!.metrics.validation!;
    emit(options, { out: options.out, classes: detector.classes, metrics, training: detector.manifest!.training }, () => `validation (COCO metrics):\n${formatDetectionMetrics(metrics)}\nmodel written to ${options.out}`);
  } finally {
    await detector.dispose();
  }
}
