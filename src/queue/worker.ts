import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { BackboneOptions } from '../classifier/modality.js';
import { extractFeatures, type FeatureStore } from '../features/extract.js';
import { HeadstartError, messageOf } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { silentReporter, type Reporter } from '../util/progress.js';
import { DEFAULT_QUEUE_NAME, queueAddress } from './connection.js';
import { JobBackbones } from './job-backbone.js';
import { encodeVector, EXTRACT_JOB, JOB_PROTOCOL, type ExtractJobData, type ExtractJobResult, type JobInput } from './jobs.js';

export interface WorkerOptions {
  /** `redis://host:port[/db]`. */
  url: string;
  /** BullMQ queue name (default `headstart-features`). */
  name?: string;
  /** Jobs this process works on at once (default 1: one job already keeps the cores busy). */
  concurrency?: number;
  /** Where converted backbones are cached (as for training). */
  cacheDir: string;
  hub?: BackboneOptions['hub'];
  reporter?: Reporter;
  /**
   * Seconds a job's lock lives without renewal (default 30). A worker renews it while alive; one
   * killed outright leaves it to expire, after which BullMQ's stalled-job check hands the job to
   * another worker. Lower means faster recovery and more Redis traffic.
   */
  lockSeconds?: number;
  /** This worker's name in logs and results (default host:pid). */
  id?: string;
}

export interface RunningWorker {
  readonly id: string;
  /** Ids of the jobs being worked on right now (what a stop will wait for). */
  inHand(): string[];
  /** Stops taking jobs, finishes the ones in hand, and disconnects. */
  close(): Promise<void>;
}

/** Takes extraction jobs from the queue until closed; logs one line (with `done`) per finished job. */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const address = queueAddress(options.url);
  const reporter = options.reporter ?? silentReporter;
  const id = options.id ?? `${hostname()}:${process.pid}`;
  const backbones = new JobBackbones({ cacheDir: options.cacheDir, reporter, hub: options.hub });
  const lockDuration = (options.lockSeconds ?? 30) * 1000;

  const inHand = new Set<string>();
  const process_ = async (job: Job<ExtractJobData, ExtractJobResult>): Promise<ExtractJobResult> => {
    inHand.add(job.id ?? '');
    try {
      return await extractJob(job);
    } finally {
      inHand.delete(job.id ?? '');
    }
  };
  const extractJob = async (job: Job<ExtractJobData, ExtractJobResult>): Promise<ExtractJobResult> => {
    const started = performance.now();
    const data = job.data;
    if (job.name !== EXTRACT_JOB || data.protocol !== JOB_PROTOCOL) {
      throw new UnrecoverableError(`job protocol ${String(data.protocol)} of "${job.name}" is not this worker's ${JOB_PROTOCOL} (update headstart on one side)`);
    }
    const backbone = await backbones.get(data.backbone).catch((error) => {
      // A refused or unresolvable backbone stays so on a retry; a network hiccup may not.
      throw error instanceof HeadstartError && error.kind !== 'network' ? new UnrecoverableError(error.message) : error;
    });
    const inputs = await Promise.all(data.inputs.map((input) => readJobInput(input, id)));
    const collected = new Map<string, Float32Array>();
    const store: FeatureStore = {
      get: async () => undefined,
      put: async (key, vector) => void collected.set(key, vector),
    };
    const items = data.inputs.map((input, i) => ({ source: input.source, load: async () => inputs[i]! }));
    const extracted = await extractFeatures(backbone, items, { cache: store, views: data.views });
    const seconds = (performance.now() - started) / 1000;
    const vectors: Record<string, string> = {};
    for (const [key, vector] of collected) vectors[key] = encodeVector(vector);
    reporter.info(
      `done ${job.id}: ${data.inputs.length} inputs${extracted.skipped.length ? ` (${extracted.skipped.length} skipped: undecodable)` : ''} in ${seconds.toFixed(2)}s` +
        (job.attemptsStarted > 1 ? ` (attempt ${job.attemptsStarted})` : ''),
    );
    return { vectors, skipped: extracted.skipped, inputs: data.inputs.length, seconds, worker: id };
  };

  const worker = new Worker<ExtractJobData, ExtractJobResult>(options.name ?? DEFAULT_QUEUE_NAME, process_, {
    connection: address.connection,
    concurrency: options.concurrency ?? 1,
    lockDuration,
    stalledInterval: lockDuration,
    // A job whose worker died twice is suspect (it may be what kills them); it fails rather than loops.
    maxStalledCount: 2,
    name: id,
  });
  let lastError = '';
  worker.on('error', (error) => {
    // Redis going away makes ioredis report every reconnect attempt; one line per distinct cause.
    if (messageOf(error) !== lastError) reporter.warn(`queue: ${(lastError = messageOf(error))}`);
  });
  worker.on('ready', () => {
    if (lastError) reporter.info(`queue: connected again to ${address.display}`);
    lastError = '';
  });
  worker.on('failed', (job, error) => {
    if (job) reporter.warn(`failed ${job.id}: ${error.message}${job.attemptsMade < (job.opts.attempts ?? 1) && !(error instanceof UnrecoverableError) ? ' (will be retried)' : ''}`);
  });
  await worker.waitUntilReady();
  reporter.info(`worker ${id} waiting for jobs on queue "${worker.name}" at ${address.display} (concurrency ${options.concurrency ?? 1})`);
  return {
    id,
    inHand: () => [...inHand],
    async close() {
      await worker.close();
      await backbones.dispose();
    },
  };
}

/** An input as the coordinator read it: from the shared filesystem (checked by hash) or from the job itself. */
async function readJobInput(input: JobInput, worker: string): Promise<Uint8Array | string> {
  if (input.text !== undefined) return input.text;
  if (input.bytes !== undefined) return new Uint8Array(Buffer.from(input.bytes, 'base64'));
  const bytes = await readFile(input.path!).catch((error) => {
    throw new UnrecoverableError(
      `${input.path}: cannot read it on worker ${worker} (${messageOf(error)}); workers that do not share the coordinator's filesystem need --queue-inputs bytes`,
    );
  });
  if (sha256(bytes) !== input.key) {
    throw new UnrecoverableError(`${input.path}: the file at this path on worker ${worker} is not the one the coordinator read (its sha256 differs)`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
