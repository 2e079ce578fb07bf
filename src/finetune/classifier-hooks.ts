/**
 * What the shared Classifier flow calls when asked to fine-tune: run `fineTuneBackbone` before the
 * head is trained (the standard flow then fits, calibrates and evaluates the head on the
 * fine-tuned features), record it in the manifest, and hand the graph to the model folder.
 */
import { readFile } from 'node:fs/promises';
import type { Backbone } from '../backbones/backbone.js';
import { FINE_TUNED_BACKBONE_FILE, type FineTunedBackbone, type ManifestWithoutHead } from '../artifacts/model-folder.js';
import type { Dataset } from '../data/dataset.js';
import { fineTuneBackbone, type FineTuneOptions, type FineTuneRecord, type FineTuneSettings } from './fine-tune.js';

export interface ClassifierFineTune {
  backbone: Backbone<Uint8Array, unknown>;
  info: FineTunedBackbone;
  record: FineTuneRecord;
}

export async function fineTuneForClassifier<Input>(
  dataset: Dataset<Input>,
  backbone: Backbone<Input, unknown>,
  options: FineTuneOptions,
  settings: FineTuneSettings,
): Promise<ClassifierFineTune> {
  // fineTuneBackbone checks that this is an image backbone (Uint8Array inputs).
  const result = await fineTuneBackbone(dataset as unknown as Dataset<Uint8Array>, backbone as unknown as Backbone<Uint8Array, unknown>, options, settings);
  return {
    backbone: result.backbone,
    info: { file: FINE_TUNED_BACKBONE_FILE, base: { id: backbone.reference.id, sha256: backbone.reference.sha256 } },
    record: result.record,
  };
}

/** Records the fine-tuning in a manifest built for the fine-tuned backbone. */
export function recordFineTune(manifest: ManifestWithoutHead, tuned: ClassifierFineTune): void {
  manifest.backbone = { ...manifest.backbone, id: tuned.info.base.id, fineTuned: tuned.info };
  manifest.training = { ...manifest.training, fineTune: tuned.record };
}

/** The files a model folder must carry for this backbone: the fine-tuned graph, if any. */
export async function fineTunedFiles(backbone: object, manifest: ManifestWithoutHead): Promise<Record<string, Uint8Array>> {
  const fineTuned = manifest.backbone.fineTuned;
  if (!fineTuned) return {};
  // In memory right after training; a file path once loaded from a model folder.
  const model = (backbone as { spec?: { model?: unknown } }).spec?.model;
  if (model instanceof Uint8Array) return { [fineTuned.file]: model };
  if (typeof model === 'string') return { [fineTuned.file]: await readFile(model) };
  throw new Error('the fine-tuned backbone has no ONNX graph to save');
}
