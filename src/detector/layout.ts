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
}
