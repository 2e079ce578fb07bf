import { Command, Option } from 'commander';
import { MODEL_FOLDER_GUARD } from '../artifacts/model-folder.js';
import { Classifier } from '../classifier/classifier.js';
import { formatFewShot, runFewShot } from '../classifier/few-shot-run.js';
import { inferTask } from '../classifier/modalities.js';
import { detectionFormatOf } from '../detector/read-dataset.js';
import { usageError } from '../util/errors.js';
import { TextClassifier } from '../classifier/text-classifier.js';
import type { Modality } from '../backbones/backbone.js';
import { formatEvaluationSummary, formatMetricsTable, isDetailed, type ClassificationMetrics } from '../evaluate/metrics.js';
import { REPORT_FILE } from '../report/report.js';
import { trainDetect } from './train-detect.js';
import { checkReplaceable } from '../util/atomic.js';
import {
  cacheDirOf,
  emit,
  fraction,
  hubOptionsOf,
  integer,
  positiveNumber,
  queueOptionsOf,
  reporterFor,
  withCommonOptions,
  withHubOptions,
  withQueueOptions,
  type GlobalOptions,
  type HubCliOptions,
  type QueueCliOptions,
} from './common.js';
import { formatSkipped, summaryOf } from './format.js';
import { formatTextTraining } from './text-format.js';
import { trainGenerate, withGenerateTrainOptions, type GenerateTrainOptions } from './train-generate.js';
import { formatUnfreezeChoice } from './finetune-format.js';

/** `--task generate`'s own options (LoRA, blocks, steps) come with GenerateTrainOptions. */
interface TrainCommandOptions extends GenerateTrainOptions, QueueCliOptions {
  task?: Modality | 'generate' | 'detect';
  backbone?: string;
  head: 'linear' | 'mlp' | 'knn' | 'centroid';
  optimizer?: 'adamw' | 'lbfgs';
  epochs?: number;
  lr?: number;
  batchSize?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  schedule?: 'cosine' | 'one-cycle' | 'constant';
  patience?: number;
  hidden?: number;
  k?: number;
  classWeights?: 'balanced' | 'none';
  augment: number;
  scaleCrop?: boolean;
  valFraction?: number;
  seed: number;
  out: string;
  cache: boolean;
  calibrate: boolean;
  report: boolean;
  featureOutput?: string;
  dtype?: 'fp32' | 'fp16' | 'q8' | 'q4';
  unfreeze?: number | 'all' | 'auto';
  fineTuneEpochs?: number;
  fineTuneLr?: number;
  batchnorm?: 'frozen' | 'affine';
  shots?: number;
  seeds: number;
  textColumn?: string;
  labelColumn?: string;
  valData?: string;
  testData?: string;
  testFraction?: number;
  pooling?: 'mean' | 'cls' | 'sif' | 'sif+max+min';
  maxLength?: number;
  baseline: boolean;
  maxTerms?: number;
}

/** `--max-terms` as TF-IDF settings. */
function tfidfOf(options: { maxTerms?: number }): { maxFeatures: number } | undefined {
  return options.maxTerms === undefined ? undefined : { maxFeatures: options.maxTerms };
}

/** `--unfreeze`: a block count, `all`, or `auto`. */
function blockCount(value: string): number | 'all' | 'auto' {
  if (value === 'all' || value === 'auto') return value;
  return integer('--unfreeze', 1)(value);
}

export function trainCommand(): Command {
  return withCommonOptions(withQueueOptions(withHubOptions(withGenerateTrainOptions(
    new Command('train')
      .description('train a classifier on a labelled folder and evaluate it on held-out data')
      .argument('<data>', 'images: <data>/<class>/*.jpg or <data>/{train,val[,test]}/<class>/*.jpg; text: a CSV/TSV/JSONL file, a folder with train.<ext> [dev|val.<ext>, test.<ext>], or <data>/<class>/*.txt')
      .addOption(new Option('-t, --task <task>', 'what the data is (default: guessed from the files)').choices(['image', 'text', 'audio', 'generate', 'detect']))
      .option('-b, --backbone <ref>', 'builtin:<name>, hf:<owner>/<repo>[@rev], a Hugging Face ONNX folder, a TF.js model.json/folder, or a .onnx file (default: the task\'s bundled backbone)')
      .addOption(new Option('--head <type>', 'the classifier head').choices(['linear', 'mlp', 'knn', 'centroid']).default('linear'))
      .addOption(new Option('--optimizer <name>', 'adamw, or lbfgs (linear head, full batch)').choices(['adamw', 'lbfgs']))
      .option('-e, --epochs <n>', 'training epochs (early stopping may end sooner)', integer('--epochs', 1))
      .option('--lr <rate>', 'peak learning rate', positiveNumber('--lr'))
      .option('--batch-size <n>', 'mini-batch size', integer('--batch-size', 1))
      .option('--weight-decay <w>', 'decoupled weight decay', positiveNumber('--weight-decay', true))
      .option('--label-smoothing <s>', 'label smoothing', positiveNumber('--label-smoothing', true))
      .addOption(new Option('--schedule <name>', 'learning-rate schedule').choices(['cosine', 'one-cycle', 'constant']))
      .option('--patience <n>', 'early stopping: epochs without validation improvement', integer('--patience', 1))
      .option('--hidden <n>', 'MLP hidden units', integer('--hidden', 1))
      .option('--k <n>', 'neighbours for the knn head', integer('--k', 1))
      .addOption(new Option('--class-weights <mode>', 'weight classes to counter imbalance').choices(['balanced', 'none']))
      .option('--augment <n>', 'augmented views per training input (images: random crop, flip, colour jitter; audio: time shift, gain, noise)', integer('--augment'), 0)
      .option('--scale-crop', 'detection: the augmented views also randomly scale (0.6–1.4) and crop, boxes clipped')
      .option('--val-fraction <f>', 'share of each class held out when no validation folder exists', fraction('--val-fraction'))
      .option('--seed <n>', 'seed for the split, initialisation and augmentation', integer('--seed'), 0)
      .option('--feature-output <name>', 'graph output / layer / node to take features from')
      .addOption(new Option('--dtype <dtype>', 'weights variant of a Hugging Face ONNX repository').choices(['fp32', 'fp16', 'q8', 'q4']))
      .option('-o, --out <dir>', 'where to write the model folder', 'headstart-model')
      .option('--unfreeze <blocks>', 'fine-tune the backbone\'s own last <blocks> blocks (or all) before fitting the head; auto: fine-tune the default blocks and keep that or the frozen backbone, whichever is better on validation; ONNX image backbones and transformer text encoders (text: auto fine-tunes all blocks)', blockCount)
      .option('--fine-tune-epochs <n>', 'epochs with the blocks unfrozen (default 10; early stopping may end sooner)', integer('--fine-tune-epochs', 1))
      .option('--fine-tune-lr <rate>', 'peak learning rate while fine-tuning (default 3e-3; lower blocks get less)', positiveNumber('--fine-tune-lr'))
      .addOption(new Option('--batchnorm <mode>', 'with --unfreeze: frozen keeps BatchNorm as exported (folded into the convolutions); affine trains a per-channel scale and shift after each folded convolution, as fastai trains BatchNorm (default frozen)').choices(['frozen', 'affine']))
      .option('--no-cache', 'do not read or write the feature cache')
      .option('--no-calibrate', 'do not fit a softmax temperature on the validation split')
      .option('--no-report', `do not write <out>/${REPORT_FILE}`)
      .option('--shots <n>', 'few-shot protocol instead of one model: fit on <n> examples per class, repeated over --seeds draws, report mean ± std', integer('--shots', 1))
      .option('--seeds <k>', 'draws for --shots (seeds --seed, --seed+1, …)', integer('--seeds', 1), 5)
      .option('--text-column <name>', 'text: column (header name or 0-based index) or JSON field holding the text')
      .option('--label-column <name>', 'text: column or JSON field holding the label')
      .option('--val-data <path>', 'text: a labelled file to validate on (default: a held-out share, or dev/val beside train)')
      .option('--test-data <path>', 'text: a labelled file to report test metrics on')
      .option('--test-fraction <f>', 'text: without a test file, hold out this share of each class as the test set', fraction('--test-fraction'))
      .addOption(new Option('--pooling <mode>', 'text: transformers mean|cls, word vectors mean|sif|sif+max+min; audio: over windows, mean|mean-max').choices(['mean', 'cls', 'sif', 'sif+max+min', 'mean-max']))
      .option('--max-length <n>', 'text: truncate transformer inputs to <n> tokens', integer('--max-length', 3))
      .option('--no-baseline', 'text: do not train the TF-IDF baseline beside the model')
      .option('--max-terms <n>', 'text: TF-IDF (--backbone tfidf and the baseline) keeps the <n> most frequent terms (default: every term of the training texts)', integer('--max-terms', 1)),
  )))).action(async (data: string, options: TrainCommandOptions) => {
    const reporter = reporterFor(options);
    if (options.task === 'generate' && options.queue) throw usageError('--queue: a language model is trained end to end, with no frozen features for workers to extract');
    if (options.task === 'generate') return trainGenerate(data, options, reporter);
    // A detection export (COCO / Roboflow, YOLO, VOC) is guessed from its layout, before class folders are.
    if (options.task === 'detect' || (!options.task && (await detectionFormatOf(data)))) {
      if (options.shots !== undefined || options.queue) throw usageError(`${options.shots !== undefined ? '--shots' : '--queue'} is not available for detection: detection trains on the whole layout it is given; headstart compare --task detect measures it on shares of the training images`);
      return trainDetect(data, { ...options, augment: options.augment, unfreeze: options.unfreeze as number | undefined }, reporter);
    }
    if (options.scaleCrop) throw usageError('--scale-crop is for detection; image classifiers\' views already take random crops');
    const task = options.task ?? (await inferTask(data));
    const datasetOptions = { textColumn: options.textColumn, labelColumn: options.labelColumn, validation: options.valData, test: options.testData, testFraction: options.testFraction };
    const backboneOptions = { featureOutput: options.featureOutput, dtype: options.dtype, hub: hubOptionsOf(options) };
    if (options.shots !== undefined) {
      if (options.queue) throw usageError('--queue works for one model, not with --shots (whose draws share one cached extraction: run `headstart extract --queue` first)');
      const fewShot = await runFewShot({
        task,
        data,
        backbone: options.backbone,
        backboneOptions: { ...backboneOptions, preprocessing: { pooling: options.pooling, maxLength: options.maxLength } as object },
        datasetOptions,
        shots: options.shots,
        seeds: options.seeds,
        seed: options.seed,
        validationFraction: options.valFraction,
        fit: { head: options.head, optimizer: options.optimizer, epochs: options.epochs, lr: options.lr, weightDecay: options.weightDecay },
        cacheDir: cacheDirOf(options),
        cache: options.cache,
        baseline: options.baseline,
        reporter,
      });
      emit(options, fewShot, () => formatFewShot(fewShot, task === 'text' ? 'texts' : task === 'audio' ? 'clips' : 'images'));
      return;
    }
    // Before training, so a refused --out is not found out only after minutes of work.
    await checkReplaceable(options.out, 'folder', MODEL_FOLDER_GUARD);
    const train = (settings: Parameters<typeof Classifier.train>[0]) =>
      task === 'text'
        ? TextClassifier.train({ ...settings, data, datasetOptions, preprocessing: { pooling: options.pooling, maxLength: options.maxLength }, baseline: options.baseline, tfidf: tfidfOf(options) })
        : Classifier.train(settings);
    const classifier = await train({
      task,
      data,
      backbone: options.backbone,
      head: options.head,
      optimizer: options.optimizer,
      epochs: options.epochs,
      lr: options.lr,
      batchSize: options.batchSize,
      weightDecay: options.weightDecay,
      labelSmoothing: options.labelSmoothing,
      schedule: options.schedule,
      patience: options.patience,
      hiddenUnits: options.hidden,
      k: options.k,
      classWeights: options.classWeights,
      augment: options.augment,
      validationFraction: options.valFraction,
      seed: options.seed,
      cacheDir: cacheDirOf(options),
      cache: options.cache,
      calibrate: options.calibrate,
      queue: queueOptionsOf(options),
      fineTune: options.unfreeze === undefined ? undefined : { unfreeze: options.unfreeze, epochs: options.fineTuneEpochs, lr: options.fineTuneLr, batchNorm: options.batchnorm },
      // Audio takes --pooling through its backbone's preprocessing (recorded in the manifest and cache key).
      backboneOptions: task === 'audio' && options.pooling ? { ...backboneOptions, preprocessing: { pooling: options.pooling } as object } : backboneOptions,
      reporter,
    });
    try {
      const { report } = await classifier.save(options.out, { report: options.report, reporter });
      const { metrics, skipped } = classifier;
      const table = (m: ClassificationMetrics) => [formatMetricsTable(m), ...(isDetailed(m) ? ['', formatEvaluationSummary(m)] : [])];
      emit(options, { model: options.out, report: report ?? null, ...summaryOf(classifier.manifest) }, () =>
        [
          `validation (${metrics.validation!.n} ${classifier.adapter.noun}):`,
          ...table(metrics.validation!),
          ...(metrics.test ? ['', `test (${metrics.test.n} ${classifier.adapter.noun}):`, ...table(metrics.test)] : []),
          ...formatTextTraining(classifier.manifest),
          ...formatUnfreezeChoice(classifier.manifest),
          ...formatSkipped(skipped),
          '',
          `model written to ${options.out}`,
          ...(report ? [`report: ${report}`] : []),
        ].join('\n'),
      );
    } finally {
      await classifier.dispose();
    }
  });
}
