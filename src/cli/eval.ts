import { Command } from 'commander';
import { Classifier } from '../classifier/classifier.js';
import { Detector } from '../detector/detector.js';
import { formatDetectionMetrics } from '../detector/format-metrics.js';
import { formatEvaluationSummary, formatMetricsTable } from '../evaluate/metrics.js';
import { cacheDirOf, emit, hubOptionsOf, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';
import { formatSkipped } from './format.js';

export function evalCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('eval')
      .description('evaluate a trained model on labelled data read as in training (e.g. <folder>/<class>/*)')
      .argument('<model>', 'a model folder written by `headstart train`, or builtin:centernet for detection data')
      .argument('<data>', 'labelled data: a folder with one sub-folder per class, a labelled file for text, or a detection dataset (COCO / Roboflow JSON, YOLO, Pascal VOC)')
      .option('--text-column <name>', 'text: column (header name or 0-based index) or JSON field holding the text')
      .option('--label-column <name>', 'text: column or JSON field holding the label'),
  )).action(async (model: string, data: string, options: GlobalOptions & HubCliOptions & { textColumn?: string; labelColumn?: string }) => {
    const reporter = reporterFor(options);
    if (await Detector.isDetectorReference(model)) {
      const detector = await Detector.load(model, { cacheDir: cacheDirOf(options), reporter, hub: hubOptionsOf(options) });
      try {
        const result = await detector.evaluatePath(data);
        emit(options, { model, data, task: 'detect', ...result }, () =>
          [`${data}, ${result.split} split (${result.images} images):`, formatDetectionMetrics(result.metrics), ...formatSkipped(result.skipped)].join('\n'),
        );
      } finally {
        await detector.dispose();
      }
      return;
    }
    const classifier = await Classifier.load(model, { cacheDir: cacheDirOf(options), reporter, hub: hubOptionsOf(options) });
    try {
      const result = await classifier.evaluatePath(data, { reporter, datasetOptions: { textColumn: options.textColumn, labelColumn: options.labelColumn } });
      emit(
        options,
        { model, data, labels: classifier.labels, metrics: result.metrics, skipped: result.skipped, predictions: result.predictions },
        () =>
          [
            `${data} (${result.metrics.n} ${classifier.adapter.noun}):`,
            formatMetricsTable(result.metrics),
            '',
            formatEvaluationSummary(result.metrics),
            ...formatSkipped(result.skipped),
          ].join('\n'),
      );
    } finally {
      await classifier.dispose();
    }
  });
}
