/**
 * The contract between an exported headstart ONNX file and whatever runs it: which metadata keys
 * it carries, what they hold, and how a photo or a text becomes the graph's input. Plain TypeScript
 * with no Node built-ins and no DOM, shared by the exporter (Node) and `headstart/web` (browsers).
 *
 * A classifier export returns `float32 [batch, classes]` probabilities; a detector export (modality
 * `detection`) returns `float32 [N, 6]` boxes of its one image (`ExportedDetectionsOutput`), its
 * input stretched or letterboxed as `detectionPlacement` says. An image export takes
 * `uint8 [batch, height, width, 3]` RGB pixels; scaling and normalisation happen inside the graph, so
 * a consumer only resizes/crops (`cropBox`) and reads the pixels out, in any language. Text exports
 * take one of three inputs, by the backbone they were trained on (`ExportedInput.kind`):
 *  - `text` (transformers): int64 token ids and attention mask from the tokenizer.json it embeds;
 *  - `words` (word vectors such as GloVe): int64 word ids and mask from headstart's word tokeniser
 *    (`word-tokens.ts`) over the vocabulary in `headstart.vocabulary`; the graph holds the vector
 *    table and pools (SIF mean, max, min) as training did;
 *  - `tfidf`: the TF-IDF rows that `tfidf.ts` computes from the fitted state in `headstart.tfidf`,
 *    as their non-zeros (a COO sparse tensor: int64 [nnz, 2] (row, term) indices, float32 [nnz]
 *    values, int64 [2] shape), so a 200k-term vocabulary costs a row's few hundred non-zeros, not
 *    200k floats; the graph scatters them into rows and applies the head. (Format 1 files took the
 *    dense float32 rows; they are still read.)
 * `text-input.ts` turns texts into the `words` and `tfidf` inputs for any runtime. An audio export
 * (the speech-embedding backbone) takes one clip per run: float32 [1, samples] of mono audio at
 * `sampleRate`, in [-1, 1]; the mel spectrogram, windowing, embedding and pooling are in the graph.
 */
import type { TfidfState } from './tfidf.js';

/** 2: TF-IDF exports take sparse rows (format 1 took them dense). */
export const EXPORT_FORMAT_VERSION = 2;

/** `metadata_props` keys; values are strings, JSON where noted. */
export const METADATA_KEYS = {
  /** "1" */
  format: 'headstart.format',
  /** "image" | "text" | "audio" */
  modality: 'headstart.modality',
  /** JSON string[]: the label of each output column. */
  labels: 'headstart.labels',
  /** JSON ExportedInput: what to feed the graph. */
  input: 'headstart.input',
  /** JSON ExportedOutput. */
  output: 'headstart.output',
  /** JSON: the preprocessing the model was trained with (for the record; the graph does the scaling). */
  preprocessing: 'headstart.preprocessing',
  /** JSON Provenance: where the model came from. */
  provenance: 'headstart.provenance',
  /** Transformer text models: JSON { tokenizer: <tokenizer.json>, config: <tokenizer_config.json> }. */
  tokenizer: 'headstart.tokenizer',
  /**
   * Word-vector text models: the vocabulary as plain text, one word per line, line i holding the
   * word of row i of the vector table (a word listed twice keeps its first id). Not JSON: GloVe's
   * 341,479 words are 3 MB as lines, a third more with quotes and commas; no word has a newline.
   */
  vocabulary: 'headstart.vocabulary',
  /** TF-IDF text models: JSON TfidfState (n-gram settings, terms in feature order, idf). */
  tfidf: 'headstart.tfidf',
} as const;

/** The geometry of getting from a photo to the graph's input size (see `cropBox`). */
export interface ImageResize {
  /** `letterbox` (detectors only): aspect kept, centred, the rest filled with `padValue` (see `detectionPlacement`). */
  resize: 'stretch' | 'shortest-edge-crop' | 'center-square-crop' | 'letterbox';
  shortestEdge?: number;
  interpolation: 'nearest' | 'bilinear' | 'bicubic';
}

export interface ExportedImageInput extends ImageResize {
  kind: 'image';
  /** The graph input's name. */
  name: string;
  dtype: 'uint8';
  /** [batch, height, width, channel], channels R, G, B. */
  layout: 'NHWC';
  width: number;
  height: number;
  /** What pixels with an alpha channel are flattened onto before RGB is read, as in training. */
  background: [number, number, number];
  /** `letterbox` only: the grey level of the padding (Ultralytics: 114). */
  padValue?: number;
}

/**
 * A text export takes token ids and an attention mask (int64 [batch, tokens], padded with `padId`
 * and 0): the text's tokens from the embedded tokenizer, cut to leave room for the `prefix` and
 * `suffix` special ids, then framed by them — `maxLength` ids at most.
 */
export interface ExportedTextInput {
  kind: 'text';
  idsName: string;
  maskName: string;
  maxLength: number;
  padId: number;
  prefix: number[];
  suffix: number[];
}

/**
 * A word-vector export takes word ids and a mask (int64 [batch, tokens], padded with `padId` and
 * 0): `wordIds` of the text over the vocabulary, unknown words already dropped; a text without
 * known words is a row of padding, which the graph pools to zeros as the library does.
 */
export interface ExportedWordsInput {
  kind: 'words';
  idsName: string;
  maskName: string;
  padId: number;
  /** The word tokeniser's rules (`WORD_TOKENIZER_VERSION`); a consumer with other rules must refuse the file. */
  tokenizer: string;
  /** Rows of the vector table, and lines of `headstart.vocabulary`. */
  vocabularySize: number;
}

/**
 * A TF-IDF export takes `TfidfVectorizer.transformSparse` of each text as one COO sparse tensor
 * (as tf.SparseTensor): `indicesName` int64 [nnz, 2] of (row, term), each pair once; `valuesName`
 * float32 [nnz]; `shapeName` int64 [2] = [batch, dim] (the batch counts texts without a term).
 */
export interface ExportedTfidfInput {
  kind: 'tfidf';
  indicesName: string;
  valuesName: string;
  shapeName: string;
  dim: number;
}

/** Format 1 TF-IDF exports took float32 [batch, dim] dense rows, `TfidfVectorizer.transform` of each text. */
export interface ExportedDenseTfidfInput {
  kind: 'tfidf';
  name: string;
  dim: number;
}

/**
 * An audio export takes float32 [1, samples]: one clip, mono, at `sampleRate` Hz, in [-1, 1]. The
 * library resamples with `resampler`; another resampler gives probabilities a little different.
 */
export interface ExportedAudioInput {
  kind: 'audio';
  name: string;
  sampleRate: number;
  resampler: string;
  /** Clips per run: windows vary in number with the clip's length, so the graph takes one at a time. */
  batch: 1;
}

export type ExportedInput = ExportedImageInput | ExportedTextInput | ExportedWordsInput | ExportedTfidfInput | ExportedDenseTfidfInput | ExportedAudioInput;

/** The tokenizer a text export embeds (Hugging Face tokenizer.json and tokenizer_config.json). */
export interface EmbeddedTokenizer {
  tokenizer: object;
  config: object;
}

export interface ExportedProbabilitiesOutput {
  name: string;
  /** Each row sums to 1 (softmax of the head's logits divided by the calibration temperature). */
  kind: 'probabilities';
  classes: number;
}

/**
 * A detector export returns float32 [N, 6] for its one image (batch 1): rows (x1, y1, x2, y2,
 * score, class), best score first, decoding and suppression done in the graph. Boxes are in the
 * graph's input pixels; `detectionPlacement` + `boxToSource` map them to the photo's.
 */
export interface ExportedDetectionsOutput {
  name: string;
  kind: 'detections';
  columns: ['x1', 'y1', 'x2', 'y2', 'score', 'class'];
  classes: number;
  /** Rows scoring below this are not returned (a consumer may filter higher, not lower). */
  threshold: number;
  /** At most this many rows. */
  maxDetections: number;
  /** How the graph decodes and suppresses, for the record: `centernet-peaks` or `nms` (with its IoU). */
  decoding: { kind: 'centernet-peaks' } | { kind: 'nms'; iou: number; classAware: true };
}

export type ExportedOutput = ExportedProbabilitiesOutput | ExportedDetectionsOutput;

export interface Provenance {
  headstartVersion: string;
  exportedAt: string;
  trainedAt: string;
  backbone: { id: string; sha256: string; featureOutput: string; featureDim: number };
  head: { type: string; config: Record<string, unknown> };
  temperature: number;
  validationAccuracy: number | null;
  /** null for fp32; otherwise how the weights were quantised. */
  quantization: { scheme: string; tensors: number } | null;
}

export interface ExportMetadata {
  format: number;
  /** `detection`: an image detector (`output.kind` is `detections`). */
  modality: 'image' | 'text' | 'audio' | 'detection';
  labels: string[];
  input: ExportedInput;
  output: ExportedOutput;
  preprocessing: unknown;
  provenance: Provenance | null;
  /** Transformer text exports only. */
  tokenizer?: EmbeddedTokenizer;
  /** Word-vector exports only: word i has id i. */
  vocabulary?: string[];
  /** TF-IDF exports only. */
  tfidf?: TfidfState;
}

/** The metadata an export carries, as `metadata_props` key/value strings. */
export function metadataProps(metadata: ExportMetadata): Record<string, string> {
  return {
    [METADATA_KEYS.format]: String(metadata.format),
    [METADATA_KEYS.modality]: metadata.modality,
    [METADATA_KEYS.labels]: JSON.stringify(metadata.labels),
    [METADATA_KEYS.input]: JSON.stringify(metadata.input),
    [METADATA_KEYS.output]: JSON.stringify(metadata.output),
    [METADATA_KEYS.preprocessing]: JSON.stringify(metadata.preprocessing),
    [METADATA_KEYS.provenance]: JSON.stringify(metadata.provenance),
    ...(metadata.tokenizer ? { [METADATA_KEYS.tokenizer]: JSON.stringify(metadata.tokenizer) } : {}),
    ...(metadata.vocabulary ? { [METADATA_KEYS.vocabulary]: vocabularyText(metadata.vocabulary) } : {}),
    ...(metadata.tfidf ? { [METADATA_KEYS.tfidf]: JSON.stringify(metadata.tfidf) } : {}),
  };
}

function vocabularyText(words: string[]): string {
  const bad = words.findIndex((word) => word.includes('\n'));
  if (bad >= 0) throw new Error(`word ${bad} of the vocabulary contains a newline, which "${METADATA_KEYS.vocabulary}" cannot hold`);
  return words.join('\n');
}

/** Reads and checks the metadata of a headstart export; the error says what is missing. */
export function parseExportMetadata(props: Record<string, string>): ExportMetadata {
  const format = Number(props[METADATA_KEYS.format]);
  if (!Number.isInteger(format)) throw new Error(`not a headstart export: the ONNX file has no "${METADATA_KEYS.format}" metadata`);
  if (format > EXPORT_FORMAT_VERSION) {
    throw new Error(`exported by a newer headstart (format ${format}; this one reads up to ${EXPORT_FORMAT_VERSION})`);
  }
  const json = (key: string): unknown => {
    const value = props[key];
    if (value === undefined) throw new Error(`headstart export without "${key}" metadata`);
    try {
      return JSON.parse(value);
    } catch {
      throw new Error(`headstart export with unreadable "${key}" metadata`);
    }
  };
  const labels = json(METADATA_KEYS.labels);
  if (!Array.isArray(labels) || !labels.every((label) => typeof label === 'string')) throw new Error(`"${METADATA_KEYS.labels}" is not a list of strings`);
  const input = json(METADATA_KEYS.input) as ExportedInput;
  if (!['image', 'text', 'words', 'tfidf', 'audio'].includes(input?.kind)) {
    throw new Error(`unsupported input kind ${JSON.stringify((input as { kind?: unknown })?.kind)} (this version reads image, text, words, tfidf and audio exports)`);
  }
  if (input.kind === 'text' && props[METADATA_KEYS.tokenizer] === undefined) throw new Error(`text export without "${METADATA_KEYS.tokenizer}" metadata`);
  let vocabulary: string[] | undefined;
  if (input.kind === 'words') {
    const text = props[METADATA_KEYS.vocabulary];
    if (text === undefined) throw new Error(`word-vector export without "${METADATA_KEYS.vocabulary}" metadata`);
    vocabulary = text.split('\n');
    if (vocabulary.length !== input.vocabularySize) throw new Error(`"${METADATA_KEYS.vocabulary}" lists ${vocabulary.length} words; the input says ${input.vocabularySize}`);
  }
  const tfidf = input.kind === 'tfidf' ? (json(METADATA_KEYS.tfidf) as TfidfState) : undefined;
  if (tfidf && tfidf.terms?.length !== (input as ExportedTfidfInput).dim) throw new Error(`"${METADATA_KEYS.tfidf}" has ${tfidf.terms?.length} terms; the input takes ${(input as ExportedTfidfInput).dim}`);
  const output = json(METADATA_KEYS.output) as ExportedOutput;
  if (!['probabilities', 'detections'].includes(output?.kind)) throw new Error(`unsupported output kind ${JSON.stringify((output as { kind?: unknown })?.kind)} (this version reads probabilities and detections)`);
  return {
    format,
    modality: props[METADATA_KEYS.modality] as ExportMetadata['modality'],
    labels,
    input,
    output,
    preprocessing: props[METADATA_KEYS.preprocessing] === undefined ? null : json(METADATA_KEYS.preprocessing),
    provenance: props[METADATA_KEYS.provenance] === undefined ? null : (json(METADATA_KEYS.provenance) as Provenance | null),
    ...(input.kind === 'text' ? { tokenizer: json(METADATA_KEYS.tokenizer) as EmbeddedTokenizer } : {}),
    ...(vocabulary ? { vocabulary } : {}),
    ...(tfidf ? { tfidf } : {}),
  };
}

/**
 * The region of a `sourceWidth`×`sourceHeight` image that ends up in the graph's input, in source
 * pixels, exactly as training prepared images: resize the shortest edge then centre-crop (the
 * rounding matches), centre-crop the largest region with the target's aspect, or stretch all of it.
 * Drawing this box onto a width×height canvas gives the input.
 */
export function cropBox(
  sourceWidth: number,
  sourceHeight: number,
  target: ImageResize & { width: number; height: number },
): { x: number; y: number; width: number; height: number } {
  const { width, height } = target;
  if (target.resize === 'stretch') return { x: 0, y: 0, width: sourceWidth, height: sourceHeight };
  if (target.resize === 'center-square-crop') {
    const scale = Math.max(width / sourceWidth, height / sourceHeight);
    const w = width / scale;
    const h = height / scale;
    return { x: (sourceWidth - w) / 2, y: (sourceHeight - h) / 2, width: w, height: h };
  }
  const edge = target.shortestEdge ?? Math.max(width, height);
  const scale = edge / Math.min(sourceWidth, sourceHeight);
  const resizedWidth = Math.max(width, Math.round(sourceWidth * scale));
  const resizedHeight = Math.max(height, Math.round(sourceHeight * scale));
  const scaleX = resizedWidth / sourceWidth;
  const scaleY = resizedHeight / sourceHeight;
  return {
    x: Math.floor((resizedWidth - width) / 2) / scaleX,
    y: Math.floor((resizedHeight - height) / 2) / scaleY,
    width: width / scaleX,
    height: height / scaleY,
  };
}

/**
 * Where a `sourceWidth`×`sourceHeight` photo goes in a detector's input (draw the whole photo into
 * this rectangle of a width×height canvas, filled first with `padValue` for `letterbox`), and the
 * factors that bring boxes back: x_source = (x_input − padX) × scaleX. Stretch fills the input;
 * letterbox is Ultralytics' LetterBox(auto=False): scale to fit, round, centre (its −0.1 rounding).
 */
export function detectionPlacement(
  sourceWidth: number,
  sourceHeight: number,
  target: { resize: ImageResize['resize']; width: number; height: number },
): { x: number; y: number; width: number; height: number; scaleX: number; scaleY: number; padX: number; padY: number } {
  const { width, height } = target;
  if (target.resize === 'letterbox') {
    const r = Math.min(width / sourceWidth, height / sourceHeight);
    const newWidth = Math.round(sourceWidth * r);
    const newHeight = Math.round(sourceHeight * r);
    // `+ 0`: Math.round(-0.1) is −0.
    const left = Math.round((width - newWidth) / 2 - 0.1) + 0;
    const top = Math.round((height - newHeight) / 2 - 0.1) + 0;
    return { x: left, y: top, width: newWidth, height: newHeight, scaleX: 1 / r, scaleY: 1 / r, padX: left, padY: top };
  }
  if (target.resize !== 'stretch') throw new Error(`detector inputs are stretched or letterboxed, not "${target.resize}"`);
  return { x: 0, y: 0, width, height, scaleX: sourceWidth / width, scaleY: sourceHeight / height, padX: 0, padY: 0 };
}

export interface ExportedDetection {
  label: string;
  /** The class index (column 6). */
  classIndex: number;
  score: number;
  /** [x1, y1, x2, y2] in the source photo's pixels, clipped to it. */
  box: [number, number, number, number];
}

/** The rows of a detector export's [N, 6] output as labelled boxes in the source photo's pixels. */
export function detectionsFromRows(
  rows: ArrayLike<number>,
  labels: string[],
  placement: { scaleX: number; scaleY: number; padX: number; padY: number },
  sourceWidth: number,
  sourceHeight: number,
  minScore = 0,
): ExportedDetection[] {
  const clip = (value: number, limit: number) => Math.min(limit, Math.max(0, value));
  const out: ExportedDetection[] = [];
  for (let i = 0; i + 6 <= rows.length; i += 6) {
    const score = rows[i + 4]!;
    if (score < minScore) continue;
    const classIndex = Math.round(rows[i + 5]!);
    const x = (v: number) => clip((v - placement.padX) * placement.scaleX, sourceWidth);
    const y = (v: number) => clip((v - placement.padY) * placement.scaleY, sourceHeight);
    out.push({ label: labels[classIndex] ?? String(classIndex), classIndex, score, box: [x(rows[i]!), y(rows[i + 1]!), x(rows[i + 2]!), y(rows[i + 3]!)] });
  }
  return out;
}

/** Token id rows padded to the longest with `padId`, and their attention mask: the two int64 inputs of a text export. */
export function padTokenIds(rows: ArrayLike<number>[], padId: number): { ids: BigInt64Array; mask: BigInt64Array; length: number } {
  const length = Math.max(1, ...rows.map((row) => row.length));
  const ids = new BigInt64Array(rows.length * length).fill(BigInt(padId));
  const mask = new BigInt64Array(rows.length * length);
  rows.forEach((row, r) => {
    for (let t = 0; t < row.length; t++) {
      ids[r * length + t] = BigInt(row[t]!);
      mask[r * length + t] = 1n;
    }
  });
  return { ids, mask, length };
}

export interface Prediction {
  label: string;
  probability: number;
}

/** The k most probable labels of one probability row, best first. */
export function topPredictions(probabilities: ArrayLike<number>, labels: string[], topK = labels.length): Prediction[] {
  return labels
    .map((label, i) => ({ label, probability: probabilities[i]! }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, Math.max(1, topK));
}

/**
 * `metadata_props` of an ONNX file, read straight from its protobuf bytes: the ONNX Runtime
 * JavaScript APIs do not expose custom metadata, and a full protobuf library is a heavy price for
 * one repeated field. Walks ModelProto's top-level fields, skipping the graph without parsing it.
 */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const props: Record<string, string> = {};
  const decoder = new TextDecoder();
  for (const field of protobufFields(bytes, 0, bytes.length)) {
    // ModelProto.metadata_props = 14: StringStringEntryProto { key = 1; value = 2 }.
    if (field.number !== 14 || field.wireType !== 2) continue;
    let key = '';
    let value = '';
    for (const entry of protobufFields(bytes, field.start, field.end)) {
      if (entry.wireType !== 2) continue;
      if (entry.number === 1) key = decoder.decode(bytes.subarray(entry.start, entry.end));
      if (entry.number === 2) value = decoder.decode(bytes.subarray(entry.start, entry.end));
    }
    props[key] = value;
  }
  return props;
}

interface ProtobufField {
  number: number;
  wireType: number;
  /** Payload bounds of a length-delimited field. */
  start: number;
  end: number;
}

function* protobufFields(bytes: Uint8Array, from: number, to: number): Generator<ProtobufField> {
  let position = from;
  const varint = (): number => {
    // Multiplication rather than bit shifts: lengths of large graphs exceed 2^31.
    let result = 0;
    let factor = 1;
    for (;;) {
      if (position >= to) throw new Error('not an ONNX file: truncated protobuf');
      const byte = bytes[position++]!;
      result += (byte & 0x7f) * factor;
      if (byte < 0x80) return result;
      factor *= 128;
    }
  };
  while (position < to) {
    const tag = varint();
    const wireType = tag % 8;
    const number = Math.floor(tag / 8);
    if (wireType === 0) {
      varint();
      yield { number, wireType, start: position, end: position };
    } else if (wireType === 2) {
      const length = varint();
      const start = position;
      position += length;
      if (position > to) throw new Error('not an ONNX file: truncated protobuf');
      yield { number, wireType, start, end: position };
    } else if (wireType === 1 || wireType === 5) {
      position += wireType === 1 ? 8 : 4;
      yield { number, wireType, start: position, end: position };
    } else {
      throw new Error(`not an ONNX file: protobuf wire type ${wireType}`);
    }
  }
}
