import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { hashJson } from '../util/hash.js';
import type { Backbone } from '../backbones/backbone.js';
import type { FeatureStore } from './extract.js';

/** `--cache-dir`, else `$HEADSTART_CACHE`, else `$XDG_CACHE_HOME/headstart`, else `~/.cache/headstart`. */
export function defaultCacheDir(): string {
  if (process.env.HEADSTART_CACHE) return process.env.HEADSTART_CACHE;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'headstart');
}

/**
 * Feature vectors on disk, one small file per (input content, view), in a folder per backbone and
 * preprocessing. Keyed by content, not path, so renamed or copied files still hit; written
 * atomically, and a file of the wrong size is treated as a miss, so a crash cannot poison it.
 */
export class FeatureCache implements FeatureStore {
  readonly dir: string;

  constructor(
    cacheDir: string,
    readonly namespace: string,
    readonly dim: number,
  ) {
    this.dir = join(cacheDir, 'features', namespace);
  }

  /** The cache for one backbone as configured: its graph hash, feature output and preprocessing. */
  static forBackbone(cacheDir: string, backbone: Backbone<unknown, unknown>): FeatureCache {
    return new FeatureCache(cacheDir, FeatureCache.namespaceOf(backbone), backbone.reference.featureDim);
  }

  /** What makes two backbones' features interchangeable: graph hash, feature output and preprocessing. */
  static namespaceOf(backbone: Backbone<unknown, unknown>): string {
    const { sha256, featureOutput } = backbone.reference;
    return hashJson({ sha256, featureOutput, preprocessing: backbone.preprocessing }).slice(0, 32);
  }

  private path(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key}.f32`);
  }

  async get(key: string): Promise<Float32Array | undefined> {
    const bytes = await readFile(this.path(key)).catch(() => undefined);
    if (!bytes || bytes.byteLength !== this.dim * 4) return undefined;
    // Copy into an aligned buffer: Buffers from readFile may share an unaligned pool.
    const out = new Float32Array(this.dim);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }

  async put(key: string, vector: Float32Array): Promise<void> {
    if (vector.length !== this.dim) throw new Error(`feature cache: expected ${this.dim} values, got ${vector.length}`);
    await mkdir(join(this.dir, key.slice(0, 2)), { recursive: true });
    // No fsync: a lost entry is recomputed, and the size check rejects a torn one.
    await writeFileAtomic(this.path(key), new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength), { durable: false });
  }
}
