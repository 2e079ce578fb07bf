/**
 * What the shared Classifier flow calls when asked to fine-tune: run `fineTuneBackbone` before the
 * head is trained (the standard flow then fits, calibrates and evaluates the head on the
 * fine-tuned features), record it in the manifest, and hand the graph to the model folder.
 */
import { readFile } from 'node:fs/promises';
import type { Backbone } from '../backbones/backbone.js';
import { FINE_TUNED_BACKBONE_FILE, FINE_TUNED_TEXT_BACKBONE_FOLDER, type FineTunedBackbone, type ManifestWithoutHead } from '../artifacts/model-folder.js';
import type { Dataset } from '../data/dataset.js';
import type { LinearHead } from '../heads/linear.js';
import { fineTuneBackbone, type FineTuneOptions, type FineTuneRecord, type FineTuneSettings } from './fine-tune.js';

export interface ClassifierFineTune<Input = unknown> {
  backbone: Backbone<Input, unknown>;
  info: FineTunedBackbone;
  record: FineTuneRecord;
  /** The head trained with the blocks, when the options keep it (`head: 'joint'`) rather than refit one. */
  jointHead?: LinearHead;
}

export async function fineTuneForClassifier<Input extends Uint8Array | string>(
  dataset: Dataset<Input>,
  backbone: Backbone<Input, unknown>,
  options: FineTuneOptions,
  settings: FineTuneSettings,
): Promise<ClassifierFineTune<Input>> {
  const result = await fineTuneBackbone(dataset, backbone, options, settings);
  return {
    backbone: result.backbone,
    // Text: a Hugging Face ONNX folder (graph + tokenizer), so the model folder reopens without the original.
    info: { file: backbone.reference.modality === 'text' ? FINE_TUNED_TEXT_BACKBONE_FOLDER : FINE_TUNED_BACKBONE_FILE, base: { id: backbone.reference.id, sha256: backbone.reference.sha256 } },
    record: result.record,
    ...(result.record.options.head === 'joint' ? { jointHead: result.head } : {}),
  };
}

export { checkUnfreezable } from './backbone-graph.js';

/**
 * `unfreeze: 'auto'` fine-tunes what the default would — the modality's (text transformers: all),
 * else `FINE_TUNE_DEFAULTS` — and the comparison with the frozen head is the classifier's.
 */
export function concreteUnfreeze(options: FineTuneOptions): FineTuneOptions {
  if (options.unfreeze !== 'auto') return options;
  const { unfreeze: _auto, ...rest } = options;
  return rest;
}

/** What `unfreeze: 'auto'` compared and kept; stored in the manifest as `training.unfreezeAuto`. */
export interface UnfreezeChoice {
  kept: 'frozen' | 'fine-tuned';
  rule: string;
  frozen: { accuracy: number; logLoss: number };
  fineTuned: { accuracy: number; logLoss: number; unfreeze: FineTuneRecord['unfreeze']; bestEpoch: number };
}

/**
 * Keeps the fine-tuned backbone only when it is better on validation: higher accuracy (the number
 * users read), or the same accuracy with a lower log loss. Ties go to the frozen head, which is
 * smaller to ship and faster to retrain.
 */
export function chooseUnfreeze(frozen: ManifestWithoutHead, tuned: ManifestWithoutHead, record: FineTuneRecord): UnfreezeChoice {
  const score = (manifest: ManifestWithoutHead) => {
    const metrics = manifest.metrics.validation!;
    return { accuracy: metrics.accuracy, logLoss: metrics.logLoss };
  };
  const [a, b] = [score(frozen), score(tuned)];
  const better = b.accuracy > a.accuracy || (b.accuracy === a.accuracy && b.logLoss < a.logLoss);
  return {
    kept: better ? 'fine-tuned' : 'frozen',
    rule: 'higher validation accuracy, then lower validation log loss; ties keep the frozen head',
    frozen: a,
    fineTuned: { ...b, unfreeze: record.unfreeze, bestEpoch: record.bestEpoch },
  };
}

/** One line for the terminal and the report. */
export function describeUnfreezeChoice(choice: UnfreezeChoice): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const tuned = `fine-tuned (unfreeze ${choice.fineTuned.unfreeze}) ${pct(choice.fineTuned.accuracy)}`;
  const frozen = `frozen backbone ${pct(choice.frozen.accuracy)}`;
  return choice.kept === 'fine-tuned' ? `--unfreeze auto kept the fine-tuned backbone: validation accuracy ${tuned} against ${frozen}` : `--unfreeze auto kept the frozen backbone: validation accuracy ${frozen} against ${tuned}`;
}

/** Records the fine-tuning in a manifest built for the fine-tuned backbone. */
export function recordFineTune(manifest: ManifestWithoutHead, tuned: ClassifierFineTune): void {
  manifest.backbone = { ...manifest.backbone, id: tuned.info.base.id, fineTuned: tuned.info };
  manifest.training = { ...manifest.training, fineTune: tuned.record };
}

/** The files a model folder must carry for this backbone: the fine-tuned graph (text: its Hugging Face folder), if any. */
export async function fineTunedFiles(backbone: object, manifest: ManifestWithoutHead): Promise<Record<string, Uint8Array>> {
  const fineTuned = manifest.backbone.fineTuned;
  if (!fineTuned) return {};
  if (manifest.modality === 'text') {
    const { textBackboneFiles } = await import('./text-graph.js');
    return textBackboneFiles(backbone as Backbone<unknown, unknown>, fineTuned.file);
  }
  // In memory right after training; a file path once loaded from a model folder.
  const model = (backbone as { spec?: { model?: unknown } }).spec?.model;
  if (model instanceof Uint8Array) return { [fineTuned.file]: model };
  if (typeof model === 'string') return { [fineTuned.file]: await readFile(model) };
  throw new Error('the fine-tuned backbone has no ONNX graph to save');
}
