import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve as resolvePath } from 'node:path';
import type { ImagePreprocessing } from './image-preprocessing.js';
import { ImageBackbone, type ImageGraphSpec } from './image-backbone.js';
import { isHfOnnxFolder, readHfImageModel, readJsonFile, type OnnxDtype } from './hf-folder.js';
import { convertTfjsToOnnx, NSFWJS_FEATURE_OUTPUTS, nsfwjsVersion, readNsfwjsModel, readTfjsModelFolder, type TfjsModelSource } from './tfjs/index.js';
import { cacheEntryGuard, writeDirAtomic } from '../util/atomic.js';
import { catalogEntryForRepo } from '../hub/catalog.js';
import { pullModel, type PullOptions } from '../hub/pull.js';
import { parseModelReference } from '../hub/reference.js';
import { fetchTfjsModel, isTfjsUrl, tfjsModelJsonUrl } from '../hub/tfjs-url.js';
import { modelError, usageError } from '../util/errors.js';
import { hashJson, sha256 } from '../util/hash.js';
import { silentReporter, type Reporter } from '../util/progress.js';

/** Bumped whenever the converter's output for the same source changes, so cached conversions are redone. */
const CONVERTER_VERSION = 2;

/**
 * Image backbones that install with headstart itself (from the npm package `nsfwjs`, MIT), so the
 * main job works offline. They were fine-tuned for nudity detection, which blunts their general
 * features; α=1.4 keeps the most (see README). Users online get better ones from the hub.
 */
export const BUILTIN_IMAGE_BACKBONES = {
  'mobilenet-v2-1.4': {
    nsfwjsModel: 'mobilenet_v2_mid',
    description: 'MobileNetV2 α=1.4, 224 px, 1792-d features (TF-Hub graph model, bundled in nsfwjs)',
    size: 224,
  },
  'mobilenet-v2-1.0': {
    nsfwjsModel: 'mobilenet_v2',
    description: 'MobileNetV2 α=1.0, 224 px, 1280-d features (Keras layers model, uint8, bundled in nsfwjs)',
    size: 224,
  },
  'inception-v3': {
    nsfwjsModel: 'inception_v3',
    description: 'InceptionV3, 299 px, 2048-d features (Keras layers model, bundled in nsfwjs)',
    size: 299,
  },
} as const satisfies Record<string, { nsfwjsModel: keyof typeof NSFWJS_FEATURE_OUTPUTS; description: string; size: number }>;
export type BuiltinImageBackbone = keyof typeof BUILTIN_IMAGE_BACKBONES;
export const DEFAULT_IMAGE_BACKBONE = 'builtin:mobilenet-v2-1.4';

export interface OpenBackboneOptions {
  cacheDir: string;
  reporter?: Reporter;
  /** Overrides parts of the preprocessing the source implies (needed for bare ONNX / TF.js graphs). */
  preprocessing?: Partial<ImagePreprocessing>;
  /** The output (ONNX output, Keras layer or TF node) to take features from. */
  featureOutput?: string;
  dtype?: OnnxDtype;
  threads?: number;
  /** How `hf:` references are pulled: token, offline mode, Hugging Face cache folder, endpoint. */
  hub?: Pick<PullOptions, 'token' | 'offline' | 'cacheDir' | 'endpoint'>;
}

/**
 * Opens an image backbone from any reference a user may write:
 * `builtin:<name>`, `hf:<owner>/<repo>`, `tfjs:<model.json, folder or http(s) URL>`, a Hugging Face ONNX folder, a TF.js folder or
 * `model.json`, or a bare `.onnx` file.
 */
export async function openImageBackbone(reference: string, options: OpenBackboneOptions): Promise<ImageBackbone> {
  const spec = await resolveImageGraph(reference, options);
  if (options.preprocessing) spec.preprocessing = { ...spec.preprocessing, ...options.preprocessing };
  if (options.featureOutput && !spec.outputName) spec.outputName = options.featureOutput;
  return ImageBackbone.open(spec, options.threads);
}

async function resolveImageGraph(reference: string, options: OpenBackboneOptions): Promise<ImageGraphSpec> {
  if (reference.startsWith('builtin:')) return builtinGraph(reference.slice('builtin:'.length), options);
  if (reference.startsWith('hf:')) {
    const ref = parseModelReference(reference);
    if (ref.kind !== 'hf') throw usageError(`${reference}: not a Hugging Face reference`);
    // The Hugging Face cache (shared with Python), not headstart's feature cache.
    const component = catalogEntryForRepo(ref.repo)?.onnxComponent ?? 'model';
    const pulled = await pullModel(ref.repo, { ...options.hub, revision: ref.revision, dtype: options.dtype, component, reporter: options.reporter });
    // Pinned to the commit, so loading the trained model later finds exactly these weights, offline too.
    return readHfImageModel(pulled.snapshotDir, `hf:${ref.repo}@${pulled.commit}`, options.dtype, component);
  }
  if (reference.startsWith('tfjs:') && isTfjsUrl(reference.slice('tfjs:'.length))) {
    const url = tfjsModelJsonUrl(reference.slice('tfjs:'.length));
    const modelJson = await fetchTfjsModel(url.href, { cacheDir: options.cacheDir, offline: options.hub?.offline, reporter: options.reporter });
    // Recorded by URL: loading a trained model finds the same download in the cache, offline too.
    return tfjsGraph(modelJson, `tfjs:${url.href}`, options, `tfjs-${url.hostname}`);
  }
  const path = resolvePath(reference.startsWith('tfjs:') ? reference.slice('tfjs:'.length) : reference);
  const info = await stat(path).catch(() => undefined);
  if (!info) {
    throw usageError(
      `backbone "${reference}" is neither a builtin (${Object.keys(BUILTIN_IMAGE_BACKBONES).map((n) => `builtin:${n}`).join(', ')}) nor an existing file or folder`,
    );
  }
  // Recorded with an absolute path, so a saved model finds its backbone from any working directory.
  const id = reference.startsWith('tfjs:') ? `tfjs:${path}` : path;
  if (info.isDirectory()) {
    if (!reference.startsWith('tfjs:') && (await isHfOnnxFolder(path))) return readHfImageModel(path, id, options.dtype);
    const modelJson = join(path, 'model.json');
    if (await stat(modelJson).catch(() => undefined)) return tfjsGraph(modelJson, id, options);
    throw modelError('not a model folder: expected config.json + onnx/model.onnx (Hugging Face layout) or model.json (TF.js)', path);
  }
  if (extname(path) === '.json') return tfjsGraph(path, id, options);
  if (extname(path) === '.onnx') {
    const bytes = await readFile(path);
    return { id, model: path, origin: path, sha256: sha256(bytes), preprocessing: imagenetDefaults(224) };
  }
  throw modelError('unrecognised model file: expected a .onnx file, a TF.js model.json or a model folder', path);
}

async function builtinGraph(name: string, options: OpenBackboneOptions): Promise<ImageGraphSpec> {
  const builtin = BUILTIN_IMAGE_BACKBONES[name as BuiltinImageBackbone];
  if (!builtin) {
    throw usageError(`unknown builtin backbone "${name}"; builtins: ${Object.keys(BUILTIN_IMAGE_BACKBONES).join(', ')}`);
  }
  const version = nsfwjsVersion();
  const output = options.featureOutput ?? NSFWJS_FEATURE_OUTPUTS[builtin.nsfwjsModel].output;
  const key = hashJson({ source: 'nsfwjs', version, model: builtin.nsfwjsModel, output: output ?? null, converter: CONVERTER_VERSION });
  const converted = await convertOnce(options, `builtin-${name}`, key, () => readNsfwjsModel(builtin.nsfwjsModel), output);
  return {
    ...converted,
    id: `builtin:${name}`,
    // Pixels / 255 as nsfwjs feeds them, but the ImageNet-standard central 87.5 % crop rather than
    // nsfwjs's stretch: +4 points on hymenoptera validation for α=1.4 (0.882 vs 0.843, measured).
    preprocessing: {
      kind: 'image',
      width: builtin.size,
      height: builtin.size,
      resize: 'shortest-edge-crop',
      shortestEdge: Math.round(builtin.size / 0.875),
      interpolation: 'bilinear',
      rescale: 1 / 255,
      mean: [0, 0, 0],
      std: [1, 1, 1],
      layout: 'NHWC',
    },
  };
}

/**
 * A TF.js model from disk. Its preprocessing is not recorded in the format; the default is Keras
 * MobileNet's scaling (pixels to [-1, 1], as Teachable Machine feeds them) with the ImageNet-standard
 * central 87.5 % crop (on hymenoptera with α=0.35 it beats Teachable Machine's full square crop,
 * 0.908 vs 0.889 validation accuracy, measured). Override with `preprocessing` when a model differs.
 */
async function tfjsGraph(modelJsonPath: string, reference: string, options: OpenBackboneOptions, label = `tfjs-${basename(dirname(modelJsonPath))}`): Promise<ImageGraphSpec> {
  const source = await readTfjsModelFolder(modelJsonPath);
  const key = hashJson({
    source: sha256(JSON.stringify(source.modelJson)),
    weights: sha256(new Uint8Array(source.weightData)),
    output: options.featureOutput ?? null,
    converter: CONVERTER_VERSION,
  });
  const converted = await convertOnce(options, label, key, async () => source, options.featureOutput);
  const inputShape = converted.inputShape;
  const height = inputShape[1] && inputShape[1] > 0 ? inputShape[1] : 224;
  const width = inputShape[2] && inputShape[2] > 0 ? inputShape[2] : 224;
  return {
    ...converted,
    id: reference,
    preprocessing: {
      kind: 'image',
      width,
      height,
      resize: 'shortest-edge-crop',
      shortestEdge: Math.round(Math.min(width, height) / 0.875),
      interpolation: 'bilinear',
      rescale: 1 / 127.5,
      mean: [1, 1, 1],
      std: [1, 1, 1],
      layout: 'NHWC',
    },
  };
}

interface ConvertedGraph {
  model: string;
  origin: string;
  sha256: string;
  inputName: string;
  outputName: string;
  pooling: 'none';
  inputShape: number[];
}

/** Converts a TF.js model to ONNX once and keeps the result in the cache, keyed by its source. */
async function convertOnce(
  options: OpenBackboneOptions,
  label: string,
  key: string,
  readSource: () => Promise<TfjsModelSource> | TfjsModelSource,
  output: string | undefined,
): Promise<ConvertedGraph> {
  return cachedConversion<ConvertedGraph>(options, label, key, async () => {
    const source = await readSource();
    const converted = convertTfjsToOnnx(source, output ? { output } : undefined);
    const info: ConvertedGraph = {
      model: 'model.onnx',
      origin: source.origin,
      sha256: sha256(converted.onnx),
      inputName: converted.inputName,
      outputName: converted.outputName,
      pooling: 'none',
      inputShape: converted.inputShape,
    };
    return { onnx: converted.onnx, info };
  });
}

/**
 * A conversion done once and kept in `<cacheDir>/converted/<label>-<key>/` (model.onnx + info.json),
 * written atomically; `model` and `origin` in the result point at the cached file. Shared by every
 * model headstart converts (backbones, the builtin detector).
 */
export async function cachedConversion<Info extends { model: string; origin: string }>(
  options: { cacheDir: string; reporter?: Reporter },
  label: string,
  key: string,
  produce: () => Promise<{ onnx: Uint8Array; info: Info }>,
): Promise<Info> {
  const dir = join(options.cacheDir, 'converted', `${label}-${key.slice(0, 16)}`);
  const infoPath = join(dir, 'info.json');
  const cached = await readJsonFile<Info>(infoPath).catch(() => undefined);
  if (cached) return { ...cached, model: join(dir, 'model.onnx'), origin: join(dir, 'model.onnx') };

  const reporter = options.reporter ?? silentReporter;
  const task = reporter.task(`converting ${label} to ONNX`, 1, 'models');
  const { onnx, info } = await produce();
  await writeDirAtomic(dir, async (temp) => {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(temp, 'model.onnx'), onnx);
    await writeFile(join(temp, 'info.json'), JSON.stringify(info, null, 2));
  }, cacheEntryGuard('converted model', 'info.json')).catch(async (error) => {
    // Another process may have converted it at the same time; theirs is as good as ours.
    if (await readJsonFile(infoPath).catch(() => undefined)) return;
    throw error;
  });
  task.done(`${(onnx.byteLength / 1e6).toFixed(1)} MB`);
  return { ...info, model: join(dir, 'model.onnx'), origin: join(dir, 'model.onnx') };
}

export function imagenetDefaults(size: number): ImagePreprocessing {
  return {
    kind: 'image',
    width: size,
    height: size,
    resize: 'shortest-edge-crop',
    shortestEdge: Math.round(size / 0.875),
    interpolation: 'bilinear',
    rescale: 1 / 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    layout: 'NCHW',
  };
}
