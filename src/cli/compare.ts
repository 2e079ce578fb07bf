import { basename, dirname, extname, join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Modality } from '../backbones/backbone.js';
import { inferTask, modalityAdapter } from '../classifier/modalities.js';
import { compareOnDataset, DEFAULT_COMPARE_SIZES, formatCompareTable, type Shots } from '../evaluate/compare.js';
import { scratchBaselineFor } from '../evaluate/scratch.js';
import type { LabelledItem } from '../data/dataset.js';
import { SCRATCH_CNN_DEFAULTS, scratchCnnContender } from '../finetune/scratch-cnn.js';
import { usageError } from '../util/errors.js';
import { DEFAULT_DETECTION_PERCENTS } from '../detector/compare.js';
import { DETECTOR_TRAIN_DEFAULTS } from '../detector/train-detector.js';
import { COMPARE_PAGE_GUARD, writeCompareReport } from '../report/compare-report.js';
import { checkReplaceable } from '../util/atomic.js';
import { compareDetect } from './compare-detect.js';
import { compareGenerate } from './compare-generate.js';
import { detectionFormatOf } from '../detector/read-dataset.js';
import { cacheDirOf, emit, fraction, hubOptionsOf, integer, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';

interface CompareCommandOptions extends GlobalOptions, HubCliOptions {
  task?: Modality | 'generate' | 'detect';
  maxSteps?: number;
  backbone?: string;
  sizes?: Shots[];
  seeds: number;
  target?: number;
  head: 'linear' | 'mlp' | 'knn' | 'centroid';
  valFraction?: number;
  seed: number;
  out?: string;
  cache: boolean;
  scratchCnn?: boolean;
  cnnEpochs?: number;
  cnnSize?: number;
  maxTerms?: number;
  epochs?: number;
  batchSize?: number;
  augment?: number;
}

export function compareCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('compare')
      .description('measure the head start: a pre-trained backbone vs a from-scratch baseline, same head, same seeded draws, growing training sets')
      .argument('<data>', 'labelled data, as for `headstart train`')
      .addOption(new Option('-t, --task <task>', 'what the data is (default: guessed from the files); generate: a causal LM fine-tuned vs from scratch; detect: the builtin CenterNet fine-tuned vs from scratch').choices(['image', 'text', 'audio', 'generate', 'detect']))
      .option('--max-steps <n>', 'generate: optimiser steps per contender (default one epoch)', integer('--max-steps', 1))
      .option('-b, --backbone <ref>', "the pre-trained backbone (default: the task's bundled backbone)")
      .option('--sizes <list>', `training examples per class, comma-separated, "all" for everything (default ${DEFAULT_COMPARE_SIZES.join(',')}, those every class can supply); detect: percentages of the training images (default ${DEFAULT_DETECTION_PERCENTS.join(',')})`, sizesOption)
      .option('--seeds <n>', 'seeded draws per size', integer('--seeds', 1), 5)
      .option('--target <accuracy>', "accuracy to reach (default: 90% of the pre-trained backbone's accuracy on all the training data)", fraction('--target'))
      .addOption(new Option('--head <type>', 'the head both contenders train').choices(['linear', 'mlp', 'knn', 'centroid']).default('linear'))
      .option('--val-fraction <f>', 'share of each class held out when no validation folder exists', fraction('--val-fraction'))
      .option('--seed <n>', 'seed of the train/validation split', integer('--seed'), 0)
      .option('-o, --out <file>', 'where to write the learning-curve HTML (default: <data>-compare.html beside the data)')
      .option('--no-cache', 'do not read or write the feature cache')
      .option('--scratch-cnn', 'images: also train a small CNN from random initialisation on the pixels, end to end, at every size and seed (slow: minutes on a few hundred images)')
      .option('--cnn-epochs <n>', `--scratch-cnn: epochs per run (default ${SCRATCH_CNN_DEFAULTS.epochs})`, integer('--cnn-epochs', 1))
      .option('--cnn-size <px>', `--scratch-cnn: input side in pixels (default ${SCRATCH_CNN_DEFAULTS.size})`, integer('--cnn-size', 16))
      .option('--epochs <n>', `detect: epochs per run, the same for both contenders (default ${DETECTOR_TRAIN_DEFAULTS.epochs})`, integer('--epochs', 1))
      .option('--batch-size <n>', `detect: images per step (default ${DETECTOR_TRAIN_DEFAULTS.batchSize})`, integer('--batch-size', 1))
      .option('--augment <n>', `detect: augmented views per training image (default ${DETECTOR_TRAIN_DEFAULTS.augment})`, integer('--augment', 0))
      .option('--max-terms <n>', 'text: the TF-IDF baseline keeps the <n> most frequent terms (default: every term of the training texts)', integer('--max-terms', 1)),
  )).action(async (data: string, options: CompareCommandOptions, command: Command) => {
    const reporter = reporterFor(options);
    if (options.task === 'generate') return compareGenerate(data, options, reporter);
    const absolute = resolve(data);
    const out = options.out ?? join(dirname(absolute), `${basename(absolute, extname(absolute))}-compare.html`);
    const given = Object.keys(options).filter((name) => command.getOptionValueSource(name) === 'cli');
    // A detection export (COCO / Roboflow, YOLO, VOC) is guessed from its layout, before class folders are, as `train` does.
    const detect = options.task === 'detect' || (!options.task && (await detectionFormatOf(data)));
    const detectOnly = ['epochs', 'batchSize', 'augment'].filter((name) => given.includes(name));
    if (!detect && detectOnly.length) throw usageError(`--${detectOnly[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} goes with detection data (--task detect)`);
    // Before the runs, so a refused --out is not found out only after them.
    await checkReplaceable(out, 'file', COMPARE_PAGE_GUARD);
    if (detect) return compareDetect(data, { ...options, out }, given, reporter);
    if (!options.scratchCnn && (options.cnnEpochs !== undefined || options.cnnSize !== undefined)) throw usageError('--cnn-epochs and --cnn-size go with --scratch-cnn');
    // Not detection (returned above), not generate.
    const task = (options.task as Modality | undefined) ?? (await inferTask(data));
    if (options.scratchCnn && task !== 'image') throw usageError(`--scratch-cnn trains a CNN on image pixels; ${data} is ${task} data`);
    const adapter = await modalityAdapter(task);
    const scratch = await scratchBaselineFor(task, { tfidf: options.maxTerms === undefined ? undefined : { maxFeatures: options.maxTerms } });
    const cacheDir = cacheDirOf(options);
    const dataset = await adapter.readDataset(data, { validationFraction: options.valFraction, seed: options.seed });
    const backbone = await adapter.openBackbone(options.backbone ?? adapter.defaultBackbone, { cacheDir, reporter, hub: hubOptionsOf(options) });
    try {
      const result = await compareOnDataset({
        dataset,
        pretrained: backbone,
        scratch,
        sizes: options.sizes,
        seeds: Array.from({ length: options.seeds }, (_, i) => i),
        target: options.target,
        fit: { head: options.head },
        cacheDir,
        cache: options.cache,
        reporter,
        extraContenders: options.scratchCnn
          ? async (shared) => [
              // Image data (checked above): the items are file bytes.
              await scratchCnnContender(shared as { train: LabelledItem<Uint8Array>[]; evaluation: LabelledItem<Uint8Array>[] }, dataset.classes, {
                epochs: options.cnnEpochs,
                size: options.cnnSize,
                reporter,
              }),
            ]
          : undefined,
      });
      const settings = { data: absolute, task, backbone: backbone.reference.id, head: options.head, 'split seed': options.seed, seeds: result.seeds.join(', '), 'total time': `${result.seconds.toFixed(1)} s` };
      await writeCompareReport(out, result, { noun: adapter.noun, settings });
      emit(options, { report: out, ...result }, () =>
        [
          formatCompareTable(result),
          ...(result.excluded.length ? ['', `left out ${result.excluded.length} input(s) not every contender could read`] : []),
          '',
          `learning curve written to ${out}`,
        ].join('\n'),
      );
    } finally {
      await backbone.dispose();
    }
  });
}

function sizesOption(value: string): Shots[] {
  return value.split(',').map((part) => {
    const text = part.trim();
    if (text === 'all') return 'all';
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--sizes takes positive integers and "all", comma-separated');
    return n;
  });
}
