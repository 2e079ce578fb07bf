import { Command, Option } from 'commander';
import { extractDataset } from '../classifier/extract-dataset.js';
import { inferTask } from '../classifier/modalities.js';
import type { Modality } from '../backbones/backbone.js';
import {
  cacheDirOf,
  emit,
  fraction,
  hubOptionsOf,
  integer,
  queueOptionsOf,
  reporterFor,
  withCommonOptions,
  withHubOptions,
  withQueueOptions,
  type GlobalOptions,
  type HubCliOptions,
  type QueueCliOptions,
} from './common.js';
import { formatSkipped } from './format.js';

interface ExtractCommandOptions extends GlobalOptions, HubCliOptions, QueueCliOptions {
  task?: Modality;
  backbone?: string;
  augment: number;
  valFraction?: number;
  seed: number;
  featureOutput?: string;
  dtype?: 'fp32' | 'fp16' | 'q8' | 'q4';
  textColumn?: string;
  labelColumn?: string;
  valData?: string;
  testData?: string;
  testFraction?: number;
  pooling?: string;
  maxLength?: number;
}

export function extractCommand(): Command {
  return withCommonOptions(withQueueOptions(withHubOptions(
    new Command('extract')
      .description('fill the feature cache for a dataset (on queue workers with --queue), so a later `train` with the same settings only fits the head')
      .argument('<data>', 'the data, as for `headstart train`')
      .addOption(new Option('-t, --task <task>', 'what the data is (default: guessed from the files)').choices(['image', 'text', 'audio']))
      .option('-b, --backbone <ref>', 'the backbone, as for `headstart train`')
      .option('--augment <n>', 'augmented views per training input, as `train --augment` will ask for', integer('--augment'), 0)
      .option('--val-fraction <f>', 'as for train (decides which inputs get augmented views)', fraction('--val-fraction'))
      .option('--seed <n>', 'as for train (the split and the augmentation)', integer('--seed'), 0)
      .option('--feature-output <name>', 'graph output / layer / node to take features from')
      .addOption(new Option('--dtype <dtype>', 'weights variant of a Hugging Face ONNX repository').choices(['fp32', 'fp16', 'q8', 'q4']))
      .option('--text-column <name>', 'text: column or JSON field holding the text')
      .option('--label-column <name>', 'text: column or JSON field holding the label')
      .option('--val-data <path>', 'text: a labelled file to validate on')
      .option('--test-data <path>', 'text: a labelled file to report test metrics on')
      .option('--test-fraction <f>', 'text: hold out this share of each class as the test set', fraction('--test-fraction'))
      .addOption(new Option('--pooling <mode>', 'text: mean|cls|sif|sif+max+min; audio: mean|mean-max').choices(['mean', 'cls', 'sif', 'sif+max+min', 'mean-max']))
      .option('--max-length <n>', 'text: truncate transformer inputs to <n> tokens', integer('--max-length', 3)),
  ))).action(async (data: string, options: ExtractCommandOptions) => {
    const task = options.task ?? (await inferTask(data));
    // The same preprocessing overrides `train` passes, so the cache keys match.
    const preprocessing = task === 'text' ? { pooling: options.pooling, maxLength: options.maxLength } : task === 'audio' && options.pooling ? { pooling: options.pooling } : undefined;
    const report = await extractDataset({
      task,
      data,
      backbone: options.backbone,
      backboneOptions: { featureOutput: options.featureOutput, dtype: options.dtype, hub: hubOptionsOf(options), ...(preprocessing ? { preprocessing: preprocessing as object } : {}) },
      datasetOptions: { textColumn: options.textColumn, labelColumn: options.labelColumn, validation: options.valData, test: options.testData, testFraction: options.testFraction },
      augment: options.augment,
      validationFraction: options.valFraction,
      seed: options.seed,
      cacheDir: cacheDirOf(options),
      queue: queueOptionsOf(options),
      reporter: reporterFor(options),
    });
    emit(options, report, () =>
      [
        `${report.vectors} vectors for ${report.inputs} inputs in the feature cache (${report.computed} computed, ${report.fromCache} already there) in ${report.seconds.toFixed(1)}s`,
        `backbone ${report.backbone.id} (sha256 ${report.backbone.sha256.slice(0, 12)}…, ${report.backbone.featureDim}-d)`,
        `cache: ${report.cache}`,
        ...formatSkipped(report.skipped),
      ].join('\n'),
    );
  });
}
