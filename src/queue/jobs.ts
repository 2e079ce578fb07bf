import type { Modality } from '../backbones/backbone.js';
import type { SkippedInput } from '../data/dataset.js';
import type { AugmentedViews } from '../features/extract.js';
import { hashJson } from '../util/hash.js';

/** BullMQ job name of a feature-extraction shard. */
export const EXTRACT_JOB = 'extract';
/** Bumped when job data or results change shape; a worker refuses a job of another version. */
export const JOB_PROTOCOL = 1;

/**
 * Inputs sent inside jobs (when workers do not share the coordinator's filesystem) are capped, since
 * each job is one Redis value and every byte of it is held in Redis until the job is harvested:
 * one input at most 8 MiB, one job's inputs at most 16 MiB (base64 makes that ~21 MiB in Redis).
 */
export const QUEUE_LIMITS = { maxInputBytes: 8 * 2 ** 20, maxJobBytes: 16 * 2 ** 20 };

/** What a worker needs to open the coordinator's backbone itself, and to check it did. */
export interface BackboneRecipe {
  modality: Modality;
  /** The reference as the model folder records it (`builtin:…`, `hf:owner/repo@commit`, an absolute path…). */
  id: string;
  featureOutput?: string;
  dtype?: string;
  preprocessing: object;
  sha256: string;
  /** `FeatureCache.namespaceOf` the coordinator's backbone: graph hash + feature output + preprocessing. */
  namespace: string;
  featureDim: number;
}

/** One input of a job: by path on a shared filesystem, or carried inside the job. */
export interface JobInput {
  /** Where it came from, for messages. */
  source: string;
  /** sha256 of its content: the worker checks what it reads against it. */
  key: string;
  path?: string;
  /** File bytes, base64. */
  bytes?: string;
  text?: string;
}

export interface ExtractJobData {
  protocol: number;
  backbone: BackboneRecipe;
  views?: AugmentedViews;
  inputs: JobInput[];
}

export interface ExtractJobResult {
  /** Feature-cache key → vector (float32, little-endian, base64): exact bits, no text rounding. */
  vectors: Record<string, string>;
  /** Inputs that failed to decode: reported, never retried. */
  skipped: SkippedInput[];
  inputs: number;
  seconds: number;
  worker: string;
}

/**
 * Retries are for transient failures (a crashed onnxruntime thread, a lost connection); what cannot
 * succeed on a retry fails at once (UnrecoverableError). Finished jobs stay a week so a coordinator
 * interrupted before harvesting finds their results on its next run; the coordinator removes them
 * as it harvests.
 */
export const EXTRACT_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 7 * 86_400 },
  removeOnFail: { age: 7 * 86_400 },
} as const;

export function encodeVector(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

export function decodeVector(encoded: string, dim: number): Float32Array | undefined {
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.byteLength !== dim * 4) return undefined;
  const out = new Float32Array(dim);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export interface ShardEntry {
  key: string;
  /** Bytes it adds to a job when carried inside it (0 when it travels by path). */
  size: number;
}

/**
 * Groups inputs into shards by content hash: sorted by hash, then cut every `shardSize` inputs or
 * `maxJobBytes` bytes. The cut depends only on the set of inputs, so a coordinator run again on the
 * same data plans the same shards, whose job ids then find the jobs of the interrupted run.
 */
export function planShards<T extends ShardEntry>(entries: T[], shardSize: number, maxJobBytes = QUEUE_LIMITS.maxJobBytes): T[][] {
  const sorted = [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const shards: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const entry of sorted) {
    if (current.length && (current.length >= shardSize || bytes + entry.size > maxJobBytes)) {
      shards.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += entry.size;
  }
  if (current.length) shards.push(current);
  return shards;
}

/** A shard's job id: the backbone's feature namespace, the views and the content hashes, so equal work has one id. */
export function jobIdOf(namespace: string, views: AugmentedViews | undefined, keys: string[]): string {
  // "hs-" keeps it from looking like the integers BullMQ gives jobs of its own.
  return `hs-${hashJson({ namespace, views: views ?? null, keys }).slice(0, 40)}`;
}
