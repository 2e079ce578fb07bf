/**
 * Explanations of an exported ONNX file (`headstart export`), which carries no gradients headstart
 * can rely on — possibly int8 weights — but predicts: occlusion over its uint8 pixels, windows
 * filled with mid-grey, exactly as the library's occlusion fills them.
 */
import type { ImagePreprocessing } from '../backbones/image-preprocessing.js';
import { prepareImagePixels, readImageHeader } from '../data/image-decode.js';
import { ExportedModel } from '../export/exported-model.js';
import { usageError } from '../util/errors.js';
import type { ImageExplainOptions, ImageExplanation } from './image-explainer.js';
import { occlusionOnPixels } from './image-explainer.js';
import { toImageGrid } from './image-map.js';
import { argmax, normalised } from './pixel-grid.js';

export async function explainExportedImage(model: ExportedModel, bytes: Uint8Array, options: ImageExplainOptions & { target?: string; source?: string } = {}): Promise<ImageExplanation> {
  const input = model.metadata.input;
  if (input.kind !== 'image' || input.resize === 'letterbox' || model.metadata.output.kind !== 'probabilities') {
    throw usageError(`explaining an exported ${model.metadata.modality} model is not supported: only image classifier exports (occlusion over pixels)`);
  }
  if (options.method && options.method !== 'occlusion') throw usageError(`an exported ONNX file is explained by occlusion only (it carries no gradient graph headstart can trust), not ${options.method}`);
  const labels = model.labels;
  let target: number | undefined;
  if (options.target !== undefined) {
    target = labels.indexOf(options.target);
    if (target < 0) throw usageError(`unknown target label "${options.target}"; this model's labels: ${labels.join(', ')}`);
  }
  const geometry: ImagePreprocessing = {
    kind: 'image',
    width: input.width,
    height: input.height,
    resize: input.resize,
    ...(input.shortestEdge !== undefined ? { shortestEdge: input.shortestEdge } : {}),
    interpolation: input.interpolation,
    rescale: 1,
    mean: [0, 0, 0],
    std: [1, 1, 1],
    layout: 'NHWC',
  };
  const pixels = await prepareImagePixels(bytes, geometry, options.source);
  // Pixels as floats so the shared occlusion can fill windows; turned back into bytes for the file.
  const asFloat = Float32Array.from(pixels);
  const probabilitiesOf = (batch: Float32Array[]) => model.probabilities(batch.map((image) => Uint8Array.from(image)));
  const probabilities = await probabilitiesOf([asFloat]);
  target ??= probabilities.indexOf(Math.max(...probabilities));
  const fill = new Float32Array(asFloat.length).fill(128);
  const grid = await occlusionOnPixels({ values: asFloat, width: input.width, height: input.height, layout: 'NHWC' }, fill, probabilities[target]!, target, options, probabilitiesOf, labels.length);
  const header = await readImageHeader(bytes);
  const [width, height] = header.orientation >= 5 ? [header.height, header.width] : [header.width, header.height];
  const map = normalised(toImageGrid(grid, width, height, geometry));
  return { modality: 'image', method: 'occlusion', target, label: labels[target]!, probability: probabilities[target]!, map, peak: argmax(map), raw: grid };
}
