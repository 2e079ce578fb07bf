/**
 * `Classifier.explain`: one front door for every modality. Images get attribution maps
 * (Grad-CAM, integrated gradients, saliency/SmoothGrad, attention rollout, occlusion; one
 * explainer per classifier keeps its gradient graphs between calls), texts a score per word
 * (text-explainer.ts), audio clips a score per time window (audio-explainer.ts).
 */
import { ImageBackbone } from '../backbones/image-backbone.js';
import type { Classifier } from '../classifier/classifier.js';
import { usageError } from '../util/errors.js';
import { explainAudio, type AudioExplanation } from './audio-explainer.js';
import { IMAGE_METHODS, ImageExplainer, type ImageExplainOptions, type ImageExplanation, type ImageMethod } from './image-explainer.js';
import { explainText, type TextExplanation, type TextMethod } from './text-explainer.js';
import { TextAttribution } from './text-integrated-gradients.js';
import { TransformerTextBackbone } from '../backbones/text-transformer.js';

export const TEXT_METHODS = ['word-contributions', 'integrated-gradients', 'leave-one-out'] as const satisfies readonly TextMethod[];
export const EXPLAIN_METHODS = [...IMAGE_METHODS, 'word-contributions', 'leave-one-out'] as const;
export type ExplainMethod = ImageMethod | TextMethod;

const METHODS_OF = { image: IMAGE_METHODS, text: TEXT_METHODS, audio: ['occlusion'] } as const;

export interface ExplainOptions extends Omit<ImageExplainOptions, 'method'> {
  /** Images: any image method; text: word-contributions (word vectors + linear head) or leave-one-out; audio: occlusion. */
  method?: ExplainMethod;
  /** The label to explain (default: the predicted one). */
  target?: string;
  /** Audio occlusion: window length and stride in seconds (default 0.1 and 0.05). */
  seconds?: { window?: number; stride?: number };
}

export type Explanation = ImageExplanation | TextExplanation | AudioExplanation;

const imageExplainers = new WeakMap<Classifier, ImageExplainer>();
const textAttributions = new WeakMap<Classifier, Promise<TextAttribution>>();

/** The integrated-gradients graph of a transformer text classifier, built on first use and kept with it. */
function textAttributionOf(classifier: Classifier): Promise<TextAttribution> {
  let attribution = textAttributions.get(classifier);
  if (!attribution) {
    attribution = TextAttribution.create(classifier.backbone as TransformerTextBackbone, classifier.head.state(), classifier.manifest.calibration?.temperature ?? 1);
    textAttributions.set(classifier, attribution);
  }
  return attribution;
}

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
  const attribution = textAttributions.get(classifier);
  textAttributions.delete(classifier);
  await attribution?.then((a) => a.release(), () => undefined);
}

export function targetIndex(labels: string[], target: string | undefined): number | undefined {
  if (target === undefined) return undefined;
  const index = labels.indexOf(target);
  if (index < 0) throw usageError(`unknown target label "${target}"; this model's labels: ${labels.join(', ')}`);
  return index;
}

export async function explainInput(classifier: Classifier, input: string | Uint8Array, options: ExplainOptions = {}): Promise<Explanation> {
  const target = targetIndex(classifier.labels, options.target);
  const modality = classifier.manifest.modality;
  const methods: readonly string[] = METHODS_OF[modality];
  if (options.method && !methods.includes(options.method)) {
    throw usageError(`"${options.method}" does not explain ${modality} models; methods for them: ${methods.join(', ')}`);
  }
  const read = await classifier.adapter.readInput(input);
  if (modality === 'text') {
    const model = {
      backbone: classifier.backbone,
      head: classifier.head,
      temperature: classifier.manifest.calibration?.temperature ?? 1,
      labels: classifier.labels,
      probabilities: (texts: string[]) => classifier.predictProbabilities(texts),
      attribution: classifier.backbone instanceof TransformerTextBackbone ? () => textAttributionOf(classifier) : undefined,
    };
    // Text integrated gradients reach 1 % at 32 steps on the encoders tried (bert-tiny: 0.0002 %); 'auto' is for images.
    if (options.steps === 'auto') throw usageError('--steps auto covers image models; give text models a number of steps (32 is within 0.001 % on bert-tiny)');
    return explainText(model, read as string, { target, method: options.method as TextMethod | undefined, steps: options.steps });
  }
  if (modality === 'audio') {
    const sampleRate = (classifier.backbone.preprocessing as { sampleRate?: number }).sampleRate;
    if (!sampleRate) throw usageError(`the audio backbone ${classifier.backbone.reference.id} names no sample rate`);
    const model = { sampleRate, labels: classifier.labels, probabilities: (clips: Uint8Array[]) => classifier.predictProbabilities(clips) };
    return explainAudio(model, read as Uint8Array, { target, window: options.seconds?.window, stride: options.seconds?.stride });
  }
  const source = typeof input === 'string' ? input : undefined;
  return imageExplainerOf(classifier).explain(read as Uint8Array, { ...options, method: options.method as ImageMethod | undefined, target, source });
}
