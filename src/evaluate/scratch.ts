import type { TfidfSettings } from '../web/tfidf.js';
import type { FitOptions } from '../train/fit.js';
import type { Backbone, Modality } from '../backbones/backbone.js';
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import type { LabelledItem } from '../data/dataset.js';
import { prepareImage } from '../data/image-decode.js';
import { usageError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';

/**
 * A from-scratch baseline for `compare`: features that owe nothing to pre-training, fed to the same
 * head as the pre-trained backbone's. It is built from the training inputs only (a TF-IDF
 * vocabulary is learnt there; raw pixels need nothing), never from evaluation data, and returns an
 * ordinary Backbone, so extraction, caching and skipped-input handling are shared.
 *
 * Baselines per task: images, raw downsampled pixels; text, TF-IDF (the text task's feature map);
 * audio, log-mel statistics (scratch-audio.ts).
 * A baseline that trains end to end (a small CNN) does not fit this shape; it joins `compare` as a
 * `Contender` instead (see compare.ts).
 */
export interface ScratchBaseline<Input extends Uint8Array | string = Uint8Array | string> {
  /** Short name for tables and charts. */
  readonly name: string;
  /** What the features are, for people. */
  readonly description: string;
  build(train: LabelledItem<Input>[]): Promise<Backbone<Input, unknown>>;
  /** Head settings its features need, beneath the user's (TF-IDF: unstandardised sparse rows). */
  fitDefaults?(trainRows: number, numClasses: number, head: NonNullable<FitOptions['head']>): Partial<FitOptions>;
}

/** Side of the downsampled square: CIFAR's 32×32, where raw-pixel baselines are usually measured. */
export const RAW_PIXEL_SIZE = 32;

/**
 * Images from scratch: the centred square, downsampled to size×size RGB, scaled to [0, 1]; the head
 * standardises every pixel over the training set, as it does any features.
 */
export function rawPixelBaseline(size = RAW_PIXEL_SIZE): ScratchBaseline<Uint8Array> {
  const preprocessing: ImagePreprocessing = {
    kind: 'image',
    width: size,
    height: size,
    resize: 'center-square-crop',
    interpolation: 'bilinear',
    rescale: 1 / 255,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    layout: 'NHWC',
  };
  const dim = size * size * 3;
  const backbone: Backbone<Uint8Array, Float32Array> = {
    reference: { id: `scratch:pixels-${size}`, sha256: sha256(`headstart raw pixels ${size}x${size} v1`), modality: 'image', featureDim: dim, featureOutput: 'pixels' },
    preprocessing,
    batchSize: 64,
    prepare: (input) => prepareImage(input, preprocessing, undefined),
    async forward(batch) {
      const out = new Float32Array(batch.length * dim);
      batch.forEach((pixels, i) => out.set(pixels, i * dim));
      return out;
    },
    async dispose() {},
  };
  return {
    name: 'raw pixels (scratch)',
    description: `${size}×${size} RGB pixels of the centred square, standardised; no pre-training`,
    build: async () => backbone,
  };
}

/**
 * Text from scratch: TF-IDF over word and character n-grams (the text task's own feature map),
 * with vocabulary and idf fitted on the training texts only.
 */
export async function tfidfBaseline(settings: Partial<TfidfSettings> = {}): Promise<ScratchBaseline<string>> {
  const { TfidfBackbone, TfidfFeatureMap } = await import('../backbones/text-tfidf.js');
  const { tfidfFitDefaults } = await import('../classifier/text-classifier.js');
  return {
    name: 'TF-IDF (scratch)',
    description: 'TF-IDF of word and character n-grams, vocabulary and idf from the training texts only; no pre-training',
    async build(train) {
      const texts = await Promise.all(train.map((item) => item.load().catch(() => undefined)));
      return new TfidfBackbone(TfidfFeatureMap.fit(texts.filter((text): text is string => typeof text === 'string'), settings));
    },
    // The text task's own TF-IDF head for the linear head; other heads take the rows unstandardised.
    fitDefaults: (trainRows, numClasses, head) => (head === 'linear' ? tfidfFitDefaults(trainRows, numClasses) : { standardize: false }),
  };
}

/** The scratch baseline `compare` uses for a task (imported on use, as modality adapters are). */
export async function scratchBaselineFor(modality: Modality, options: { tfidf?: Partial<TfidfSettings> } = {}): Promise<ScratchBaseline> {
  switch (modality) {
    case 'image':
      return rawPixelBaseline() as ScratchBaseline;
    case 'text':
      return (await tfidfBaseline(options.tfidf)) as ScratchBaseline;
    case 'audio':
      return (await import('./scratch-audio.js')).logMelStatisticsBaseline() as ScratchBaseline;
    default:
      throw usageError(`compare has no from-scratch baseline for task "${String(modality)}"`);
  }
}
