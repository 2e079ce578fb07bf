import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BackboneReference } from '../backbones/backbone.js';
import type { SkippedInput } from '../data/dataset.js';
import type { ClassificationMetrics } from '../evaluate/metrics.js';
import type { HeadState, NamedTensor } from '../heads/head.js';
import { writeDirAtomic, type ReplaceGuard } from '../util/atomic.js';
import { modelError, messageOf } from '../util/errors.js';

export const MODEL_FORMAT = 'headstart-model';
export const MODEL_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const HEAD_WEIGHTS_FILE = 'head.bin';
export const METRICS_FILE = 'metrics.json';
/** A backbone fine-tuned by training (`fineTune`): the whole updated ONNX graph, features output `features`. */
export const FINE_TUNED_BACKBONE_FILE = 'backbone.onnx';
/**
 * A fine-tuned text encoder: a Hugging Face ONNX folder (config.json, onnx/model.onnx and the
 * tokenizer files), so the model folder reopens, exports and explains without the original.
 */
export const FINE_TUNED_TEXT_BACKBONE_FOLDER = 'backbone';

/** Recorded in the manifest when the model folder carries its own fine-tuned backbone. */
export interface FineTunedBackbone {
  /** File (images) or Hugging Face ONNX folder (text) in the model folder; `backbone.sha256` is its graph's sha256. */
  file: string;
  /** The backbone it was fine-tuned from. */
  base: { id: string; sha256: string };
}

/** Where one tensor lives in `head.bin`: little-endian float32, `byteOffset` from the start. */
export interface TensorEntry {
  shape: number[];
  dtype: 'float32';
  byteOffset: number;
}

/**
 * `manifest.json`: everything about a trained model except the head's numbers, which are in
 * `head.bin` (float32 little-endian, tensors back to back at the offsets listed here).
 */
export interface ModelManifest {
  format: typeof MODEL_FORMAT;
  formatVersion: number;
  headstartVersion: string;
  createdAt: string;
  modality: BackboneReference['modality'];
  labels: string[];
  backbone: BackboneReference & { preprocessing: object; fineTuned?: FineTunedBackbone };
  head: { type: HeadState['type']; config: Record<string, unknown>; tensors: Record<string, TensorEntry>; file: string };
  /** Softmax temperature fitted on validation data (1 = none). */
  calibration?: { temperature: number; fittedOn: string };
  training: Record<string, unknown>;
  metrics: { validation?: ClassificationMetrics; test?: ClassificationMetrics };
  skipped: SkippedInput[];
}

export type ManifestWithoutHead = Omit<ModelManifest, 'head' | 'format' | 'formatVersion'>;

/** Whether `dir` holds a manifest.json of headstart's model format (any version). */
export async function isModelFolder(dir: string): Promise<boolean> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as Partial<ModelManifest>;
    return manifest?.format === MODEL_FORMAT;
  } catch {
    return false;
  }
}

/** Saving a model replaces a folder at the path only when it is an earlier model (or empty). */
export const MODEL_FOLDER_GUARD: ReplaceGuard = {
  what: 'model folder',
  ours: `a headstart model folder (one holding a ${MANIFEST_FILE} of format "${MODEL_FORMAT}")`,
  isOurs: isModelFolder,
};

/**
 * Writes the model folder atomically: readers see the old model or the new one, never a mix.
 * `files` are written into the folder too (a fine-tuned backbone); `fill` may add more to the staged
 * folder (predictions, the report) once the model files are in it, so they appear together with the model.
 * Refuses (usage error) to replace a folder that is neither empty nor a headstart model folder.
 */
export async function saveModelFolder(
  dir: string,
  manifest: ManifestWithoutHead,
  head: HeadState,
  files: Record<string, Uint8Array> = {},
  fill?: (stagedDir: string) => Promise<void>,
): Promise<void> {
  const { entries, bytes } = packTensors(head.tensors);
  const full: ModelManifest = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    ...manifest,
    head: { type: head.type, config: head.config, tensors: entries, file: HEAD_WEIGHTS_FILE },
  };
  await writeDirAtomic(dir, async (temp) => {
    for (const [name, contents] of Object.entries(files)) {
      await mkdir(dirname(join(temp, name)), { recursive: true });
      await writeFile(join(temp, name), contents);
    }
    await writeFile(join(temp, HEAD_WEIGHTS_FILE), bytes);
    await writeFile(join(temp, MANIFEST_FILE), `${JSON.stringify(full, null, 2)}\n`);
    // The evaluation on its own, for tools that only want the numbers.
    await writeFile(join(temp, METRICS_FILE), `${JSON.stringify(full.metrics, null, 2)}\n`);
    await fill?.(temp);
  }, MODEL_FOLDER_GUARD);
}

export async function loadModelFolder(dir: string): Promise<{ manifest: ModelManifest; head: HeadState }> {
  const manifestPath = join(dir, MANIFEST_FILE);
  let manifest: ModelManifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as ModelManifest;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw modelError(missing ? 'not a headstart model folder (no manifest.json)' : `unreadable manifest: ${messageOf(error)}`, missing ? dir : manifestPath, error);
  }
  if (manifest.format !== MODEL_FORMAT) throw modelError(`not a headstart model manifest (format "${String(manifest.format)}")`, manifestPath);
  if ((manifest as { task?: string }).task === 'detect') throw modelError('a detector model folder, not a classifier: open it with Detector.load (headstart detect / eval)', manifestPath);
  if (manifest.formatVersion > MODEL_FORMAT_VERSION) {
    throw modelError(`written by a newer headstart (format ${manifest.formatVersion}; this one reads up to ${MODEL_FORMAT_VERSION})`, manifestPath);
  }
  const weightsPath = join(dir, manifest.head.file ?? HEAD_WEIGHTS_FILE);
  const bytes = await readFile(weightsPath).catch((error) => {
    throw modelError(`cannot read the head weights: ${messageOf(error)}`, weightsPath, error);
  });
  const tensors = unpackTensors(manifest.head.tensors, bytes, weightsPath);
  return { manifest, head: { type: manifest.head.type, config: manifest.head.config, tensors } };
}

function packTensors(tensors: Record<string, NamedTensor>): { entries: Record<string, TensorEntry>; bytes: Uint8Array } {
  const entries: Record<string, TensorEntry> = {};
  let total = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    entries[name] = { shape: tensor.shape, dtype: 'float32', byteOffset: total };
    total += tensor.data.length * 4;
  }
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  for (const [name, tensor] of Object.entries(tensors)) {
    const offset = entries[name]!.byteOffset;
    tensor.data.forEach((value, i) => view.setFloat32(offset + i * 4, value, true));
  }
  return { entries, bytes };
}

function unpackTensors(entries: Record<string, TensorEntry>, bytes: Uint8Array, path: string): Record<string, NamedTensor> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tensors: Record<string, NamedTensor> = {};
  for (const [name, entry] of Object.entries(entries)) {
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (entry.byteOffset + count * 4 > bytes.byteLength) {
      throw modelError(`truncated: tensor "${name}" needs bytes ${entry.byteOffset}..${entry.byteOffset + count * 4}, file has ${bytes.byteLength}`, path);
    }
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(entry.byteOffset + i * 4, true);
    tensors[name] = { shape: entry.shape, data };
  }
  return tensors;
}
