import { readFile } from 'node:fs/promises';
import { createSession, ort, type SessionLike } from '../backbones/onnx-session.js';
import { defaultCacheDir } from '../features/cache.js';
import { dataError, messageOf, modelError, usageError } from '../util/errors.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import type { Box } from './boxes.js';
import { builtinCenterNet, CENTERNET_INPUT_SIZE, CENTERNET_STRIDE, decodeCenterNet, type CenterNetGraph } from './centernet.js';
import { evaluateDetections, type DetectionMetrics, type EvaluatedImage } from './coco-eval.js';
import { COCO_CLASSES } from './coco-classes.js';
import type { DetectionItem, DetectionSplitOptions } from './detection-dataset.js';
import { readDetectionDataset } from './read-dataset.js';
import type { SkippedInput } from '../data/dataset.js';
import { prepareDetectorInput } from './detector-input.js';

export const BUILTIN_DETECTORS = {
  centernet: 'CenterNet (MobileNetV3), COCO\'s 80 classes, 512 px (TF.js graph model bundled in @vladmandic/human, MIT)',
} as const;

export interface DetectorLoadOptions {
  cacheDir?: string;
  reporter?: Reporter;
  threads?: number;
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

/** Raw outputs for a batch: heatmaps `[n, gridH, gridW, classes]` and sides `[n, gridH, gridW, 4]`, flattened. */
export interface DetectorMaps {
  heatmap: Float32Array;
  sides: Float32Array;
  count: number;
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
    readonly classes: string[],
    private readonly session: SessionLike,
    private readonly graph: CenterNetGraph,
    readonly inputSize: number,
  ) {}

  /** Whether a model reference names a detector (shared commands dispatch on it). */
  static isDetectorReference(reference: string): boolean {
    return reference.startsWith('builtin:') && reference.slice('builtin:'.length) in BUILTIN_DETECTORS;
  }

  static async load(reference: string, options: DetectorLoadOptions = {}): Promise<Detector> {
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    if (reference.startsWith('builtin:')) {
      const name = reference.slice('builtin:'.length);
      if (name !== 'centernet') throw usageError(`unknown builtin detector "${name}"; builtins: ${Object.keys(BUILTIN_DETECTORS).map((n) => `builtin:${n}`).join(', ')}`);
      const graph = await builtinCenterNet({ cacheDir, reporter: options.reporter ?? silentReporter });
      const session = await createSession(graph.model, graph.origin, options.threads);
      return new Detector(reference, [...COCO_CLASSES], session, graph, CENTERNET_INPUT_SIZE);
    }
    throw modelError('not a detector: expected builtin:centernet', reference);
  }

  /** Runs the graph on prepared inputs (HWC uint8 pixels at the input size). */
  async forward(batch: Uint8Array[]): Promise<DetectorMaps> {
    const size = this.inputSize;
    const plane = size * size * 3;
    const data = new Float32Array(batch.length * plane);
    batch.forEach((pixels, i) => {
      for (let p = 0; p < plane; p++) data[i * plane + p] = pixels[p]!;
    });
    const input = new ort.Tensor('float32', data, [batch.length, size, size, 3]);
    const outputs = await this.session.run({ [this.graph.inputName]: input }, [this.graph.heatmapOutput, this.graph.sidesOutput]);
    const heatmap = outputs[this.graph.heatmapOutput]!.data as Float32Array;
    const sides = outputs[this.graph.sidesOutput]!.data as Float32Array;
    return { heatmap, sides, count: batch.length };
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
        const bytes = typeof input === 'string' ? await readImage(input) : input;
        return prepareDetectorInput(bytes, this.inputSize, source);
      }));
      const maps = await this.forward(prepared.map((p) => p.pixels));
      prepared.forEach((image, i) => {
        const detections = this.decode(maps, i, image.width, image.height, threshold, maxDetections);
        results.push({ width: image.width, height: image.height, detections: detections.map((d) => ({ label: this.classes[d.label]!, score: d.score, box: d.box })) });
      });
    }
    return results;
  }

  /** One image's detections (class indices) from a batch's maps. */
  decode(maps: DetectorMaps, index: number, width: number, height: number, threshold: number, maxDetections: number) {
    const grid = this.inputSize / CENTERNET_STRIDE;
    const classes = this.classes.length;
    const heatmap = maps.heatmap.subarray(index * grid * grid * classes, (index + 1) * grid * grid * classes);
    const sides = maps.sides.subarray(index * grid * grid * 4, (index + 1) * grid * grid * 4);
    return decodeCenterNet(heatmap, sides, grid, grid, classes, {
      threshold, maxDetections, scaleX: width / this.inputSize, scaleY: height / this.inputSize, width, height,
    });
  }

  /**
   * COCO's metrics on labelled images. Classes are matched by name: the data's classes must all be
   * classes of this detector (the builtin evaluates on COCO-named data); other classes are not scored.
   */
  async evaluate(items: DetectionItem[], classes: string[], options: { scoreThreshold?: number } = {}): Promise<DetectionMetrics> {
    const mapping = classes.map((name) => this.classes.indexOf(name));
    const unknown = classes.filter((_, i) => mapping[i]! < 0);
    if (unknown.length) throw dataError(`the detector does not know class${unknown.length > 1 ? 'es' : ''} ${unknown.map((c) => `"${c}"`).join(', ')} (it knows ${this.classes.slice(0, 8).join(', ')}${this.classes.length > 8 ? ', …' : ''})`);
    const evaluated: EvaluatedImage[] = [];
    for (let start = 0; start < items.length; start += BATCH) {
      const chunk = items.slice(start, start + BATCH);
      const prepared = await Promise.all(chunk.map(async (item) => prepareDetectorInput(await item.load(), this.inputSize, item.source)));
      const maps = await this.forward(prepared.map((p) => p.pixels));
      chunk.forEach((item, i) => {
        const detections = this.decode(maps, i, item.width, item.height, EVALUATION_THRESHOLD, 100)
          .map((d) => ({ ...d, label: mapping.indexOf(d.label) }))
          .filter((d) => d.label >= 0);
        evaluated.push({ boxes: item.boxes, detections });
      });
    }
    return evaluateDetections(evaluated, classes, options);
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
    await this.session.release();
  }
}

async function readImage(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    throw dataError((error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such image' : `cannot read image: ${messageOf(error)}`, path, error);
  }
}
