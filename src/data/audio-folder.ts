import type { Dataset, LabelledItem, SkippedInput, SplitName, SplitOptions } from './dataset.js';
import { readFileDataset, readLabelledFiles } from './class-folder.js';
import { usageError } from '../util/errors.js';

export const AUDIO_EXTENSIONS: ReadonlySet<string> = new Set(['.wav', '.wave']);
const NOUN = 'WAV files';

export interface AudioFolderOptions extends SplitOptions {
  /** The class of a file from its path relative to the root; default: its class folder. */
  labelOf?: (path: string) => string | undefined;
  /** The split of a file from its path relative to the root (undefined leaves it out). */
  splitOf?: (path: string) => SplitName | undefined;
}

/**
 * Reads WAV files with labels: `root/<class>/*.wav`, `root/{train,val[,test]}/<class>/*.wav`, or any
 * layout with `labelOf` / `splitOf` computing label and split from the path. The FSDD official split,
 * for one:
 *
 *   readAudioFolder('fsdd/recordings', {
 *     labelOf: (path) => path.split('_')[0],
 *     splitOf: (path) => (Number(path.split('_')[2]!.replace('.wav', '')) < 5 ? 'test' : 'train'),
 *   });
 */
export function readAudioFolder(root: string, options: AudioFolderOptions = {}): Promise<Dataset<Uint8Array>> {
  for (const name of ['labelOf', 'splitOf'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw usageError(`${name} must be a function of the file's path`);
  }
  return readFileDataset(root, { ...options, extensions: AUDIO_EXTENSIONS, noun: NOUN });
}

/** A labelled folder (`root/<class>/*.wav`) for evaluating a trained model with its classes. */
export function readLabelledAudio(root: string, classes: string[]): Promise<{ items: LabelledItem<Uint8Array>[]; skipped: SkippedInput[] }> {
  return readLabelledFiles(root, classes, { extensions: AUDIO_EXTENSIONS, noun: NOUN });
}
