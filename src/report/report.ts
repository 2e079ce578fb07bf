import { basename, join, resolve } from 'node:path';
import { loadModelFolder, type ModelManifest } from '../artifacts/model-folder.js';
import type { Modality } from '../backbones/backbone.js';
import { evaluatePredictions, isDetailed, type ClassificationMetrics } from '../evaluate/metrics.js';
import type { BaselineReport, TruncationReport } from '../classifier/text-classifier.js';
import type { FineTuneRecord } from '../finetune/fine-tune.js';
import { describeUnfreezeChoice, type UnfreezeChoice } from '../finetune/classifier-hooks.js';
import type { EpochRecord } from '../train/fit.js';
import { writeFileAtomic } from '../util/atomic.js';
import { MODEL_SCRIPT } from './client.js';
import { pageGuard, renderPage } from './html.js';
import { mediaOf } from './media.js';
import { readPredictions, type PredictionRecord } from './predictions.js';

export const REPORT_FILE = 'report.html';

/** One held-out example as the page lists it under its confusion-matrix cell. */
export interface ReportExample {
  source: string;
  label: number;
  predicted: number;
  /** Probability of the predicted class. */
  confidence: number;
  trueProbability: number;
  text?: string;
  media?: { type: 'image' | 'audio'; src: string };
  /** Why there is no preview (file gone, over the embedding limit…). */
  missing?: string;
  /** With `--explain`: why the model predicted what it did (see src/explain/report-explanations.ts). */
  explanation?: ReportExplanation;
}

/** An explanation of the predicted label as the page shows it. */
export interface ReportExplanation {
  method: string;
  /** Images: the map over the photo; audio: the coloured waveform (data URIs). */
  src?: string;
  /** Text: each word and its score (contribution to the logit, or probability lost without it). */
  words?: { text: string; score: number }[];
  unit?: string;
}

export interface ReportSplit {
  name: 'validation' | 'test';
  metrics: ClassificationMetrics;
  examples?: ReportExample[];
}

/** Everything the model report page draws, as embedded in it. */
export interface ModelReportData {
  kind: 'model';
  modality: Modality;
  noun: string;
  labels: string[];
  head: { type: string };
  optimizer?: string;
  calibration?: { temperature: number; fittedOn: string };
  splits: ReportSplit[];
  history: EpochRecord[];
  bestEpoch: number;
  stoppedEarly: boolean;
  /** A fine-tuned backbone's joint training with its head, before the final head was fitted. */
  fineTune?: { trained: string; history: EpochRecord[]; bestEpoch: number; stoppedEarly: boolean; schedule: string; headEpochs: number; head: 'joint' | 'refit' };
  skipped: ModelManifest['skipped'];
  model: Record<string, unknown>;
  data: Record<string, unknown>;
  config: Record<string, unknown>;
  timings: Record<string, number>;
  notes: string[];
  /** Present when the report explains its examples: how many per cell and in the mistakes gallery. */
  explained?: { perCell: number; mistakes: number; methods: string[] };
}

export interface ReportOptions {
  /** Explain the most confident examples of each confusion-matrix cell and the most confident mistakes (runs the model). */
  explain?: { perCell?: number; mistakes?: number; cacheDir?: string };
}

const NOUNS: Record<Modality, string> = { image: 'images', text: 'texts', audio: 'clips' };

/** Previews embedded per confusion-matrix cell and per split: enough to see a pattern, small enough to open fast. */
const MEDIA_LIMITS: Record<Modality, { perCell: number; perSplit: number }> = {
  image: { perCell: 48, perSplit: 800 },
  audio: { perCell: 8, perSplit: 80 },
  text: { perCell: 0, perSplit: 0 },
};

/**
 * Builds a model folder's report data from the folder alone: `manifest.json` for the metrics,
 * history, configuration and timings, `predictions.json` for the examples behind each cell, and
 * the examples' files (still on disk, or noted as gone) for thumbnails and clips. `folder` is where
 * the model lives, for the page, when `dir` is where it is being staged.
 */
export async function buildModelReport(dir: string, folder = dir, options: ReportOptions = {}): Promise<{ data: ModelReportData; manifest: ModelManifest; title: string; subtitle: string }> {
  const { manifest } = await loadModelFolder(dir);
  const stored = await readPredictions(dir);
  const notes: string[] = [];
  if (!stored) notes.push('This model folder has no predictions.json, so the confusion matrix cannot list the examples behind each cell.');
  const k = manifest.labels.length;

  const splits: ReportSplit[] = [];
  for (const name of ['validation', 'test'] as const) {
    const metrics = manifest.metrics[name];
    const records = stored?.splits[name];
    if (!metrics && !records?.length) continue;
    // Folders written before full evaluations existed: recompute what the stored predictions allow.
    const split: ReportSplit = { name, metrics: metrics && (isDetailed(metrics) || !records?.length) ? metrics : evaluationOf(records!, manifest) };
    if (records) split.examples = await examplesOf(records, manifest.modality, k);
    splits.push(split);
  }
  const gone = splits.flatMap((s) => s.examples ?? []).filter((e) => e.missing === FILE_GONE).length;
  if (gone) notes.push(`${gone} example file${gone > 1 ? 's are' : ' is'} no longer where training found ${gone > 1 ? 'them' : 'it'}; listed without a preview.`);

  const training = manifest.training as {
    data?: { origin?: string; validation?: unknown; counts?: Record<string, number[]> };
    fit?: Record<string, unknown>;
    history?: EpochRecord[];
    bestEpoch?: number;
    stoppedEarly?: boolean;
    augmentation?: unknown;
    seed?: number;
    timings?: Record<string, number>;
    fineTune?: FineTuneRecord;
    truncation?: TruncationReport;
    unfreezeAuto?: UnfreezeChoice;
    baseline?: BaselineReport;
  };
  if (training.unfreezeAuto) notes.push(`${describeUnfreezeChoice(training.unfreezeAuto)} (${training.unfreezeAuto.rule}).`);
  const timings = { ...(training.timings ?? {}) };
  if (timings.featureSeconds !== undefined && timings.fitSeconds !== undefined) timings.totalSeconds = Math.round((timings.featureSeconds + timings.fitSeconds) * 1000) / 1000;
  const counts = Object.fromEntries(
    Object.entries(training.data?.counts ?? {}).map(([split, perClass]) => [
      `${split} examples`,
      perClass.map((count, c) => `${manifest.labels[c]} ${count}`).join(', '),
    ]),
  );
  const data: ModelReportData = {
    kind: 'model',
    modality: manifest.modality,
    noun: NOUNS[manifest.modality] ?? 'examples',
    labels: manifest.labels,
    head: { type: manifest.head.type },
    optimizer: training.fit?.optimizer as string | undefined,
    calibration: manifest.calibration,
    splits,
    history: training.history ?? [],
    bestEpoch: training.bestEpoch ?? 0,
    stoppedEarly: training.stoppedEarly ?? false,
    skipped: manifest.skipped ?? [],
    model: {
      folder: resolve(folder),
      task: manifest.modality,
      classes: manifest.labels.join(', '),
      backbone: manifest.backbone.id,
      'backbone sha256': manifest.backbone.sha256,
      'feature dimension': manifest.backbone.featureDim,
      'feature output': manifest.backbone.featureOutput,
      head: manifest.head.type,
      'softmax temperature': manifest.calibration ? `${manifest.calibration.temperature.toPrecision(4)} (fitted on ${manifest.calibration.fittedOn})` : 'none',
      'headstart version': manifest.headstartVersion,
      created: manifest.createdAt,
    },
    ...(training.fineTune ? { fineTune: fineTuneCurves(training.fineTune) } : {}),
    data: { origin: training.data?.origin, validation: training.data?.validation, ...counts, ...textTraining(training, manifest) },
    config: { ...(training.fit ?? {}), augmentation: training.augmentation ?? null, seed: training.seed, 'best epoch': training.bestEpoch, 'stopped early': training.stoppedEarly },
    timings,
    notes,
  };
  if (options.explain) {
    // Loaded only when asked: explaining runs the model, which the report otherwise never opens.
    const { explainReportExamples } = await import('../explain/report-explanations.js');
    data.explained = await explainReportExamples(dir, splits, options.explain);
  }
  const title = `headstart report: ${basename(resolve(folder))}`;
  const subtitle = `${manifest.modality} classifier · ${k} classes · ${manifest.backbone.id} + ${manifest.head.type} head · trained ${manifest.createdAt.slice(0, 19).replace('T', ' ')}`;
  return { data, manifest, title, subtitle };
}

/**
 * Writes `report.html` (atomically) into the model folder, or to `out`. Returns where, and what it
 * showed. `folder`: the model's final place when `dir` is its staging folder (see `saveModelFolder`).
 */
export async function writeModelReport(dir: string, options: { out?: string; folder?: string } & ReportOptions = {}): Promise<{ path: string; data: ModelReportData; manifest: ModelManifest }> {
  const { data, manifest, title, subtitle } = await buildModelReport(dir, options.folder, options);
  const path = options.out ?? join(dir, REPORT_FILE);
  await writeFileAtomic(path, await renderPage({ title, subtitle, data, script: MODEL_SCRIPT }), { guard: pageGuard('report') });
  return { path, data, manifest };
}

const FILE_GONE = 'file no longer there';

function fineTuneCurves(record: FineTuneRecord): NonNullable<ModelReportData['fineTune']> {
  const names = record.blocks.trained.map((block) => block.name);
  return {
    trained: `${names.length} block${names.length === 1 ? '' : 's'} (${names.join(', ')}, ${record.trainedValues.toLocaleString('en')} weights)`,
    history: record.history,
    bestEpoch: record.bestEpoch,
    stoppedEarly: record.stoppedEarly,
    schedule: record.options.schedule,
    headEpochs: record.headStage.epochs,
    // Records written before the option existed refitted the head.
    head: record.options.head ?? 'refit',
  };
}

/** A text model's truncation count and TF-IDF baseline, as the terminal prints them after `train`. */
function textTraining(training: { truncation?: TruncationReport; baseline?: BaselineReport }, manifest: ModelManifest): Record<string, string> {
  const rows: Record<string, string> = {};
  const { truncation, baseline } = training;
  if (truncation) {
    rows['truncated texts'] =
      truncation.truncated === 0
        ? `none: no text was longer than ${truncation.maxTokens} tokens`
        : `${truncation.truncated} of ${truncation.texts} texts were longer than ${truncation.maxTokens} tokens and lost their end`;
  }
  if (baseline) {
    for (const split of ['validation', 'test'] as const) {
      const ours = manifest.metrics[split];
      const theirs = baseline.metrics[split];
      if (!ours || !theirs) continue;
      rows[`from-scratch baseline, ${split}`] =
        `${baseline.featureOutput} + linear head, same split: accuracy ${theirs.accuracy.toFixed(4)}, macro-F1 ${theirs.macro.f1.toFixed(4)} ` +
        `(this model ${ours.accuracy.toFixed(4)}, ${ours.macro.f1.toFixed(4)})`;
    }
  }
  return rows;
}

function evaluationOf(records: PredictionRecord[], manifest: ModelManifest): ClassificationMetrics {
  const metrics = evaluatePredictions(
    Int32Array.from(records, (r) => r.label),
    Float32Array.from(records.flatMap((r) => r.probabilities)),
    manifest.labels,
  );
  metrics.calibration.temperature = manifest.calibration?.temperature ?? 1;
  return metrics;
}

async function examplesOf(records: PredictionRecord[], modality: Modality, k: number): Promise<ReportExample[]> {
  const examples = records.map((record): ReportExample => {
    let predicted = 0;
    for (let c = 1; c < k; c++) if (record.probabilities[c]! > record.probabilities[predicted]!) predicted = c;
    const example: ReportExample = {
      source: record.source,
      label: record.label,
      predicted,
      confidence: record.probabilities[predicted]!,
      trueProbability: record.probabilities[record.label]!,
    };
    if (record.text !== undefined) example.text = record.text;
    return example;
  });
  const limits = MEDIA_LIMITS[modality] ?? { perCell: 0, perSplit: 0 };
  if (limits.perSplit === 0) return examples;
  // Previews for the examples a cell lists first (most confident first), mistakes before hits.
  const byCell = new Map<number, ReportExample[]>();
  for (const e of examples) {
    const key = e.label * k + e.predicted;
    byCell.set(key, [...(byCell.get(key) ?? []), e]);
  }
  const cells = [...byCell.entries()].sort(([a], [b]) => Number(a % (k + 1) === 0) - Number(b % (k + 1) === 0) || a - b);
  const chosen: ReportExample[] = [];
  for (const [, members] of cells) {
    members.sort((a, b) => b.confidence - a.confidence);
    members.forEach((e, i) => (i < limits.perCell && chosen.length < limits.perSplit ? chosen.push(e) : (e.missing = `not embedded (the report previews at most ${limits.perCell} per cell)`)));
  }
  for (let start = 0; start < chosen.length; start += 8) {
    await Promise.all(
      chosen.slice(start, start + 8).map(async (e) => {
        const shown = await mediaOf(modality, e.source);
        if ('media' in shown) e.media = shown.media;
        else e.missing = shown.missing;
      }),
    );
  }
  return examples;
}
