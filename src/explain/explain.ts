/**
 * `Classifier.explain`: one front door for every modality. Images get attribution maps
 * (Grad-CAM, integrated gradients, saliency/SmoothGrad, attention rollout, occlusion); one
 * explainer per classifier keeps its gradient graphs between calls.
 */
import { ImageBackbone } from '../backbones/image-backbone.js';
import type { Classifier } from '../classifier/classifier.js';
import { usageError } from '../util/errors.js';
import { IMAGE_METHODS, ImageExplainer, type ImageExplainOptions, type ImageExplanation, type ImageMethod } from './image-explainer.js';

export const EXPLAIN_METHODS = IMAGE_METHODS;
export type ExplainMethod = ImageMethod;

export interface ExplainOptions extends Omit<ImageExplainOptions, 'method'> {
  method?: ExplainMethod;
  /** The label to explain (default: the predicted one). */
  target?: string;
}

export type Explanation = ImageExplanation;

const imageExplainers = new WeakMap<Classifier, ImageExplainer>();

/** The explainer of an image classifier, built on first use and kept with the classifier. */
export function imageExplainerOf(classifier: Classifier): ImageExplainer {
  let explainer = imageExplainers.get(classifier);
  if (!explainer) {
    const backbone = classifier.backbone;
    if (!(backbone instanceof ImageBackbone)) throw usageError(`cannot explain a ${classifier.manifest.modality} model with image methods`);
    explainer = new ImageExplainer({
      backbone,
      head: classifier.head.state(),
      temperature: classifier.manifest.calibration?.temperature ?? 1,
      labels: classifier.labels,
      probabilities: (prepared) => classifier.probabilitiesOfPrepared(prepared),
    });
    imageExplainers.set(classifier, explainer);
  }
  return explainer;
}

/** Releases the explainer's onnxruntime sessions (Classifier.dispose calls it). */
export async function releaseExplainer(classifier: Classifier): Promise<void> {
  const explainer = imageExplainers.get(classifier);
  imageExplainers.delete(classifier);
  await explainer?.release();
}

export function targetIndex(labels: string[], target: string | undefined): number | undefined {
  if (target === undefined) return undefined;
  const index = labels.indexOf(target);
  if (index < 0) throw usageError(`unknown target label "${target}"; this model's labels: ${labels.join(', ')}`);
  return index;
}

export async function explainInput(classifier: Classifier, input: string | Uint8Array, options: ExplainOptions = {}): Promise<Explanation> {
  const target = targetIndex(classifier.labels, options.target);
  if (options.method && !(EXPLAIN_METHODS as readonly string[]).includes(options.method)) {
    throw usageError(`unknown explanation method "${options.method}"; methods: ${EXPLAIN_METHODS.join(', ')}`);
  }
  const read = await classifier.adapter.readInput(input);
  const source = typeof input === 'string' ? input : undefined;
  return imageExplainerOf(classifier).explain(read as Uint8Array, { ...options, target, source });
}
