import type { Dataset, LabelledItem, SkippedInput, SplitOptions } from './dataset.js';
import { readFileDataset, readLabelledFiles } from './class-folder.js';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff']);
/** How images are named in messages ("not one of the image files (.txt)"). */
const IMAGES = { extensions: IMAGE_EXTENSIONS, noun: 'image files' } as const;

/**
 * Reads an ImageFolder tree: `root/<class>/*.jpg`, or `root/{train,val[,test]}/<class>/*.jpg`.
 * Without a validation folder, a stratified seeded share of each class is held out. The tree walk
 * and its checks are class-folder.ts's, shared with audio.
 */
export function readImageFolder(root: string, options: SplitOptions = {}): Promise<Dataset<Uint8Array>> {
  return readFileDataset(root, { ...options, ...IMAGES });
}

/**
 * Reads a labelled folder for evaluation against known classes (`root/<class>/*`); a class the
 * model does not know is an error, a class with no images is allowed.
 */
export function readLabelledImages(root: string, classes: string[]): Promise<{ items: LabelledItem<Uint8Array>[]; skipped: SkippedInput[] }> {
  return readLabelledFiles(root, classes, IMAGES);
}

