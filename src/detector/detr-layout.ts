import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { createSession, ort } from '../backbones/onnx-session.js';
import { readImageHeader, toTensor } from '../data/image-decode.js';
import { dataError, messageOf, modelError } from '../util/errors.js';
import type { Detection } from './coco-eval.js';
import type { DetectorGraphSpec, DetectorLayout, PreparedImage } from './layout.js';

type Session = Awaited<ReturnType<typeof createSession>>;

interface DetrPreprocessing {
  resize?: { shortestEdge: number; longestEdge: number };
  rescale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/**
 * DETR in the transformers.js layout: a Hugging Face folder (config.json `id2label`,
 * preprocessor_config.json, onnx/model.onnx) whose graph takes `pixel_values` [1, 3, H, W] and
 * returns `logits` [1, Q, C + 1] (last: "no object") and `pred_boxes` [1, Q, 4] (centre x, y, width,
 * height as fractions of the image). Decoded as transformers' `post_process_object_detection`:
 * softmax, best real class per query, no suppression (DETR's queries do not duplicate).
 */
export class DetrLayout implements DetectorLayout {
  readonly kind = 'detr';

  private constructor(
    readonly classes: string[],
    private readonly session: Session,
    private readonly pre: DetrPreprocessing,
    private readonly model: string,
  ) {}

  static async isDetrFolder(folder: string): Promise<boolean> {
    const config = await readFile(join(folder, 'config.json'), 'utf8').then(JSON.parse, () => undefined);
    return Boolean(config && (await stat(join(folder, 'onnx', 'model.onnx')).catch(() => undefined)) && /detr/i.test(String(config.model_type ?? '')));
  }

  static async open(folder: string, threads?: number): Promise<DetrLayout> {
    const read = async (name: string) => {
      try {
        return JSON.parse(await readFile(join(folder, name), 'utf8'));
      } catch (error) {
        throw modelError(`cannot read ${name}: ${messageOf(error)}`, join(folder, name), error);
      }
    };
    const config = await read('config.json');
    const processor = await read('preprocessor_config.json');
    const id2label = config.id2label as Record<string, string> | undefined;
    if (!id2label) throw modelError('config.json has no id2label', join(folder, 'config.json'));
    const classes = Object.entries(id2label).sort((a, b) => Number(a[0]) - Number(b[0])).map(([, name]) => name);
    const model = join(folder, 'onnx', 'model.onnx');
    const session = await createSession(model, model, threads);
    for (const name of ['logits', 'pred_boxes']) if (!session.outputNames.includes(name)) throw modelError(`not a DETR export: no output "${name}" (outputs: ${session.outputNames.join(', ')})`, model);
    if (!session.inputNames.includes('pixel_values')) throw modelError('not a DETR export: no input "pixel_values"', model);
    const size = processor.size ?? {};
    return new DetrLayout(classes, session, {
      resize: processor.do_resize === false ? undefined : { shortestEdge: size.shortest_edge ?? 800, longestEdge: size.longest_edge ?? 1333 },
      rescale: processor.do_rescale === false ? 1 : processor.rescale_factor ?? 1 / 255,
      mean: processor.do_normalize === false ? [0, 0, 0] : processor.image_mean ?? [0.485, 0.456, 0.406],
      std: processor.do_normalize === false ? [1, 1, 1] : processor.image_std ?? [0.229, 0.224, 0.225],
    }, model);
  }

  async prepare(bytes: Uint8Array, source?: string): Promise<PreparedImage> {
    try {
      const header = await readImageHeader(bytes);
      const turned = header.orientation >= 5;
      const width = turned ? header.height : header.width;
      const height = turned ? header.width : header.height;
      let [w, h] = [width, height];
      let image = sharp(bytes).rotate();
      if (this.pre.resize) {
        // DetrImageProcessor: the shortest edge to `shortest_edge`, unless the longest would pass `longest_edge`.
        const { shortestEdge, longestEdge } = this.pre.resize;
        const scale = Math.min(shortestEdge / Math.min(width, height), longestEdge / Math.max(width, height));
        [w, h] = [Math.round(width * scale), Math.round(height * scale)];
        image = image.resize(w, h, { fit: 'fill', kernel: 'linear' });
      }
      const { data } = await image.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      const tensor = toTensor(data, { width: w, height: h, rescale: this.pre.rescale, mean: this.pre.mean, std: this.pre.std, layout: 'NCHW' });
      // pred_boxes are fractions of the image: scale by the original size (padX/Y unused).
      return { data: tensor, width, height, scaleX: w, scaleY: h, padX: 0, padY: 0 };
    } catch (error) {
      throw dataError(`cannot decode image: ${messageOf(error)}`, source, error);
    }
  }

  async detect(batch: PreparedImage[], threshold: number, maxDetections: number): Promise<Detection[][]> {
    const out: Detection[][] = [];
    for (const image of batch) {
      const input = new ort.Tensor('float32', image.data, [1, 3, image.scaleY, image.scaleX]);
      const outputs = await this.session.run({ pixel_values: input }, ['logits', 'pred_boxes']);
      const logits = outputs['logits']!;
      const [, queries, width] = logits.dims.map(Number) as [number, number, number];
      if (width - 1 !== this.classes.length) throw modelError(`logits have ${width} columns; id2label names ${this.classes.length} classes (+1 for "no object" expected)`);
      out.push(decodeDetr(logits.data as Float32Array, outputs['pred_boxes']!.data as Float32Array, queries, width - 1, image, threshold, maxDetections));
    }
    return out;
  }

  graphSpec(): DetectorGraphSpec {
    return { kind: 'detr', model: this.model, inputName: 'pixel_values', logitsOutput: 'logits', boxesOutput: 'pred_boxes' };
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** A DETR box with the query that produced it: per-box Grad-CAM differentiates that query's class probability. */
export interface QueriedDetection extends Detection {
  query: number;
}

/**
 * `logits` [Q, C + 1] and `pred_boxes` [Q, 4] → boxes in the image's pixels as transformers'
 * post_process_object_detection: softmax, best real class per query, score > threshold, best first.
 */
export function decodeDetr(data: Float32Array, boxes: Float32Array, queries: number, classes: number, image: Omit<PreparedImage, 'data'>, threshold: number, maxDetections: number): QueriedDetection[] {
  const width = classes + 1;
  const found: QueriedDetection[] = [];
  for (let q = 0; q < queries; q++) {
    const row = data.subarray(q * width, (q + 1) * width);
    const max = Math.max(...row);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    let best = 0;
    for (let c = 1; c < width - 1; c++) if (row[c]! > row[best]!) best = c;
    const score = Math.exp(row[best]! - max) / sum;
    if (!(score > threshold)) continue;
    const [cx, cy, w, h] = boxes.subarray(q * 4, q * 4 + 4) as unknown as [number, number, number, number];
    const clamp = (v: number, limit: number) => Math.min(limit, Math.max(0, v));
    found.push({ label: best, score, query: q, box: [clamp((cx - w / 2) * image.width, image.width), clamp((cy - h / 2) * image.height, image.height), clamp((cx + w / 2) * image.width, image.width), clamp((cy + h / 2) * image.height, image.height)] });
  }
  return found.sort((a, b) => b.score - a.score).slice(0, maxDetections);
}
