import type { Detection } from './coco-eval.js';

/** One image made ready for a detector's graph, with what mapping boxes back needs. */
export interface PreparedImage {
  /** The input tensor's data for this image (the layout knows its shape). */
  data: Float32Array;
  /** The image as displayed (EXIF orientation applied): where returned boxes live. */
  width: number;
  height: number;
  /** Input pixels → image pixels: x_image = (x_input − padX) × scaleX. */
  scaleX: number;
  scaleY: number;
  padX: number;
  padY: number;
}

/** The uint8 HWC RGB pixels at the input size that a layout's tensor is made from, with the same geometry. */
export interface PreparedPixels extends Omit<PreparedImage, 'data'> {
  pixels: Uint8Array;
}

/**
 * What `headstart export` needs to put a layout's decoding into the graph (src/export/detector-export.ts):
 * the ONNX file (a path, or the bytes of a graph held in memory, e.g. a fine-tuned one), its tensor
 * names, and the geometry its input is prepared with.
 */
export type DetectorGraphSpec =
  | { kind: 'centernet'; model: string | Uint8Array; inputName: string; heatmapOutput: string; sidesOutput: string; inputSize: number; stride: number }
  | { kind: 'ultralytics-yolo'; model: string | Uint8Array; inputName: string; outputName: string; inputWidth: number; inputHeight: number; nmsIou: number; nmsMax: number }
  | { kind: 'detr'; model: string; inputName: string; logitsOutput: string; boxesOutput: string };

/**
 * What differs between detector formats (CenterNet maps, Ultralytics YOLO rows, DETR queries):
 * how an image becomes the graph's input, and how the graph's outputs become boxes in the image's
 * own pixels. `Detector` does everything else (reading files, batching, labels, evaluation).
 */
export interface DetectorLayout {
  readonly kind: string;
  readonly classes: string[];
  prepare(bytes: Uint8Array, source?: string): Promise<PreparedImage>;
  detect(batch: PreparedImage[], threshold: number, maxDetections: number): Promise<Detection[][]>;
  dispose(): Promise<void>;
  /** Layouts that export (CenterNet, YOLO): the pixels `prepare` turns into the tensor. */
  preparePixels?(bytes: Uint8Array, source?: string): Promise<PreparedPixels>;
  /** Layouts that export: the graph and names `headstart export` builds on. */
  graphSpec?(): DetectorGraphSpec;
}
