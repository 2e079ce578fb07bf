import { readFile } from 'node:fs/promises';
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import { DEFAULT_IMAGE_BACKBONE, openImageBackbone } from '../backbones/resolve.js';
import { DEFAULT_IMAGE_AUGMENTATION } from '../data/image-decode.js';
import { readImageFolder, readLabelledImages } from '../data/image-folder.js';
import { dataError, messageOf } from '../util/errors.js';
import type { ModalityAdapter } from './modality.js';

export const imageModality: ModalityAdapter<Uint8Array> = {
  modality: 'image',
  defaultBackbone: DEFAULT_IMAGE_BACKBONE,
  noun: 'images',
  readDataset: (path, options) => readImageFolder(path, options),
  readLabelled: (path, classes) => readLabelledImages(path, classes),
  openBackbone: (reference, options) =>
    openImageBackbone(reference, { ...options, preprocessing: options.preprocessing as Partial<ImagePreprocessing> | undefined }),
  readInput: readFileInput,
  defaultAugmentation: DEFAULT_IMAGE_AUGMENTATION,
};

/** A path is read from disk (errors name it); bytes are taken as they are. */
export async function readFileInput(input: string | Uint8Array): Promise<Uint8Array> {
  if (typeof input !== 'string') return input;
  try {
    return await readFile(input);
  } catch (error) {
    throw dataError(`cannot read: ${messageOf(error)}`, input, error);
  }
}
