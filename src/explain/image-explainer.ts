/**
 * Explanations of an image classifier's predictions: the attribution model and its gradient
 * graphs are built once per classifier (on first use) and reused for every input.
 */
import type { ImageBackbone } from '../backbones/image-backbone.js';
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import { prepareImage, readImageHeader, toTensor } from '../data/image-decode.js';
import type { HeadState } from '../heads/head.js';
import { usageError } from '../util/errors.js';
import { attentionRollout } from './attention-rollout.js';
import { buildAttributionModel, type AttributionModel } from './attribution-model.js';
import { gradCam } from './grad-cam.js';
import { GradientRunner, type GradientTarget } from './gradient-runner.js';
import { toImageGrid } from './image-map.js';
import { integratedGradients, type Baseline, type Completeness, type IntegrationSteps } from './integrated-gradients.js';
import { occlusion } from './occlusion.js';
import { argmax, normalised, resizeGrid, type Grid } from './pixel-grid.js';
import { saliency, type PixelTensor } from './saliency.js';

export const IMAGE_METHODS = ['gradcam', 'integrated-gradients', 'saliency', 'occlusion', 'attention-rollout'] as const;
export type ImageMethod = (typeof IMAGE_METHODS)[number];

export interface ImageExplainOptions {
  method?: ImageMethod;
  /** Integrated gradients: quadrature steps (default 32; `'auto'`: doubled until completeness is within 1 %, at most `maxSteps`, default 1024) and baseline (default black). */
  steps?: IntegrationSteps;
  maxSteps?: number;
  baseline?: Baseline;
  /** Saliency: SmoothGrad's noisy copies (default 0: plain gradients) and noise level. */
  smoothGrad?: number;
  noise?: number;
  /** Occlusion: window side and stride in input pixels (default 1/7 and 1/14 of the input's side). */
  window?: number;
  stride?: number;
  seed?: number;
}

export interface ImageExplanation {
  modality: 'image';
  method: ImageMethod;
  /** Class index explained, its label and calibrated probability. */
  target: number;
  label: string;
  probability: number;
  /** The map in the image's own pixel grid (EXIF-oriented), values in [0, 1]. */
  map: Grid;
  /** Where the map peaks, in the image's pixels. */
  peak: { x: number; y: number };
  /** The method's raw map on the backbone's input grid (or its feature grid for Grad-CAM and rollout). */
  raw: Grid;
  /** Integrated gradients: Σ attributions against f(input) − f(baseline) of the target logit. */
  completeness?: Completeness;
}

/** What the explainer needs of a classifier: its backbone, head, labels and calibrated probabilities. */
export interface ExplainableImageModel {
  backbone: ImageBackbone;
  head: HeadState;
  temperature: number;
  labels: string[];
  /** Calibrated probabilities (n × classes) for prepared input tensors. */
  probabilities(prepared: Float32Array[]): Promise<Float32Array>;
}

export class ImageExplainer {
  private attribution?: Promise<AttributionModel>;
  private readonly runners = new Map<GradientTarget, Promise<GradientRunner>>();

  constructor(readonly model: ExplainableImageModel, attribution?: AttributionModel) {
    if (attribution) this.attribution = Promise.resolve(attribution);
  }

  get preprocessing(): ImagePreprocessing {
    return this.model.backbone.preprocessing;
  }

  attributionModel(): Promise<AttributionModel> {
    this.attribution ??= buildAttributionModel(this.model.backbone, this.model.head, this.model.temperature);
    return this.attribution;
  }

  runner(kind: GradientTarget): Promise<GradientRunner> {
    let runner = this.runners.get(kind);
    if (!runner) {
      runner = this.attributionModel().then((model) => GradientRunner.create(model, kind));
      this.runners.set(kind, runner);
    }
    return runner;
  }

  /** Grad-CAM for CNNs, attention rollout for ViT-style encoders, integrated gradients otherwise. */
  async defaultMethod(): Promise<ImageMethod> {
    if (this.model.head.type === 'knn') return 'occlusion';
    const model = await this.attributionModel();
    return model.featureMap ? 'gradcam' : model.attention ? 'attention-rollout' : 'integrated-gradients';
  }

  /** Explains `bytes` (an image file) for class `target` (default: the predicted one). */
  async explain(bytes: Uint8Array, options: ImageExplainOptions & { target?: number; source?: string } = {}): Promise<ImageExplanation> {
    const pre = this.preprocessing;
    const prepared = await prepareImage(bytes, pre, options.source);
    const probabilities = await this.model.probabilities([prepared]);
    const target = options.target ?? indexOfMax(probabilities);
    const method = options.method ?? (await this.defaultMethod());
    if (method !== 'occlusion' && this.model.head.type === 'knn') {
      throw usageError(`a k-NN head has no gradient (its vote is piecewise constant): explain it with --method occlusion, not ${method}`);
    }
    const input: PixelTensor = { values: prepared, width: pre.width, height: pre.height, layout: pre.layout };
    const result = await this.rawMap(method, input, target, probabilities[target]!, options);
    const header = await readImageHeader(bytes);
    const [width, height] = header.orientation >= 5 ? [header.height, header.width] : [header.width, header.height];
    const onInput = result.grid.width === pre.width && result.grid.height === pre.height ? result.grid : resizeGrid(result.grid, pre.width, pre.height);
    const map = normalised(toImageGrid(onInput, width, height, pre));
    return {
      modality: 'image',
      method,
      target,
      label: this.model.labels[target]!,
      probability: probabilities[target]!,
      map,
      peak: argmax(map),
      raw: result.grid,
      ...(result.completeness ? { completeness: result.completeness } : {}),
    };
  }

  private async rawMap(method: ImageMethod, input: PixelTensor, target: number, probability: number, options: ImageExplainOptions): Promise<{ grid: Grid; completeness?: ImageExplanation['completeness'] }> {
    const pre = this.preprocessing;
    switch (method) {
      case 'saliency':
        return saliency(await this.runner('input'), input, target, { samples: options.smoothGrad ?? 0, noise: options.noise, seed: options.seed });
      case 'integrated-gradients': {
        const blackValues = [0, 1, 2].map((c) => -pre.mean[c]! / pre.std[c]!) as [number, number, number];
        return integratedGradients(await this.runner('input'), input, target, { steps: options.steps, maxSteps: options.maxSteps, baseline: options.baseline, blackValues });
      }
      case 'gradcam': {
        const model = await this.attributionModel();
        if (!model.featureMap) throw usageError('this backbone has no spatial feature map (a token-sequence encoder): use --method attention-rollout or integrated-gradients');
        return gradCam(await this.runner('feature-map'), model.featureMap, input.values, target);
      }
      case 'attention-rollout': {
        const model = await this.attributionModel();
        if (!model.attention) throw usageError('this backbone has no attention layers to roll out: use --method gradcam or integrated-gradients');
        const { attention } = await (await this.runner('none')).run(input.values, [target]);
        return { grid: attentionRollout(model.attention, attention!) };
      }
      case 'occlusion': {
        const gray = toTensor(new Uint8Array(pre.width * pre.height * 3).fill(128), pre);
        const grid = await occlusionOnPixels(input, gray, probability, target, options, (batch) => this.model.probabilities(batch), this.model.labels.length);
        return { grid };
      }
    }
  }

  async release(): Promise<void> {
    for (const runner of this.runners.values()) await (await runner).release();
    this.runners.clear();
  }
}

/** Occlusion on a pixel tensor: windows filled from `fill` (same layout), scored by `probabilities`. */
export async function occlusionOnPixels(
  input: PixelTensor,
  fill: Float32Array,
  probability: number,
  target: number,
  options: ImageExplainOptions,
  probabilities: (batch: Float32Array[]) => Promise<Float32Array>,
  classes: number,
): Promise<Grid> {
  const window = options.window ?? Math.max(2, Math.round(Math.min(input.width, input.height) / 7));
  const stride = options.stride ?? Math.max(1, Math.round(window / 2));
  const { width, height, layout } = input;
  const plane = width * height;
  const values = await occlusion([height, width], { size: [window, window], stride: [stride, stride] }, probability, async (windows) => {
    const batch = windows.map(({ start, end }) => {
      const copy = input.values.slice();
      for (let y = start[0]!; y < end[0]!; y++) {
        for (let x = start[1]!; x < end[1]!; x++) {
          const i = y * width + x;
          for (let c = 0; c < 3; c++) {
            const at = layout === 'NCHW' ? c * plane + i : i * 3 + c;
            copy[at] = fill[at]!;
          }
        }
      }
      return copy;
    });
    const p = await probabilities(batch);
    return batch.map((_, i) => p[i * classes + target]!);
  });
  return { width, height, values };
}

function indexOfMax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
