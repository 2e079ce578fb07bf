import { readFile } from 'node:fs/promises';
import { createSession, ort } from '../backbones/onnx-session.js';
import type { ReplaceGuard } from '../util/atomic.js';
import { dataError, modelError, messageOf } from '../util/errors.js';
import { METADATA_KEYS, padTokenIds, parseExportMetadata, readOnnxMetadata, type ExportMetadata } from '../web/format.js';
import { textFeaturizer, type TextFeaturizer } from '../web/text-input.js';

/** Whether `path` is an ONNX file headstart exported (its metadata_props carry `headstart.format`). */
export async function isExportedModelFile(path: string): Promise<boolean> {
  try {
    return METADATA_KEYS.format in readOnnxMetadata(await readFile(path));
  } catch {
    // Not protobuf at all (a photo, a text file): certainly not an export.
    return false;
  }
}

/** An export only ever replaces an earlier export at the path the user gave. */
export const EXPORT_FILE_GUARD: ReplaceGuard = {
  what: 'ONNX export',
  ours: `an ONNX file headstart exported (with "${METADATA_KEYS.format}" in its metadata)`,
  isOurs: isExportedModelFile,
};

/** One input as an export takes it: pixels, token ids, samples, or a text (word-vector and TF-IDF exports). */
export type PreparedInput = Uint8Array | number[] | Float32Array | string;

/**
 * An exported classifier run with onnxruntime-node, fed as any consumer would feed it (pixels,
 * token ids, or for word-vector and TF-IDF exports texts featurised from the file's metadata): used
 * by the export's own checks and its accuracy comparison.
 */
export class ExportedModel {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly metadata: ExportMetadata,
    private readonly featurizer: TextFeaturizer | undefined,
  ) {}

  static async load(model: string | Uint8Array, threads?: number): Promise<ExportedModel> {
    const origin = typeof model === 'string' ? model : 'exported model';
    const bytes = typeof model === 'string' ? await readFile(model) : model;
    let metadata: ExportMetadata;
    let featurizer: TextFeaturizer | undefined;
    try {
      metadata = parseExportMetadata(readOnnxMetadata(bytes));
      featurizer = textFeaturizer(metadata);
    } catch (error) {
      throw modelError(messageOf(error), origin, error);
    }
    return new ExportedModel(await createSession(bytes, origin, threads), metadata, featurizer);
  }

  get labels(): string[] {
    return this.metadata.labels;
  }

  /** Probabilities (batch × classes) for uint8 RGB images already at the input size (HWC). */
  async probabilities(images: Uint8Array[]): Promise<Float32Array> {
    return this.run(this.pixelFeeds(images));
  }

  /** Probabilities for token id sequences (special tokens included), padded here. */
  async probabilitiesOfTokens(sequences: number[][]): Promise<Float32Array> {
    return this.run(this.tokenFeeds(sequences));
  }

  /** Probabilities for mono clips at the export's sample rate, samples in [-1, 1]: one run per clip (the graph takes one). */
  async probabilitiesOfSamples(clips: Float32Array[]): Promise<Float32Array> {
    const classes = this.metadata.output.classes;
    const out = new Float32Array(clips.length * classes);
    for (const [i, clip] of clips.entries()) out.set(await this.run(this.sampleFeeds(clip)), i * classes);
    return out;
  }

  /** Probabilities for texts, featurised as the file's metadata says (word-vector and TF-IDF exports). */
  async probabilitiesOfTexts(texts: string[]): Promise<Float32Array> {
    return this.run(this.textFeeds(texts));
  }

  /**
   * The float32 values of any of the graph's outputs for one input, prepared as for the methods
   * above (pixels, token ids, samples or a text): what int8 calibration reads.
   */
  async outputsFor(input: PreparedInput, names: string[]): Promise<Record<string, Float32Array>> {
    const kind = this.metadata.input.kind;
    const feeds =
      kind === 'image' ? this.pixelFeeds([input as Uint8Array])
      : kind === 'text' ? this.tokenFeeds([input as number[]])
      : kind === 'audio' ? this.sampleFeeds(input as Float32Array)
      : this.textFeeds([input as string]);
    const result = await this.session.run(feeds, names);
    return Object.fromEntries(names.map((name) => [name, result[name]!.data as Float32Array]));
  }

  private pixelFeeds(images: Uint8Array[]): Record<string, ort.Tensor> {
    const input = this.metadata.input;
    if (input.kind !== 'image') throw modelError('this export takes text, not pixels');
    const { width, height, name } = input;
    const size = width * height * 3;
    const batch = new Uint8Array(images.length * size);
    images.forEach((pixels, i) => {
      if (pixels.length !== size) throw dataError(`expected ${width}×${height} RGB pixels (${size} bytes), got ${pixels.length} bytes`);
      batch.set(pixels, i * size);
    });
    return { [name]: new ort.Tensor('uint8', batch, [images.length, height, width, 3]) };
  }

  private tokenFeeds(sequences: number[][]): Record<string, ort.Tensor> {
    const input = this.metadata.input;
    if (input.kind !== 'text') throw modelError(`this export takes ${input.kind === 'image' ? 'pixels' : 'texts'}, not transformer token ids`);
    const { ids, mask, length } = padTokenIds(sequences, input.padId);
    const dims = [sequences.length, length];
    return { [input.idsName]: new ort.Tensor('int64', ids, dims), [input.maskName]: new ort.Tensor('int64', mask, dims) };
  }

  private sampleFeeds(clip: Float32Array): Record<string, ort.Tensor> {
    const input = this.metadata.input;
    if (input.kind !== 'audio') throw modelError(`this export takes ${input.kind === 'image' ? 'pixels' : 'text'}, not audio samples`);
    return { [input.name]: new ort.Tensor('float32', clip, [1, clip.length]) };
  }

  private textFeeds(texts: string[]): Record<string, ort.Tensor> {
    if (!this.featurizer) throw modelError(`this export takes ${this.metadata.input.kind === 'image' ? 'pixels' : 'token ids from its tokenizer'}, not texts`);
    return Object.fromEntries(Object.entries(this.featurizer.feeds(texts)).map(([name, t]) => [name, new ort.Tensor(t.type, t.data, t.dims)]));
  }

  private async run(feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
    const outputName = this.metadata.output.name;
    const result = await this.session.run(feeds, [outputName]);
    const output = result[outputName]!;
    const probabilities = (output.data as Float32Array).slice();
    output.dispose?.();
    return probabilities;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
