import type { AugmentationView, Backbone, BackboneReference } from './backbone.js';
import type { ImagePreprocessing } from './image-preprocessing.js';
import { ThreadedSession, ort, poolOutput, sessionOptions, stack, type Pooling, type SessionLike } from './onnx-session.js';
import { DEFAULT_IMAGE_AUGMENTATION, prepareImage, type ImageAugmentation } from '../data/image-decode.js';
import { modelError } from '../util/errors.js';
import { exposeClassifierInput } from './graph-surgery.js';
import { readFile } from 'node:fs/promises';

/** What is needed to run an ONNX vision graph as a feature extractor. */
export interface ImageGraphSpec {
  id: string;
  /** Path of the .onnx file, or its bytes. */
  model: string | Uint8Array;
  /** For error messages: where the graph came from. */
  origin: string;
  sha256: string;
  /** Defaults to the graph's first input. */
  inputName?: string;
  /** Defaults to the best feature output the graph offers (see `chooseFeatureOutput`). */
  outputName?: string;
  pooling?: Pooling;
  preprocessing: ImagePreprocessing;
}

/** An ONNX vision backbone: image bytes in, one feature vector per image out. */
export class ImageBackbone implements Backbone<Uint8Array, Float32Array> {
  readonly batchSize = 16;
  readonly preprocessing: ImagePreprocessing;

  private constructor(
    readonly reference: BackboneReference,
    readonly spec: ImageGraphSpec,
    private readonly session: SessionLike,
    readonly inputName: string,
    readonly outputName: string,
    readonly pooling: Pooling,
  ) {
    this.preprocessing = spec.preprocessing;
  }

  static async open(spec: ImageGraphSpec, threads?: number): Promise<ImageBackbone> {
    // On its own thread, so decoding the next images (and serving HTTP) goes on during a forward;
    // without spinning, since those decodes need the cores onnxruntime's idle threads would hold.
    const options = sessionOptions(threads, { spinning: false });
    let session: SessionLike = await ThreadedSession.create(spec.model, spec.origin, options);
    if (!spec.outputName && onlyLogits(session)) {
      // A classifier export: take the classification layer's input as the features.
      const bytes = typeof spec.model === 'string' ? await readFile(spec.model) : spec.model;
      const exposed = exposeClassifierInput(bytes, session.outputNames[0]!, spec.origin);
      await session.release();
      session = await ThreadedSession.create(exposed.model, spec.origin, options);
      spec = { ...spec, model: exposed.model, outputName: exposed.output, pooling: 'none' };
    }
    const inputName = spec.inputName ?? session.inputNames[0]!;
    if (!session.inputNames.includes(inputName)) {
      throw modelError(`the graph has no input "${inputName}" (inputs: ${session.inputNames.join(', ')})`, spec.origin);
    }
    const { outputName, pooling } = spec.outputName
      ? { outputName: spec.outputName, pooling: spec.pooling ?? 'none' }
      : chooseFeatureOutput(session);
    if (!session.outputNames.includes(outputName)) {
      throw modelError(`the graph has no output "${outputName}" (outputs: ${session.outputNames.join(', ')})`, spec.origin);
    }
    const reference: BackboneReference = {
      id: spec.id,
      sha256: spec.sha256,
      modality: 'image',
      featureDim: 0,
      featureOutput: pooling === 'none' ? outputName : `${outputName} (${pooling})`,
    };
    const backbone = new ImageBackbone(reference, spec, session, inputName, outputName, pooling);
    // One blank image tells the feature size whatever the graph's metadata says, and warms the session up.
    const probe = await backbone.forward([new Float32Array(3 * spec.preprocessing.width * spec.preprocessing.height)]);
    reference.featureDim = probe.length;
    return backbone;
  }

  prepare(bytes: Uint8Array, view?: AugmentationView): Promise<Float32Array> {
    const augment = view ? { seed: view.seed, settings: (view.settings as ImageAugmentation) ?? DEFAULT_IMAGE_AUGMENTATION } : undefined;
    return prepareImage(bytes, this.preprocessing, undefined, augment);
  }

  async forward(batch: Float32Array[]): Promise<Float32Array> {
    const { width, height, layout } = this.preprocessing;
    const dims = layout === 'NCHW' ? [batch.length, 3, height, width] : [batch.length, height, width, 3];
    const input = new ort.Tensor('float32', stack(batch), dims);
    const outputs = await this.session.run({ [this.inputName]: input }, [this.outputName]);
    const output = outputs[this.outputName]!;
    const { features } = poolOutput(output, this.pooling);
    output.dispose?.();
    return features;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** True when a graph offers nothing but class scores (a `…ForImageClassification` export). */
function onlyLogits(session: SessionLike): boolean {
  return session.outputNames.length === 1 && session.outputNames[0] === 'logits';
}

/**
 * Picks the output that best serves as an image embedding: a pooled vector when the graph has one
 * (`pooler_output`, `image_embeds`), else the last hidden state pooled — averaged over space for a
 * CNN feature map, the class token for a transformer's token sequence.
 */
export function chooseFeatureOutput(session: SessionLike): { outputName: string; pooling: Pooling } {
  const outputs = session.outputMetadata.map((meta) => ({
    name: meta.name,
    rank: meta.isTensor ? meta.shape.length : 0,
  }));
  for (const preferred of ['pooler_output', 'image_embeds', 'features']) {
    const found = outputs.find((o) => o.name === preferred && o.rank === 2);
    if (found) return { outputName: found.name, pooling: 'none' };
  }
  const hidden = outputs.find((o) => o.name === 'last_hidden_state') ?? outputs[0]!;
  const pooling: Pooling = hidden.rank === 4 ? 'spatial-mean' : hidden.rank === 3 ? 'first-token' : 'none';
  return { outputName: hidden.name, pooling };
}
