/**
 * `headstart/web`: runs a model exported with `headstart export` in the browser, on
 * onnxruntime-web, with no Node built-ins and nothing else from headstart.
 *
 *   import { loadClassifier } from 'headstart/web';
 *   const model = await loadClassifier('/models/flowers.onnx');
 *   const [best] = await model.classify(document.querySelector('canvas')!);
 *
 * Images are cropped and resized on a canvas with the geometry recorded in the file (as training
 * did), flattened onto white and read out as RGB bytes; the graph does the rest. Canvas resampling
 * is not libvips', so probabilities differ from Node's in the last digits; the top label agrees.
 * Transformer text models are tokenised with the tokenizer embedded in the file, by
 * @huggingface/tokenizers (pure JS, loaded only for them), exactly as in training; word-vector and
 * TF-IDF models with headstart's own word tokeniser / TF-IDF featuriser (`text-input.ts`, the code
 * the library trains with) over the vocabulary or fitted state in the file. Audio models take a
 * WAV (Blob, bytes or URL) or an AudioBuffer: the browser decodes it at the file's own sample rate,
 * and headstart's resampler (`resample.ts`, the library's) brings it to the model's rate.
 */
import * as ort from 'onnxruntime-web';
import {
  cropBox,
  detectionPlacement,
  detectionsFromRows,
  type ExportedDetection,
  padTokenIds,
  parseExportMetadata,
  readOnnxMetadata,
  topPredictions,
  type EmbeddedTokenizer,
  type ExportMetadata,
  type ExportedAudioInput,
  type ExportedImageInput,
  type ExportedTextInput,
  type Prediction,
} from './format.js';
import { downmix, resample } from './resample.js';
import { textFeaturizer, type TextFeaturizer } from './text-input.js';

export { env } from 'onnxruntime-web';
export { cropBox, detectionPlacement, detectionsFromRows, parseExportMetadata, readOnnxMetadata, topPredictions, METADATA_KEYS } from './format.js';
// Pure JS, for consumers that run the file with another runtime (onnxruntime-node, say) but need headstart's text featurisation.
export { textFeaturizer, type PlainTensor, type TextFeaturizer } from './text-input.js';
export type { ExportedDetection, ExportedDetectionsOutput, ExportMetadata, ExportedImageInput, ExportedTextInput, ExportedWordsInput, ExportedTfidfInput, ExportedAudioInput, ExportedOutput, Prediction, Provenance } from './format.js';

/** Anything a browser can draw, a Blob (a file from an <input>), or the URL of an image (for text models: the text). */
export type ImageSource =
  | HTMLImageElement
  | HTMLCanvasElement
  | HTMLVideoElement
  | OffscreenCanvas
  | ImageBitmap
  | ImageData
  | VideoFrame
  | Blob
  | URL
  | string;

/** For audio models: a WAV file (as a Blob, bytes or URL), or audio the page decoded itself. */
export type AudioSource = Blob | ArrayBuffer | Uint8Array | URL | string | AudioBuffer;

export interface LoadOptions {
  /** onnxruntime-web session options; default: the wasm backend, all graph optimisations. */
  sessionOptions?: ort.InferenceSession.SessionOptions;
}

/** Fetches (or takes) an exported model, reads its metadata and opens an onnxruntime-web session. */
export async function loadClassifier(model: string | URL | ArrayBuffer | Uint8Array, options: LoadOptions = {}): Promise<WebClassifier> {
  const bytes =
    model instanceof Uint8Array ? model : model instanceof ArrayBuffer ? new Uint8Array(model) : new Uint8Array(await (await fetchOk(model)).arrayBuffer());
  const metadata = parseExportMetadata(readOnnxMetadata(bytes));
  const tokenizer = metadata.input.kind === 'text' ? await TextTokenizer.create(metadata.tokenizer!, metadata.input) : undefined;
  const featurizer = textFeaturizer(metadata);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', ...options.sessionOptions });
  return new WebClassifier(session, metadata, tokenizer, featurizer);
}

/** The training tokenisation, from the embedded tokenizer.json: tokens cut to fit, framed by the special ids. */
export class TextTokenizer {
  private constructor(
    private readonly tokenizer: { tokenize(text: string): string[] },
    private readonly vocabulary: Map<string, number>,
    private readonly unknownId: number,
    private readonly input: ExportedTextInput,
  ) {}

  static async create(embedded: EmbeddedTokenizer, input: ExportedTextInput): Promise<TextTokenizer> {
    const { Tokenizer } = await import('@huggingface/tokenizers');
    const tokenizer = new Tokenizer(embedded.tokenizer, embedded.config);
    const unknownId = tokenizer.model?.unk_token_id ?? 0;
    return new TextTokenizer(tokenizer, tokenizer.get_vocab(true), unknownId, input);
  }

  /** Token ids with the model's special tokens, at most maxLength (the end of a long text is dropped). */
  encode(text: string): number[] {
    const { prefix, suffix, maxLength } = this.input;
    const tokens = this.tokenizer.tokenize(text);
    const kept = tokens.slice(0, maxLength - prefix.length - suffix.length);
    return [...prefix, ...kept.map((token) => this.vocabulary.get(token) ?? this.unknownId), ...suffix];
  }
}

export class WebClassifier {
  constructor(
    private readonly session: ort.InferenceSession,
    readonly metadata: ExportMetadata,
    /** Transformer text models only. */
    readonly tokenizer?: TextTokenizer,
    /** Word-vector and TF-IDF text models only. */
    private readonly featurizer?: TextFeaturizer,
  ) {}

  get labels(): string[] {
    return this.metadata.labels;
  }

  /** The top-k labels for one input (an image, for text models the text, for audio models a WAV), most probable first. */
  async classify(input: ImageSource | AudioSource, options: { topK?: number } = {}): Promise<Prediction[]> {
    return (await this.classifyMany([input], options))[0]!;
  }

  /** Top-k labels for several inputs, with one model run for all of them (audio: one run per clip). */
  async classifyMany(inputs: (ImageSource | AudioSource)[], options: { topK?: number } = {}): Promise<Prediction[][]> {
    const probabilities = await this.probabilities(inputs);
    const k = this.labels.length;
    return inputs.map((_, i) => topPredictions(probabilities.subarray(i * k, (i + 1) * k), this.labels, options.topK ?? k));
  }

  /** Class probabilities, inputs × classes, row-major. */
  async probabilities(inputs: (ImageSource | AudioSource)[]): Promise<Float32Array> {
    const input = this.metadata.input;
    if (input.kind === 'audio') return this.probabilitiesOfSamples(await Promise.all(inputs.map((clip) => audioSamples(clip as AudioSource, input))));
    if (input.kind !== 'image') {
      const texts = inputs.map((text) => {
        if (typeof text !== 'string') throw new Error('a text model classifies strings');
        return text;
      });
      return input.kind === 'text' ? this.probabilitiesOfTokens(texts.map((text) => this.tokenizer!.encode(text))) : this.probabilitiesOfTexts(texts);
    }
    return this.probabilitiesOfPixels(await Promise.all(inputs.map((image) => imagePixels(image as ImageSource, input))));
  }

  /** Probabilities for images already cropped and resized to the input size: RGB bytes, HWC. */
  async probabilitiesOfPixels(images: Uint8Array[]): Promise<Float32Array> {
    const input = this.metadata.input;
    if (input.kind !== 'image') throw new Error('this model takes text, not pixels');
    const size = input.width * input.height * 3;
    const batch = new Uint8Array(images.length * size);
    images.forEach((pixels, i) => {
      if (pixels.length !== size) throw new Error(`expected ${input.width}×${input.height} RGB pixels (${size} bytes), got ${pixels.length}`);
      batch.set(pixels, i * size);
    });
    return this.run({ [input.name]: new ort.Tensor('uint8', batch, [images.length, input.height, input.width, 3]) });
  }

  /** Probabilities for token id sequences (special tokens included), padded here. */
  async probabilitiesOfTokens(sequences: number[][]): Promise<Float32Array> {
    const input = this.metadata.input;
    if (input.kind !== 'text') throw new Error(`this model takes ${input.kind === 'image' ? 'images' : 'texts'}, not transformer token ids`);
    const { ids, mask, length } = padTokenIds(sequences, input.padId);
    const dims = [sequences.length, length];
    return this.run({ [input.idsName]: new ort.Tensor('int64', ids, dims), [input.maskName]: new ort.Tensor('int64', mask, dims) });
  }

  /** Probabilities for mono clips at the model's sample rate, samples in [-1, 1]: one run per clip (the graph takes one). */
  async probabilitiesOfSamples(clips: Float32Array[]): Promise<Float32Array> {
    const input = this.metadata.input;
    if (input.kind !== 'audio') throw new Error(`this model takes ${input.kind === 'image' ? 'images' : 'text'}, not audio samples`);
    const classes = this.metadata.output.classes;
    const out = new Float32Array(clips.length * classes);
    for (const [i, clip] of clips.entries()) out.set(await this.run({ [input.name]: new ort.Tensor('float32', clip, [1, clip.length]) }), i * classes);
    return out;
  }

  /** Probabilities for texts of a word-vector or TF-IDF model, featurised from the file's metadata. */
  async probabilitiesOfTexts(texts: string[]): Promise<Float32Array> {
    if (!this.featurizer) throw new Error(`this model takes ${this.metadata.input.kind === 'image' ? 'images' : 'token ids from its tokenizer'}, not featurised texts`);
    const feeds = Object.fromEntries(Object.entries(this.featurizer.feeds(texts)).map(([name, t]) => [name, new ort.Tensor(t.type, t.data, t.dims)]));
    return this.run(feeds);
  }

  private async run(feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
    const outputName = this.metadata.output.name;
    const results = await this.session.run(feeds, [outputName]);
    const output = results[outputName]!;
    const probabilities = (output.data as Float32Array).slice();
    output.dispose();
    return probabilities;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Opens a detector export (`headstart export builtin:centernet`, a fine-tuned detector, a YOLO file):
 *
 *   const detector = await loadDetector('/models/centernet.onnx');
 *   for (const { label, score, box } of await detector.detect(img)) draw(box);
 */
export async function loadDetector(model: string | URL | ArrayBuffer | Uint8Array, options: LoadOptions = {}): Promise<WebDetector> {
  const bytes =
    model instanceof Uint8Array ? model : model instanceof ArrayBuffer ? new Uint8Array(model) : new Uint8Array(await (await fetchOk(model)).arrayBuffer());
  const metadata = parseExportMetadata(readOnnxMetadata(bytes));
  if (metadata.output.kind !== 'detections' || metadata.input.kind !== 'image') throw new Error('not a detector export: its output is not [N, 6] detections (use loadClassifier)');
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', ...options.sessionOptions });
  return new WebDetector(session, metadata, metadata.input);
}

/** A detector export on onnxruntime-web: boxes in the photo's own pixels (as displayed, EXIF applied). */
export class WebDetector {
  constructor(
    private readonly session: ort.InferenceSession,
    readonly metadata: ExportMetadata,
    readonly input: ExportedImageInput,
  ) {}

  get labels(): string[] {
    return this.metadata.labels;
  }

  /** Boxes of one image, best first; `minScore` filters above the file's own threshold. */
  async detect(source: ImageSource, options: { minScore?: number } = {}): Promise<ExportedDetection[]> {
    const { image, width, height, close } = await drawable(source);
    try {
      const place = detectionPlacement(width, height, this.input);
      const canvas = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(this.input.width, this.input.height) : Object.assign(document.createElement('canvas'), { width: this.input.width, height: this.input.height });
      const context = canvas.getContext('2d', { willReadFrequently: true }) as CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null;
      if (!context) throw new Error('no 2D canvas context available');
      const pad = this.input.padValue ?? 0;
      context.fillStyle = `rgb(${pad},${pad},${pad})`;
      context.fillRect(0, 0, this.input.width, this.input.height);
      context.imageSmoothingEnabled = true;
      context.imageSmoothingQuality = 'high';
      context.drawImage(image, 0, 0, width, height, place.x, place.y, place.width, place.height);
      const rgba = context.getImageData(0, 0, this.input.width, this.input.height).data;
      const rgb = new Uint8Array(this.input.width * this.input.height * 3);
      for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
        rgb[q] = rgba[p]!;
        rgb[q + 1] = rgba[p + 1]!;
        rgb[q + 2] = rgba[p + 2]!;
      }
      return detectionsFromRows(await this.rows(rgb), this.labels, place, width, height, options.minScore);
    } finally {
      close?.();
    }
  }

  /** Boxes for pixels already placed at the input size (uint8 RGB, HWC), mapped with `placement` to a width×height photo. */
  async detectPixels(pixels: Uint8Array, placement: { scaleX: number; scaleY: number; padX: number; padY: number }, width: number, height: number): Promise<ExportedDetection[]> {
    return detectionsFromRows(await this.rows(pixels), this.labels, placement, width, height);
  }

  /** The raw [N, 6] rows (x1, y1, x2, y2, score, class) in input pixels. */
  async rows(pixels: Uint8Array): Promise<Float32Array> {
    const { width, height, name } = this.input;
    if (pixels.length !== width * height * 3) throw new Error(`expected ${width}×${height} RGB pixels (${width * height * 3} bytes), got ${pixels.length}`);
    const outputName = this.metadata.output.name;
    const results = await this.session.run({ [name]: new ort.Tensor('uint8', pixels, [1, height, width, 3]) }, [outputName]);
    const output = results[outputName]!;
    const rows = (output.data as Float32Array).slice();
    output.dispose();
    return rows;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The graph's input for one image: cropped and resized as in training, over white, RGB bytes (HWC). */
export async function imagePixels(source: ImageSource, input: ExportedImageInput): Promise<Uint8Array> {
  const { image, width, height, close } = await drawable(source);
  try {
    const box = cropBox(width, height, input);
    const canvas = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(input.width, input.height) : Object.assign(document.createElement('canvas'), { width: input.width, height: input.height });
    const context = canvas.getContext('2d', { willReadFrequently: true }) as CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null;
    if (!context) throw new Error('no 2D canvas context available');
    context.fillStyle = `rgb(${input.background.join(',')})`;
    context.fillRect(0, 0, input.width, input.height);
    context.imageSmoothingEnabled = input.interpolation !== 'nearest';
    context.imageSmoothingQuality = 'high';
    context.drawImage(image, box.x, box.y, box.width, box.height, 0, 0, input.width, input.height);
    const rgba = context.getImageData(0, 0, input.width, input.height).data;
    const rgb = new Uint8Array(input.width * input.height * 3);
    for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
      rgb[q] = rgba[p]!;
      rgb[q + 1] = rgba[p + 1]!;
      rgb[q + 2] = rgba[p + 2]!;
    }
    return rgb;
  } finally {
    close?.();
  }
}

/**
 * The graph's input for one clip: mono samples at the model's rate. A WAV is decoded by the
 * browser at its own sample rate (read from its header), so the browser only converts samples to
 * floats, and the library's resampler does the rest, as in training; other formats, which the
 * library does not read, are decoded at the model's rate by the browser's resampler.
 */
export async function audioSamples(source: AudioSource, input: ExportedAudioInput): Promise<Float32Array> {
  let buffer: AudioBuffer;
  if (typeof AudioBuffer !== 'undefined' && source instanceof AudioBuffer) {
    buffer = source;
  } else {
    const bytes =
      source instanceof Uint8Array
        ? source
        : source instanceof ArrayBuffer
          ? new Uint8Array(source)
          : new Uint8Array(await (source instanceof Blob ? source : await (await fetchOk(source as string | URL)).blob()).arrayBuffer());
    const context = new OfflineAudioContext(1, 1, wavSampleRate(bytes) ?? input.sampleRate);
    // decodeAudioData detaches the buffer it is given: a copy keeps the caller's bytes.
    buffer = await context.decodeAudioData(bytes.slice().buffer);
  }
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  return resample(downmix(channels), buffer.sampleRate, input.sampleRate);
}

/** The sample rate in a WAV file's `fmt ` chunk (RIFF, RIFX or RF64), or undefined for anything else. */
export function wavSampleRate(bytes: Uint8Array): number | undefined {
  const tag = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 12 || !['RIFF', 'RIFX', 'RF64'].includes(tag(0)) || tag(8) !== 'WAVE') return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const little = tag(0) !== 'RIFX';
  for (let at = 12; at + 8 <= bytes.length; ) {
    const size = view.getUint32(at + 4, little);
    if (tag(at) === 'fmt ') return at + 16 <= bytes.length ? view.getUint32(at + 12, little) : undefined;
    // Chunks are padded to an even size.
    at += 8 + size + (size % 2);
  }
  return undefined;
}

interface Drawable {
  image: CanvasImageSource;
  width: number;
  height: number;
  /** Frees a bitmap made here. */
  close?: () => void;
}

async function drawable(source: ImageSource): Promise<Drawable> {
  if (typeof source === 'string' || source instanceof URL) return bitmapOf(await (await fetchOk(source)).blob());
  if (source instanceof Blob) return bitmapOf(source);
  if (typeof ImageData !== 'undefined' && source instanceof ImageData) return bitmapOf(source);
  if (typeof HTMLImageElement !== 'undefined' && source instanceof HTMLImageElement) {
    if (!source.complete || source.naturalWidth === 0) await source.decode();
    return { image: source, width: source.naturalWidth, height: source.naturalHeight };
  }
  if (typeof HTMLVideoElement !== 'undefined' && source instanceof HTMLVideoElement) return { image: source, width: source.videoWidth, height: source.videoHeight };
  if (typeof VideoFrame !== 'undefined' && source instanceof VideoFrame) return { image: source, width: source.displayWidth, height: source.displayHeight };
  const sized = source as HTMLCanvasElement | OffscreenCanvas | ImageBitmap;
  return { image: sized, width: sized.width, height: sized.height };
}

async function bitmapOf(source: Blob | ImageData): Promise<Drawable> {
  // EXIF orientation applied, as training applied it.
  const bitmap = await createImageBitmap(source, { imageOrientation: 'from-image' });
  return { image: bitmap, width: bitmap.width, height: bitmap.height, close: () => bitmap.close() };
}

async function fetchOk(url: string | URL): Promise<Response> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${String(url)}: HTTP ${response.status}`);
  return response;
}
