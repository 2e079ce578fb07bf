import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import type { OpenBackboneOptions } from '../backbones/resolve.js';
import type { ImageAugmentation } from '../data/image-decode.js';
import { loadModelFolder } from '../artifacts/model-folder.js';
import type { Dataset } from '../data/dataset.js';
import type { ExplainOptions } from '../explain/explain.js';
import type { ImageExplanation } from '../explain/image-explainer.js';
import type { Reporter } from '../util/progress.js';
import { Classifier, loadWith, trainWith, type EvaluationResult, type LoadOptions, type TrainOptions } from './classifier.js';
import { imageModality } from './image-modality.js';

export type ImageInput = string | Uint8Array;

export interface ImageTrainOptions extends Omit<TrainOptions<Uint8Array>, 'task' | 'augment' | 'data'> {
  /** An ImageFolder path (`<root>/<class>/*.jpg` or `<root>/{train,val[,test]}/<class>/`), or a dataset. */
  data: string | Dataset<Uint8Array>;
  augment?: number | { views: number; settings?: Partial<ImageAugmentation> };
  /** Shorthands for `backboneOptions`. */
  preprocessing?: Partial<ImagePreprocessing>;
  featureOutput?: string;
  dtype?: OpenBackboneOptions['dtype'];
  hub?: OpenBackboneOptions['hub'];
}

/**
 * An image classifier: a vision backbone's features and a small trained head.
 *
 *   const clf = await ImageClassifier.train({ data: 'photos/' });
 *   clf.metrics.validation.accuracy;
 *   await clf.save('model/');
 *   const again = await ImageClassifier.load('model/');
 *   await again.predict('cat.jpg');
 */
export class ImageClassifier extends Classifier<Uint8Array> {
  static override async train(options: ImageTrainOptions): Promise<ImageClassifier> {
    const { preprocessing, featureOutput, dtype, hub, ...rest } = options;
    // Shorthands given win; ones not given must not blank what `backboneOptions` says.
    const given = Object.entries({ preprocessing, featureOutput, dtype, hub }).filter(([, value]) => value !== undefined);
    const backboneOptions = { ...rest.backboneOptions, ...Object.fromEntries(given) };
    return trainWith(imageModality, { ...rest, backboneOptions }, (...args) => new ImageClassifier(...args));
  }

  static override async load(dir: string, options: LoadOptions = {}): Promise<ImageClassifier> {
    const { manifest, head } = await loadModelFolder(dir);
    return loadWith(imageModality, dir, manifest, head, options, (...args) => new ImageClassifier(...args));
  }

  /** Top-k labels for several images (paths or bytes). */
  predictImages(images: ImageInput[], options: { topK?: number } = {}) {
    return this.predictMany(images, options);
  }

  /** A heat map of why the model predicts what it does for one image (see `Classifier.explain`). */
  override async explain(input: ImageInput, options: ExplainOptions = {}): Promise<ImageExplanation> {
    return (await super.explain(input, options)) as ImageExplanation;
  }

  /** Re-evaluates on a labelled folder (`<folder>/<class>/*`) with this model's classes. */
  evaluateFolder(folder: string, options: { reporter?: Reporter } = {}): Promise<EvaluationResult> {
    return this.evaluatePath(folder, options);
  }
}
