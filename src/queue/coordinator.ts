import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { Job, Queue, QueueEvents } from 'bullmq';
import type { Backbone } from '../backbones/backbone.js';
import { FeatureCache } from '../features/cache.js';
import { viewKeys, type AugmentedViews, type ExtractableItem, type FeatureStore, type RemoteExtraction } from '../features/extract.js';
import { dataError, HeadstartError, modelError, usageError } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import type { Reporter } from '../util/progress.js';
import { DEFAULT_QUEUE_NAME, queueAddress } from './connection.js';
import {
  decodeVector,
  EXTRACT_JOB,
  EXTRACT_JOB_OPTIONS,
  JOB_PROTOCOL,
  jobIdOf,
  planShards,
  QUEUE_LIMITS,
  type BackboneRecipe,
  type ExtractJobData,
  type ExtractJobResult,
  type JobInput,
} from './jobs.js';

export interface QueueOptions {
  /** `redis://host:port[/db]`. */
  url: string;
  /** BullMQ queue name (default `headstart-features`); workers must use the same. */
  name?: string;
  /**
   * `path` (default): files travel by absolute path when they are files on this machine, so workers
   * must see the same files at the same paths (a shared filesystem); texts always travel inside jobs.
   * `bytes`: every input travels inside its job (capped, see QUEUE_LIMITS).
   */
  inputs?: 'path' | 'bytes';
  /** Inputs per job (default 32). */
  shardSize?: number;
  /** Jobs in Redis at once (default 64): bounds Redis memory, and what an interrupted run leaves behind. */
  inFlight?: number;
  /** How the backbone was opened, so workers open the same: feature output and ONNX dtype. */
  backboneOptions?: { featureOutput?: string; dtype?: string };
  /** Seconds between checks of jobs in flight, besides BullMQ's events (default 2). */
  pollSeconds?: number;
}

interface Scanned {
  key: string;
  size: number;
  item: number;
  path?: string;
}

/** Extraction through a BullMQ queue: what the cache lacks is sharded, sent to workers, and written back into the cache. */
export function queueExtraction(options: QueueOptions): RemoteExtraction {
  const address = queueAddress(options.url);
  const name = options.name ?? DEFAULT_QUEUE_NAME;
  const shardSize = options.shardSize ?? 32;
  const inFlight = options.inFlight ?? 64;
  if (!(shardSize >= 1) || !(inFlight >= 1)) throw usageError('--queue: shard size and jobs in flight must be at least 1');
  return {
    async fill<Input extends Uint8Array | string, Prepared>(
      backbone: Backbone<Input, Prepared>,
      items: ExtractableItem<Input>[],
      request: { cache: FeatureStore; views?: AugmentedViews; label: string; reporter: Reporter },
    ): Promise<{ vectors: number }> {
      const { cache, views, reporter } = request;
      const missing = await scanMissing(items, cache, views, options.inputs ?? 'path');
      if (missing.length === 0) return { vectors: 0 };
      const recipe: BackboneRecipe = {
        modality: backbone.reference.modality,
        id: backbone.reference.id,
        featureOutput: options.backboneOptions?.featureOutput,
        dtype: options.backboneOptions?.dtype,
        preprocessing: backbone.preprocessing,
        sha256: backbone.reference.sha256,
        namespace: FeatureCache.namespaceOf(backbone as Backbone<unknown, unknown>),
        featureDim: backbone.reference.featureDim,
      };
      const shards = planShards(missing, shardSize);
      const queue = new Queue<ExtractJobData, ExtractJobResult>(name, { connection: address.connection });
      const events = new QueueEvents(name, { connection: address.connection });
      // Redis going away makes ioredis report every reconnect attempt; one warning per distinct cause, then it resumes.
      let lastError = '';
      const onError = (error: Error) => {
        if (error.message !== lastError) reporter.warn(`queue: ${(lastError = error.message)} (waiting for Redis)`);
      };
      queue.on('error', onError);
      events.on('error', onError);
      try {
        await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
        const workers = await queue.getWorkersCount();
        reporter.info(
          `${request.label}: ${missing.length} of ${items.length} inputs not cached → ${shards.length} job${shards.length > 1 ? 's' : ''} on queue "${name}" at ${address.display} ` +
            (workers ? `(${workers} worker${workers > 1 ? 's' : ''} connected)` : '(no worker connected yet: start some with `headstart worker --queue …`)'),
        );
        return await runShards({ queue, events, shards, items, recipe, views, cache, reporter, label: request.label, inFlight, pollMs: (options.pollSeconds ?? 2) * 1000 });
      } finally {
        await Promise.allSettled([events.close(), queue.close()]);
      }
    },
  };
}

/**
 * Reads and hashes every input (a few at a time) and keeps one entry per distinct content whose
 * vectors are not all cached. Unreadable inputs are left out: extraction proper reports them.
 */
async function scanMissing<Input extends Uint8Array | string>(
  items: ExtractableItem<Input>[],
  cache: FeatureStore,
  views: AugmentedViews | undefined,
  inputs: 'path' | 'bytes',
): Promise<Scanned[]> {
  const byKey = new Map<string, Scanned>();
  await forEachLimited(items.length, 16, async (item) => {
    let input: Input;
    try {
      input = await items[item]!.load();
    } catch {
      return;
    }
    const key = sha256(input);
    if (byKey.has(key)) return;
    const cached = await Promise.all(viewKeys(key, views).map((k) => cache.get(k)));
    if (cached.every(Boolean)) return;
    const path = typeof input !== 'string' && inputs === 'path' ? await sameFile(items[item]!.source, input.byteLength) : undefined;
    const size = path ? 0 : typeof input === 'string' ? Buffer.byteLength(input) : input.byteLength;
    if (size > QUEUE_LIMITS.maxInputBytes) {
      throw dataError(
        `${(size / 2 ** 20).toFixed(1)} MiB is more than the ${QUEUE_LIMITS.maxInputBytes / 2 ** 20} MiB an input may carry inside a queue job; ` +
          'keep the data on a filesystem the workers share, so it travels by path',
        items[item]!.source,
      );
    }
    if (!byKey.has(key)) byKey.set(key, { key, size, item, path });
  });
  return [...byKey.values()];
}

/** The absolute path of `source` when it is a file of the size read (so, almost surely, what was read). */
async function sameFile(source: string, size: number): Promise<string | undefined> {
  const path = isAbsolute(source) ? source : resolve(source);
  const info = await stat(path).catch(() => undefined);
  return info?.isFile() && info.size === size ? path : undefined;
}

interface RunShards<Input extends Uint8Array | string> {
  queue: Queue<ExtractJobData, ExtractJobResult>;
  events: QueueEvents;
  shards: Scanned[][];
  items: ExtractableItem<Input>[];
  recipe: BackboneRecipe;
  views?: AugmentedViews;
  cache: FeatureStore;
  reporter: Reporter;
  label: string;
  inFlight: number;
  pollMs: number;
}

/**
 * Keeps up to `inFlight` jobs in the queue, harvests each as it completes (vectors into the cache,
 * then the job removed), and adds the next. Completion is learnt from BullMQ's events and, in case
 * one is missed (a Redis restart, a reconnect), from a periodic look at the jobs in flight.
 */
async function runShards<Input extends Uint8Array | string>(run: RunShards<Input>): Promise<{ vectors: number }> {
  const { queue, events, shards, recipe, views, cache, reporter } = run;
  const total = shards.reduce((n, shard) => n + shard.length, 0);
  const task = reporter.task(`${run.label} (queue)`, total, 'inputs');
  const pending = new Map<string, Scanned[]>();
  const harvesting = new Set<string>();
  // Asked about while being looked at: looked at again once that look ends, so no event is lost.
  const recheck = new Set<string>();
  let next = 0;
  let skipped = 0;
  let vectors = 0;
  let settle!: { resolve: () => void; reject: (error: unknown) => void };
  const finished = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  let failure: unknown;
  const fail = (error: unknown) => {
    failure ??= error;
    settle.reject(error);
  };

  const enqueue = async (shard: Scanned[]) => {
    const keys = shard.map((entry) => entry.key);
    const jobId = jobIdOf(recipe.namespace, views, keys);
    pending.set(jobId, shard);
    // A job failed in an earlier run would block the id: clear it so this run tries again.
    const existing = await queue.getJob(jobId);
    if (existing && (await existing.isFailed())) await existing.remove();
    const inputs = await Promise.all(shard.map((entry) => jobInput(entry, run.items)));
    await queue.add(EXTRACT_JOB, { protocol: JOB_PROTOCOL, backbone: recipe, views, inputs }, { ...EXTRACT_JOB_OPTIONS, jobId });
    // It may have finished before this run started listening (found from an interrupted run).
    await check(jobId);
  };

  const fillWindow = async () => {
    while (!failure && pending.size < run.inFlight && next < shards.length) await enqueue(shards[next++]!);
    if (!failure && pending.size === 0 && next >= shards.length) settle.resolve();
  };

  const check = async (jobId: string) => {
    if (!pending.has(jobId)) return;
    if (harvesting.has(jobId)) {
      recheck.add(jobId);
      return;
    }
    harvesting.add(jobId);
    try {
      // The state first: once completed or failed, the job's fields are final when read next.
      const state = await queue.getJobState(jobId);
      if (state === 'unknown') {
        // Gone without a result (Redis lost it, or someone removed it): send it again.
        const shard = pending.get(jobId)!;
        pending.delete(jobId);
        await enqueue(shard);
        return;
      }
      if (state !== 'completed' && state !== 'failed') return;
      const job = await Job.fromId<ExtractJobData, ExtractJobResult>(queue, jobId);
      if (!job) return;
      if (state === 'failed') throw failedJobError(job.failedReason, pending.get(jobId)!, run.items);
      if (!isResult(job.returnvalue)) throw modelError(`queue job ${jobId} completed without a result a headstart worker returns (is another program using queue "${queue.name}"?)`);
      const harvested = await harvest(job.returnvalue, pending.get(jobId)!, run.items, views, recipe.featureDim, cache);
      skipped += harvested.skipped;
      vectors += harvested.vectors;
      pending.delete(jobId);
      task.tick(job.returnvalue.inputs);
      await job.remove().catch(() => undefined);
      await fillWindow();
    } finally {
      harvesting.delete(jobId);
      if (recheck.delete(jobId)) void checkSafely(jobId);
    }
  };
  const checkSafely = (jobId: string) => check(jobId).catch(fail);

  const onCompleted = ({ jobId }: { jobId: string }) => void checkSafely(jobId);
  events.on('completed', onCompleted);
  events.on('failed', onCompleted);
  const poll = setInterval(() => {
    for (const jobId of pending.keys()) void checkSafely(jobId);
  }, run.pollMs);
  try {
    await fillWindow().catch(fail);
    await finished;
    task.done(`${total} inputs from the queue${skipped ? `, ${skipped} could not be decoded` : ''}`);
    return { vectors };
  } finally {
    clearInterval(poll);
    events.off('completed', onCompleted);
    events.off('failed', onCompleted);
  }
}

async function jobInput<Input extends Uint8Array | string>(entry: Scanned, items: ExtractableItem<Input>[]): Promise<JobInput> {
  const { source } = items[entry.item]!;
  if (entry.path) return { source, key: entry.key, path: entry.path };
  const input = await items[entry.item]!.load();
  return typeof input === 'string' ? { source, key: entry.key, text: input } : { source, key: entry.key, bytes: Buffer.from(input).toString('base64') };
}

/** Writes a job's vectors into the cache (atomically, one file each); counts them and the inputs skipped. */
async function harvest<Input extends Uint8Array | string>(
  result: ExtractJobResult,
  shard: Scanned[],
  items: ExtractableItem<Input>[],
  views: AugmentedViews | undefined,
  dim: number,
  cache: FeatureStore,
): Promise<{ vectors: number; skipped: number }> {
  let vectors = 0;
  const skippedSources = new Set(result.skipped.map((s) => s.source));
  for (const entry of shard) {
    const source = items[entry.item]!.source;
    if (skippedSources.has(source)) continue;
    for (const key of viewKeys(entry.key, views)) {
      const vector = result.vectors[key] === undefined ? undefined : decodeVector(result.vectors[key]!, dim);
      if (!vector) throw modelError(`worker ${result.worker} returned no ${dim}-d vector for ${source} (key ${key.slice(0, 12)}…)`);
      await cache.put(key, vector);
      vectors++;
    }
  }
  return { vectors, skipped: result.skipped.length };
}

function isResult(value: unknown): value is ExtractJobResult {
  const result = value as ExtractJobResult | null;
  return typeof result === 'object' && result !== null && typeof result.vectors === 'object' && Array.isArray(result.skipped) && typeof result.inputs === 'number';
}

/** A job that failed for good: the worker's reason, as the HeadstartError kind it names. */
function failedJobError<Input extends Uint8Array | string>(reason: string, shard: Scanned[], items: ExtractableItem<Input>[]): HeadstartError {
  const first = items[shard[0]!.item]!.source;
  const message = `a queue job (${shard.length} inputs, the first ${first}) failed on its worker: ${reason}`;
  return /backbone|sha256|protocol/.test(reason) ? modelError(message) : dataError(message);
}

/** Runs `body(i)` for i in [0, n), at most `limit` at a time; the first error stops it. */
async function forEachLimited(n: number, limit: number, body: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) await body(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
}
