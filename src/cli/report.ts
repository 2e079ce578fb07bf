import { Command } from 'commander';
import { formatEvaluationSummary, formatMetricsTable, isDetailed } from '../evaluate/metrics.js';
import { resolve } from 'node:path';
import { Detector } from '../detector/detector.js';
import { formatDetectionMetrics } from '../detector/format-metrics.js';
import { writeDetectionReport } from '../report/detection-report.js';
import { writeModelReport } from '../report/report.js';
import { usageError } from '../util/errors.js';
import { cacheDirOf, emit, hubOptionsOf, reporterFor, withCommonOptions, withHubOptions, type GlobalOptions, type HubCliOptions } from './common.js';
import { formatSkipped } from './format.js';

interface ReportCommandOptions extends GlobalOptions, HubCliOptions {
  out?: string;
  explain?: boolean;
  threshold?: number;
}

export function reportCommand(): Command {
  return withCommonOptions(withHubOptions(
    new Command('report')
      .description('write a self-contained HTML report of a trained model (curves, confusion matrix with examples, calibration), from its folder alone; for a detector, COCO mAP, per-class AP, PR curves and a gallery of boxes on <data>')
      .argument('<model>', 'a model folder written by `headstart train`, or a detector (builtin:centernet, a YOLO .onnx, a DETR folder, hf:<repo>)')
      .argument('[data]', 'detectors: the detection data to evaluate on (COCO / Roboflow, YOLO or VOC; its test split, else validation)')
      .option('-o, --out <file>', 'where to write the HTML (default <model>/report.html; detectors: detection-report.html)')
      .option('--threshold <score>', 'detectors: the score from which predictions are drawn and counted for precision / recall (default 0.25)', Number)
      .option('--explain', 'also explain the most confident examples of each cell and the most confident mistakes (runs the model; see `headstart explain`); detectors: per-box Grad-CAM for each image\'s false positives and 3 most confident boxes, on by default for CenterNet detectors')
      .option('--no-explain', 'detectors: leave out the per-box Grad-CAM (one backward pass per explained box)'),
  )).action(async (model: string, dataPath: string | undefined, options: ReportCommandOptions) => {
    if (await Detector.isDetectorReference(model)) {
      if (!dataPath) throw usageError(`a detector's report evaluates it on data: headstart report ${model} <data>`);
      if (options.threshold !== undefined && !(options.threshold > 0 && options.threshold <= 1)) throw usageError('--threshold must be in (0, 1]');
      const detector = await Detector.load(model, { cacheDir: cacheDirOf(options), reporter: reporterFor(options), hub: hubOptionsOf(options) });
      try {
        const { path, data } = await writeDetectionReport(detector, dataPath, resolve(options.out ?? 'detection-report.html'), { threshold: options.threshold, explain: options.explain, reporter: reporterFor(options) });
        emit(options, { report: path, detector: data.detector, split: data.split, classes: data.classes, metrics: data.metrics, explained: data.explained, skipped: data.skipped }, () =>
          [
            `${data.split} (${data.metrics.images} images):`,
            formatDetectionMetrics(data.metrics),
            ...formatSkipped(data.skipped),
            data.explained.method === 'gradcam' ? `per-box Grad-CAM for ${data.explained.boxes} boxes (each image's false positives and ${data.explained.mostConfident} most confident)` : `no per-box Grad-CAM: ${data.explained.reason}`,
            `report written to ${path}`,
          ].join('\n'),
        );
      } finally {
        await detector.dispose();
      }
      return;
    }
    if (dataPath) throw usageError('a trained model\'s report is built from its folder alone; <data> is for detectors');
    const { path, data, manifest } = await writeModelReport(model, { out: options.out, ...(options.explain ? { explain: { cacheDir: cacheDirOf(options) } } : {}) });
    emit(
      options,
      {
        report: path,
        labels: data.labels,
        backbone: manifest.backbone,
        calibration: manifest.calibration ?? null,
        metrics: Object.fromEntries(data.splits.map((split) => [split.name, split.metrics])),
        history: data.history,
        bestEpoch: data.bestEpoch,
        config: data.config,
        timings: data.timings,
        skipped: data.skipped,
        notes: data.notes,
      },
      () =>
        [
          ...data.splits.flatMap((split) => [
            `${split.name} (${split.metrics.n} ${data.noun}):`,
            formatMetricsTable(split.metrics),
            ...(isDetailed(split.metrics) ? ['', formatEvaluationSummary(split.metrics)] : []),
            '',
          ]),
          ...data.notes.map((note) => `note: ${note}`),
          ...formatSkipped(data.skipped),
          `report written to ${path}`,
        ].join('\n'),
    );
  });
}
