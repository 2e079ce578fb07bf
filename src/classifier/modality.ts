import type { Backbone, Modality } from '../backbones/backbone.js';
import type { OpenBackboneOptions } from '../backbones/resolve.js';
import type { Dataset, LabelledItem, SkippedInput, SplitOptions } from '../data/dataset.js';

/** Options for reading a dataset; each modality adds its own (columns for CSV files, …). */
export interface ReadDatasetOptions extends SplitOptions {
  [option: string]: unknown;
}

/** Backbone options shared by every modality, plus the modality's preprocessing overrides. */
export type BackboneOptions = OpenBackboneOptions & { preprocessing?: object };

/**
 * What makes images, text and audio different — and nothing else: how a labelled dataset is read,
 * which backbones exist, how a user's raw input is read, and the default augmentation. Dataset
 * splitting, feature extraction and caching, heads, training, metrics and model folders are shared.
 */
export interface ModalityAdapter<Input extends Uint8Array | string = Uint8Array | string> {
  readonly modality: Modality;
  readonly defaultBackbone: string;
  /** Words for reports: "images", "texts", "clips". */
  readonly noun: string;
  readDataset(path: string, options: ReadDatasetOptions): Promise<Dataset<Input>>;
  /** A labelled evaluation set against a trained model's classes. */
  readLabelled(path: string, classes: string[], options?: ReadDatasetOptions): Promise<{ items: LabelledItem<Input>[]; skipped: SkippedInput[] }>;
  openBackbone(reference: string, options: BackboneOptions): Promise<Backbone<Input, unknown>>;
  /** What `predict` accepts: a path or bytes for files, the text itself for text. */
  readInput(input: string | Uint8Array): Promise<Input>;
  /** Augmentation settings used when `augment` asks for views without settings. */
  readonly defaultAugmentation?: object;
}
