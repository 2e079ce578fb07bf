import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImagePreprocessing } from './image-preprocessing.js';
import type { ImageGraphSpec } from './image-backbone.js';
import { modelError, messageOf } from '../util/errors.js';
import { sha256File } from '../util/hash.js';
import { onnxFileFor, type OnnxDtype } from '../hub/files.js';

export type { OnnxDtype };

export async function readJsonFile<T = any>(path: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw modelError(`cannot read: ${messageOf(error)}`, path, error);
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw modelError(`not valid JSON: ${messageOf(error)}`, path, error);
  }
}

export async function isHfOnnxFolder(folder: string): Promise<boolean> {
  const [config, model] = await Promise.all([
    stat(join(folder, 'config.json')).catch(() => undefined),
    stat(join(folder, 'onnx')).catch(() => undefined),
  ]);
  return Boolean(config?.isFile() && model?.isDirectory());
}

/** A vision model in Hugging Face ONNX layout: `config.json`, `preprocessor_config.json`, `onnx/model*.onnx`. */
export async function readHfImageModel(folder: string, id: string, dtype: OnnxDtype = 'fp32', component = 'model'): Promise<ImageGraphSpec> {
  const file = onnxFileFor(dtype, component);
  const modelPath = join(folder, file);
  if (!(await stat(modelPath).catch(() => undefined))?.isFile()) {
    throw modelError(`no ${file} (dtype ${dtype}) in this model folder`, folder);
  }
  const processorPath = join(folder, 'preprocessor_config.json');
  if (!(await stat(processorPath).catch(() => undefined))) {
    throw modelError('no preprocessor_config.json: cannot tell how images must be prepared for this model', folder);
  }
  const preprocessing = imagePreprocessingFromHf(await readJsonFile(processorPath), processorPath);
  return {
    id,
    model: modelPath,
    origin: modelPath,
    sha256: await sha256File(modelPath),
    preprocessing,
  };
}

const RESAMPLE: Record<number, ImagePreprocessing['interpolation']> = { 0: 'nearest', 1: 'bicubic', 2: 'bilinear', 3: 'bicubic', 4: 'bilinear', 5: 'bicubic' };

/**
 * Translates a Hugging Face image processor config into our preprocessing, covering the processors
 * vision backbones use: ViT/DeiT/BEiT/DINOv2/CLIP (`size`, `crop_size`), ConvNeXt (`crop_pct`),
 * MobileNet, ResNet.
 */
export function imagePreprocessingFromHf(config: any, origin: string): ImagePreprocessing {
  const size = config.size ?? {};
  const crop = config.crop_size;
  const cropSize = typeof crop === 'number' ? { height: crop, width: crop } : crop;
  const interpolation = RESAMPLE[config.resample ?? 2] ?? 'bilinear';
  const mean = (config.do_normalize === false ? [0, 0, 0] : config.image_mean ?? [0.5, 0.5, 0.5]) as number[];
  const std = (config.do_normalize === false ? [1, 1, 1] : config.image_std ?? [0.5, 0.5, 0.5]) as number[];
  const rescale = config.do_rescale === false ? 1 : config.rescale_factor ?? 1 / 255;
  const common = {
    kind: 'image' as const,
    interpolation,
    rescale,
    mean: triple(mean, origin),
    std: triple(std, origin),
    layout: 'NCHW' as const,
  };
  const shortest = typeof size === 'number' ? size : size.shortest_edge;
  if (typeof size === 'object' && size.height && size.width && !(config.do_center_crop && cropSize)) {
    return { ...common, resize: 'stretch', width: size.width, height: size.height };
  }
  if (shortest && config.crop_pct && config.image_processor_type === 'ConvNextImageProcessor') {
    // ConvNeXt: below 384 px, resize to shortest/crop_pct and crop back to `shortest`.
    if (shortest >= 384) return { ...common, resize: 'stretch', width: shortest, height: shortest };
    return { ...common, resize: 'shortest-edge-crop', shortestEdge: Math.floor(shortest / config.crop_pct), width: shortest, height: shortest };
  }
  if (shortest && config.do_center_crop !== false && cropSize) {
    return { ...common, resize: 'shortest-edge-crop', shortestEdge: shortest, width: cropSize.width, height: cropSize.height };
  }
  if (shortest) return { ...common, resize: 'shortest-edge-crop', shortestEdge: shortest, width: shortest, height: shortest };
  if (cropSize) return { ...common, resize: 'stretch', width: cropSize.width, height: cropSize.height };
  throw modelError('cannot tell the input size: no "size" or "crop_size"', origin);
}

function triple(values: number[], origin: string): [number, number, number] {
  if (!Array.isArray(values) || values.length !== 3 || values.some((v) => typeof v !== 'number')) {
    throw modelError(`expected three per-channel numbers for image_mean/image_std, got ${JSON.stringify(values)}`, origin);
  }
  return [values[0]!, values[1]!, values[2]!];
}
