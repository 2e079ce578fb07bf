/** Reading TF.js models: a model.json folder on disk, or the models the npm package nsfwjs bundles. */
import { readFile, stat } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { modelError } from '../../util/errors.js';
import { groupByteLength, parseManifest, type WeightGroup } from './weights.js';

export interface TfjsModelSource {
  /** The parsed model.json; loose JSON, validated where it is converted. */
  modelJson: any;
  /** All weight shards concatenated in manifest order. */
  weightData: ArrayBuffer;
  /** Path used in error messages. */
  origin: string;
}

export type NsfwjsModelName = 'mobilenet_v2' | 'mobilenet_v2_mid' | 'inception_v3';

/** Buffer.concat would do, but may return a view into Node's shared pool; this owns an exact ArrayBuffer. */
function concatenate(chunks: Uint8Array[]): ArrayBuffer {
  const total = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return joined.buffer;
}

/**
 * Checks one group's shards against the bytes its weights need and names the short shard.
 * TF.js writes every shard but the last at the same size, so a shard shorter than the first one is
 * the truncated one; otherwise the last is, and it should hold what the others do not.
 */
function checkGroupShards(group: WeightGroup, shards: { label: string; bytes: number }[], origin: string): void {
  const needed = groupByteLength(group, origin);
  const have = shards.reduce((sum, shard) => sum + shard.bytes, 0);
  if (Number.isNaN(needed) || have >= needed) return;
  const fullSize = shards[0]!.bytes;
  const shortIndex = shards.findIndex((shard, index) => index < shards.length - 1 && shard.bytes < fullSize);
  const index = shortIndex >= 0 ? shortIndex : shards.length - 1;
  const others = have - shards[index]!.bytes;
  const expected = shortIndex >= 0 ? fullSize : needed - others;
  throw modelError(
    `weight shard is truncated: it has ${shards[index]!.bytes} bytes, expected ${expected} ` +
      `(the ${group.weights.length} weights of its group need ${needed} bytes in ${shards.length} shard(s); ` +
      `the file may be incompletely downloaded)`,
    shards[index]!.label,
  );
}

/** Parses a model.json's text; errors name `path` (a file or a URL). */
export function parseModelJson(text: string, path: string): unknown {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw modelError(`not valid JSON (${(error as Error).message})`, path, error);
  }
  if (json === null || typeof json !== 'object' || !('modelTopology' in json)) {
    throw modelError('not a TF.js model.json: it has no "modelTopology"', path);
  }
  return json;
}

/**
 * Reads model.json and its weight shards (paths in the manifest are relative to model.json).
 * A folder is read as its model.json.
 */
export async function readTfjsModelFolder(modelJsonPath: string): Promise<TfjsModelSource> {
  const given = resolve(modelJsonPath);
  const path = (await stat(given).catch(() => undefined))?.isDirectory() ? join(given, 'model.json') : given;
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw modelError(error.code === 'ENOENT' ? 'model.json not found' : `cannot read: ${error.message}`, path, error);
  });
  const modelJson = parseModelJson(text, path);
  const groups = parseManifest(modelJson, path);
  const chunks: Uint8Array[] = [];
  for (const group of groups) {
    const shards: { label: string; bytes: number }[] = [];
    for (const shardPath of group.paths) {
      const file = await findShard(dirname(path), shardPath);
      if (!file) {
        throw modelError(`weight shard "${shardPath}" listed in the weightsManifest of ${basename(path)} is missing`, join(dirname(path), shardPath));
      }
      const bytes = await readFile(file);
      chunks.push(bytes);
      shards.push({ label: file, bytes: bytes.byteLength });
    }
    checkGroupShards(group, shards, path);
  }
  return { modelJson, weightData: concatenate(chunks), origin: path };
}

/** The shard file, also under its URL-decoded name (TF.js writes manifest paths URL-encoded). */
async function findShard(folder: string, shardPath: string): Promise<string | undefined> {
  for (const candidate of new Set([shardPath, safeDecodeUri(shardPath)])) {
    const file = join(folder, candidate);
    if ((await stat(file).catch(() => undefined))?.isFile()) return file;
  }
  return undefined;
}

function safeDecodeUri(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The nsfwjs package's folder, found from its resolved entry point (its exports map hides package.json). */
export function nsfwjsPackageDir(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('nsfwjs');
  } catch (error) {
    throw modelError('the npm package "nsfwjs" is not installed; it bundles the builtin image backbones', undefined, error);
  }
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'nsfwjs') return dir;
  }
  throw modelError('cannot locate the nsfwjs package folder', entry);
}

/** The installed nsfwjs version: part of the key under which its converted models are cached. */
export function nsfwjsVersion(): string {
  return (JSON.parse(readFileSync(join(nsfwjsPackageDir(), 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * One of the models bundled in nsfwjs: UMD CommonJS modules under dist/models/<name>/ —
 * model.min.js exports the model.json object, group1-shardXofY.min.js export base64 shard strings.
 */
export function readNsfwjsModel(name: NsfwjsModelName): TfjsModelSource {
  const folder = join(nsfwjsPackageDir(), 'dist', 'models', name);
  const modelFile = join(folder, 'model.min.js');
  if (!existsSync(modelFile)) throw modelError(`nsfwjs has no bundled model "${name}"`, modelFile);
  const require = createRequire(modelFile);
  const loadModule = (file: string): unknown => {
    try {
      return require(file);
    } finally {
      // The shard modules are large base64 strings; do not keep them in the module cache.
      delete require.cache[file];
    }
  };
  const modelJson = loadModule(modelFile);
  if (modelJson === null || typeof modelJson !== 'object' || !('modelTopology' in modelJson)) {
    throw modelError('does not export a TF.js model.json object', modelFile);
  }
  const groups = parseManifest(modelJson, modelFile);
  const chunks: Uint8Array[] = [];
  for (const group of groups) {
    const shards: { label: string; bytes: number }[] = [];
    for (const shardPath of group.paths) {
      const file = join(folder, `${shardPath}.min.js`);
      if (!existsSync(file)) throw modelError(`weight shard "${shardPath}" is missing`, file);
      const base64 = loadModule(file);
      if (typeof base64 !== 'string') throw modelError('does not export a base64 string', file);
      const bytes = Buffer.from(base64, 'base64');
      chunks.push(bytes);
      shards.push({ label: file, bytes: bytes.byteLength });
    }
    checkGroupShards(group, shards, modelFile);
  }
  return { modelJson, weightData: concatenate(chunks), origin: modelFile };
}
