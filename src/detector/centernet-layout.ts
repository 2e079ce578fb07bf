import { createSession, ort, type SessionLike } from '../backbones/onnx-session.js';
import type { Reporter } from '../util/progress.js';
import { builtinCenterNet, CENTERNET_INPUT_SIZE, CENTERNET_STRIDE, decodeCenterNet, type CenterNetGraph } from './centernet.js';
import type { Detection } from './coco-eval.js';
import { COCO_CLASSES } from './coco-classes.js';
import { prepareDetectorInput } from './detector-input.js';
import type { DetectorGraphSpec, DetectorLayout, PreparedImage, PreparedPixels } from './layout.js';

/** Raw outputs for a batch: heatmaps `[n, gridH, gridW, classes]` and sides `[n, gridH, gridW, 4]`, flattened. */
export interface CenterNetMaps {
  heatmap: Float32Array;
  sides: Float32Array;
  count: number;
}

/** CenterNet's layout: 512×512 NHWC pixels in 0–255 (stretched), heatmap + sides out, peaks decoded in TypeScript. */
export class CenterNetLayout implements DetectorLayout {
  readonly kind = 'centernet';
  readonly inputSize = CENTERNET_INPUT_SIZE;

  private constructor(
    readonly classes: string[],
    private readonly session: SessionLike,
    /** `model` is bytes for a graph held in memory (a fine-tuned one). */
    private readonly graph: Omit<CenterNetGraph, 'model'> & { model: string | Uint8Array },
  ) {}

  static async builtin(options: { cacheDir: string; reporter?: Reporter; threads?: number }): Promise<CenterNetLayout> {
    const graph = await builtinCenterNet(options);
    return new CenterNetLayout([...COCO_CLASSES], await createSession(graph.model, graph.origin, options.threads), graph);
  }

  /** A fine-tuned CenterNet graph (a detector model folder's): same inputs and outputs as the builtin's, `classes.length` heatmap channels. */
  static async open(graph: CenterNetGraph, classes: string[], threads?: number, bytes?: Uint8Array): Promise<CenterNetLayout> {
    return new CenterNetLayout([...classes], await createSession(bytes ?? graph.model, graph.origin, threads), { ...graph, model: bytes ?? graph.model });
  }

  async prepare(bytes: Uint8Array, source?: string): Promise<PreparedImage> {
    const { pixels, ...geometry } = await this.preparePixels(bytes, source);
    return { data: Float32Array.from(pixels), ...geometry };
  }

  async preparePixels(bytes: Uint8Array, source?: string): Promise<PreparedPixels> {
    const { pixels, width, height } = await prepareDetectorInput(bytes, this.inputSize, source);
    return { pixels, width, height, scaleX: width / this.inputSize, scaleY: height / this.inputSize, padX: 0, padY: 0 };
  }

  graphSpec(): DetectorGraphSpec {
    const { model, inputName, heatmapOutput, sidesOutput } = this.graph;
    return { kind: 'centernet', model, inputName, heatmapOutput, sidesOutput, inputSize: this.inputSize, stride: CENTERNET_STRIDE };
  }

  /** The graph on a batch of prepared inputs. */
  async forward(batch: Float32Array[]): Promise<CenterNetMaps> {
    const plane = this.inputSize * this.inputSize * 3;
    // One image is handed over as it is: copying 3 MB per run is measurable beside a 50 ms forward.
    const data = batch.length === 1 ? batch[0]! : new Float32Array(batch.length * plane);
    if (batch.length > 1) batch.forEach((image, i) => data.set(image, i * plane));
    const input = new ort.Tensor('float32', data, [batch.length, this.inputSize, this.inputSize, 3]);
    const outputs = await this.session.run({ [this.graph.inputName]: input }, [this.graph.heatmapOutput, this.graph.sidesOutput]);
    return { heatmap: outputs[this.graph.heatmapOutput]!.data as Float32Array, sides: outputs[this.graph.sidesOutput]!.data as Float32Array, count: batch.length };
  }

  async detect(batch: PreparedImage[], threshold: number, maxDetections: number): Promise<Detection[][]> {
    const maps = await this.forward(batch.map((image) => image.data));
    const grid = this.inputSize / CENTERNET_STRIDE;
    const classes = this.classes.length;
    return batch.map((image, i) => {
      const heatmap = maps.heatmap.subarray(i * grid * grid * classes, (i + 1) * grid * grid * classes);
      const sides = maps.sides.subarray(i * grid * grid * 4, (i + 1) * grid * grid * 4);
      return decodeCenterNet(heatmap, sides, grid, grid, classes, { threshold, maxDetections, scaleX: image.scaleX, scaleY: image.scaleY, width: image.width, height: image.height });
    });
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
