import { DEFAULT_TEXT_BACKBONE, openTextBackbone, type TextBackboneOptions } from '../backbones/text-resolve.js';
import { decodeUtf8, readLabelledTexts, readTextDataset, type TextDatasetOptions } from '../data/text-dataset.js';
import type { ModalityAdapter } from './modality.js';

/** Text: datasets from CSV/TSV/JSONL/class folders, word-vector, transformer and TF-IDF backbones. */
export const textModality: ModalityAdapter<string> = {
  modality: 'text',
  defaultBackbone: DEFAULT_TEXT_BACKBONE,
  noun: 'texts',
  readDataset: (path, options) => readTextDataset(path, options as TextDatasetOptions),
  readLabelled: (path, classes, options) => readLabelledTexts(path, classes, options as TextDatasetOptions | undefined),
  openBackbone: (reference, options) => openTextBackbone(reference, options as TextBackboneOptions),
  // The input is the text itself; bytes are decoded as UTF-8.
  readInput: async (input) => (typeof input === 'string' ? input : decodeUtf8(input, 'input')),
};
