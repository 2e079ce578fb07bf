import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { createSession, ort, type SessionLike } from '../backbones/onnx-session.js';
type Session = Awaited<ReturnType<typeof createSession>>;
import { readImageHeader, toTensor } from '../data/image-decode.js';
import { dataError, messageOf, modelError } from '../util/errors.js';
import { detectionPlacement, readOnnxMetadata } from '../web/format.js';
import { iou, type Box } from './boxes.js';
import type { Detection } from './coco-eval.js';
import type { DetectorGraphSpec, DetectorLayout, PreparedImage, PreparedPixels } from './layout.js';

/** Ultralytics' defaults for `predict`: class-aware NMS at IoU 0.7, at most 300 boxes before `maxDetections`. */
const NMS_IOU = 0.7;
const NMS_MAX = 300;

/**
 * Ultralytics YOLO (v8 / 11) as `yolo export format=onnx` writes it: input `images` [1, 3, H, W] RGB
 * in 0–1, letterboxed (aspect kept, grey 114 padding, centred); output `output0` [1, 4 + C, N] with
 * box centre, width and height in input pixels, then the C class scores; class names in the
 * metadata's `names`. Boxes are suppressed per class in TypeScript as Ultralytics does.
 */
export class YoloLayout implements DetectorLayout {
  readonly kind = 'ultralytics-yolo';

  private constructor(
    readonly classes: string[],
    private readonly session: Session,
    private readonly path: string,
    readonly inputWidth: number,
    readonly inputHeight: number,
  ) {}

  /** Whether an ONNX file has YOLO's input and output names. */
  static matches(session: SessionLike): boolean {
    return session.inputNames.includes('images') && session.outputNames.includes('output0');
  }

  static async open(path: string, threads?: number): Promise<YoloLayout> {
    const bytes = await readFile(path);
    const session = await createSession(path, path, threads);
    if (!YoloLayout.matches(session)) throw modelError('not an Ultralytics YOLO export (expected input "images" and output "output0")', path);
    const metadata = readOnnxMetadata(bytes);
    const classes = parseNames(metadata['names'], path);
    const meta = session.inputMetadata.find((m) => m.name === 'images');
    const dims = meta && meta.isTensor ? meta.shape.map((d) => (typeof d === 'number' ? d : NaN)) : [];
    const imgsz = metadata['imgsz'] ? (JSON.parse(metadata['imgsz']) as number[]) : [];
    const height = Number.isFinite(dims[2]) && dims[2]! > 0 ? dims[2]! : imgsz[0] ?? 640;
    const width = Number.isFinite(dims[3]) && dims[3]! > 0 ? dims[3]! : imgsz[1] ?? height;
    return new YoloLayout(classes, session, path, width, height);
  }

  /** Ultralytics' LetterBox(auto=False): scale to fit, round the new size, pad evenly with 114. */
  async prepare(bytes: Uint8Array, source?: string): Promise<PreparedImage> {
    const { pixels, ...geometry } = await this.preparePixels(bytes, source);
    return { data: toTensor(pixels, { width: this.inputWidth, height: this.inputHeight, rescale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NCHW' }), ...geometry };
  }

  graphSpec(): DetectorGraphSpec {
    return { kind: 'ultralytics-yolo', model: this.path, inputName: 'images', outputName: 'output0', inputWidth: this.inputWidth, inputHeight: this.inputHeight, nmsIou: NMS_IOU, nmsMax: NMS_MAX };
  }

  /** The letterboxed uint8 pixels (HWC RGB) the tensor is scaled from. */
  async preparePixels(bytes: Uint8Array, source?: string): Promise<PreparedPixels> {
    try {
      const header = await readImageHeader(bytes);
      const turned = header.orientation >= 5;
      const width = turned ? header.height : header.width;
      const height = turned ? header.width : header.height;
      // The geometry a consumer of the export computes from its metadata (src/web/format.ts).
      const place = detectionPlacement(width, height, { resize: 'letterbox', width: this.inputWidth, height: this.inputHeight });
      const [newW, newH, left, top] = [place.width, place.height, place.x, place.y];
      let image = sharp(bytes).rotate();
      if (newW !== width || newH !== height) image = image.resize(newW, newH, { fit: 'fill', kernel: 'linear' });
      const { data } = await image
        .removeAlpha()
        .extend({ top, left, bottom: this.inputHeight - newH - top, right: this.inputWidth - newW - left, background: { r: 114, g: 114, b: 114 } })
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height, scaleX: place.scaleX, scaleY: place.scaleY, padX: left, padY: top };
    } catch (error) {
      throw dataError(`cannot decode image: ${messageOf(error)}`, source, error);
    }
  }

  async detect(batch: PreparedImage[], threshold: number, maxDetections: number): Promise<Detection[][]> {
    const results: Detection[][] = [];
    // Exports have a fixed batch of 1 unless exported with dynamic=True: one image per run.
    for (const image of batch) {
      const input = new ort.Tensor('float32', image.data, [1, 3, this.inputHeight, this.inputWidth]);
      const output = (await this.session.run({ images: input }, ['output0']))['output0']!;
      const [, rows, count] = output.dims.map(Number) as [number, number, number];
      if (rows - 4 !== this.classes.length) throw modelError(`output0 has ${rows - 4} class rows but the metadata names ${this.classes.length} classes`);
      results.push(decodeYolo(output.data as Float32Array, rows - 4, count, image, threshold, maxDetections));
    }
    return results;
  }
  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** A YOLO box with the anchor (column of output0) that produced it: per-box Grad-CAM differentiates that column's class score. */
export interface AnchoredDetection extends Detection {
  anchor: number;
}

/** output0's [4 + C, N] rows → boxes in the image's pixels: score ≥ threshold, class-aware NMS, at most min(300, maxDetections). */
export function decodeYolo(data: Float32Array, classes: number, count: number, image: Omit<PreparedImage, 'data'>, threshold: number, maxDetections: number): AnchoredDetection[] {
  const candidates: AnchoredDetection[] = [];
  for (let n = 0; n < count; n++) {
    let best = -1;
    let score = -Infinity;
    for (let c = 0; c < classes; c++) {
      const s = data[(4 + c) * count + n]!;
      if (s > score) { score = s; best = c; }
    }
    if (!(score >= threshold)) continue;
    const [cx, cy, w, h] = [0, 1, 2, 3].map((k) => data[k * count + n]!) as [number, number, number, number];
    candidates.push({ label: best, score, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], anchor: n });
  }
  const kept = suppress(candidates, NMS_IOU).slice(0, Math.min(NMS_MAX, maxDetections));
  return kept.map((d) => ({ ...d, box: unletterbox(d.box, image) }));
}

/** Greedy non-maximum suppression per class: best first, dropping later boxes of the class overlapping a kept one by more than `threshold` IoU. */
export function suppress<D extends Detection>(detections: D[], threshold: number): D[] {
  const order = detections.map((d, i) => ({ d, i })).sort((a, b) => b.d.score - a.d.score || a.i - b.i).map(({ d }) => d);
  const kept: D[] = [];
  for (const d of order) if (!kept.some((k) => k.label === d.label && iou(k.box, d.box) > threshold)) kept.push(d);
  return kept;
}

function unletterbox(box: Box, image: Omit<PreparedImage, 'data'>): Box {
  const clamp = (v: number, limit: number) => Math.min(limit, Math.max(0, v));
  return [
    clamp((box[0] - image.padX) * image.scaleX, image.width),
    clamp((box[1] - image.padY) * image.scaleY, image.height),
    clamp((box[2] - image.padX) * image.scaleX, image.width),
    clamp((box[3] - image.padY) * image.scaleY, image.height),
  ];
}

/** Ultralytics writes `names` as a Python dict literal: `{0: 'person', 1: 'bicycle'}`. */
function parseNames(text: string | undefined, origin: string): string[] {
  if (!text) throw modelError('the YOLO export has no "names" metadata (Ultralytics writes it); cannot name its classes', origin);
  const names: string[] = [];
  for (const match of text.matchAll(/(\d+)\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")/g)) names[Number(match[1])] = (match[2] ?? match[3] ?? '').replace(/\\(.)/g, '$1');
  if (names.length === 0 || names.some((n) => n === undefined)) throw modelError(`cannot read the class names from metadata "names": ${text.slice(0, 80)}`, origin);
  return names;
}
