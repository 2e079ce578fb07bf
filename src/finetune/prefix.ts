/**
 * The frozen prefix of a partitioned backbone as a `Backbone`, so `extractFeatures` runs it once per
 * input (and per augmented view) with its batching, decode overlap and on-disk cache: the cached
 * "feature" of an input is its activation at the cut, keyed by the backbone's hash, the cut
 * tensors and the preprocessing (for text, with the fixed sequence length).
 */
import type { Backbone, BackboneReference, AugmentationView } from '../backbones/backbone.js';
import { createSession, type ort } from '../backbones/onnx-session.js';
import { encodeModel } from '../backbones/tfjs/onnx-graph.js';
import type { Partition } from '../autodiff/partition.js';
import { elementCount } from '../autodiff/graph-utils.js';
import type { BackboneGraph } from './backbone-graph.js';

export class PrefixRunner<Input = unknown, Prepared = unknown> implements Backbone<Input, Prepared> {
  readonly reference: BackboneReference;
  readonly preprocessing: object;
  readonly batchSize: number;
  /** Per-example value count of each frontier tensor, in partition order; a row is their concatenation. */
  readonly sizes: number[];

  private constructor(
    private readonly graph: BackboneGraph<Input, Prepared>,
    private readonly partition: Partition,
    private readonly session: ort.InferenceSession | undefined,
  ) {
    this.sizes = partition.frontier.map((tensor) => elementCount(tensor.dims));
    this.preprocessing = graph.preprocessing;
    this.batchSize = graph.backbone.batchSize;
    this.reference = {
      ...graph.backbone.reference,
      featureDim: this.sizes.reduce((a, b) => a + b, 0),
      featureOutput: `activations at ${partition.frontier.map((tensor) => tensor.name).join(' + ')}`,
    };
  }

  static async open<Input, Prepared>(graph: BackboneGraph<Input, Prepared>, partition: Partition, threads?: number): Promise<PrefixRunner<Input, Prepared>> {
    const origin = `${graph.model.origin} (frozen prefix)`;
    const session = partition.prefix ? await createSession(encodeModel(partition.prefix, 'frozen prefix', 'frozen prefix of a fine-tuned backbone', { producer: 'headstart fine-tune' }), origin, threads) : undefined;
    return new PrefixRunner(graph, partition, session);
  }

  /** True when nothing is frozen below the trainable part: rows are the graph's inputs themselves. */
  get isIdentity(): boolean {
    return this.session === undefined;
  }

  prepare(input: Input, view?: AugmentationView): Promise<Prepared> {
    return this.graph.prepare(input, view);
  }

  async forward(batch: Prepared[]): Promise<Float32Array> {
    const feeds = this.graph.feeds(batch);
    // Without a prefix the frontier is the graph's inputs; with one, its outputs in frontier order.
    const names = this.partition.prefix ? this.partition.prefix.outputs.map((output) => output.name) : this.partition.frontier.map((tensor) => tensor.name);
    const outputs = this.session ? await this.session.run(feeds, names) : feeds;
    const rowSize = this.reference.featureDim;
    const rows = new Float32Array(batch.length * rowSize);
    let offset = 0;
    names.forEach((name, t) => {
      const data = outputs[name]!.data as Float32Array | BigInt64Array;
      const size = this.sizes[t]!;
      for (let r = 0; r < batch.length; r++) {
        // Token ids (int64) are held as float32: exact below 2^24, far above any vocabulary.
        const values = data instanceof BigInt64Array ? Float32Array.from(data.subarray(r * size, (r + 1) * size), Number) : data.subarray(r * size, (r + 1) * size);
        rows.set(values, r * rowSize + offset);
      }
      offset += size;
    });
    return rows;
  }

  async dispose(): Promise<void> {
    await this.session?.release();
  }
}
