import { DEFAULT_AUDIO_BACKBONE, openAudioBackbone, type AudioPreprocessingOverrides } from '../backbones/audio-resolve.js';
import { DEFAULT_AUDIO_AUGMENTATION } from '../data/audio-decode.js';
import { readAudioFolder, readLabelledAudio, type AudioFolderOptions } from '../data/audio-folder.js';
import { readFileInput } from './image-modality.js';
import type { ModalityAdapter } from './modality.js';

/** Audio: WAV files in class folders; the raw input is the file's bytes, so the feature cache keys on content. */
export const audioModality: ModalityAdapter<Uint8Array> = {
  modality: 'audio',
  defaultBackbone: DEFAULT_AUDIO_BACKBONE,
  noun: 'clips',
  readDataset: (path, options) => readAudioFolder(path, options as AudioFolderOptions),
  readLabelled: (path, classes) => readLabelledAudio(path, classes),
  openBackbone: (reference, options) =>
    openAudioBackbone(reference, { ...options, preprocessing: options.preprocessing as AudioPreprocessingOverrides | undefined }),
  readInput: readFileInput,
  defaultAugmentation: DEFAULT_AUDIO_AUGMENTATION,
};
