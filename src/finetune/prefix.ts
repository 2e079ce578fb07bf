/**
 * The frozen prefix of a partitioned backbone as a `Backbone`, so `extractFeatures` runs it once per
 * image (and per augmented view) with its batching, decode overlap and on-disk cache: the cached
 * "feature" of an image is its activation at the cut, keyed by the backbone's hash, the cut
 * tensors and the preprocessing.
 */
import type { Backbone, BackboneReference, AugmentationView } from '../backbones/backbone.js';
import type { ImageBackbone } from '../backbones/image-backbone.js';
import { createSession, ort, stack } from '../backbones/onnx-session.js';
import { encodeModel } from '../backbones/tfjs/onnx-graph.js';
import type { Partition } from '../autodiff/partition.js';
import { elementCount } from '../autodiff/graph-utils.js';

export class PrefixRunner implements Backbone<Uint8Array, Float32Array> {
  readonly reference: BackboneReference;
  readonly preprocessing: object;
  readonly batchSize: number;
  /** Per-example value count of each frontier tensor, in partition order; a row is their concatenation. */
  readonly sizes: number[];

  private constructor(
    private readonly backbone: ImageBackbone,
    private readonly partition: Partition,
    private readonly inputName: string,
    private readonly session: ort.InferenceSession | undefined,
  ) {
    this.sizes = partition.frontier.map((tensor) => elementCount(tensor.dims));
    this.preprocessing = backbone.preprocessing;
    this.batchSize = backbone.batchSize;
    this.reference = {
      ...backbone.reference,
      featureDim: this.sizes.reduce((a, b) => a + b, 0),
      featureOutput: `activations at ${partition.frontier.map((tensor) => tensor.name).join(' + ')}`,
    };
  }

  static async open(backbone: ImageBackbone, partition: Partition, inputName: string, threads?: number): Promise<PrefixRunner> {
    const session = partition.prefix ? await createSession(encodeModel(partition.prefix, 'frozen prefix', 'frozen prefix of a fine-tuned backbone', { producer: 'headstart fine-tune' }), `${backbone.spec.origin} (frozen prefix)`, threads) : undefined;
    return new PrefixRunner(backbone, partition, inputName, session);
  }

  /** True when nothing is frozen below the trainable part: rows are the prepared inputs themselves. */
  get isIdentity(): boolean {
    return this.session === undefined;
  }

  prepare(input: Uint8Array, view?: AugmentationView): Promise<Float32Array> {
    return this.backbone.prepare(input, view);
  }

  async forward(batch: Float32Array[]): Promise<Float32Array> {
    if (!this.session) return stack(batch);
    const { width, height, layout } = this.backbone.preprocessing;
    const dims = layout === 'NCHW' ? [batch.length, 3, height, width] : [batch.length, height, width, 3];
    const outputs = await this.session.run({ [this.inputName]: new ort.Tensor('float32', stack(batch), dims) });
    const rowSize = this.reference.featureDim;
    const rows = new Float32Array(batch.length * rowSize);
    let offset = 0;
    this.partition.prefix!.outputs.forEach((output, t) => {
      const data = outputs[output.name]!.data as Float32Array;
      const size = this.sizes[t]!;
      for (let r = 0; r < batch.length; r++) rows.set(data.subarray(r * size, (r + 1) * size), r * rowSize + offset);
      offset += size;
    });
    return rows;
  }

  async dispose(): Promise<void> {
    await this.session?.release();
  }
}
