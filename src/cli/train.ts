import { Command, Option } from 'commander';
import { Classifier } from '../classifier/classifier.js';
import { inferTask } from '../classifier/modalities.js';
import type { Modality } from '../backbones/backbone.js';
import { formatMetricsTable } from '../evaluate/metrics.js';
import { cacheDirOf, emit, fraction, integer, positiveNumber, reporterFor, withCommonOptions, type GlobalOptions } from './common.js';
import { formatSkipped, summaryOf } from './format.js';

interface TrainCommandOptions extends GlobalOptions {
  task?: Modality;
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
  valFraction?: number;
  seed: number;
  out: string;
  cache: boolean;
  featureOutput?: string;
  dtype?: 'fp32' | 'fp16' | 'q8' | 'q4';
  offline?: boolean;
  token?: string;
}

export function trainCommand(): Command {
  return withCommonOptions(
    new Command('train')
      .description('train a classifier on a labelled folder and evaluate it on held-out data')
      .argument('<data>', 'images: <data>/<class>/*.jpg or <data>/{train,val[,test]}/<class>/*.jpg')
      .addOption(new Option('-t, --task <task>', 'what the data is (default: guessed from the files)').choices(['image', 'text', 'audio']))
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
      .option('--augment <n>', 'augmented views per training image (random crop, flip, colour jitter)', integer('--augment'), 0)
      .option('--val-fraction <f>', 'share of each class held out when no validation folder exists', fraction('--val-fraction'))
      .option('--seed <n>', 'seed for the split, initialisation and augmentation', integer('--seed'), 0)
      .option('--feature-output <name>', 'graph output / layer / node to take features from')
      .addOption(new Option('--dtype <dtype>', 'weights variant of a Hugging Face ONNX repository').choices(['fp32', 'fp16', 'q8', 'q4']))
      .option('--offline', 'never use the network; hf: backbones must be in the Hugging Face cache (also HF_HUB_OFFLINE=1)')
      .option('--token <token>', 'Hugging Face token for gated or private repositories (default $HF_TOKEN)')
      .option('-o, --out <dir>', 'where to write the model folder', 'headstart-model')
      .option('--no-cache', 'do not read or write the feature cache'),
  ).action(async (data: string, options: TrainCommandOptions) => {
    const reporter = reporterFor(options);
    const classifier = await Classifier.train({
      task: options.task ?? (await inferTask(data)),
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
      backboneOptions: { featureOutput: options.featureOutput, dtype: options.dtype, hub: { offline: options.offline, token: options.token } },
      reporter,
    });
    try {
      await classifier.save(options.out);
      const { metrics, skipped } = classifier;
      emit(options, { model: options.out, ...summaryOf(classifier.manifest) }, () =>
        [
          `validation (${metrics.validation!.n} ${classifier.adapter.noun}):`,
          formatMetricsTable(metrics.validation!),
          ...(metrics.test ? ['', `test (${metrics.test.n} ${classifier.adapter.noun}):`, formatMetricsTable(metrics.test)] : []),
          ...formatSkipped(skipped),
          '',
          `model written to ${options.out}`,
        ].join('\n'),
      );
    } finally {
      await classifier.dispose();
    }
  });
}
