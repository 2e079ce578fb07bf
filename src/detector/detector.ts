import { readFile, stat } from 'node:fs/promises';
import type { SkippedInput } from '../data/dataset.js';
import { defaultCacheDir } from '../features/cache.js';
import { dataError, messageOf, modelError, usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import type { Box } from './boxes.js';
import { CenterNetLayout } from './centernet-layout.js';
import { evaluateDetections, type Detection, type DetectionMetrics, type EvaluatedImage } from './coco-eval.js';
import type { DetectionDataset, DetectionItem, DetectionSplitOptions } from './detection-dataset.js';
import { CENTERNET_INPUT_SIZE, CENTERNET_STRIDE } from './centernet.js';
import { trainCenterNet, type DetectorTrainOptions, type DetectorTrainSettings } from './train-detector.js';
import type { DetectorLayout } from './layout.js';
import { readDetectionDataset } from './read-dataset.js';
import { YoloLayout } from './yolo-layout.js';
import { isDetectorFolder, loadDetectorFolder, saveDetectorFolder, type DetectorManifest, type DetectorManifestInput } from '../artifacts/detector-folder.js';
import { DetrLayout } from './detr-layout.js';
import { parseModelReference } from '../hub/reference.js';
import { pullModel, type PullOptions } from '../hub/pull.js';

export const BUILTIN_DETECTORS = {
  centernet: 'CenterNet (MobileNetV3), COCO\'s 80 classes, 512 px (TF.js graph model bundled in @vladmandic/human, MIT)',
} as const;

export interface DetectorLoadOptions {
  cacheDir?: string;
  reporter?: Reporter;
  threads?: number;
  /** How `hf:` references are pulled (token, offline mode, Hugging Face cache folder, endpoint). */
  hub?: Pick<PullOptions, 'token' | 'offline' | 'cacheDir' | 'endpoint' | 'fetch'>;
}

export interface DetectOptions {
  /** Lowest score reported (default 0.25). */
  threshold?: number;
  /** At most this many boxes per image (default 100). */
  maxDetections?: number;
}

export interface LabelledDetection {
  label: string;
  score: number;
  /** [x1, y1, x2, y2] in the original image's pixels (as displayed). */
  box: Box;
}

export interface ImageDetections {
  width: number;
  height: number;
  detections: LabelledDetection[];
}

const BATCH = 4;
/** Detections below this score cannot change COCO's numbers in practice and would only slow matching. */
const EVALUATION_THRESHOLD = 0.01;

/**
 * A CenterNet detector: the builtin COCO model, or (once trained) one fine-tuned to a user's classes.
 * `detect` takes image bytes or paths and returns boxes in each image's own pixels.
 */
export class Detector {
  private constructor(
    readonly reference: string,
    readonly layout: DetectorLayout,
    /** A trained (or loaded) detector's graph and manifest, what `save` writes. */
    private readonly trained?: { graph: Uint8Array; manifest: DetectorManifestInput },
  ) {}

  /** The model folder's manifest fields (trained or loaded from a folder), for reports and export. */
  get manifest(): DetectorManifestInput | undefined {
    return this.trained?.manifest;
  }

  /** The serialised CenterNet graph of a trained or folder-loaded detector (inputs and outputs as the builtin's). */
  get graph(): Uint8Array | undefined {
    return this.trained?.graph;
  }

  /** @internal Used by training: a detector over a fine-tuned graph held in memory. */
  static async fromTrained(graph: Uint8Array, manifest: DetectorManifestInput, origin: string, threads?: number): Promise<Detector> {
    const layout = await CenterNetLayout.open(
      { model: origin, origin, sha256: '', inputName: manifest.detector.inputName, heatmapOutput: manifest.detector.heatmapOutput, sidesOutput: manifest.detector.sidesOutput },
      manifest.labels,
      threads,
      graph,
    );
    return new Detector(origin, layout, { graph, manifest });
  }

  /**
   * Fine-tunes the builtin CenterNet to a detection dataset's classes (a `DetectionDataset` or a path
   * in any layout `readDetectionDataset` reads); see `train-detector.ts`. The result detects the
   * dataset's classes and `save`s as a model folder whose metrics are its validation split's.
   */
  static async train(data: DetectionDataset | string, options: DetectorTrainOptions & DetectionSplitOptions = {}, settings: Partial<DetectorTrainSettings> = {}): Promise<Detector> {
    const dataset = typeof data === 'string' ? await readDetectionDataset(data, options) : data;
    const cacheDir = settings.cacheDir ?? defaultCacheDir();
    const trained = await trainCenterNet(dataset, options, { ...settings, cacheDir });
    const manifest: DetectorManifestInput = {
      modality: 'image',
      labels: [...dataset.classes],
      detector: {
        kind: 'centernet', inputName: trained.inputName, heatmapOutput: trained.heatmapOutput, sidesOutput: trained.sidesOutput,
        inputSize: CENTERNET_INPUT_SIZE, stride: CENTERNET_STRIDE, base: { id: 'builtin:centernet', sha256: trained.baseSha256 },
      },
      training: { data: dataset.origin, format: dataset.format, images: { train: dataset.train.length, validation: dataset.validation.length }, validationSource: dataset.validationSource, seed: settings.seed ?? 0, ...trained.record },
      metrics: { validation: trained.validation },
      skipped: dataset.skipped,
    };
    return Detector.fromTrained(trained.graph, manifest, `${dataset.origin} (fine-tuned detector)`, settings.threads);
  }

  /** Writes the model folder (manifest.json, metrics.json, detector.onnx) atomically. */
  async save(dir: string, fill?: (stagedDir: string) => Promise<void>): Promise<DetectorManifest> {
    if (!this.trained) throw usageError(`only a trained detector (Detector.train) or one loaded from a model folder can be saved; ${this.reference} is a ${this.layout.kind} model used as it is`);
    return saveDetectorFolder(dir, this.trained.manifest, this.trained.graph, fill);
  }

  get classes(): string[] {
    return this.layout.classes;
  }

  /** Whether a model reference names a detector (shared commands dispatch on it). */
  static async isDetectorReference(reference: string): Promise<boolean> {
    if (reference.startsWith('builtin:')) return reference.slice('builtin:'.length) in BUILTIN_DETECTORS;
    // A classifier is always a local model folder: an `hf:` model given where a trained model is expected can only be a detector.
    if (reference.startsWith('hf:')) return true;
    return reference.toLowerCase().endsWith('.onnx') || (await isDetectorFolder(reference)) || (await DetrLayout.isDetrFolder(reference));
  }

  /**
   * `builtin:centernet`, a detector model folder (`Detector.train` → `save`), an ONNX file in
   * Ultralytics YOLO's layout (`images` → `output0`), or a DETR folder in the transformers.js layout
   * (`pixel_values` → `logits` + `pred_boxes`), locally or as `hf:<owner>/<repo>[@<revision>]` pulled
   * through src/hub into the Hugging Face cache.
   */
  static async load(reference: string, options: DetectorLoadOptions = {}): Promise<Detector> {
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    if (reference.startsWith('builtin:')) {
      const name = reference.slice('builtin:'.length);
      if (name !== 'centernet') throw usageError(`unknown builtin detector "${name}"; builtins: ${Object.keys(BUILTIN_DETECTORS).map((n) => `builtin:${n}`).join(', ')}`);
      return new Detector(reference, await CenterNetLayout.builtin({ cacheDir, reporter: options.reporter ?? silentReporter, threads: options.threads }));
    }
    if (reference.startsWith('hf:')) {
      const ref = parseModelReference(reference);
      if (ref.kind !== 'hf') throw usageError(`${reference}: not a Hugging Face reference`);
      // config.json (id2label), preprocessor_config.json and onnx/model.onnx: the files filesForModel picks.
      const pulled = await pullModel(ref.repo, { ...options.hub, revision: ref.revision, reporter: options.reporter });
      if (!(await DetrLayout.isDetrFolder(pulled.snapshotDir))) {
        throw modelError(`hf:${ref.repo} is not a detector in the transformers.js layout (config.json with a DETR model_type and onnx/model.onnx)`, pulled.snapshotDir);
      }
      // Pinned to the commit pulled, as hf: backbones are.
      return new Detector(`hf:${ref.repo}@${pulled.commit}`, await DetrLayout.open(pulled.snapshotDir, options.threads));
    }
    const info = await stat(reference).catch(() => undefined);
    if (!info) throw usageError(`detector "${reference}" is neither a builtin (${Object.keys(BUILTIN_DETECTORS).map((n) => `builtin:${n}`).join(', ')}) nor an existing file`);
    if (info.isFile() && reference.toLowerCase().endsWith('.onnx')) return new Detector(reference, await YoloLayout.open(reference, options.threads));
    if (info.isDirectory() && (await isDetectorFolder(reference))) {
      const { manifest, graphPath, graph } = await loadDetectorFolder(reference);
      const { format: _f, formatVersion: _v, task: _t, headstartVersion: _h, createdAt: _c, ...rest } = manifest;
      const layout = await CenterNetLayout.open({ model: graphPath, origin: graphPath, sha256: manifest.detector.sha256, inputName: manifest.detector.inputName, heatmapOutput: manifest.detector.heatmapOutput, sidesOutput: manifest.detector.sidesOutput }, manifest.labels, options.threads);
      return new Detector(reference, layout, { graph, manifest: rest });
    }
    if (info.isDirectory() && (await DetrLayout.isDetrFolder(reference))) return new Detector(reference, await DetrLayout.open(reference, options.threads));
    throw modelError('not a detector: expected builtin:centernet, a headstart detector folder, an Ultralytics YOLO .onnx export or a DETR folder (transformers.js layout)', reference);
  }

  async detect(input: Uint8Array | string, options: DetectOptions = {}): Promise<ImageDetections> {
    return (await this.detectMany([input], options))[0]!;
  }

  async detectMany(inputs: (Uint8Array | string)[], options: DetectOptions = {}): Promise<ImageDetections[]> {
    const threshold = options.threshold ?? 0.25;
    const maxDetections = options.maxDetections ?? 100;
    if (!(threshold >= 0 && threshold <= 1)) throw usageError(`the threshold must be between 0 and 1, got ${threshold}`);
    const results: ImageDetections[] = [];
    for (let start = 0; start < inputs.length; start += BATCH) {
      const chunk = inputs.slice(start, start + BATCH);
      const prepared = await Promise.all(chunk.map(async (input) => {
        const source = typeof input === 'string' ? input : undefined;
        return this.layout.prepare(typeof input === 'string' ? await readImage(input) : input, source);
      }));
      const found = await this.layout.detect(prepared, threshold, maxDetections);
      prepared.forEach((image, i) => {
        results.push({ width: image.width, height: image.height, detections: found[i]!.map((d) => ({ label: this.classes[d.label]!, score: d.score, box: d.box })) });
      });
    }
    return results;
  }

  /** Detections with class indices, for evaluation. */
  private async detectItems(items: DetectionItem[]): Promise<Detection[][]> {
    const out: Detection[][] = [];
    for (let start = 0; start < items.length; start += BATCH) {
      const chunk = items.slice(start, start + BATCH);
      const prepared = await Promise.all(chunk.map(async (item) => this.layout.prepare(await item.load(), item.source)));
      out.push(...(await this.layout.detect(prepared, EVALUATION_THRESHOLD, 100)));
    }
    return out;
  }

  /**
   * COCO's metrics on labelled images. Classes are matched by name: the data's classes must all be
   * classes of this detector (the builtin evaluates on COCO-named data); other classes are not scored.
   */
  async evaluate(items: DetectionItem[], classes: string[], options: { scoreThreshold?: number } = {}): Promise<DetectionMetrics> {
    return (await this.evaluateImages(items, classes, options)).metrics;
  }

  /** `evaluate`, also returning each image's ground truth and detections (class indices of `classes`), for the report's gallery. */
  async evaluateImages(items: DetectionItem[], classes: string[], options: { scoreThreshold?: number } = {}): Promise<{ metrics: DetectionMetrics; images: EvaluatedImage[] }> {
    const mapping = classes.map((name) => this.classes.indexOf(name));
    const unknown = classes.filter((_, i) => mapping[i]! < 0);
    if (unknown.length) throw dataError(`the detector does not know class${unknown.length > 1 ? 'es' : ''} ${unknown.map((c) => `"${c}"`).join(', ')} (it knows ${this.classes.slice(0, 8).join(', ')}${this.classes.length > 8 ? ', …' : ''})`);
    const found = await this.detectItems(items);
    const images: EvaluatedImage[] = items.map((item, i) => ({
      boxes: item.boxes,
      detections: found[i]!.map((d) => ({ ...d, label: mapping.indexOf(d.label) })).filter((d) => d.label >= 0),
    }));
    return { metrics: evaluateDetections(images, classes, options), images };
  }

  /**
   * Evaluates on a detection dataset in any layout: its test split when it has one, else its
   * validation split (for data without one, the same seeded hold-out training uses).
   */
  async evaluatePath(path: string, options: DetectionSplitOptions & { scoreThreshold?: number } = {}): Promise<{ split: 'test' | 'validation'; images: number; metrics: DetectionMetrics; skipped: SkippedInput[] }> {
    const data = await readDetectionDataset(path, options);
    const split = data.test ? 'test' : 'validation';
    const items = data.test ?? data.validation;
    const metrics = await this.evaluate(items, data.classes, options);
    return { split, images: items.length, metrics, skipped: data.skipped };
  }

  async dispose(): Promise<void> {
    await this.layout.dispose();
  }
}

async function readImage(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    throw dataError((error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such image' : `cannot read image: ${messageOf(error)}`, path, error);
  }
}
