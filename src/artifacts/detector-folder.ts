/**
 * A trained detector's model folder: the same `manifest.json` + `metrics.json` as a classifier's
 * (format "headstart-model", with `task: "detect"`), written atomically under the same guard, beside
 * the whole fine-tuned ONNX graph. The graph keeps the builtin CenterNet's inputs and outputs (512×512
 * NHWC pixels in 0–255 → sigmoid heatmap `[n, 128, 128, classes]` and box sides `[n, 128, 128, 4]`), so
 * loading, export and serving open it exactly as they open the builtin; only the class count differs.
 *
 *   <folder>/manifest.json   DetectorManifest (labels = the class names, heatmap channel order)
 *   <folder>/metrics.json    { mAP, mAP50, mAP75, … } on the validation split (COCO's meaning), plus `split`
 *   <folder>/detector.onnx   the fine-tuned graph (~8 MB; the frozen body is in it, so the folder stands alone)
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SkippedInput } from '../data/dataset.js';
import type { DetectionMetrics } from '../detector/coco-eval.js';
import { writeDirAtomic } from '../util/atomic.js';
import { messageOf, modelError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { VERSION } from '../version.js';
import { MANIFEST_FILE, METRICS_FILE, MODEL_FOLDER_GUARD, MODEL_FORMAT, MODEL_FORMAT_VERSION } from './model-folder.js';

export const DETECTOR_GRAPH_FILE = 'detector.onnx';

/** Where the graph's tensors are and what its outputs mean. */
export interface DetectorGraphEntry {
  kind: 'centernet';
  /** File in the model folder; its sha256 is `sha256`. */
  file: string;
  sha256: string;
  inputName: string;
  heatmapOutput: string;
  sidesOutput: string;
  /** Square input side in pixels and the output stride. */
  inputSize: number;
  stride: number;
  /** The detector it was fine-tuned from. */
  base: { id: string; sha256: string };
}

/** The summary numbers of `metrics.json` (COCO's meaning), beside the full evaluation in the manifest. */
export type DetectorMetricsFile = Omit<DetectionMetrics, 'perClass' | 'prCurves' | 'atThreshold'> & {
  split: 'validation' | 'test';
  perClass: DetectionMetrics['perClass'];
  atThreshold: DetectionMetrics['atThreshold'];
};

export interface DetectorManifest {
  format: typeof MODEL_FORMAT;
  formatVersion: number;
  task: 'detect';
  headstartVersion: string;
  createdAt: string;
  modality: 'image';
  /** The class names, in the heatmap's channel order. */
  labels: string[];
  detector: DetectorGraphEntry;
  training: Record<string, unknown>;
  metrics: { validation?: DetectionMetrics; test?: DetectionMetrics };
  skipped: SkippedInput[];
}

export type DetectorManifestInput = Omit<DetectorManifest, 'format' | 'formatVersion' | 'task' | 'headstartVersion' | 'createdAt' | 'detector'> & {
  detector: Omit<DetectorGraphEntry, 'file' | 'sha256'>;
};

/** Whether `dir` holds a detector model folder (a headstart manifest with `task: "detect"`). */
export async function isDetectorFolder(dir: string): Promise<boolean> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as Partial<DetectorManifest>;
    return manifest?.format === MODEL_FORMAT && manifest.task === 'detect';
  } catch {
    return false;
  }
}

function metricsFile(metrics: DetectorManifest['metrics']): DetectorMetricsFile | Record<string, never> {
  const split = metrics.validation ? 'validation' : metrics.test ? 'test' : undefined;
  if (!split) return {};
  const { prCurves: _curves, ...rest } = metrics[split]!;
  return { split, ...rest };
}

/** Writes the folder atomically; refuses to replace a folder that is neither empty nor a headstart model folder. */
export async function saveDetectorFolder(dir: string, input: DetectorManifestInput, graph: Uint8Array, fill?: (stagedDir: string) => Promise<void>): Promise<DetectorManifest> {
  const manifest: DetectorManifest = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    task: 'detect',
    headstartVersion: VERSION,
    createdAt: new Date().toISOString(),
    modality: 'image',
    labels: input.labels,
    detector: { ...input.detector, file: DETECTOR_GRAPH_FILE, sha256: sha256(graph) },
    training: input.training,
    metrics: input.metrics,
    skipped: input.skipped,
  };
  await writeDirAtomic(dir, async (temp) => {
    await writeFile(join(temp, DETECTOR_GRAPH_FILE), graph);
    await writeFile(join(temp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    await writeFile(join(temp, METRICS_FILE), `${JSON.stringify(metricsFile(manifest.metrics), null, 2)}\n`);
    await fill?.(temp);
  }, MODEL_FOLDER_GUARD);
  return manifest;
}

/** Reads and checks the manifest; the graph's path is `join(dir, manifest.detector.file)`. */
export async function loadDetectorFolder(dir: string): Promise<{ manifest: DetectorManifest; graphPath: string; graph: Uint8Array }> {
  const manifestPath = join(dir, MANIFEST_FILE);
  let manifest: DetectorManifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as DetectorManifest;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw modelError(missing ? 'not a headstart model folder (no manifest.json)' : `unreadable manifest: ${messageOf(error)}`, missing ? dir : manifestPath, error);
  }
  if (manifest.format !== MODEL_FORMAT || manifest.task !== 'detect') throw modelError('not a headstart detector (manifest without task "detect")', manifestPath);
  if (manifest.formatVersion > MODEL_FORMAT_VERSION) throw modelError(`written by a newer headstart (format ${manifest.formatVersion}; this one reads up to ${MODEL_FORMAT_VERSION})`, manifestPath);
  const entry = manifest.detector;
  if (entry?.kind !== 'centernet' || typeof entry.file !== 'string') throw modelError(`unknown detector kind ${JSON.stringify(entry?.kind)}`, manifestPath);
  if (!Array.isArray(manifest.labels) || manifest.labels.length === 0 || !manifest.labels.every((l) => typeof l === 'string')) throw modelError('"labels" must be a non-empty list of class names', manifestPath);
  const graphPath = join(dir, entry.file);
  const graph = await readFile(graphPath).catch((error) => {
    throw modelError(`cannot read the detector graph: ${messageOf(error)}`, graphPath, error);
  });
  if (sha256(graph) !== entry.sha256) throw modelError(`the graph's sha256 is not the manifest's (${entry.sha256.slice(0, 12)}…): the folder was changed after it was written`, graphPath);
  return { manifest, graphPath, graph };
}
