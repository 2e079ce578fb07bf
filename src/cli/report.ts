import { Command } from 'commander';
import { formatEvaluationSummary, formatMetricsTable, isDetailed } from '../evaluate/metrics.js';
import { writeModelReport } from '../report/report.js';
import { cacheDirOf, emit, withCommonOptions, type GlobalOptions } from './common.js';
import { formatSkipped } from './format.js';

interface ReportCommandOptions extends GlobalOptions {
  out?: string;
  explain?: boolean;
}

export function reportCommand(): Command {
  return withCommonOptions(
    new Command('report')
      .description('write a self-contained HTML report of a trained model (curves, confusion matrix with examples, calibration), from its folder alone')
      .argument('<model>', 'a model folder written by `headstart train`')
      .option('-o, --out <file>', 'where to write the HTML (default <model>/report.html)')
      .option('--explain', 'also explain the most confident examples of each cell and the most confident mistakes (runs the model; see `headstart explain`)'),
  ).action(async (model: string, options: ReportCommandOptions) => {
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
